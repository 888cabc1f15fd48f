//! `[pool]`: a valid pool name, a `pki_dir` without `..` or control characters (it is
//! resolved beside the spec; an absolute path reaches anywhere else), `coordinators` as
//! addresses or networks (the agents' port admits only them), and `gluster_version` /
//! `gluster_repo` as the agents' package task takes them (a Storage SIG release; an https
//! `.repo` URL or a release package name).

use std::path::Component;

use brickyard_proto::types::{GlusterRelease, GlusterRepo, PoolName, SourceNet};

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
    if let Some(version) = &spec.pool.gluster_version {
        if let Err(e) = GlusterRelease::new(version) {
            issues.push(at!["pool", "gluster_version"], e.to_string());
        }
    }
    if let Some(repo) = &spec.pool.gluster_repo {
        if let Err(e) = GlusterRepo::new(repo) {
            issues.push(at!["pool", "gluster_repo"], e.to_string());
        }
        if spec.pool.gluster_version.is_some() {
            issues.push(
                at!["pool", "gluster_repo"],
                "gluster_version picks a Storage SIG release and gluster_repo replaces the SIG: give one of the two",
            );
        }
    }
}
