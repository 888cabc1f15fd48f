//! `EnsureVolume`: a gluster volume with exactly this layout and these bricks, started, every
//! brick process running, with these options. Creates it (`gluster volume create`,
//! `--mode=script` so replica 2 does not stop to ask), starts it, restarts offline bricks of a
//! started volume (`volume start VOL force`, which starts only the bricks that are down, then
//! waits until `volume status` shows them online), and `volume set`s only the options whose
//! live value differs. A volume that exists with another layout or other bricks is a conflict
//! naming the difference, and nothing is changed. Where the bricks may live (their mounted disk,
//! not the root filesystem unless `force`) is `EnsureBricks`'s to check, on every brick server,
//! before this task runs. Runs only the local gluster CLI.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use brickyard_proto::layout::{Layout, LayoutError};
use brickyard_proto::types::{AbsPath, HostName, OptionKey, OptionValue, VolumeName};
use brickyard_proto::v1;

use super::{Check, Context, TaskError};
use crate::gluster::{self, VolumeInfo};

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
struct Brick {
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
}

/// How long restarted bricks may take to show online in `volume status`.
const BRICK_START_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What apply would do, in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    create: bool,
    start: bool,
    /// The offline bricks (`host:path`) of a started volume.
    restart: Vec<String>,
    /// (key, wanted value, live value when known).
    set: Vec<(String, String, Option<String>)>,
}

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
        Ok(Self { name, layout, bricks, options, force: task.force })
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

    /// The bricks of `live` (a started volume) that `volume status` does not show online.
    async fn offline_bricks(&self, ctx: &Context, live: &VolumeInfo) -> Result<Vec<String>, TaskError> {
        let processes = gluster::brick_processes(ctx, self.name.as_str()).await?;
        Ok(live
            .bricks
            .iter()
            .filter(|b| !processes.iter().any(|p| p.online && p.host == b.host && p.path == b.path))
            .map(|b| b.spec())
            .collect())
    }

    /// `volume start VOL force`, then polls `volume status` until no brick is offline.
    async fn restart_bricks(&self, ctx: &Context, offline: &[String]) -> Result<(), TaskError> {
        let name = self.name.as_str();
        gluster::cli(ctx, &["volume", "start", name, "force"]).await?;
        let deadline = Instant::now() + BRICK_START_TIMEOUT;
        loop {
            let live = gluster::volume_info(ctx).await?.into_iter().find(|v| v.name == name).ok_or_else(|| {
                TaskError::Failed(format!("volume {name} disappeared while its bricks {} restarted", offline.join(" ")))
            })?;
            let still = self.offline_bricks(ctx, &live).await?;
            if still.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TaskError::Timeout(format!(
                    "bricks {} of volume {name} to come online after `volume start {name} force` ({}s); see \
                     /var/log/glusterfs/bricks/ on their servers",
                    still.join(" "),
                    BRICK_START_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Options whose live value differs from the wanted one.
    fn option_changes(&self, live: &BTreeMap<String, String>) -> Vec<(String, String, Option<String>)> {
        self.options
            .iter()
            .filter(|(k, v)| live.get(k.as_str()).map(String::as_str) != Some(v.as_str()))
            .map(|(k, v)| (k.to_string(), v.to_string(), live.get(k.as_str()).cloned()))
            .collect()
    }

    async fn plan(&self, ctx: &Context) -> Result<Plan, TaskError> {
        let volumes = gluster::volume_info(ctx).await?;
        match volumes.iter().find(|v| v.name == self.name.as_str()) {
            None => {
                let set = self.options.iter().map(|(k, v)| (k.to_string(), v.to_string(), None)).collect();
                Ok(Plan { create: true, start: true, restart: Vec::new(), set })
            }
            Some(live) => {
                self.compare(live)?;
                let options = gluster::volume_get_all(ctx, self.name.as_str()).await?;
                let restart = if live.started() { self.offline_bricks(ctx, live).await? } else { Vec::new() };
                Ok(Plan { create: false, start: !live.started(), restart, set: self.option_changes(&options) })
            }
        }
    }

    fn create_description(&self) -> String {
        let bricks: Vec<String> = self.bricks.iter().map(Brick::spec).collect();
        let force = if self.force { " (force)" } else { "" };
        format!("create volume {} ({}): {}{force}", self.name, self.layout, bricks.join(" "))
    }

    fn restart_description(&self, offline: &[String]) -> String {
        format!("restart offline bricks {} (volume start {} force)", offline.join(" "), self.name)
    }

    pub async fn check(&self, ctx: &Context) -> Result<Check, TaskError> {
        let plan = self.plan(ctx).await?;
        let mut changes = Vec::new();
        if plan.create {
            changes.push(self.create_description());
        }
        if plan.start {
            changes.push(format!("start volume {}", self.name));
        }
        if !plan.restart.is_empty() {
            changes.push(self.restart_description(&plan.restart));
        }
        for (key, value, was) in &plan.set {
            changes.push(set_description(&self.name, key, value, was.as_deref()));
        }
        Ok(Check { changes, warnings: Vec::new() })
    }

    pub async fn apply(&self, ctx: &Context) -> Result<Vec<String>, TaskError> {
        let plan = self.plan(ctx).await?;
        let name = self.name.as_str();
        let mut changes = Vec::new();
        if plan.create {
            let mut args: Vec<String> = vec!["volume".into(), "create".into(), name.into()];
            args.extend(self.layout.create_args());
            args.extend(self.bricks.iter().map(Brick::spec));
            if self.force {
                args.push("force".into());
            }
            gluster::cli(ctx, &args.iter().map(String::as_str).collect::<Vec<_>>()).await?;
            changes.push(self.create_description());
        }
        if plan.start {
            gluster::cli(ctx, &["volume", "start", name]).await?;
            changes.push(format!("start volume {name}"));
        }
        if !plan.restart.is_empty() {
            self.restart_bricks(ctx, &plan.restart).await?;
            changes.push(self.restart_description(&plan.restart));
        }
        let set = if plan.create { self.option_changes(&gluster::volume_get_all(ctx, name).await?) } else { plan.set };
        for (key, value, was) in set {
            gluster::cli(ctx, &["volume", "set", name, &key, &value]).await?;
            changes.push(set_description(&self.name, &key, &value, was.as_deref()));
        }
        Ok(changes)
    }
}

fn same_host(a: &HostName, b: &HostName) -> bool {
    a.as_str().eq_ignore_ascii_case(b.as_str())
}

fn set_description(volume: &VolumeName, key: &str, value: &str, was: Option<&str>) -> String {
    match was {
        Some(was) => format!("set {key} = {value} on volume {volume} (was {was})"),
        None => format!("set {key} = {value} on volume {volume}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gluster::fixture;
    use crate::runner::fake::FakeRunner;
    use crate::tasks::ServiceManager;
    use std::sync::Arc;

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
        }
    }

    fn replica2() -> v1::EnsureVolume {
        proto(v1::VolumeType::Replicate, 2, &["gs1:/srv/b1", "gs2:/srv/b1"])
    }

    fn ctx(runner: FakeRunner) -> (Context, Arc<FakeRunner>) {
        let runner = Arc::new(runner);
        (Context { runner: runner.clone(), service_manager: ServiceManager::Direct }, runner)
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
    async fn creates_starts_and_sets_only_changed_options() {
        let (c, runner) = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &fixture("volume-info-none.xml"))
            .expect(
                &format!("{G} volume create gv0 replica 2 gs1:/srv/b1 gs2:/srv/b1"),
                &fixture("volume-create-replica2.xml"),
            )
            .expect(&format!("{G} volume start gv0"), &fixture("volume-start.xml"))
            .expect(
                &format!("{G} volume get gv0 all"),
                &fixture("volume-get.xml").replace("<Value>512MB</Value>", "<Value>32MB (DEFAULT)</Value>"),
            )
            .expect(&format!("{G} volume set gv0 performance.cache-size 512MB"), &fixture("volume-set.xml")));
        let t = EnsureVolume::from_proto(&replica2()).unwrap();
        let changes = t.apply(&c).await.unwrap();
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(changes[2], "set performance.cache-size = 512MB on volume gv0 (was 32MB)");
        assert!(!runner.seen()[1].contains("force"));
    }

    #[tokio::test]
    async fn existing_volume_with_same_layout_is_unchanged() {
        let (c, _) = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &fixture("volume-info-all.xml"))
            .expect(&format!("{G} volume get gv0 all"), &fixture("volume-get.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml")));
        assert_eq!(EnsureVolume::from_proto(&replica2()).unwrap().check(&c).await.unwrap(), Check::unchanged());
    }

    #[tokio::test]
    async fn offline_bricks_of_a_started_volume_are_restarted_and_awaited() {
        let down = fixture("volume-status-brick-down.xml");
        let (c, runner) = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &fixture("volume-info.xml"))
            .expect(&format!("{G} volume get gv0 all"), &fixture("volume-get.xml"))
            .expect(&format!("{G} volume status gv0"), &down)
            .expect(&format!("{G} volume start gv0 force"), &fixture("volume-start.xml"))
            .expect(&format!("{G} volume info"), &fixture("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &down)
            .expect(&format!("{G} volume info"), &fixture("volume-info.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml")));
        let t = EnsureVolume::from_proto(&replica2()).unwrap();
        assert_eq!(t.apply(&c).await.unwrap(), ["restart offline bricks gs2:/srv/b1 (volume start gv0 force)"]);
        assert_eq!(runner.seen()[3], format!("{G} volume start gv0 force"));
        assert_eq!(runner.seen().len(), 8);
    }

    #[tokio::test]
    async fn created_volume_is_started() {
        let (c, _) = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &fixture("volume-info-created.xml"))
            .expect(&format!("{G} volume get gv0 all"), &fixture("volume-get.xml"))
            .expect(&format!("{G} volume start gv0"), &fixture("volume-start.xml")));
        assert_eq!(EnsureVolume::from_proto(&replica2()).unwrap().apply(&c).await.unwrap(), ["start volume gv0"]);
    }

    #[tokio::test]
    async fn existing_volume_with_another_layout_is_refused_untouched() {
        let (c, runner) = ctx(FakeRunner::default().expect(&format!("{G} volume info"), &fixture("volume-info.xml")));
        let t =
            EnsureVolume::from_proto(&proto(v1::VolumeType::Arbiter, 3, &["gs1:/srv/b1", "gs2:/srv/b1", "gs3:/srv/a"]))
                .unwrap();
        let e = t.apply(&c).await.unwrap_err();
        assert!(matches!(e, TaskError::Conflict(_)), "{e}");
        let e = e.to_string();
        assert!(e.contains("its layout is replica 2, the task asks for replica 3 arbiter 1"), "{e}");
        assert!(e.contains("its bricks are gs1:/srv/b1 gs2:/srv/b1") && e.contains("nothing changed"), "{e}");
        assert_eq!(runner.seen().len(), 1);
    }

    #[tokio::test]
    async fn gluster_refusal_is_surfaced() {
        let out = crate::runner::Output { code: Some(1), stdout: fixture("volume-set-bad.xml"), stderr: String::new() };
        let (c, _) = ctx(FakeRunner::default()
            .expect(&format!("{G} volume info"), &fixture("volume-info.xml"))
            .expect(&format!("{G} volume get gv0 all"), &fixture("volume-get.xml"))
            .expect(&format!("{G} volume status gv0"), &fixture("volume-status.xml"))
            .expect_output(&format!("{G} volume set gv0 no.such-option 1"), out));
        let mut p = replica2();
        p.options = [("no.such-option".to_owned(), "1".to_owned())].into();
        let e = EnsureVolume::from_proto(&p).unwrap().apply(&c).await.unwrap_err().to_string();
        assert!(e.contains("no.such-option does not exist"), "{e}");
    }
}
