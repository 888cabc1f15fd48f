//! Volumes: valid unique names, a relative `brick_dir`, `servers` that are servers of the spec
//! (each once), one brick per server and brick dir across volumes, bricks outside the system
//! trees (the path policy), bricks on `/` only with
//! `force`, and a layout whose counts and bricks fit (the rules of `brickyard_proto::layout`).

use std::collections::HashMap;

use brickyard_proto::types::{AbsPath, RelPath, VolumeName};

use super::Issues;
use crate::spec::{LayoutError, Seg, Spec, Volume};

pub(super) fn check(spec: &Spec, issues: &mut Issues) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut brick_owner: HashMap<(&str, &str), usize> = HashMap::new();
    for (v, volume) in spec.volumes.iter().enumerate() {
        match VolumeName::new(&volume.name) {
            Err(e) => issues.push(at!["volume", v, "name"], e.to_string()),
            Ok(_) => {
                if let Some(first) = names.insert(&volume.name, v) {
                    issues.push(
                        at!["volume", v, "name"],
                        format!("volume {:?} is already defined by volume[{first}]", volume.name),
                    );
                }
            }
        }
        let brick_dir_ok = match RelPath::new(&volume.brick_dir) {
            Err(e) => {
                issues.push(
                    at!["volume", v, "brick_dir"],
                    format!("{e} (brick_dir is relative to each server's disk mount)"),
                );
                false
            }
            Ok(_) => true,
        };

        let servers = brick_servers(spec, v, volume, issues);
        for name in &servers {
            let brick = spec.brick_path(name, &volume.brick_dir);
            if let Some(Err(e)) = AbsPath::new(&brick).ok().filter(|_| brick_dir_ok).map(|b| b.require_outside_system())
            {
                issues.push(
                    at!["volume", v, "brick_dir"],
                    format!("brick {name}:{brick} of volume {:?}: {e}", volume.name),
                );
            }
            if let Some(first) = brick_owner.insert((name, volume.brick_dir.as_str()), v) {
                issues.push(
                    at!["volume", v, "brick_dir"],
                    format!("server {name:?} already has brick_dir {:?} for volume[{first}]", volume.brick_dir),
                );
            }
            let has_disk = spec.server(name).is_some_and(|s| s.disk.is_some());
            if !has_disk && !volume.force {
                issues.push(
                    at!["volume", v],
                    format!(
                        "server {name:?} has no disk, so its brick would be on the root filesystem; give it a disk or \
                         set force = true on volume {:?}",
                        volume.name
                    ),
                );
            }
        }

        if let Err(e) = volume.layout().and_then(|layout| layout.check_bricks(&servers)) {
            let message = match e {
                LayoutError::NoBricks => format!("volume {:?} has no servers to carry its bricks", volume.name),
                LayoutError::BricksDoNotFit { .. } => format!("volume {:?} (one brick per server): {e}", volume.name),
                _ => format!("volume {:?}: {e}", volume.name),
            };
            issues.push(layout_key(v, volume, &e), message);
        }
    }
}

/// The servers that carry `volume`'s bricks, in brick order; reports unknown and repeated
/// names in its `servers` list.
fn brick_servers<'a>(spec: &'a Spec, v: usize, volume: &'a Volume, issues: &mut Issues) -> Vec<&'a str> {
    let Some(list) = &volume.servers else { return spec.servers.iter().map(|s| s.name.as_str()).collect() };
    let mut seen = Vec::new();
    for (j, name) in list.iter().enumerate() {
        if spec.server(name).is_none() {
            issues.push(at!["volume", v, "servers", j], format!("{name:?} is not a [[server]] of this spec"));
        } else if seen.contains(&name.as_str()) {
            issues.push(at!["volume", v, "servers", j], format!("server {name:?} is listed twice"));
        } else {
            seen.push(name.as_str());
        }
    }
    seen
}

/// Where a layout error points: the count it is about when the volume gives that key,
/// otherwise `type` (a default was used); the volume itself for its bricks.
fn layout_key(v: usize, volume: &Volume, error: &LayoutError) -> Vec<Seg> {
    let counts = volume.counts();
    let given = match error.field() {
        "bricks" => return at!["volume", v],
        "replica" => counts.replica.is_some(),
        "arbiter" => counts.arbiter.is_some(),
        "disperse" => counts.disperse.is_some(),
        "redundancy" => counts.redundancy.is_some(),
        _ => false,
    };
    at!["volume", v, if given { error.field() } else { "type" }]
}
