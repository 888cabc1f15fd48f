//! `[pool]`: a valid pool name, a `pki_dir` without `..` or control characters (it is
//! resolved beside the spec; an absolute path reaches anywhere else), and `coordinators` as
//! addresses or networks (the agents' port admits only them).

use std::path::Component;

use brickyard_proto::types::{PoolName, SourceNet};

use super::Issues;
use crate::spec::Spec;

pub(super) fn check(spec: &Spec, issues: &mut Issues) {
    if let Err(e) = PoolName::new(&spec.pool.name) {
        issues.push(at!["pool", "name"], e.to_string());
    }
    if let Some(dir) = &spec.pool.pki_dir {
        let shown = format!("{:?}", dir.display().to_string());
        if dir.as_os_str().is_empty() {
            issues.push(at!["pool", "pki_dir"], "must not be empty (leave it out for `pki` beside the spec)");
        } else if dir.components().any(|c| c == Component::ParentDir) {
            issues.push(
                at!["pool", "pki_dir"],
                format!("{shown} must not contain '..' (give an absolute path for a directory elsewhere)"),
            );
        } else if dir.to_string_lossy().chars().any(char::is_control) {
            issues.push(at!["pool", "pki_dir"], format!("{shown} contains a control character"));
        }
    }
    match spec.pool.coordinators.as_deref() {
        Some([]) => issues.push(
            at!["pool", "coordinators"],
            "list at least one ADDR/PREFIX, or leave the key out to admit the address apply connects from",
        ),
        Some(coordinators) => {
            for (i, net) in coordinators.iter().enumerate() {
                if let Err(e) = SourceNet::new(net) {
                    issues.push(at!["pool", "coordinators", i], e.to_string());
                }
            }
        }
        None => {}
    }
}
