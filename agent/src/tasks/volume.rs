//! `EnsureVolume`: a gluster volume with exactly this layout and these bricks, started, every
//! brick process running, with these options. Creates it (`gluster volume create`,
//! `--mode=script` so replica 2 does not stop to ask), starts it, restarts offline bricks of a
//! started volume (`volume start VOL force`, which starts only the bricks that are down, then
//! waits until `volume status` shows them online), `volume set`s the options whose live
//! value differs, every option on a volume it creates (before a start: bricks read some
//! options, such as `server.ssl`, only when they start), and `volume reset`s the options it set before that the task no longer
//! asks for (which options are Brickyard's: `volume_options`). A volume whose live bricks are
//! the first of the task's bricks, with the
//! same layout, is expanded with `volume add-brick VOL BRICK...` (the new bricks come in whole
//! sets on distinct hosts: the task's brick list is checked against the layout as a whole); a
//! volume that exists with another layout or other bricks is a conflict naming the difference,
//! and nothing is changed. A raised replica count (`add-brick VOL replica N NEW...`) and bricks
//! of replaced servers (`replace-brick VOL OLD NEW commit force`) are recognised in
//! [`reshape`]; both end with a full heal watched until nothing is pending ([`super::heal`]).
//! Where the bricks may live (their mounted disk, not the root filesystem unless `force`) is
//! `EnsureBricks`'s to check, on every brick server, before this task runs. Runs only the local
//! gluster CLI.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use brickyard_proto::layout::{Layout, LayoutError};
use brickyard_proto::types::{AbsPath, HostName, OptionKey, OptionValue, VolumeName};
use brickyard_proto::v1;

mod reshape;

use super::heal::{self, Healed};
use super::shape::{Plan, Task, TaskError};
use super::volume_options;
use crate::gluster::{self, BrickProcess, VolumeInfo};
use crate::host::Context;
use brickyard_proto::poll::{self, Look};

/// The layout of an existing volume, from `volume info` counts.
fn layout_of(v: &VolumeInfo) -> Layout {
    if v.disperse > 0 {
        Layout::Disperse { disperse: v.disperse, redundancy: v.redundancy }
    } else if v.arbiter > 0 {
        Layout::Arbiter
    } else if v.replica > 1 {
        Layout::Replicate { replica: v.replica }
    } else {
        Layout::Distribute
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brick {
    host: HostName,
    path: AbsPath,
}

impl Brick {
    fn spec(&self) -> String {
        format!("{}:{}", self.host, self.path)
    }
}

pub struct EnsureVolume {
    name: VolumeName,
    layout: Layout,
    bricks: Vec<Brick>,
    options: BTreeMap<OptionKey, OptionValue>,
    force: bool,
    /// Bricks a `RemoveBricks` before this task drains (`host:path`): the live volume is
    /// compared without them.
    leaving: Vec<String>,
    /// New host → the host it replaces.
    replaces: BTreeMap<HostName, HostName>,
    heal_timeout: Duration,
}

/// How long restarted bricks may take to show online in `volume status`.
const BRICK_START_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

impl EnsureVolume {
    pub fn from_proto(task: &v1::EnsureVolume) -> Result<Self, TaskError> {
        let name = VolumeName::new(&task.name)?;
        let layout_proto =
            task.layout.as_ref().ok_or_else(|| TaskError::InvalidTask(format!("volume {name}: no layout given")))?;
        let layout = Layout::from_proto(layout_proto, task.allow_replica2).map_err(|e| match e {
            LayoutError::Replica2 => TaskError::Unsafe(format!("volume {name}: {e}")),
            e => TaskError::InvalidTask(format!("volume {name}: {e}")),
        })?;
        let mut bricks: Vec<Brick> = Vec::new();
        for b in &task.bricks {
            let brick = Brick { host: HostName::new(&b.host)?, path: AbsPath::checked("brick path", &b.path)? };
            if brick.path.is_root() {
                return Err(TaskError::InvalidTask(format!(
                    "volume {name}: brick {} is the root directory",
                    brick.spec()
                )));
            }
            if bricks.iter().any(|o| same_host(&o.host, &brick.host) && o.path == brick.path) {
                return Err(TaskError::InvalidTask(format!("volume {name}: brick {} is listed twice", brick.spec())));
            }
            bricks.push(brick);
        }
        let hosts: Vec<&str> = bricks.iter().map(|b| b.host.as_str()).collect();
        layout.check_bricks(&hosts).map_err(|e| TaskError::InvalidTask(format!("volume {name}: {e}")))?;
        let mut options = BTreeMap::new();
        for (k, v) in &task.options {
            options.insert(OptionKey::new(k)?, OptionValue::new(v)?);
        }
        let leaving = task.leaving.iter().map(|b| format!("{}:{}", b.host, b.path)).collect();
        let mut replaces = BTreeMap::new();
        for (new, old) in &task.replaces {
            replaces.insert(HostName::new(new)?, HostName::new(old)?);
        }
        Ok(Self {
            name,
            layout,
            bricks,
            options: volume_options::with_record(options)?,
            force: task.force,
            leaving,
            replaces,
            heal_timeout: heal::timeout(task.heal_timeout_seconds),
        })
    }

    /// The task's bricks beyond `live`'s, when `live` has the same layout and its bricks are the
    /// task's first ones in the same order (a grown spec); `None` otherwise.
    fn added_bricks(&self, live: &VolumeInfo) -> Option<Vec<Brick>> {
        let prefix = live.bricks.len() < self.bricks.len()
            && live
                .bricks
                .iter()
                .zip(&self.bricks)
                .all(|(l, w)| l.host.eq_ignore_ascii_case(w.host.as_str()) && l.path == w.path.as_str());
        (prefix && layout_of(live) == self.layout).then(|| self.bricks[live.bricks.len()..].to_vec())
    }

    /// Refuses an existing volume whose layout or bricks differ from the task's.
    fn compare(&self, live: &VolumeInfo) -> Result<(), TaskError> {
        let mut diffs = Vec::new();
        let live_layout = layout_of(live);
        if live_layout != self.layout {
            diffs.push(format!("its layout is {}, the task asks for {}", live_layout, self.layout));
        }
        let same_bricks = live.bricks.len() == self.bricks.len()
            && live
                .bricks
                .iter()
                .zip(&self.bricks)
                .all(|(l, w)| l.host.eq_ignore_ascii_case(w.host.as_str()) && l.path == w.path.as_str());
        if !same_bricks {
            let live: Vec<String> = live.bricks.iter().map(|b| b.spec()).collect();
            let want: Vec<String> = self.bricks.iter().map(Brick::spec).collect();
            diffs.push(format!("its bricks are {}, the task asks for {}", live.join(" "), want.join(" ")));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(TaskError::Conflict(format!(
                "volume {} already exists and differs: {}; nothing changed",
                self.name,
                diffs.join("; ")
            )))
        }
    }

    /// The bricks of `live` (a started volume) that `volume status` (`processes`) does not show
    /// online, but those in `moving` (bricks replace-brick takes off their host).
    fn offline_bricks(live: &VolumeInfo, processes: &[BrickProcess], moving: &[String]) -> Vec<String> {
        live.bricks
            .iter()
            .filter(|b| !processes.iter().any(|p| p.online && p.host == b.host && p.path == b.path))
            .map(|b| b.spec())
            .filter(|b| !moving.contains(b))
            .collect()
    }

    /// Polls `volume status` until no brick is offline, after `volume start VOL force`
    /// restarted the `offline` ones.
    async fn await_bricks_online(&self, ctx: &Context, offline: &[String]) -> Result<(), TaskError> {
        let name = self.name.as_str();
        let what = format!(
            "the bricks of volume {name} to come online after `volume start {name} force` (see \
             /var/log/glusterfs/bricks/ on their servers)"
        );
        poll::until(what, BRICK_START_TIMEOUT, POLL_INTERVAL, || async {
            let live = gluster::volume_info(ctx).await?.into_iter().find(|v| v.name == name).ok_or_else(|| {
                TaskError::Failed(format!("volume {name} disappeared while its bricks {} restarted", offline.join(" ")))
            })?;
            let still = Self::offline_bricks(&live, &gluster::brick_processes(ctx, name).await?, &[]);
            Ok::<_, TaskError>(if still.is_empty() {
                Look::Done(())
            } else {
                Look::NotYet(format!("still offline: {}", still.join(" ")))
            })
        })
        .await
    }

    /// `volume set`s for the options whose `live` value differs (all, before the volume exists).
    fn option_changes(&self, live: &BTreeMap<String, String>) -> Vec<VolumeChange> {
        self.options
            .iter()
            .filter(|(k, v)| live.get(k.as_str()).map(String::as_str) != Some(v.as_str()))
            .map(|(k, v)| VolumeChange::Set {
                volume: self.name.clone(),
                key: k.to_string(),
                value: v.to_string(),
                was: live.get(k.as_str()).cloned(),
            })
            .collect()
    }
}

/// One step of apply, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeChange {
    Create {
        volume: VolumeName,
        layout: Layout,
        bricks: Vec<Brick>,
        force: bool,
    },
    Start(VolumeName),
    /// `volume add-brick VOL BRICK...`: whole sets appended to a live volume of the same layout.
    AddBricks {
        volume: VolumeName,
        bricks: Vec<Brick>,
    },
    /// `volume add-brick VOL replica N [arbiter 1] BRICK...`: one group of new bricks per set.
    RaiseReplica {
        volume: VolumeName,
        from: Layout,
        to: Layout,
        bricks: Vec<Brick>,
    },
    /// `volume replace-brick VOL OLD NEW commit force`: a replaced server's brick moves.
    ReplaceBrick {
        volume: VolumeName,
        old: String,
        new: Brick,
    },
    /// `volume heal VOL full`, watched until no entry is pending (`healed`: how it went).
    Heal {
        volume: VolumeName,
        healed: Option<Healed>,
    },
    /// `volume start VOL force` for the offline bricks (`host:path`) of a started volume, then
    /// waiting until they are online.
    Restart {
        volume: VolumeName,
        offline: Vec<String>,
    },
    /// `volume reset VOL KEY`: an option Brickyard set that the task no longer asks for.
    Reset {
        volume: VolumeName,
        key: String,
        was: String,
    },
    /// `was`: the live value, when known.
    Set {
        volume: VolumeName,
        key: String,
        value: String,
        was: Option<String>,
    },
}

impl VolumeChange {
    /// The option a `Set` or `Reset` changes.
    fn key(&self) -> Option<&str> {
        match self {
            VolumeChange::Set { key, .. } | VolumeChange::Reset { key, .. } => Some(key),
            _ => None,
        }
    }
    /// The gluster command.
    fn cli_args(&self) -> Vec<String> {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            VolumeChange::Create { volume, layout, bricks, force } => {
                let mut args = words(&["volume", "create", volume.as_str()]);
                args.extend(layout.create_args());
                args.extend(bricks.iter().map(Brick::spec));
                args.extend(force.then(|| "force".to_owned()));
                args
            }
            VolumeChange::Start(volume) => words(&["volume", "start", volume.as_str()]),
            VolumeChange::AddBricks { volume, bricks } => {
                let mut args = words(&["volume", "add-brick", volume.as_str()]);
                args.extend(bricks.iter().map(Brick::spec));
                args
            }
            VolumeChange::RaiseReplica { volume, to, bricks, .. } => {
                let mut args = words(&["volume", "add-brick", volume.as_str()]);
                args.extend(to.create_args());
                args.extend(bricks.iter().map(Brick::spec));
                args
            }
            VolumeChange::ReplaceBrick { volume, old, new } => {
                words(&["volume", "replace-brick", volume.as_str(), old, &new.spec(), "commit", "force"])
            }
            // What `heal::full_heal` starts (apply calls it, since it also watches the heal).
            VolumeChange::Heal { volume, .. } => words(&["volume", "heal", volume.as_str(), "full"]),
            VolumeChange::Restart { volume, .. } => words(&["volume", "start", volume.as_str(), "force"]),
            VolumeChange::Reset { volume, key, .. } => words(&["volume", "reset", volume.as_str(), key]),
            VolumeChange::Set { volume, key, value, .. } => words(&["volume", "set", volume.as_str(), key, value]),
        }
    }
}

impl fmt::Display for VolumeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VolumeChange::Create { volume, layout, bricks, force } => {
                let bricks: Vec<String> = bricks.iter().map(Brick::spec).collect();
                let force = if *force { " (force)" } else { "" };
                write!(f, "create volume {volume} ({layout}): {}{force}", bricks.join(" "))
            }
            VolumeChange::Start(volume) => write!(f, "start volume {volume}"),
            VolumeChange::AddBricks { volume, bricks } => {
                let bricks: Vec<String> = bricks.iter().map(Brick::spec).collect();
                write!(f, "expand volume {volume} with {} (add-brick)", bricks.join(" "))
            }
            VolumeChange::RaiseReplica { volume, from, to, bricks } => {
                let bricks: Vec<String> = bricks.iter().map(Brick::spec).collect();
                let change = match (from, to) {
                    (Layout::Replicate { replica: a }, Layout::Replicate { replica: b }) => {
                        format!("replica {a} → {b}")
                    }
                    _ => format!("{from} → {to}"),
                };
                write!(f, "{change} on volume {volume}: add bricks {} (add-brick), full heal", bricks.join(" "))
            }
            VolumeChange::ReplaceBrick { volume, old, new } => {
                write!(f, "replace brick {old} with {} on volume {volume} (replace-brick commit force)", new.spec())
            }
            VolumeChange::Heal { volume, healed: None } => {
                write!(f, "full heal of volume {volume}, watched until no entry is pending")
            }
            VolumeChange::Heal { volume, healed: Some(h) } => write!(
                f,
                "full heal of volume {volume}: no entry pending after {:.1} s (at most {} pending)",
                h.elapsed.as_secs_f64(),
                h.most_pending
            ),
            VolumeChange::Restart { volume, offline } => {
                write!(f, "restart offline bricks {} (volume start {volume} force)", offline.join(" "))
            }
            VolumeChange::Reset { volume, key, was } => {
                write!(f, "reset {key} on volume {volume} to gluster's default (was {was}, gone from the spec)")
            }
            VolumeChange::Set { volume, key, value, was: Some(was) } => {
                write!(f, "set {key} = {value} on volume {volume} (was {was})")
            }
            VolumeChange::Set { volume, key, value, was: None } => write!(f, "set {key} = {value} on volume {volume}"),
        }
    }
}

#[async_trait]
impl Task for EnsureVolume {
    type Change = VolumeChange;

    async fn plan(&self, ctx: &Context) -> Result<Plan<VolumeChange>, TaskError> {
        // `volume status` (which bricks run) beside `volume info`: on a started volume, as in a
        // converged pool, the two are the whole check; otherwise its answer (no such volume, not
        // started) is not looked at.
        let (volumes, processes) =
            tokio::join!(gluster::volume_info(ctx), gluster::brick_processes(ctx, self.name.as_str()));
        let volumes = volumes?;
        let mut changes = Vec::new();
        let mut warnings = Vec::new();
        let mut found = volumes.into_iter().find(|v| v.name == self.name.as_str());
        if let Some(live) = &mut found {
            live.bricks.retain(|b| !self.leaving.iter().any(|l| l.eq_ignore_ascii_case(&b.spec())));
        }
        match &found {
            None => {
                changes.push(VolumeChange::Create {
                    volume: self.name.clone(),
                    layout: self.layout,
                    bricks: self.bricks.clone(),
                    force: self.force,
                });
                changes.extend(self.option_changes(&BTreeMap::new()));
                changes.push(VolumeChange::Start(self.name.clone()));
            }
            Some(live) => {
                let volume = self.name.clone();
                let mut heal = false;
                let mut moving = Vec::new();
                // New bricks, more replicas or moved bricks; made after the options below.
                let mut reshape = Vec::new();
                if let Some(bricks) = self.added_bricks(live) {
                    reshape.push(VolumeChange::AddBricks { volume: volume.clone(), bricks });
                } else if let Some(bricks) = reshape::raised_replica(live, self.layout, &self.bricks) {
                    let (from, to) = (layout_of(live), self.layout);
                    reshape.push(VolumeChange::RaiseReplica { volume: volume.clone(), from, to, bricks });
                    heal = true;
                } else if let Some(moves) = (layout_of(live) == self.layout)
                    .then(|| reshape::replacements(live, &self.bricks, &self.replaces))
                    .flatten()
                {
                    moving = moves.iter().map(|m| m.old.clone()).collect();
                    reshape.extend(moves.into_iter().map(|m| VolumeChange::ReplaceBrick {
                        volume: volume.clone(),
                        old: m.old,
                        new: m.new,
                    }));
                    heal = live.heals();
                } else {
                    self.compare(live)?;
                }
                // Every option reconfigured as asked (`volume info`): `volume get` has nothing
                // to add, and a converged volume is checked with one gluster call fewer.
                let options = if self.option_changes(&live.options).is_empty() {
                    live.options.clone()
                } else {
                    volume_options::live_values(gluster::volume_get_all(ctx, self.name.as_str()).await?, &live.options)
                };
                // Options first: before a start, since bricks take some (`server.ssl`) only when
                // they start, and before new bricks, since gluster mounts the volume from the new
                // servers while it adds them (replica increase), which `auth.allow` and
                // `auth.ssl-allow` must already admit.
                let (resets, unowned) = volume_options::resets(&self.name, &self.options, &live.options);
                let sets = self.option_changes(&options);
                // The record alone is no change: it is written with the next option set or reset,
                // so a volume that already has every option asked for (e.g. an adopted one) is as
                // asked; its options count as Brickyard's from that change on.
                if !resets.is_empty() || !sets.iter().all(|c| c.key() == Some(volume_options::RECORD)) {
                    changes.extend(resets.into_iter().map(|(key, was)| VolumeChange::Reset {
                        volume: volume.clone(),
                        key,
                        was,
                    }));
                    changes.extend(sets);
                }
                warnings = unowned;
                changes.extend(reshape);
                changes.extend((!live.started()).then(|| VolumeChange::Start(self.name.clone())));
                if live.started() {
                    let offline = Self::offline_bricks(live, &processes?, &moving);
                    if !offline.is_empty() {
                        changes.push(VolumeChange::Restart { volume: volume.clone(), offline });
                    }
                }
                // Last: it takes longest, and the options (e.g. network.ping-timeout) apply to it.
                changes.extend(heal.then_some(VolumeChange::Heal { volume, healed: None }));
            }
        }
        Ok(Plan { warnings, ..Plan::of(changes) })
    }

    /// Runs the commands in order; offline bricks are waited for once restarted; a volume it
    /// creates gets every option of the task, as planned (no read of gluster's defaults first;
    /// each option then shows in `volume info`, so a later check needs no `volume get`).
    /// Options are set before a start, since bricks take some (`server.ssl`) only when they
    /// start.
    async fn apply(&self, ctx: &Context, plan: Plan<VolumeChange>) -> Result<Vec<VolumeChange>, TaskError> {
        let mut done = Vec::new();
        let mut changes = plan.changes.into_iter().peekable();
        while let Some(change) = changes.next() {
            if let VolumeChange::Set { .. } = change {
                let mut sets = vec![change];
                sets.extend(std::iter::from_fn(|| changes.next_if(|c| matches!(c, VolumeChange::Set { .. }))));
                set_at_once(ctx, &sets).await?;
                done.extend(sets);
                continue;
            }
            if let VolumeChange::Heal { volume, .. } = change {
                let healed = heal::full_heal(ctx, volume.as_str(), self.heal_timeout).await?;
                done.push(VolumeChange::Heal { volume, healed: Some(healed) });
                continue;
            }
            gluster::cli(ctx, &change.cli_args().iter().map(String::as_str).collect::<Vec<_>>()).await?;
            if let VolumeChange::Restart { offline, .. } = &change {
                self.await_bricks_online(ctx, offline).await?;
            }
            // `replace-brick` and a replica increase rewrite `auth.allow` for the mount they
            // make (keeping the old list in `old.auth.allow`): the options are set to the
            // task's again right after.
            let options_again = matches!(change, VolumeChange::ReplaceBrick { .. } | VolumeChange::RaiseReplica { .. });
            done.push(change);
            if options_again {
                self.set_options(ctx, &mut done).await?;
            }
        }
        Ok(done)
    }
}

impl EnsureVolume {
    /// `volume set`s the options whose live value (read now) differs from the task's.
    async fn set_options(&self, ctx: &Context, done: &mut Vec<VolumeChange>) -> Result<(), TaskError> {
        let info = gluster::volume_info(ctx).await?;
        let reconfigured = info.iter().find(|v| v.name == self.name.as_str()).map(|v| v.options.clone());
        let live = volume_options::live_values(
            gluster::volume_get_all(ctx, self.name.as_str()).await?,
            &reconfigured.unwrap_or_default(),
        );
        let sets = self.option_changes(&live);
        set_at_once(ctx, &sets).await?;
        done.extend(sets);
        Ok(())
    }
}

/// Runs `sets` (of one volume) as one `volume set VOL K1 V1 K2 V2 ...`: one cluster
/// transaction instead of one per option (the seed's volume took eight), and all or none:
/// gluster refuses the whole command when one key or value is bad, naming it.
async fn set_at_once(ctx: &Context, sets: &[VolumeChange]) -> Result<(), TaskError> {
    let Some((first, rest)) = sets.split_first() else { return Ok(()) };
    let mut args = first.cli_args();
    for set in rest {
        if let VolumeChange::Set { key, value, .. } = set {
            args.extend([key.clone(), value.clone()]);
        }
    }
    gluster::cli(ctx, &args.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    Ok(())
}

fn same_host(a: &HostName, b: &HostName) -> bool {
    a.as_str().eq_ignore_ascii_case(b.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;
    use crate::tasks::shape::AnyTask;
    use crate::tasks::testing::converges;

    const G: &str = "/usr/sbin/gluster --mode=script --xml";

    fn proto(kind: v1::VolumeType, replica: u32, bricks: &[&str]) -> v1::EnsureVolume {
        v1::EnsureVolume {
            name: "gv0".into(),
            layout: Some(v1::VolumeLayout { r#type: kind as i32, replica, ..Default::default() }),
            bricks: bricks
                .iter()
                .map(|b| {
                    let (host, path) = b.split_once(':').unwrap();
                    v1::Brick { host: host.into(), path: path.into() }
                })
                .collect(),
            options: [("performance.cache-size".to_owned(), "512MB".to_owned())].into(),
            allow_replica2: true,
            force: false,
            ..Default::default()
        }
    }

    /// `volume info` (fixture `name`) of a gv0 on which Brickyard recorded the options it set.
    fn recorded(name: &str) -> String {
        fixture(name).replacen(
            "<options>",
            "<options><option><name>user.brickyard.options</name><value>performance.cache-size</value></option>",
            1,
        )
    }

    fn replica2() -> v1::EnsureVolume {
        proto(v1::VolumeType::Replicate, 2, &["gs1:/srv/b1", "gs2:/srv/b1"])
    }

    fn ctx(runner: FakeRunner) -> Context {
        Context::direct(runner)
    }

    fn err(task: v1::EnsureVolume) -> String {
        EnsureVolume::from_proto(&task).err().expect("accepted").to_string()
    }

    #[test]
    fn names_keys_and_values_are_validated_before_any_command() {
        for bad in ["a b", "a;b", "a\nb", "-a"] {
            let mut t = replica2();
            t.name = bad.into();
            assert!(err(t).contains("volume name"), "{bad:?}");
            let mut t = replica2();
            t.options = [(bad.to_owned(), "1".into())].into();
            assert!(err(t).contains("option key"), "{bad:?}");
            let mut t = replica2();
            t.options = [("performance.cache-size".into(), bad.into())].into();
            assert!(err(t).contains("option value"), "{bad:?}");
            let mut t = replica2();
            t.bricks[1].host = bad.into();
            assert!(err(t).contains("host name"), "{bad:?}");
            let mut t = replica2();
            t.bricks[1].path = bad.into();
            assert!(err(t).contains("brick path"), "{bad:?}");
        }
    }

    #[test]
    fn layouts_are_validated() {
        let stripe = err(proto(v1::VolumeType::Stripe, 2, &["gs1:/b", "gs2:/b"]));
        assert!(stripe.contains("stripe volumes were removed in Gluster 6"), "{stripe}");
        let mut t = replica2();
        t.allow_replica2 = false;
        assert!(err(t).contains("split-brain"));
        assert!(err(proto(v1::VolumeType::Replicate, 2, &["gs1:/b", "gs2:/b", "gs3:/b"]))
            .contains("3 bricks do not fit replica 2"));
        let same = err(proto(v1::VolumeType::Replicate, 2, &["gs1:/b", "gs2:/b", "gs1:/c", "gs1:/d"]));
        assert!(same.contains("set 2 has bricks 3 and 4 on the same host gs1"), "{same}");
        assert!(err(proto(v1::VolumeType::Replicate, 2, &["gs1:/b", "gs1:/b"])).contains("listed twice"));
        assert!(err(proto(v1::VolumeType::Unspecified, 0, &["gs1:/b"])).contains("not given"));
        assert!(err(proto(v1::VolumeType::Arbiter, 2, &["gs1:/b", "gs2:/b"])).contains("replica 3 arbiter 1"));
        assert!(err(proto(v1::VolumeType::Distribute, 0, &[])).contains("volume gv0: no bricks"));

        let mut disperse = proto(v1::VolumeType::Disperse, 0, &["gs1:/b", "gs2:/b", "gs3:/b"]);
        disperse.layout = Some(v1::VolumeLayout {
            r#type: v1::VolumeType::Disperse as i32,
            disperse: 3,
            redundancy: 2,
            ..Default::default()
        });
        assert!(err(disperse.clone()).contains("less than half of disperse"));
        disperse.layout.as_mut().unwrap().redundancy = 1;
        let t = EnsureVolume::from_proto(&disperse).unwrap();
        assert_eq!(t.layout.create_args(), ["disperse", "3", "redundancy", "1"]);

        let dr =
            EnsureVolume::from_proto(&proto(v1::VolumeType::Replicate, 2, &["gs1:/b", "gs2:/b", "gs1:/c", "gs2:/c"]));
        assert!(dr.is_ok());
        let arb =
            EnsureVolume::from_proto(&proto(v1::VolumeType::Arbiter, 0, &["gs1:/b", "gs2:/b", "gs3:/a"])).unwrap();
        assert_eq!(arb.layout.create_args(), ["replica", "3", "arbiter", "1"]);
    }

    #[tokio::test]
    async fn creates_sets_every_option_and_starts() {
        // Plan, plan and apply, and a plan that finds the volume as asked.
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &fixture("volume-info-none.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status-missing.xml"))
            .expect(&format!("{G} volume info"), &fixture("volume-info-none.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status-missing.xml"))
            .expect(
                &format!("{G} volume create gv0 replica 2 gs1:/srv/b1 gs2:/srv/b1"),
                &fixture("volume-create-replica2.xml"),
            )
            // Every option in one transaction, the record with them, as planned.
            .expect(
                &format!(
                    "{G} volume set gv0 performance.cache-size 512MB user.brickyard.options performance.cache-size"
                ),
                &fixture("volume-set.xml"),
            )
            .expect(&format!("{G} volume start gv0"), &fixture("volume-start.xml"))
            .expect(&format!("{G} volume info"), &recorded("volume-info-all.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml")));
        let t = EnsureVolume::from_proto(&replica2()).unwrap();
        let (before, done) = converges(&t, &c).await;
        assert_eq!(
            before.changes,
            [
                "create volume gv0 (replica 2): gs1:/srv/b1 gs2:/srv/b1",
                "set performance.cache-size = 512MB on volume gv0",
                "set user.brickyard.options = performance.cache-size on volume gv0",
                "start volume gv0"
            ]
        );
        // The options before the start (bricks take some of them only when they start), as
        // the plan said.
        assert_eq!(done, before.changes);
    }

    #[tokio::test]
    async fn a_volume_with_every_option_but_no_record_is_unchanged() {
        // E.g. a pool built by hand and adopted: the record waits for the next option change.
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &fixture("volume-info-all.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml"))
            .expect(&format!("{G} volume get gv0 all"), &fixture("volume-get.xml")));
        assert_eq!(EnsureVolume::from_proto(&replica2()).unwrap().plan(&c).await.unwrap(), Plan::unchanged());
    }

    #[tokio::test]
    async fn existing_volume_with_same_layout_is_unchanged() {
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info-all.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml")));
        assert_eq!(EnsureVolume::from_proto(&replica2()).unwrap().plan(&c).await.unwrap(), Plan::unchanged());
    }

    #[tokio::test]
    async fn offline_bricks_of_a_started_volume_are_restarted_and_awaited() {
        let down = fixture("volume-status-brick-down.xml");
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &down)
            .expect(&format!("{G} volume start gv0 force"), &fixture("volume-start.xml"))
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &down)
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml")));
        let t = EnsureVolume::from_proto(&replica2()).unwrap();
        assert_eq!(t.run(&c).await.unwrap(), ["restart offline bricks gs2:/srv/b1 (volume start gv0 force)"]);
    }

    #[tokio::test]
    async fn created_volume_is_started() {
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info-created.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status-stopped.xml"))
            .expect(&format!("{G} volume get gv0 all"), &fixture("volume-get.xml"))
            .expect(&format!("{G} volume start gv0"), &fixture("volume-start.xml")));
        assert_eq!(EnsureVolume::from_proto(&replica2()).unwrap().run(&c).await.unwrap(), ["start volume gv0"]);
    }

    #[tokio::test]
    async fn existing_volume_with_another_layout_is_refused_untouched() {
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml")));
        let t =
            EnsureVolume::from_proto(&proto(v1::VolumeType::Arbiter, 3, &["gs2:/srv/b1", "gs1:/srv/b1", "gs3:/srv/a"]))
                .unwrap();
        let e = t.run(&c).await.unwrap_err();
        assert!(matches!(e, TaskError::Conflict(_)), "{e}");
        let e = e.to_string();
        assert!(e.contains("its layout is replica 2, the task asks for replica 3 arbiter 1"), "{e}");
        assert!(e.contains("its bricks are gs1:/srv/b1 gs2:/srv/b1") && e.contains("nothing changed"), "{e}");
    }

    #[tokio::test]
    async fn a_raised_replica_count_adds_a_brick_per_set_then_heals_in_full() {
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml"))
            .expect(
                &format!("{G} volume add-brick gv0 replica 3 gs3:/srv/b1"),
                &fixture("volume-add-brick-replica3.xml"),
            )
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume get gv0 all"), &fixture("volume-get.xml"))
            .expect(&format!("{G} volume heal gv0 full"), &fixture("volume-heal-full.txt"))
            .expect(&format!("{G} volume heal gv0 info summary"), &fixture("heal-info-summary.xml")));
        let t = EnsureVolume::from_proto(&proto(
            v1::VolumeType::Replicate,
            3,
            &["gs1:/srv/b1", "gs2:/srv/b1", "gs3:/srv/b1"],
        ))
        .unwrap();
        let done = t.run(&c).await.unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        assert_eq!(done[0], "replica 2 → 3 on volume gv0: add bricks gs3:/srv/b1 (add-brick), full heal");
        assert!(done[1].starts_with("full heal of volume gv0: no entry pending after "), "{done:?}");
    }

    #[tokio::test]
    async fn a_replaced_servers_brick_moves_without_restarting_it_then_heals() {
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status-brick-down.xml")));
        let mut p = proto(v1::VolumeType::Replicate, 2, &["gs1:/srv/b1", "gs4:/data/b1"]);
        p.replaces = [("gs4".to_owned(), "gs2".to_owned())].into();
        let plan = EnsureVolume::from_proto(&p).unwrap().check(&c).await.unwrap();
        assert_eq!(
            plan.changes,
            [
                "replace brick gs2:/srv/b1 with gs4:/data/b1 on volume gv0 (replace-brick commit force)",
                "full heal of volume gv0, watched until no entry is pending"
            ]
        );
        // gluster rewrites options for its replace-brick mount: they are set back right after.
        let c = ctx(FakeRunner::default()
            .expect(
                &format!("{G} volume replace-brick gv0 gs2:/srv/b1 gs4:/data/b1 commit force"),
                &fixture("volume-replace-brick.xml"),
            )
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(
                &format!("{G} volume get gv0 all"),
                &fixture("volume-get.xml").replace("<Value>512MB</Value>", "<Value>32MB</Value>"),
            )
            .expect(&format!("{G} volume set gv0 performance.cache-size 512MB"), &fixture("volume-set.xml")));
        let t = EnsureVolume::from_proto(&p).unwrap();
        let plan = Plan::of(vec![VolumeChange::ReplaceBrick {
            volume: t.name.clone(),
            old: "gs2:/srv/b1".into(),
            new: t.bricks[1].clone(),
        }]);
        let done: Vec<String> = t.apply(&c, plan).await.unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(done.len(), 2, "{done:?}");
        assert_eq!(done[1], "set performance.cache-size = 512MB on volume gv0 (was 32MB)");
    }

    #[tokio::test]
    async fn a_brick_of_a_host_nobody_replaces_is_a_conflict() {
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml")));
        let mut p = proto(v1::VolumeType::Replicate, 2, &["gs1:/srv/b1", "gs4:/srv/b1"]);
        p.replaces = [("gs4".to_owned(), "gs3".to_owned())].into();
        let e = EnsureVolume::from_proto(&p).unwrap().run(&c).await.unwrap_err();
        assert!(matches!(e, TaskError::Conflict(_)) && e.to_string().contains("already exists and differs"), "{e}");
    }

    #[tokio::test]
    async fn grown_brick_list_is_added_in_whole_sets() {
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml"))
            .expect(&format!("{G} volume add-brick gv0 gs3:/srv/b1 gs4:/srv/b1"), &fixture("volume-add-brick.xml")));
        let grown = proto(v1::VolumeType::Replicate, 2, &["gs1:/srv/b1", "gs2:/srv/b1", "gs3:/srv/b1", "gs4:/srv/b1"]);
        let t = EnsureVolume::from_proto(&grown).unwrap();
        assert_eq!(t.run(&c).await.unwrap(), ["expand volume gv0 with gs3:/srv/b1 gs4:/srv/b1 (add-brick)"]);
    }

    #[test]
    fn grown_brick_list_must_fill_whole_sets() {
        let odd = proto(v1::VolumeType::Replicate, 2, &["gs1:/srv/b1", "gs2:/srv/b1", "gs3:/srv/b1"]);
        let e = err(odd);
        assert_eq!(e, "volume gv0: 3 bricks do not fit replica 2 (a multiple of 2 bricks is needed)");
    }

    #[tokio::test]
    async fn reordered_bricks_are_not_an_expansion() {
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml")));
        let swapped =
            proto(v1::VolumeType::Replicate, 2, &["gs2:/srv/b1", "gs1:/srv/b1", "gs3:/srv/b1", "gs4:/srv/b1"]);
        let e = EnsureVolume::from_proto(&swapped).unwrap().run(&c).await.unwrap_err();
        assert!(matches!(e, TaskError::Conflict(_)) && e.to_string().contains("already exists and differs"), "{e}");
    }

    #[tokio::test]
    async fn gluster_refusal_is_surfaced() {
        let out = Output { code: Some(1), stdout: fixture("volume-set-bad.xml"), stderr: String::new() };
        let c = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &recorded("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml"))
            .expect(&format!("{G} volume get gv0 all"), &fixture("volume-get.xml"))
            // The recorded option left the task: reset before the new one is set.
            .expect(&format!("{G} volume reset gv0 performance.cache-size"), &fixture("volume-set.xml"))
            // The whole set is refused (gluster names the bad key): the record is not written.
            .expect_output(&format!("{G} volume set gv0 no.such-option 1 user.brickyard.options no.such-option"), out));
        let mut p = replica2();
        p.options = [("no.such-option".to_owned(), "1".to_owned())].into();
        let e = EnsureVolume::from_proto(&p).unwrap().run(&c).await.unwrap_err().to_string();
        assert!(e.contains("no.such-option does not exist"), "{e}");
    }
}
