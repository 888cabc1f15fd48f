//! `[pool]`: a valid pool name, and a `pki_dir` without `..` or control characters (it is
//! resolved beside the spec; an absolute path reaches anywhere else).

use std::path::Component;

use brickyard_proto::types::PoolName;

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
}
