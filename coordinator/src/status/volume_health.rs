//! What a started volume's live state means for its clients, evaluated from `GetGlusterStatus`
//! alone (pure): brick filesystems near full, client quorum per replica set (AFR), server quorum
//! (glusterd), and how long writes stall when a server drops (`network.ping-timeout`).
//!
//! Gluster's defaults, as the translators apply them when an option is not set: client quorum
//! `cluster.quorum-type` is `auto` for replica sets of more than two bricks and `none` otherwise
//! (AFR `fix_quorum_options`); server quorum `cluster.server-quorum-type` is `none` unless set;
//! `network.ping-timeout` is 42 s.

use brickyard_proto::v1;

/// A brick fuller than this (percent) is reported before it is full.
pub const BRICK_FULL_PERCENT: u64 = 95;
/// gluster's `network.ping-timeout` when the volume does not set it (seconds).
pub const DEFAULT_PING_TIMEOUT_SECONDS: u64 = 42;

const PING_TIMEOUT: &str = "network.ping-timeout";
const QUORUM_TYPE: &str = "cluster.quorum-type";
const QUORUM_COUNT: &str = "cluster.quorum-count";
const SERVER_QUORUM_TYPE: &str = "cluster.server-quorum-type";

/// The volume's `network.ping-timeout` (seconds): when a server vanishes without closing its
/// connections, client writes stall for up to about twice this (one timeout to notice, the
/// in-flight call's own; measured 79-82 s at the default 42 s, tests/tests/faults_net.rs).
pub fn ping_timeout_seconds(volume: &v1::VolumeStatus) -> u64 {
    volume.options.get(PING_TIMEOUT).and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_PING_TIMEOUT_SECONDS)
}

/// The operator's sentence about the stall (shown by `status` for every started volume).
pub fn stall_note(volume: &v1::VolumeStatus) -> String {
    format!(
        "volume {}: network.ping-timeout {} s — when a server drops off the network without closing its \
         connections, client writes stall for up to about twice that (79-82 s measured at 42 s), then go on \
         with the other bricks (self-heal catches up)",
        volume.name,
        ping_timeout_seconds(volume)
    )
}

/// The volume's last rebalance as `status` shows it: "rebalance in progress", "rebalance
/// completed", "rebalance failed on gs3, gs4" ("" = none, or a single-set volume).
pub fn migration_state(volume: &v1::VolumeStatus) -> String {
    if volume.migration_failed_on.is_empty() {
        volume.migration.clone()
    } else {
        format!("{} on {}", volume.migration, volume.migration_failed_on.join(", "))
    }
}

/// A rebalance that failed on some node: its files stay readable where they are, the layout is
/// not balanced; apply starts it again.
pub fn migration_problems(volume: &v1::VolumeStatus) -> Vec<String> {
    if volume.migration_failed_on.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "volume {}: {} (see /var/log/glusterfs/{}-rebalance.log there; files not moved stay readable where they \
         are; apply starts the rebalance again)",
        volume.name,
        migration_state(volume),
        volume.name
    )]
}

/// The bricks of `volume` that are not online, as `HOST:PATH`.
pub fn offline_bricks(volume: &v1::VolumeStatus) -> Vec<String> {
    volume.bricks.iter().filter(|b| !b.online).map(|b| format!("{}:{}", b.host, b.path)).collect()
}

/// Percent of `brick`'s filesystem in use, rounded up (`None`: its size is unknown).
pub fn brick_used_percent(brick: &v1::BrickStatus) -> Option<u64> {
    // In u128: an agent reports what gluster says, and `used * 100` of a u64 can overflow.
    let total = u128::from(brick.size_total);
    let used = total - u128::from(brick.size_free).min(total);
    (total > 0).then(|| u64::try_from((used * 100).div_ceil(total)).unwrap_or(100))
}

/// A warning for each online brick whose filesystem is more than [`BRICK_FULL_PERCENT`] used.
pub fn brick_usage_problems(volume: &v1::VolumeStatus) -> Vec<String> {
    volume
        .bricks
        .iter()
        .filter(|b| b.online)
        .filter_map(|b| brick_used_percent(b).filter(|p| *p > BRICK_FULL_PERCENT).map(|percent| (b, percent)))
        .map(|(b, percent)| {
            format!(
                "volume {}: brick {}:{} is {percent}% full (more than {BRICK_FULL_PERCENT}%): writes to it fail with \
                 ENOSPC once it is full — free space on {} or give it a bigger disk",
                volume.name, b.host, b.path, b.host
            )
        })
        .collect()
}

/// Client quorum of one replica set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientQuorum {
    /// `cluster.quorum-type none`: writes go on with any brick up.
    Off,
    Met,
    /// Fewer bricks up than the quorum needs: writes fail (ENOTCONN on gluster 10, EROFS before); reads work.
    Lost {
        online: usize,
        of: usize,
        needs: String,
    },
}

/// The client quorum rule in force for `volume` (`auto`, `fixed:N` or `none`).
fn quorum_rule(volume: &v1::VolumeStatus, set_size: usize) -> QuorumRule {
    match volume.options.get(QUORUM_TYPE).map(String::as_str) {
        Some("none") => QuorumRule::None,
        Some("fixed") => match volume.options.get(QUORUM_COUNT).and_then(|c| c.parse().ok()) {
            Some(count) => QuorumRule::Fixed(count),
            None => QuorumRule::Auto,
        },
        Some(_) => QuorumRule::Auto,
        None if set_size > 2 => QuorumRule::Auto,
        None => QuorumRule::None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuorumRule {
    None,
    /// More than half of the set up, or exactly half including the set's first brick.
    Auto,
    Fixed(usize),
}

/// Client quorum of each replica set of `volume` (bricks in volume order, `replica` per set);
/// empty for volumes without replica sets.
pub fn client_quorum(volume: &v1::VolumeStatus) -> Vec<ClientQuorum> {
    let set_size = volume.replica as usize;
    if set_size < 2 {
        return Vec::new();
    }
    volume
        .bricks
        .chunks(set_size)
        .map(|set| {
            let online = set.iter().filter(|b| b.online).count();
            let of = set.len();
            let (met, needs) = match quorum_rule(volume, of) {
                QuorumRule::None => return ClientQuorum::Off,
                QuorumRule::Auto => (
                    2 * online > of || (2 * online == of && set[0].online),
                    format!("more than half of {of} bricks up (auto)"),
                ),
                QuorumRule::Fixed(count) => (online >= count, format!("{count} of {of} bricks up (fixed)")),
            };
            if met {
                ClientQuorum::Met
            } else {
                ClientQuorum::Lost { online, of, needs }
            }
        })
        .collect()
}

/// Quorum problems of `volume`: each replica set that lost client quorum, and the lost server
/// quorum when server quorum is on. `servers_connected` of `servers` are in the pool and
/// connected as the reporting server sees them (itself included).
pub fn quorum_problems(volume: &v1::VolumeStatus, servers_connected: usize, servers: usize) -> Vec<String> {
    let mut problems: Vec<String> = client_quorum(volume)
        .into_iter()
        .enumerate()
        .filter_map(|(set, quorum)| match quorum {
            ClientQuorum::Lost { online, of, needs } => Some(format!(
                "volume {}: replica set {} has {online} of {of} bricks up, client quorum lost (needs {needs}): \
                 the volume is read-only for clients, writes fail (ENOTCONN on gluster 10, EROFS on older releases) \
                 until its servers are back",
                volume.name,
                set + 1
            )),
            ClientQuorum::Off | ClientQuorum::Met => None,
        })
        .collect();
    let server_quorum = volume.options.get(SERVER_QUORUM_TYPE).is_some_and(|t| t == "server");
    if server_quorum && 2 * servers_connected <= servers {
        problems.push(format!(
            "volume {}: server quorum lost ({servers_connected} of {servers} servers connected, needs more than \
             half): glusterd stops the volume's bricks on the servers left, so clients can neither read nor write",
            volume.name
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(replica: u32, online: &[bool], options: &[(&str, &str)]) -> v1::VolumeStatus {
        v1::VolumeStatus {
            name: "v".into(),
            status: "Started".into(),
            replica,
            bricks: online
                .iter()
                .enumerate()
                .map(|(i, up)| v1::BrickStatus {
                    host: format!("s{}", i + 1),
                    path: "/vdisk/b".into(),
                    online: *up,
                    ..Default::default()
                })
                .collect(),
            options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn ping_timeout_is_gluster_default_unless_set() {
        assert_eq!(ping_timeout_seconds(&volume(2, &[true, true], &[])), 42);
        let low = volume(2, &[true, true], &[("network.ping-timeout", "5")]);
        assert_eq!(ping_timeout_seconds(&low), 5);
        assert!(stall_note(&low).starts_with("volume v: network.ping-timeout 5 s — "), "{}", stall_note(&low));
    }

    #[test]
    fn replica3_loses_client_quorum_with_two_bricks_down() {
        assert_eq!(client_quorum(&volume(3, &[true, true, false], &[])), [ClientQuorum::Met]);
        let two_down = volume(3, &[true, false, false], &[]);
        assert_eq!(
            quorum_problems(&two_down, 1, 3),
            ["volume v: replica set 1 has 1 of 3 bricks up, client quorum lost (needs more than half of 3 bricks up \
              (auto)): the volume is read-only for clients, writes fail (ENOTCONN on gluster 10, EROFS on older releases) \
                 until its servers are back"]
        );
        // Quorum switched off: writes go on with one brick.
        assert!(quorum_problems(&volume(3, &[true, false, false], &[("cluster.quorum-type", "none")]), 1, 3).is_empty());
    }

    #[test]
    fn replica2_has_no_client_quorum_by_default_and_auto_needs_the_first_brick() {
        assert_eq!(client_quorum(&volume(2, &[false, true], &[])), [ClientQuorum::Off]);
        let auto = [("cluster.quorum-type", "auto")];
        assert_eq!(client_quorum(&volume(2, &[true, false], &auto)), [ClientQuorum::Met]);
        assert!(matches!(client_quorum(&volume(2, &[false, true], &auto))[..], [ClientQuorum::Lost { online: 1, .. }]));
        let fixed = [("cluster.quorum-type", "fixed"), ("cluster.quorum-count", "2")];
        // 2 x 2: the second set lost one brick.
        assert_eq!(
            client_quorum(&volume(2, &[true, true, true, false], &fixed))[1],
            ClientQuorum::Lost { online: 1, of: 2, needs: "2 of 2 bricks up (fixed)".into() }
        );
        assert!(client_quorum(&volume(1, &[true], &[])).is_empty());
    }

    #[test]
    fn server_quorum_only_when_enabled() {
        let on = volume(3, &[true, true, true], &[("cluster.server-quorum-type", "server")]);
        assert!(quorum_problems(&on, 2, 3).is_empty());
        assert_eq!(quorum_problems(&on, 1, 3).len(), 1);
        assert!(quorum_problems(&on, 1, 3)[0].starts_with("volume v: server quorum lost (1 of 3 servers connected"));
        assert!(quorum_problems(&volume(3, &[true, true, true], &[]), 1, 3).is_empty());
    }

    #[test]
    fn a_brick_over_95_percent_is_named_with_its_percent() {
        let mut v = volume(2, &[true, true], &[]);
        v.bricks[0].size_total = 1000;
        v.bricks[0].size_free = 30;
        v.bricks[1].size_total = 1000;
        v.bricks[1].size_free = 50; // exactly 95%: not yet
        assert_eq!(brick_used_percent(&v.bricks[0]), Some(97));
        let sized = |size_total, size_free| v1::BrickStatus { size_total, size_free, ..v.bricks[0].clone() };
        assert_eq!(brick_used_percent(&sized(u64::MAX, 0)), Some(100));
        assert_eq!(brick_used_percent(&sized(u64::MAX, u64::MAX / 2)), Some(51));
        assert_eq!(brick_used_percent(&sized(u64::MAX, u64::MAX)), Some(0));
        assert_eq!(brick_used_percent(&sized(1000, u64::MAX)), Some(0));
        assert_eq!(brick_used_percent(&sized(0, 5)), None);
        assert_eq!(
            brick_usage_problems(&v),
            ["volume v: brick s1:/vdisk/b is 97% full (more than 95%): writes to it fail with ENOSPC once it is \
              full — free space on s1 or give it a bigger disk"]
        );
        v.bricks[0].size_total = 0;
        assert!(brick_usage_problems(&v).is_empty(), "unknown size: no warning");
    }
}
