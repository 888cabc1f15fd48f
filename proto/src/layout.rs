//! Volume layouts, the one place their rules are written: which counts a volume type takes
//! (distribute; replicate `replica N`; arbiter `replica 3 arbiter 1`; disperse `disperse N
//! redundancy R` with 1 <= R and 2R < N), the replica 2 opt-in, the set size, and how bricks
//! fit (a non-zero multiple of the set size, each set on distinct hosts). The coordinator
//! checks specs with it, the agent checks tasks with it. Pure: no I/O.

use std::fmt;

use crate::v1;

/// A volume's type as the spec's `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeKind {
    Distribute,
    Replicate,
    Arbiter,
    Disperse,
}

impl VolumeKind {
    pub fn parse(kind: &str) -> Result<VolumeKind, LayoutError> {
        match kind {
            "distribute" => Ok(VolumeKind::Distribute),
            "replicate" => Ok(VolumeKind::Replicate),
            "arbiter" => Ok(VolumeKind::Arbiter),
            "disperse" => Ok(VolumeKind::Disperse),
            "stripe" | "striped" => Err(LayoutError::Stripe),
            other => Err(LayoutError::UnknownType(format!("{other:?}"))),
        }
    }

    /// The kind of a proto `VolumeType` value.
    pub fn from_proto(value: i32) -> Result<VolumeKind, LayoutError> {
        use v1::VolumeType as T;
        match T::try_from(value) {
            Ok(T::Distribute) => Ok(VolumeKind::Distribute),
            Ok(T::Replicate) => Ok(VolumeKind::Replicate),
            Ok(T::Arbiter) => Ok(VolumeKind::Arbiter),
            Ok(T::Disperse) => Ok(VolumeKind::Disperse),
            Ok(T::Stripe) => Err(LayoutError::Stripe),
            Ok(T::Unspecified) => Err(LayoutError::UnknownType("(not given)".into())),
            Err(_) => Err(LayoutError::UnknownType(value.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VolumeKind::Distribute => "distribute",
            VolumeKind::Replicate => "replicate",
            VolumeKind::Arbiter => "arbiter",
            VolumeKind::Disperse => "disperse",
        }
    }

    fn to_proto(self) -> v1::VolumeType {
        match self {
            VolumeKind::Distribute => v1::VolumeType::Distribute,
            VolumeKind::Replicate => v1::VolumeType::Replicate,
            VolumeKind::Arbiter => v1::VolumeType::Arbiter,
            VolumeKind::Disperse => v1::VolumeType::Disperse,
        }
    }
}

impl fmt::Display for VolumeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The counts as written (spec keys, or proto fields where 0 means not given).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub replica: Option<u32>,
    pub arbiter: Option<u32>,
    pub disperse: Option<u32>,
    pub redundancy: Option<u32>,
}

/// How the bricks are arranged. More bricks than one set make the distributed form (e.g.
/// 2 x replica 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Distribute,
    Replicate {
        replica: u32,
    },
    /// `replica 3 arbiter 1`: two data bricks and one metadata-only brick per set.
    Arbiter,
    Disperse {
        disperse: u32,
        redundancy: u32,
    },
}

/// Why counts or bricks do not make a valid layout. `field` says which count is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("stripe volumes were removed in Gluster 6; use distribute, replicate, arbiter or disperse")]
    Stripe,
    #[error("unknown volume type {0} (expected distribute, replicate, arbiter or disperse)")]
    UnknownType(String),
    #[error("`{count}` does not apply to a {kind} volume")]
    NotApplicable { count: &'static str, kind: VolumeKind },
    #[error("a replicate volume needs `replica` (2 or more)")]
    NoReplica,
    #[error("a disperse volume needs `disperse` (3 or more bricks per set)")]
    NoDisperse,
    #[error("an arbiter needs the arbiter volume type (replica 3 arbiter 1)")]
    ArbiterOnReplicate,
    #[error("replica {0} must be 2 or more")]
    ReplicaTooSmall(u32),
    /// Refused by policy rather than invalid: the operator may allow it explicitly.
    #[error(
        "replica 2 without an arbiter is split-brain prone: use type = \"arbiter\" (replica 3, arbiter 1) or set \
         allow_replica2 = true"
    )]
    Replica2,
    #[error(
        "an arbiter volume is replica 3 arbiter 1 (gluster counts the arbiter as the third replica), not replica \
         {replica} arbiter {arbiter}"
    )]
    ArbiterCounts { replica: u32, arbiter: u32 },
    #[error(
        "disperse {disperse} redundancy {redundancy} does not fit: redundancy must be at least 1 and less than half \
         of disperse"
    )]
    Redundancy { disperse: u32, redundancy: u32 },
    #[error("no bricks")]
    NoBricks,
    #[error("{bricks} bricks do not fit {layout} (a multiple of {} bricks is needed)", layout.set_size())]
    BricksDoNotFit { bricks: usize, layout: Layout },
    #[error("set {set} has bricks {first} and {second} on the same host {host}; order the bricks so each set spans distinct hosts")]
    SameHostInSet { set: usize, first: usize, second: usize, host: String },
}

impl LayoutError {
    /// The count (spec key, proto field) the error is about: `type`, `replica`, `arbiter`,
    /// `disperse`, `redundancy`, or `bricks` for the brick list.
    pub fn field(&self) -> &'static str {
        match self {
            LayoutError::Stripe | LayoutError::UnknownType(_) => "type",
            LayoutError::NotApplicable { count, .. } => count,
            LayoutError::NoReplica | LayoutError::ReplicaTooSmall(_) | LayoutError::Replica2 => "replica",
            LayoutError::ArbiterCounts { replica, .. } if *replica != 3 => "replica",
            LayoutError::ArbiterOnReplicate | LayoutError::ArbiterCounts { .. } => "arbiter",
            LayoutError::NoDisperse => "disperse",
            LayoutError::Redundancy { .. } => "redundancy",
            LayoutError::BricksDoNotFit { layout: Layout::Disperse { .. }, .. } => "disperse",
            LayoutError::BricksDoNotFit { .. } => "replica",
            LayoutError::NoBricks | LayoutError::SameHostInSet { .. } => "bricks",
        }
    }
}

impl Layout {
    /// The layout of `kind` with `counts`, defaults filled in (arbiter: replica 3 arbiter 1;
    /// disperse: redundancy 1). Replica 2 without an arbiter needs `allow_replica2`.
    pub fn new(kind: VolumeKind, counts: Counts, allow_replica2: bool) -> Result<Layout, LayoutError> {
        let unused = |count: &'static str, value: Option<u32>| match value {
            Some(_) => Err(LayoutError::NotApplicable { count, kind }),
            None => Ok(()),
        };
        match kind {
            VolumeKind::Distribute => {
                unused("replica", counts.replica)?;
                unused("arbiter", counts.arbiter)?;
                unused("disperse", counts.disperse)?;
                unused("redundancy", counts.redundancy)?;
                Ok(Layout::Distribute)
            }
            VolumeKind::Replicate => {
                unused("disperse", counts.disperse)?;
                unused("redundancy", counts.redundancy)?;
                if counts.arbiter.is_some() {
                    return Err(LayoutError::ArbiterOnReplicate);
                }
                match counts.replica.ok_or(LayoutError::NoReplica)? {
                    replica @ (0 | 1) => Err(LayoutError::ReplicaTooSmall(replica)),
                    2 if !allow_replica2 => Err(LayoutError::Replica2),
                    replica => Ok(Layout::Replicate { replica }),
                }
            }
            VolumeKind::Arbiter => {
                unused("disperse", counts.disperse)?;
                unused("redundancy", counts.redundancy)?;
                match (counts.replica.unwrap_or(3), counts.arbiter.unwrap_or(1)) {
                    (3, 1) => Ok(Layout::Arbiter),
                    (replica, arbiter) => Err(LayoutError::ArbiterCounts { replica, arbiter }),
                }
            }
            VolumeKind::Disperse => {
                unused("replica", counts.replica)?;
                unused("arbiter", counts.arbiter)?;
                let disperse = counts.disperse.ok_or(LayoutError::NoDisperse)?;
                let redundancy = counts.redundancy.unwrap_or(1);
                if redundancy == 0 || 2 * u64::from(redundancy) >= u64::from(disperse) {
                    return Err(LayoutError::Redundancy { disperse, redundancy });
                }
                Ok(Layout::Disperse { disperse, redundancy })
            }
        }
    }

    /// The layout a proto `VolumeLayout` asks for (0 = a count not given).
    pub fn from_proto(layout: &v1::VolumeLayout, allow_replica2: bool) -> Result<Layout, LayoutError> {
        let given = |n: u32| (n != 0).then_some(n);
        let counts = Counts {
            replica: given(layout.replica),
            arbiter: given(layout.arbiter),
            disperse: given(layout.disperse),
            redundancy: given(layout.redundancy),
        };
        Layout::new(VolumeKind::from_proto(layout.r#type)?, counts, allow_replica2)
    }

    /// The proto form, every count explicit (0 where it does not apply).
    pub fn to_proto(self) -> v1::VolumeLayout {
        let (replica, arbiter, disperse, redundancy) = match self {
            Layout::Distribute => (0, 0, 0, 0),
            Layout::Replicate { replica } => (replica, 0, 0, 0),
            Layout::Arbiter => (3, 1, 0, 0),
            Layout::Disperse { disperse, redundancy } => (0, 0, disperse, redundancy),
        };
        v1::VolumeLayout { r#type: self.kind().to_proto() as i32, replica, arbiter, disperse, redundancy }
    }

    pub fn kind(self) -> VolumeKind {
        match self {
            Layout::Distribute => VolumeKind::Distribute,
            Layout::Replicate { .. } => VolumeKind::Replicate,
            Layout::Arbiter => VolumeKind::Arbiter,
            Layout::Disperse { .. } => VolumeKind::Disperse,
        }
    }

    /// Bricks per replica or disperse set (1 for distribute).
    pub fn set_size(self) -> usize {
        match self {
            Layout::Distribute => 1,
            Layout::Replicate { replica } => replica as usize,
            Layout::Arbiter => 3,
            Layout::Disperse { disperse, .. } => disperse as usize,
        }
    }

    /// Checks bricks, given as their hosts in brick order: a non-zero multiple of the set
    /// size, and no two bricks of one set on the same host (names compared ignoring case).
    pub fn check_bricks<H: AsRef<str>>(self, hosts: &[H]) -> Result<(), LayoutError> {
        let set = self.set_size();
        if hosts.is_empty() {
            return Err(LayoutError::NoBricks);
        }
        if !hosts.len().is_multiple_of(set) {
            return Err(LayoutError::BricksDoNotFit { bricks: hosts.len(), layout: self });
        }
        for (s, group) in hosts.chunks(set).enumerate() {
            for (i, a) in group.iter().enumerate() {
                if let Some(j) = group[i + 1..].iter().position(|b| a.as_ref().eq_ignore_ascii_case(b.as_ref())) {
                    return Err(LayoutError::SameHostInSet {
                        set: s + 1,
                        first: s * set + i + 1,
                        second: s * set + i + j + 2,
                        host: a.as_ref().to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The `gluster volume create` words between the volume name and the bricks.
    pub fn create_args(self) -> Vec<String> {
        match self {
            Layout::Distribute => vec![],
            Layout::Replicate { replica } => vec!["replica".into(), replica.to_string()],
            Layout::Arbiter => ["replica", "3", "arbiter", "1"].map(String::from).to_vec(),
            Layout::Disperse { disperse, redundancy } => {
                vec!["disperse".into(), disperse.to_string(), "redundancy".into(), redundancy.to_string()]
            }
        }
    }
}

/// `distribute`, `replica 2`, `replica 3 arbiter 1`, `disperse 3 redundancy 1`.
impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Distribute => f.write_str("distribute"),
            other => f.write_str(&other.create_args().join(" ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(replica: u32, arbiter: u32, disperse: u32, redundancy: u32) -> Counts {
        let given = |n: u32| (n != 0).then_some(n);
        Counts {
            replica: given(replica),
            arbiter: given(arbiter),
            disperse: given(disperse),
            redundancy: given(redundancy),
        }
    }

    fn layout(kind: &str, c: Counts) -> Result<Layout, LayoutError> {
        Layout::new(VolumeKind::parse(kind)?, c, false)
    }

    #[test]
    fn kinds_and_counts() {
        assert_eq!(layout("distribute", counts(0, 0, 0, 0)), Ok(Layout::Distribute));
        assert_eq!(layout("replicate", counts(3, 0, 0, 0)), Ok(Layout::Replicate { replica: 3 }));
        assert_eq!(layout("arbiter", counts(0, 0, 0, 0)), Ok(Layout::Arbiter));
        assert_eq!(layout("arbiter", counts(3, 1, 0, 0)), Ok(Layout::Arbiter));
        assert_eq!(layout("disperse", counts(0, 0, 3, 0)), Ok(Layout::Disperse { disperse: 3, redundancy: 1 }));
        assert_eq!(layout("disperse", counts(0, 0, 6, 2)), Ok(Layout::Disperse { disperse: 6, redundancy: 2 }));

        assert_eq!(layout("stripe", Counts::default()), Err(LayoutError::Stripe));
        assert_eq!(layout("mirror", Counts::default()).unwrap_err().field(), "type");
        let e = layout("distribute", counts(2, 0, 0, 0)).unwrap_err();
        assert_eq!((e.field(), e.to_string().as_str()), ("replica", "`replica` does not apply to a distribute volume"));
        assert_eq!(layout("replicate", Counts::default()), Err(LayoutError::NoReplica));
        assert_eq!(
            layout("replicate", Counts { replica: Some(1), ..Counts::default() }),
            Err(LayoutError::ReplicaTooSmall(1))
        );
        assert_eq!(layout("replicate", counts(3, 1, 0, 0)), Err(LayoutError::ArbiterOnReplicate));
        let e = layout("arbiter", counts(2, 0, 0, 0)).unwrap_err();
        assert_eq!(e.field(), "replica");
        assert!(e.to_string().contains("not replica 2 arbiter 1"), "{e}");
        assert_eq!(layout("arbiter", counts(3, 2, 0, 0)).unwrap_err().field(), "arbiter");
        assert_eq!(layout("disperse", Counts::default()), Err(LayoutError::NoDisperse));
        for (d, r) in [(2, 1), (4, 2), (3, 0)] {
            let c = Counts { disperse: Some(d), redundancy: Some(r), ..Counts::default() };
            assert_eq!(layout("disperse", c), Err(LayoutError::Redundancy { disperse: d, redundancy: r }));
        }
        // No overflow at the limits of u32.
        let c = Counts { disperse: Some(u32::MAX), redundancy: Some(u32::MAX), ..Counts::default() };
        assert_eq!(layout("disperse", c).unwrap_err().field(), "redundancy");
    }

    #[test]
    fn replica2_needs_the_opt_in() {
        let c = counts(2, 0, 0, 0);
        assert_eq!(Layout::new(VolumeKind::Replicate, c, false), Err(LayoutError::Replica2));
        assert_eq!(Layout::new(VolumeKind::Replicate, c, true), Ok(Layout::Replicate { replica: 2 }));
    }

    #[test]
    fn proto_round_trip() {
        for l in [
            Layout::Distribute,
            Layout::Replicate { replica: 2 },
            Layout::Replicate { replica: 3 },
            Layout::Arbiter,
            Layout::Disperse { disperse: 6, redundancy: 2 },
        ] {
            assert_eq!(Layout::from_proto(&l.to_proto(), true), Ok(l));
        }
        let unspecified = v1::VolumeLayout::default();
        assert_eq!(Layout::from_proto(&unspecified, true).unwrap_err().field(), "type");
        let stripe = v1::VolumeLayout { r#type: v1::VolumeType::Stripe as i32, ..Default::default() };
        assert_eq!(Layout::from_proto(&stripe, true), Err(LayoutError::Stripe));
        let unknown = v1::VolumeLayout { r#type: 99, ..Default::default() };
        assert!(Layout::from_proto(&unknown, true).unwrap_err().to_string().contains("unknown volume type 99"));
    }

    #[test]
    fn bricks_fit_in_sets_on_distinct_hosts() {
        let r2 = Layout::Replicate { replica: 2 };
        assert_eq!(r2.check_bricks(&["a", "b", "c", "d"]), Ok(()));
        assert_eq!(r2.check_bricks::<&str>(&[]), Err(LayoutError::NoBricks));
        let e = r2.check_bricks(&["a", "b", "c"]).unwrap_err();
        assert_eq!(e.to_string(), "3 bricks do not fit replica 2 (a multiple of 2 bricks is needed)");
        assert_eq!(e.field(), "replica");
        let e = Layout::Disperse { disperse: 3, redundancy: 1 }.check_bricks(&["a", "b"]).unwrap_err();
        assert_eq!(e.field(), "disperse");
        let e = r2.check_bricks(&["a", "b", "c", "C"]).unwrap_err();
        assert_eq!(e, LayoutError::SameHostInSet { set: 2, first: 3, second: 4, host: "c".into() });
        // Distribute sets are single bricks: one host may carry several.
        assert_eq!(Layout::Distribute.check_bricks(&["a", "a"]), Ok(()));
    }

    #[test]
    fn display_and_create_args() {
        assert_eq!(Layout::Distribute.to_string(), "distribute");
        assert_eq!(Layout::Arbiter.to_string(), "replica 3 arbiter 1");
        assert_eq!(Layout::Disperse { disperse: 3, redundancy: 1 }.create_args(), ["disperse", "3", "redundancy", "1"]);
        assert_eq!(Layout::Replicate { replica: 2 }.set_size(), 2);
    }

    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = VolumeKind> {
        prop_oneof![
            Just(VolumeKind::Distribute),
            Just(VolumeKind::Replicate),
            Just(VolumeKind::Arbiter),
            Just(VolumeKind::Disperse),
        ]
    }

    /// Counts that are mostly small, sometimes absent, sometimes anything up to `u32::MAX`.
    fn count() -> impl Strategy<Value = Option<u32>> {
        prop_oneof![2 => Just(None), 3 => (0u32..8).prop_map(Some), 1 => any::<u32>().prop_map(Some)]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any counts give a layout or an error, never a panic; an accepted layout survives
        /// the proto round trip, and bricks it accepts are whole sets on distinct hosts.
        #[test]
        fn layouts_round_trip_and_place_bricks(
            kind in kind(),
            replica in count(),
            arbiter in count(),
            disperse in count(),
            redundancy in count(),
            allow_replica2 in any::<bool>(),
            hosts in proptest::collection::vec("[a-dA-D]", 0..13),
        ) {
            let counts = Counts { replica, arbiter, disperse, redundancy };
            let Ok(layout) = Layout::new(kind, counts, allow_replica2) else { return Ok(()) };
            prop_assert_eq!(layout.kind(), kind);
            prop_assert_eq!(Layout::from_proto(&layout.to_proto(), allow_replica2), Ok(layout));
            prop_assert!(layout.set_size() >= 1);
            if layout.check_bricks(&hosts).is_ok() {
                prop_assert!(!hosts.is_empty() && hosts.len() % layout.set_size() == 0);
                if layout.set_size() > 1 {
                    for set in hosts.chunks(layout.set_size()) {
                        let mut names: Vec<String> = set.iter().map(|h| h.to_ascii_lowercase()).collect();
                        names.sort();
                        names.dedup();
                        prop_assert_eq!(names.len(), set.len());
                    }
                }
            }
        }
    }
}
