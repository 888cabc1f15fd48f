//! Semantic checks of a parsed spec, run before any host is contacted: unique host names and
//! addresses, valid names/paths/options (the same newtypes the agents use), volume counts that
//! fit the servers, replica 2 only with its opt-in, bricks on `/` only with `force`, client
//! mounts that name existing volumes. Pure: touches nothing.

use std::collections::HashMap;
use std::net::IpAddr;

use brickyard_proto::types::{AbsPath, DevicePath, HostName, OptionKey, OptionValue, RelPath, SourceNet, VolumeName};

use crate::spec::{Seg, Spec, VolumeKind};

/// One problem, located by its key path in the document (see `spec::line_of`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub at: Vec<Seg>,
    pub message: String,
}

macro_rules! at {
    ($($seg:expr),* $(,)?) => { vec![$(Seg::from($seg)),*] };
}

/// Every semantic problem of `spec` (empty = valid).
pub fn check(spec: &Spec) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut push = |at: Vec<Seg>, message: String| issues.push(Issue { at, message });

    if spec.pool.name.trim().is_empty() {
        push(at!["pool", "name"], "must not be empty".into());
    }
    match spec.pool.coordinators.as_deref() {
        Some([]) => push(
            at!["pool", "coordinators"],
            "list at least one ADDR/PREFIX, or leave the key out to admit the address apply connects from".into(),
        ),
        Some(coordinators) => {
            for (i, net) in coordinators.iter().enumerate() {
                if let Err(e) = SourceNet::new(net) {
                    push(at!["pool", "coordinators", i], e.to_string());
                }
            }
        }
        None => {}
    }

    // Hosts: servers then clients share one namespace of names and addresses.
    let hosts = spec
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| ("server", i, &s.name, &s.address))
        .chain(spec.clients.iter().enumerate().map(|(i, c)| ("client", i, &c.name, &c.address)));
    let mut names: HashMap<String, String> = HashMap::new();
    let mut addresses: HashMap<IpAddr, String> = HashMap::new();
    for (table, i, name, address) in hosts {
        let here = format!("{table}[{i}]");
        match HostName::new(name) {
            Err(e) => push(at![table, i, "name"], e.to_string()),
            Ok(_) => {
                if let Some(first) = names.insert(name.to_ascii_lowercase(), here.clone()) {
                    push(at![table, i, "name"], format!("host name {name:?} is already used by {first}"));
                }
            }
        }
        match address.parse::<IpAddr>() {
            Err(_) => push(at![table, i, "address"], format!("{address:?} is not an IP address")),
            Ok(ip) => {
                if let Some(first) = addresses.insert(ip, here) {
                    push(at![table, i, "address"], format!("address {address} is already used by {first}"));
                }
            }
        }
    }

    for (i, server) in spec.servers.iter().enumerate() {
        let Some(disk) = &server.disk else { continue };
        if let Err(e) = DevicePath::new(&disk.device) {
            push(at!["server", i, "disk", "device"], e.to_string());
        }
        match AbsPath::checked("disk mount", &disk.mount) {
            Err(e) => push(at!["server", i, "disk", "mount"], e.to_string()),
            Ok(p) if p.is_root() => {
                push(at!["server", i, "disk", "mount"], "a brick disk cannot be mounted on /".into())
            }
            Ok(_) => {}
        }
        if let Some(fs) = &disk.filesystem {
            if !matches!(fs.as_str(), "xfs" | "ext4") {
                push(at!["server", i, "disk", "filesystem"], format!("{fs:?} is not supported (xfs or ext4)"));
            }
        }
        if let Some(table) = &disk.table {
            if !matches!(table.as_str(), "gpt" | "msdos") {
                push(at!["server", i, "disk", "table"], format!("{table:?} is not supported (gpt or msdos)"));
            }
        }
        if let Some(label) = &disk.label {
            let max = if disk.filesystem.as_deref() == Some("ext4") { 16 } else { 12 };
            if label.is_empty()
                || label.len() > max
                || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                push(
                    at!["server", i, "disk", "label"],
                    format!("{label:?} must be 1-{max} letters, digits, '-' or '_'"),
                );
            }
        }
    }

    // Volumes.
    let mut volume_names: HashMap<&str, usize> = HashMap::new();
    let mut brick_owner: HashMap<(&str, &str), usize> = HashMap::new();
    for (v, volume) in spec.volumes.iter().enumerate() {
        match VolumeName::new(&volume.name) {
            Err(e) => push(at!["volume", v, "name"], e.to_string()),
            Ok(_) => {
                if let Some(first) = volume_names.insert(&volume.name, v) {
                    push(
                        at!["volume", v, "name"],
                        format!("volume {:?} is already defined by volume[{first}]", volume.name),
                    );
                }
            }
        }
        if let Err(e) = RelPath::new(&volume.brick_dir) {
            push(at!["volume", v, "brick_dir"], format!("{e} (brick_dir is relative to each server's disk mount)"));
        }

        let server_names: Vec<&str> = match &volume.servers {
            Some(list) => {
                let mut seen = Vec::new();
                for (j, name) in list.iter().enumerate() {
                    if spec.server(name).is_none() {
                        push(at!["volume", v, "servers", j], format!("{name:?} is not a [[server]] of this spec"));
                    } else if seen.contains(&name.as_str()) {
                        push(at!["volume", v, "servers", j], format!("server {name:?} is listed twice"));
                    } else {
                        seen.push(name.as_str());
                    }
                }
                seen
            }
            None => spec.servers.iter().map(|s| s.name.as_str()).collect(),
        };
        let bricks = server_names.len() as u32;
        if bricks == 0 {
            push(at!["volume", v], format!("volume {:?} has no servers to carry its bricks", volume.name));
        }
        for name in &server_names {
            if let Some(first) = brick_owner.insert((name, volume.brick_dir.as_str()), v) {
                push(
                    at!["volume", v, "brick_dir"],
                    format!("server {name} already has brick_dir {:?} for volume[{first}]", volume.brick_dir),
                );
            }
            let has_disk = spec.server(name).is_some_and(|s| s.disk.is_some());
            if !has_disk && !volume.force {
                push(
                    at!["volume", v],
                    format!(
                        "server {name} has no disk, so its brick would be on the root filesystem; give it a \
                         disk or set force = true on volume {:?}",
                        volume.name
                    ),
                );
            }
        }

        match volume.layout() {
            Err(message) => push(at!["volume", v, "type"], message),
            Ok(layout) if bricks > 0 => {
                let counts = match layout.kind {
                    VolumeKind::Distribute => Ok(()),
                    VolumeKind::Replicate => {
                        if layout.replica < 2 {
                            Err(("replica", format!("replica {} must be 2 or more", layout.replica)))
                        } else if layout.replica == 2 && !volume.allow_replica2 {
                            Err((
                                "replica",
                                "replica 2 without an arbiter is split-brain prone: use type = \"arbiter\" \
                                 (replica 3, arbiter 1) or set allow_replica2 = true"
                                    .into(),
                            ))
                        } else {
                            fits("replica", layout.replica, bricks)
                        }
                    }
                    VolumeKind::Arbiter => {
                        if layout.replica != 3 || layout.arbiter != 1 {
                            Err((
                                "replica",
                                format!(
                                    "an arbiter volume is replica 3 arbiter 1 (gluster counts the arbiter as the \
                                     third replica), not replica {} arbiter {}",
                                    layout.replica, layout.arbiter
                                ),
                            ))
                        } else {
                            fits("replica", 3, bricks)
                        }
                    }
                    VolumeKind::Disperse => {
                        if layout.redundancy == 0 || 2 * layout.redundancy >= layout.disperse {
                            Err((
                                "redundancy",
                                format!(
                                    "disperse {} redundancy {} does not fit: redundancy must be at least 1 and \
                                     less than half of disperse",
                                    layout.disperse, layout.redundancy
                                ),
                            ))
                        } else {
                            fits("disperse", layout.disperse, bricks)
                        }
                    }
                };
                if let Err((key, message)) = counts {
                    let key = if volume_key_present(volume, key) { key } else { "type" };
                    push(at!["volume", v, key], format!("volume {:?}: {message}", volume.name));
                }
            }
            Ok(_) => {}
        }

        for (key, value) in &volume.options {
            if let Err(e) = OptionKey::new(key) {
                push(at!["volume", v, "options", key.as_str()], e.to_string());
            }
            if let Err(e) = OptionValue::new(value) {
                push(at!["volume", v, "options", key.as_str()], e.to_string());
            }
        }
    }

    // Clients.
    for (c, client) in spec.clients.iter().enumerate() {
        let mut paths: Vec<&str> = Vec::new();
        for (m, mount) in client.mounts.iter().enumerate() {
            if spec.volume(&mount.volume).is_none() {
                push(at!["client", c, "mounts", m, "volume"], format!("no [[volume]] named {:?}", mount.volume));
            }
            match AbsPath::checked("client mount path", &mount.path) {
                Err(e) => push(at!["client", c, "mounts", m, "path"], e.to_string()),
                Ok(p) if p.is_root() => {
                    push(at!["client", c, "mounts", m, "path"], "cannot mount a volume on /".into())
                }
                Ok(_) if paths.contains(&mount.path.as_str()) => push(
                    at!["client", c, "mounts", m, "path"],
                    format!("{} is mounted twice on {}", mount.path, client.name),
                ),
                Ok(_) => paths.push(&mount.path),
            }
        }
    }
    issues
}

/// `bricks` must be a (non-zero) multiple of the set size `count`.
fn fits(key: &'static str, count: u32, bricks: u32) -> Result<(), (&'static str, String)> {
    if bricks.is_multiple_of(count) {
        Ok(())
    } else {
        Err((key, format!("{key} {count} does not fit {bricks} servers (one brick each): the bricks must be a multiple of {count}")))
    }
}

fn volume_key_present(volume: &crate::spec::Volume, key: &str) -> bool {
    match key {
        "replica" => volume.replica.is_some(),
        "arbiter" => volume.arbiter.is_some(),
        "disperse" => volume.disperse.is_some(),
        "redundancy" => volume.redundancy.is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::spec::{Spec, SpecError};

    const SEED: &str = r#"version = 1
[pool]
name = "seed"
[[server]]
name = "gluServer1"
address = "192.0.2.11"
disk = { device = "/dev/vdb", filesystem = "ext4", mount = "/vdisk" }
[[server]]
name = "gluServer2"
address = "192.0.2.12"
disk = { device = "/dev/vdb", filesystem = "ext4", mount = "/vdisk" }
[[volume]]
name = "gluV1"
type = "replicate"
replica = 2
allow_replica2 = true
brick_dir = "brick1"
options = { "performance.cache-size" = "512MB" }
[[client]]
name = "client1"
address = "192.0.2.21"
mounts = [{ volume = "gluV1", path = "/dataShare" }]
"#;

    fn parse(text: &str) -> Result<Spec, SpecError> {
        Spec::parse(text, Path::new("cluster.toml"))
    }

    /// The issues as `line N: key: message` strings.
    fn issues(text: &str) -> Vec<String> {
        match parse(text) {
            Err(SpecError::Semantic { issues, .. }) => issues.iter().map(|i| i.to_string()).collect(),
            other => panic!("expected semantic issues, got {other:?}"),
        }
    }

    #[test]
    fn the_seed_is_valid() {
        let spec = parse(SEED).unwrap();
        assert_eq!(spec.hosts().len(), 3);
        assert_eq!(spec.volume_servers(&spec.volumes[0]).len(), 2);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = SEED.replace("brick_dir = \"brick1\"", "brick_dir = \"brick1\"\nbrik = 1");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("line 18") && err.contains("brik"), "{err}");
    }

    #[test]
    fn coordinators_are_addresses_or_networks() {
        let with = |list: &str| SEED.replace("name = \"seed\"", &format!("name = \"seed\"\ncoordinators = {list}"));
        let spec = parse(&with(r#"["192.0.2.1", "2001:db8::/64"]"#)).unwrap();
        assert_eq!(spec.pool.coordinators.as_deref(), Some(&["192.0.2.1".to_owned(), "2001:db8::/64".to_owned()][..]));
        let found = issues(&with(r#"["192.0.2.1", "192.0.2.5/24", "admin-host"]"#));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("line 4: pool.coordinators[1]:") && found[0].contains("192.0.2.0/24"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("line 4: pool.coordinators[2]:") && found[1].contains("IPv4 or IPv6"),
            "{found:?}"
        );
        let found = issues(&with("[]"));
        assert!(
            found[0].starts_with("line 4: pool.coordinators:") && found[0].contains("leave the key out"),
            "{found:?}"
        );
    }

    #[test]
    fn duplicate_names_and_addresses_name_the_line() {
        let text = SEED
            .replace("name = \"client1\"\naddress = \"192.0.2.21\"", "name = \"gluserver2\"\naddress = \"192.0.2.11\"");
        let found = issues(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("line 20: client[0].name:") && found[0].contains("server[1]"), "{found:?}");
        assert!(found[1].starts_with("line 21: client[0].address:") && found[1].contains("server[0]"), "{found:?}");
    }

    #[test]
    fn replica_that_does_not_fit() {
        let text = SEED.replace("replica = 2", "replica = 3");
        assert_eq!(
            issues(&text),
            ["line 15: volume[0].replica: volume \"gluV1\": replica 3 does not fit 2 servers (one brick each): the \
              bricks must be a multiple of 3"]
        );
    }

    #[test]
    fn replica2_needs_opt_in() {
        let found = issues(&SEED.replace("allow_replica2 = true\n", ""));
        assert!(
            found[0].starts_with("line 15: volume[0].replica:") && found[0].contains("allow_replica2"),
            "{found:?}"
        );
    }

    #[test]
    fn volume_types() {
        let vol = |body: &str| SEED.replace("type = \"replicate\"\nreplica = 2\nallow_replica2 = true", body);
        assert!(issues(&vol("type = \"stripe\""))[0].contains("removed in Gluster 6"));
        assert!(parse(&vol("type = \"distribute\"")).is_ok());
        // Two servers cannot carry replica 3 arbiter 1; replica 2 arbiter 1 is not our syntax.
        assert!(issues(&vol("type = \"arbiter\""))[0].contains("does not fit 2 servers"));
        assert!(issues(&vol("type = \"arbiter\"\nreplica = 2"))[0].contains("replica 3 arbiter 1"));
        assert!(issues(&vol("type = \"disperse\"\ndisperse = 2\nredundancy = 1"))[0].contains("less than half"));
        assert!(issues(&vol("type = \"distribute\"\nreplica = 2"))[0].contains("does not apply"));
    }

    #[test]
    fn paths_options_and_mounts() {
        let text = SEED
            .replace("brick_dir = \"brick1\"", "brick_dir = \"/brick1\"")
            .replace("\"512MB\"", "\"512 MB\"")
            .replace("path = \"/dataShare\"", "path = \"dataShare\"")
            .replace("volume = \"gluV1\",", "volume = \"nope\",");
        let found = issues(&text);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].starts_with("line 17: volume[0].brick_dir") && found[0].contains("relative"));
        assert!(found[1].starts_with("line 18: volume[0].options.\"performance.cache-size\""), "{found:?}");
        assert!(found[2].contains("client[0].mounts[0].volume") && found[2].contains("nope"));
        assert!(found[3].contains("client[0].mounts[0].path") && found[3].contains("absolute"));
    }

    #[test]
    fn bricks_on_root_need_force() {
        let text = SEED.replace(
            "disk = { device = \"/dev/vdb\", filesystem = \"ext4\", mount = \"/vdisk\" }\n[[volume]]",
            "[[volume]]",
        );
        let found = issues(&text);
        assert!(
            found[0].starts_with("line 11: volume[0]:") && found[0].contains("gluServer2 has no disk"),
            "{found:?}"
        );
        assert!(parse(&text.replace("brick_dir = \"brick1\"", "brick_dir = \"brick1\"\nforce = true")).is_ok());
    }
}
