//! Client mounts: of a volume the spec defines, on an absolute path outside the system trees
//! (the path policy), each path once per client.

use brickyard_proto::types::AbsPath;

use super::Issues;
use crate::spec::Spec;

pub(super) fn check(spec: &Spec, issues: &mut Issues) {
    for (c, client) in spec.clients.iter().enumerate() {
        let mut paths: Vec<&str> = Vec::new();
        for (m, mount) in client.mounts.iter().enumerate() {
            let at = |key: &str| at!["client", c, "mounts", m, key];
            if spec.volume(&mount.volume).is_none() {
                issues.push(at("volume"), format!("no [[volume]] named {:?}", mount.volume));
            }
            match AbsPath::checked("client mount path", &mount.path) {
                Err(e) => issues.push(at("path"), e.to_string()),
                Ok(p) => match p.require_outside_system() {
                    Err(e) => issues.push(at("path"), format!("client {:?}: {e}", client.name)),
                    Ok(()) if paths.contains(&mount.path.as_str()) => {
                        issues.push(at("path"), format!("{} is mounted twice on {:?}", mount.path, client.name))
                    }
                    Ok(()) => paths.push(&mount.path),
                },
            }
        }
    }
}
