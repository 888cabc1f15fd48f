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
    use brickyard_proto::v1::{self, task::Kind};

    use super::*;
    use crate::test_spec::SpecText;

    /// s4, replacing s3 where `replacing`, joins s1 and s2 in volume three but not in two.
    fn pool(replacing: bool) -> Spec {
        let servers = SpecText::pool("p").numbered_server(1).numbered_server(2).numbered_server(4);
        let servers = if replacing { servers.string("replaces", "s3") } else { servers };
        servers
            .volume("three", "replicate", "b")
            .replica(3)
            .volume("two", "replicate", "c")
            .replica(2)
            .set("servers", r#"["s1", "s2"]"#)
            .spec()
    }

    #[test]
    fn replacing_servers_reach_their_volumes_and_the_replaced_leave_the_pool() {
        let spec = pool(true);
        assert_eq!(of_volume(&spec, &spec.volumes[0]), [("s4".to_owned(), "s3".to_owned())].into());
        assert!(of_volume(&spec, &spec.volumes[1]).is_empty());
        let detach = crate::phases::detach_task(&spec).unwrap();
        assert_eq!(detach.id, "detach leaving servers s3");
        assert_eq!(detach.kind, Some(Kind::DetachPeers(v1::DetachPeers { peers: vec!["s3".into()] })));
        assert!(crate::phases::detach_task(&pool(false)).is_none());
    }
}
