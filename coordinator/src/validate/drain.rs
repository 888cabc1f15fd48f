//! Drained servers (`drain = true`): at least one server stays, and in every volume the
//! drained servers' bricks are whole sets (gluster removes bricks only set by set) and leave
//! at least one set.

use super::Issues;
use crate::spec::Spec;

pub(super) fn check(spec: &Spec, issues: &mut Issues) {
    if !spec.servers.is_empty() && spec.members().is_empty() {
        issues.push(at!["server"], "every server has drain = true: at least one must keep the volumes");
    }
    for (v, volume) in spec.volumes.iter().enumerate() {
        let Ok(layout) = volume.layout() else { continue };
        let servers = spec.volume_servers(volume);
        if !servers.iter().any(|s| s.drain) {
            continue;
        }
        for set in servers.chunks(layout.set_size()) {
            let (drained, kept): (Vec<_>, Vec<_>) = set.iter().partition(|s| s.drain);
            if !drained.is_empty() && !kept.is_empty() {
                let names = |list: &[&&crate::spec::Server]| {
                    list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                };
                issues.push(
                    at!["volume", v],
                    format!(
                        "volume {:?}: {} drains but {} of the same set does not: gluster removes whole sets, so \
                         drain every server of the set or none",
                        volume.name,
                        names(&drained),
                        names(&kept)
                    ),
                );
            }
        }
        if spec.volume_members(volume).is_empty() {
            issues.push(
                at!["volume", v],
                format!("volume {:?}: every server of it drains, which would leave it no bricks", volume.name),
            );
        }
    }
}
