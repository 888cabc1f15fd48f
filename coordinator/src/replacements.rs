//! Servers that replace others (`replaces = "OLD"` in the spec): the map each volume's
//! `EnsureVolume` gets (new host → old host, for the volume's own servers); `phases` detaches
//! the replaced servers once their bricks have moved. Pure.

use std::collections::HashMap;

use crate::spec::{Spec, Volume};

/// New host → the host it replaces, for the servers of `volume` that replace one.
pub fn of_volume(spec: &Spec, volume: &Volume) -> HashMap<String, String> {
    spec.volume_servers(volume).into_iter().filter_map(|s| Some((s.name.clone(), s.replaces.clone()?))).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use brickyard_proto::v1::{self, task::Kind};

    use super::*;

    #[test]
    fn replacing_servers_reach_their_volumes_and_the_replaced_leave_the_pool() {
        let text = r#"version = 1
[pool]
name = "p"
[[server]]
name = "s1"
address = "10.0.0.1"
disk = { device = "/dev/vdb", mount = "/vdisk" }
[[server]]
name = "s2"
address = "10.0.0.2"
disk = { device = "/dev/vdb", mount = "/vdisk" }
[[server]]
name = "s4"
address = "10.0.0.4"
replaces = "s3"
disk = { device = "/dev/vdb", mount = "/vdisk" }
[[volume]]
name = "three"
type = "replicate"
replica = 3
brick_dir = "b"
[[volume]]
name = "two"
type = "replicate"
replica = 2
allow_replica2 = true
servers = ["s1", "s2"]
brick_dir = "c"
"#;
        let spec = crate::validate::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(of_volume(&spec, &spec.volumes[0]), [("s4".to_owned(), "s3".to_owned())].into());
        assert!(of_volume(&spec, &spec.volumes[1]).is_empty());
        let detach = crate::phases::detach_task(&spec).unwrap();
        assert_eq!(detach.id, "detach leaving servers s3");
        assert_eq!(detach.kind, Some(Kind::DetachPeers(v1::DetachPeers { peers: vec!["s3".into()] })));
        let none = crate::validate::parse(&text.replace("replaces = \"s3\"\n", ""), Path::new("c.toml")).unwrap();
        assert!(crate::phases::detach_task(&none).is_none());
    }
}
