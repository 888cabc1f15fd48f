//! The two ways, besides appending whole sets, that `EnsureVolume` moves a live volume to the
//! task's bricks. Pure: compares `volume info` with the task.
//! - **A raised replica count** (replica 2 → 3, replica 2 → replica 3 arbiter 1, distribute →
//!   replica N): the live volume has as many sets as the task, every live set's bricks are the
//!   first bricks of the task's set, in order, and the rest of each task set is new
//!   (`add-brick VOL replica N [arbiter 1] NEW...`, one group per set in set order, which is
//!   where gluster puts them).
//! - **Replaced servers**: the same layout and brick count, and every brick the task moves
//!   (same position, another host) sits on a host the task's host replaces
//!   (`replace-brick VOL OLD NEW commit force`; the old host may be gone for good).

use std::collections::BTreeMap;

use brickyard_proto::layout::Layout;
use brickyard_proto::types::HostName;

use super::{layout_of, Brick};
use crate::gluster::{BrickInfo, VolumeInfo};

fn same(live: &BrickInfo, want: &Brick) -> bool {
    live.host.eq_ignore_ascii_case(want.host.as_str()) && live.path == want.path.as_str()
}

/// The bricks to add, in order, when the task raises `live`'s replica count to `layout`.
pub fn raised_replica(live: &VolumeInfo, layout: Layout, want: &[Brick]) -> Option<Vec<Brick>> {
    let live_set = match layout_of(live) {
        Layout::Distribute => 1,
        Layout::Replicate { replica } => replica as usize,
        Layout::Arbiter | Layout::Disperse { .. } => return None,
    };
    let want_set = match layout {
        Layout::Replicate { replica } => replica as usize,
        Layout::Arbiter if live_set == 2 => 3,
        _ => return None,
    };
    let sets = live.bricks.len() / live_set;
    if want_set <= live_set || sets == 0 || want.len() != sets * want_set {
        return None;
    }
    let mut added = Vec::new();
    for (live, want) in live.bricks.chunks(live_set).zip(want.chunks(want_set)) {
        if !live.iter().zip(want).all(|(l, w)| same(l, w)) {
            return None;
        }
        added.extend_from_slice(&want[live_set..]);
    }
    Some(added)
}

/// One brick moved to a replacing server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The live brick, `host:path`.
    pub old: String,
    pub new: Brick,
}

/// The moves that turn `live`'s bricks into `want` when the task's hosts replace others
/// (`replaces`: new host → old host); `None` when some other brick differs or nothing moves.
pub fn replacements(live: &VolumeInfo, want: &[Brick], replaces: &BTreeMap<HostName, HostName>) -> Option<Vec<Move>> {
    if live.bricks.len() != want.len() {
        return None;
    }
    let replaced = |new: &HostName| {
        replaces.iter().find(|(n, _)| n.as_str().eq_ignore_ascii_case(new.as_str())).map(|(_, old)| old.as_str())
    };
    let mut moves = Vec::new();
    for (l, w) in live.bricks.iter().zip(want) {
        if same(l, w) {
            continue;
        }
        match replaced(&w.host) {
            Some(old) if old.eq_ignore_ascii_case(&l.host) => moves.push(Move { old: l.spec(), new: w.clone() }),
            _ => return None,
        }
    }
    (!moves.is_empty()).then_some(moves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::gluster::xml::{cli_output, volumes};
    use brickyard_proto::types::AbsPath;

    fn bricks(specs: &[&str]) -> Vec<Brick> {
        specs
            .iter()
            .map(|s| {
                let (h, p) = s.split_once(':').unwrap();
                Brick { host: HostName::new(h).unwrap(), path: AbsPath::checked("brick path", p).unwrap() }
            })
            .collect()
    }

    fn live(name: &str) -> VolumeInfo {
        let all = volumes(&cli_output(&fixture("volume-info-all.xml")).unwrap()).unwrap();
        all.into_iter().find(|v| v.name == name).unwrap()
    }

    fn specs(b: &[Brick]) -> Vec<String> {
        b.iter().map(Brick::spec).collect()
    }

    #[test]
    fn replica_2_gains_one_brick_per_set() {
        let gv0 = live("gv0"); // replica 2: gs1:/srv/b1 gs2:/srv/b1
        let want = bricks(&["gs1:/srv/b1", "gs2:/srv/b1", "gs3:/srv/b1"]);
        let added = raised_replica(&gv0, Layout::Replicate { replica: 3 }, &want).unwrap();
        assert_eq!(specs(&added), ["gs3:/srv/b1"]);
        let arbiter = raised_replica(&gv0, Layout::Arbiter, &bricks(&["gs1:/srv/b1", "gs2:/srv/b1", "gs3:/a"]));
        assert_eq!(specs(&arbiter.unwrap()), ["gs3:/a"]);

        let gvdr = live("gvdr"); // 2 x 2
        let live_bricks: Vec<String> = gvdr.bricks.iter().map(BrickInfo::spec).collect();
        let mut want: Vec<&str> = live_bricks[..2].iter().map(String::as_str).collect();
        want.push("gs9:/n1");
        want.extend(live_bricks[2..].iter().map(String::as_str));
        want.push("gs9:/n2");
        let added = raised_replica(&gvdr, Layout::Replicate { replica: 3 }, &bricks(&want)).unwrap();
        assert_eq!(specs(&added), ["gs9:/n1", "gs9:/n2"]);
    }

    #[test]
    fn anything_else_is_not_a_raised_replica() {
        let gv0 = live("gv0");
        let r3 = Layout::Replicate { replica: 3 };
        assert!(raised_replica(&gv0, r3, &bricks(&["gs2:/srv/b1", "gs1:/srv/b1", "gs3:/srv/b1"])).is_none());
        assert!(raised_replica(&gv0, r3, &bricks(&["gs1:/srv/b1", "gs2:/srv/b2", "gs3:/srv/b1"])).is_none());
        assert!(
            raised_replica(&gv0, Layout::Replicate { replica: 2 }, &bricks(&["gs1:/srv/b1", "gs2:/srv/b1"])).is_none()
        );
        assert!(raised_replica(&live("gva"), r3, &bricks(&["gs1:/a", "gs2:/a", "gs3:/a"])).is_none());
        assert!(raised_replica(&live("gve"), r3, &bricks(&["gs1:/a", "gs2:/a", "gs3:/a"])).is_none());
    }

    #[test]
    fn a_replaced_host_moves_only_its_bricks() {
        let gv0 = live("gv0");
        let replaces: BTreeMap<HostName, HostName> =
            [(HostName::new("gs4").unwrap(), HostName::new("GS2").unwrap())].into();
        let moves = replacements(&gv0, &bricks(&["gs1:/srv/b1", "gs4:/data/b1"]), &replaces).unwrap();
        assert_eq!(moves, [Move { old: "gs2:/srv/b1".into(), new: bricks(&["gs4:/data/b1"])[0].clone() }]);
        assert!(replacements(&gv0, &bricks(&["gs1:/srv/b1", "gs5:/srv/b1"]), &replaces).is_none());
        assert!(replacements(&gv0, &bricks(&["gs4:/srv/b1", "gs2:/srv/b1"]), &replaces).is_none(), "gs4 replaces gs2");
        assert!(replacements(&gv0, &bricks(&["gs1:/srv/b1", "gs2:/srv/b1"]), &replaces).is_none(), "nothing moves");
    }
}
