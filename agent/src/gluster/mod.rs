//! The local gluster CLI, always `gluster --mode=script --xml ...` through the command runner
//! (it talks to this host's glusterd over its local socket), typed wrappers around the queries
//! the tasks need, and `GetGlusterStatus`. Parsing is pure and lives in [`xml`]. A CLI that is
//! not installed yet or a glusterd that does not run is "not ready" (an earlier task brings
//! them). Reads /proc/self/mountinfo, statvfs()s glusterfs mounts and reads the glusterfs lines
//! of /etc/fstab for the status.

pub mod client;
pub mod heal;
pub mod rebalance;
pub mod xml;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brickyard_proto::poll::{self, Look, TimedOut};
use brickyard_proto::v1;

use crate::host::etcfile;
use crate::host::mountinfo::{self, Mount};
use crate::host::pathcheck::{self, FS_TIMEOUT};
use crate::host::runner::{Cmd, CommandError};
use crate::host::Context;

pub use xml::{BrickInfo, BrickProcess, PeerInfo, VolumeInfo, VolumeProcess};

/// Filesystem type of a GlusterFS FUSE mount in mountinfo.
pub const FUSE_FSTYPE: &str = "fuse.glusterfs";

/// What the gluster CLI prints when glusterd does not answer on its socket.
const NO_GLUSTERD: &str = "Connection failed";

/// Why a gluster query failed. The tasks map it to their error kinds with `From`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No gluster CLI, or no glusterd answering: an earlier task (EnsurePackages,
    /// EnsureGlusterd) brings it, as the message says.
    #[error("{0}")]
    NotReady(String),
    /// The CLI ran and failed (its message in `stderr`), or answered what cannot be parsed.
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// A lock another gluster transaction held was not released in time ([`cli`]).
    #[error(transparent)]
    LockHeld(#[from] TimedOut),
}

/// Runs `gluster --mode=script --xml ARGS` and returns its `<cliOutput>` when `opRet` is 0.
/// gluster exits non-zero with the reason in `opErrstr`: that reason becomes the error's
/// stderr, so the message reads `gluster ... failed (exit status 1): Volume gv0 already exists`.
/// No gluster CLI, or no glusterd answering, is `NotReady` (EnsurePackages and EnsureGlusterd
/// bring them). A command refused for a lock another transaction holds runs again
/// ([`when_unlocked`]).
pub async fn cli(ctx: &Context, args: &[&str]) -> Result<xml::Element, Error> {
    let cmd = cli_program(ctx)?.args(args.iter().copied());
    when_unlocked(&cmd, || async {
        let out = ctx.runner.output(&cmd).await;
        ctx.shared_runs.changed();
        answer(&cmd, out?)
    })
    .await
}

/// Runs a gluster query (a command that changes nothing), sharing the run of an identical
/// query running now (see [`crate::host::shared_runs`]); again while a lock is held, as
/// [`cli`].
async fn query(ctx: &Context, args: &[&str]) -> Result<xml::Element, Error> {
    let cmd = cli_program(ctx)?.args(args.iter().copied());
    when_unlocked(&cmd, || async { answer(&cmd, ctx.shared_runs.output(ctx.runner.as_ref(), &cmd).await?) }).await
}

/// What gluster answers when another transaction holds a lock the command needs (its
/// volume's, or the pool's; here or on a peer): the command was refused before it changed
/// anything. Two of the agent's own queries can meet so (`volume status` and `rebalance
/// status` of one volume, planned at once), as can any other gluster client of the pool.
const LOCK_HELD: [&str; 3] =
    ["Another transaction is in progress", "Another transaction could be in progress", "Locking failed on"];
/// How long a command waits for such a lock; gluster's transactions take well under a second
/// each, a volume start a few.
const LOCK_WAIT: Duration = Duration::from_secs(30);
const LOCK_INTERVAL: Duration = Duration::from_millis(200);

fn lock_held(e: &Error) -> bool {
    matches!(e, Error::Command(CommandError::Failed { stderr, .. }) if LOCK_HELD.iter().any(|m| stderr.contains(m)))
}

/// `run` (one run of `cmd`), again while gluster refuses it for a lock held elsewhere, until
/// [`LOCK_WAIT`] has passed.
async fn when_unlocked<Fut>(cmd: &Cmd, run: impl Fn() -> Fut) -> Result<xml::Element, Error>
where
    Fut: Future<Output = Result<xml::Element, Error>>,
{
    let what = format!("the lock `{}` needs (another gluster transaction holds it)", cmd.display());
    poll::until(what, LOCK_WAIT, LOCK_INTERVAL, || async {
        match run().await {
            Err(e) if lock_held(&e) => Ok(Look::NotYet(e.to_string())),
            answer => answer.map(Look::Done),
        }
    })
    .await
}

/// The XML answer of a gluster command, or why it failed.
fn answer(cmd: &Cmd, out: crate::host::runner::Output) -> Result<xml::Element, Error> {
    xml::cli_output(&out.stdout).map_err(|e| {
        let stderr = match e {
            xml::XmlError::Gluster { message, .. } => message,
            // Not XML at all, e.g. "Connection failed. Please check if gluster daemon is operational."
            _ if !out.success() => format!("{} {}", out.stdout.trim(), out.stderr.trim()).trim().to_owned(),
            other => format!("unexpected output ({other}): {}", out.stdout.trim()),
        };
        if !out.success() && stderr.starts_with(NO_GLUSTERD) {
            return Error::NotReady(format!(
                "glusterd does not answer `{}` ({stderr}): EnsureGlusterd starts it",
                cmd.display()
            ));
        }
        Error::Command(CommandError::Failed { cmd: cmd.display(), code: out.code, stdout: out.stdout, stderr })
    })
}

/// Where gluster packages install geo-replication's gsyncd, which the CLI runs on every start
/// (RHEL's libexec, Debian's multiarch lib dirs); hidden from the CLI Brickyard runs, which
/// never uses geo-replication (see [`crate::host::hidden_files`]).
const GSYNCD: &[&str] = &[
    "/usr/libexec/glusterfs/gsyncd",
    "/usr/lib/x86_64-linux-gnu/glusterfs/gsyncd",
    "/usr/lib/aarch64-linux-gnu/glusterfs/gsyncd",
    "/usr/lib/glusterfs/gsyncd",
];

/// `gluster --mode=script --xml`, without the command yet.
fn cli_program(ctx: &Context) -> Result<crate::host::runner::Cmd, Error> {
    let program = ctx
        .runner
        .cmd("gluster")
        .map_err(|e| Error::NotReady(format!("the gluster CLI is not installed ({e}): EnsurePackages installs it")))?;
    Ok(program.args(["--mode=script", "--xml"]).hiding(GSYNCD))
}

/// Wraps a parse failure of a successful command's XML as a command error naming the command.
fn parsed<T>(what: &str, result: Result<T, xml::XmlError>) -> Result<T, Error> {
    result.map_err(|e| {
        Error::Command(CommandError::Failed {
            cmd: format!("gluster --mode=script --xml {what}"),
            code: Some(0),
            stdout: String::new(),
            stderr: format!("unexpected output: {e}"),
        })
    })
}

/// The xattr of a brick root naming the volume it belongs to (16 raw bytes, the volume's UUID).
pub const VOLUME_ID: &str = "trusted.glusterfs.volume-id";

/// Every node of the trusted pool, this one included (`is_local`).
pub async fn pool_list(ctx: &Context) -> Result<Vec<PeerInfo>, Error> {
    parsed("pool list", xml::peers(&query(ctx, &["pool", "list"]).await?))
}

/// The other nodes of the pool with their probe state.
pub async fn peer_status(ctx: &Context) -> Result<Vec<PeerInfo>, Error> {
    parsed("peer status", xml::peers(&query(ctx, &["peer", "status"]).await?))
}

/// Every volume of the pool.
pub async fn volume_info(ctx: &Context) -> Result<Vec<VolumeInfo>, Error> {
    parsed("volume info", xml::volumes(&query(ctx, &["volume", "info"]).await?))
}

/// The live value of every option of `volume` (defaults included).
pub async fn volume_get_all(ctx: &Context, volume: &str) -> Result<BTreeMap<String, String>, Error> {
    parsed("volume get", xml::volume_options(&query(ctx, &["volume", "get", volume, "all"]).await?))
}

/// Brick processes (online, port, pid) of one started volume.
pub async fn brick_processes(ctx: &Context, volume: &str) -> Result<Vec<BrickProcess>, Error> {
    let mut all = parsed("volume status", xml::volume_status(&query(ctx, &["volume", "status", volume]).await?))?;
    Ok(all.remove(volume).unwrap_or_default())
}

/// Brick processes (online, port, sizes) of every started volume.
pub async fn volume_status_detail(ctx: &Context) -> Result<BTreeMap<String, Vec<BrickProcess>>, Error> {
    parsed("volume status", xml::volume_status(&query(ctx, &["volume", "status", "all", "detail"]).await?))
}

/// Every brick process and volume daemon of every started volume, with pids.
pub async fn volume_processes(ctx: &Context) -> Result<Vec<VolumeProcess>, Error> {
    parsed("volume status", xml::volume_processes(&query(ctx, &["volume", "status", "all"]).await?))
}

/// The addresses connected to each brick (`HOST:PATH`) of `volume`.
pub async fn brick_clients(
    ctx: &Context,
    volume: &str,
) -> Result<BTreeMap<String, std::collections::BTreeSet<String>>, Error> {
    parsed("volume status clients", xml::brick_clients(&query(ctx, &["volume", "status", volume, "clients"]).await?))
}

/// This host's name (the UTS hostname).
pub fn local_hostname() -> Result<String, Error> {
    let name = nix::unistd::gethostname().map_err(|e| Error::Io { context: "gethostname".into(), source: e.into() })?;
    Ok(name.to_string_lossy().into_owned())
}

/// Whether `name` designates the host whose hostname is `local`: equal ignoring case, or
/// equal short names when one of the two is not qualified (`gs1` vs `gs1.example.org`).
pub fn is_local_name(local: &str, name: &str) -> bool {
    let short = |s: &str| s.split('.').next().unwrap_or(s).to_ascii_lowercase();
    name.eq_ignore_ascii_case(local)
        || name.eq_ignore_ascii_case("localhost")
        || ((!name.contains('.') || !local.contains('.')) && short(name) == short(local))
}

/// The glusterfs FUSE mounts among `mounts`.
pub fn fuse_mounts(mounts: &[Mount]) -> impl Iterator<Item = &Mount> {
    mounts.iter().filter(|m| m.fstype == FUSE_FSTYPE)
}

/// How the filesystem at a mount point answered statvfs().
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountAnswer {
    /// Total and free bytes.
    Sizes(u64, u64),
    /// An error: on a FUSE mount, ENOTCONN ("Transport endpoint is not connected") means its
    /// client process is gone and the mount is stale.
    Error(nix::errno::Errno),
    /// No answer within a few seconds (servers away: a FUSE mount can hang a statvfs forever).
    Silent,
    /// No answer, and the client log says why: its process crashed and hangs (see
    /// [`client`]); the mount is stale, its process is to be killed.
    Crashed(String),
}

impl MountAnswer {
    pub fn sizes(&self) -> Option<(u64, u64)> {
        match self {
            MountAnswer::Sizes(total, free) => Some((*total, *free)),
            _ => None,
        }
    }

    /// Whether the mount is stale: its client is gone or dead, so it is to be mounted again.
    pub fn stale(&self) -> bool {
        matches!(self, MountAnswer::Error(_) | MountAnswer::Crashed(_))
    }

    /// Why the mount does not answer ("" when it does).
    pub fn problem(&self) -> String {
        match self {
            MountAnswer::Sizes(..) => String::new(),
            MountAnswer::Error(errno) => errno.desc().to_owned(),
            MountAnswer::Silent => format!("no answer to statvfs() within {}s", FS_TIMEOUT.as_secs()),
            MountAnswer::Crashed(why) => why.clone(),
        }
    }
}

/// How the mount at `dir` (on this host) answers: statvfs(), and when that gives no answer,
/// its client's log (`log`, on this host) for a crash.
pub async fn mount_answer(dir: &str, log: &Path) -> MountAnswer {
    match statvfs(dir).await {
        MountAnswer::Silent => client::crashed(log).map_or(MountAnswer::Silent, MountAnswer::Crashed),
        answer => answer,
    }
}

/// statvfs() of `path` off the async workers, given up on after `FS_TIMEOUT` (and not asked
/// again while an earlier call is stuck).
pub async fn statvfs(path: &str) -> MountAnswer {
    let owned = PathBuf::from(path);
    let call = move || Ok(nix::sys::statvfs::statvfs(&owned));
    match pathcheck::off_workers(format!("statvfs({path})"), FS_TIMEOUT, call).await {
        Ok(Ok(st)) => {
            let frag = st.fragment_size();
            // A FUSE daemon reports what it likes: never an overflow panic on its numbers.
            MountAnswer::Sizes(st.blocks().saturating_mul(frag), st.blocks_available().saturating_mul(frag))
        }
        Ok(Err(errno)) => MountAnswer::Error(errno),
        Err(_) => MountAnswer::Silent,
    }
}

/// Where glusterd's pid file is (systemd's unit and the agent's direct mode: the first; older
/// units: the second).
const GLUSTERD_PID_FILES: &[&str] = &["/run/glusterd.pid", "/var/run/glusterd.pid"];

/// Whether glusterd runs here: its pid file names a live process called glusterd.
pub fn glusterd_running() -> bool {
    crate::host::process::running(GLUSTERD_PID_FILES, "glusterd")
}

/// The pool, volumes and glusterfs mounts as this host sees them (`GetGlusterStatus`). When
/// glusterd does not run (not installed, not started: a client) or does not answer, only mounts
/// are reported; a host without a running glusterd is not asked through the gluster CLI at all
/// (starting it only to hear "Connection failed" costs a client more than the rest).
/// `detail` says how much of the volumes (`v1::VolumeDetail`: none, their layout, or also brick
/// processes, heals and the last rebalance). The queries run at once: `pool list` and `volume
/// info` are local reads and `heal info` a client of the bricks; only `volume status` takes
/// glusterd's cluster lock.
pub async fn status(ctx: &Context, detail: v1::VolumeDetail) -> Result<v1::GlusterStatus, Error> {
    status_with(ctx, detail, glusterd_running()).await
}

/// [`status`], told whether glusterd runs.
async fn status_with(ctx: &Context, detail: v1::VolumeDetail, running: bool) -> Result<v1::GlusterStatus, Error> {
    let pool = async {
        if running {
            pool_list(ctx).await
        } else {
            Err(Error::NotReady("glusterd is not running".into()))
        }
    };
    let volumes = async {
        if !running {
            return None;
        }
        match detail {
            v1::VolumeDetail::None => None,
            v1::VolumeDetail::Layout => Some((volume_info(ctx).await, None)),
            v1::VolumeDetail::Full => {
                let (infos, processes) = tokio::join!(volume_info(ctx), volume_status_detail(ctx));
                Some((infos, Some(processes)))
            }
        }
    };
    let (mounts, pool, volumes) = tokio::join!(local_mounts(), pool, volumes);
    let fstab = etcfile::read_or_empty(Path::new(FSTAB))
        .map_err(|source| Error::Io { context: format!("reading {FSTAB}"), source })?;
    let mut status = v1::GlusterStatus { mounts: mounts?, fstab: fstab_gluster_lines(&fstab), ..Default::default() };
    let Ok(pool) = pool else {
        return Ok(status);
    };
    status.glusterd_running = true;
    status.peers = pool
        .into_iter()
        .map(|p| v1::Peer {
            uuid: p.uuid,
            hostname: p.hostname,
            other_names: p.names.into_iter().skip(1).collect(),
            connected: p.connected,
            state: p.state,
            is_local: p.is_local,
        })
        .collect();
    let Some((infos, processes)) = volumes else {
        return Ok(status);
    };
    let infos = infos?;
    let Some(processes) = processes else {
        status.volumes = infos.into_iter().map(|info| volume_status(info, &[])).collect();
        return Ok(status);
    };
    // With no volume started, `volume status` fails ("No volumes present" or not started).
    let processes = if infos.iter().any(VolumeInfo::started) { processes? } else { BTreeMap::new() };
    // Heal info and the last rebalance of every volume, all at once (neither takes the lock).
    let extras = futures_util::future::join_all(infos.iter().map(|info| async move {
        let heals = if info.started() && info.heals() { heal::heal_summary(ctx, &info.name).await.ok() } else { None };
        let migration = if info.started() { rebalance::last(ctx, info).await } else { None };
        (heals, migration)
    }))
    .await;
    for (info, (heals, migration)) in infos.into_iter().zip(extras) {
        let live = processes.get(&info.name).map(Vec::as_slice).unwrap_or_default();
        let mut volume = volume_status(info, live);
        heal::fill_status(&mut volume, heals.as_ref());
        if let Some((state, failed_on)) = migration {
            (volume.migration, volume.migration_failed_on) = (state, failed_on);
        }
        status.volumes.push(volume);
    }
    Ok(status)
}

/// Joins `volume info` with the brick processes of `volume status detail` (heal counts unset).
fn volume_status(info: VolumeInfo, live: &[BrickProcess]) -> v1::VolumeStatus {
    let bricks = info
        .bricks
        .iter()
        .map(|b| {
            let process = live.iter().find(|p| p.host == b.host && p.path == b.path);
            v1::BrickStatus {
                host: b.host.clone(),
                path: b.path.clone(),
                online: process.is_some_and(|p| p.online),
                port: process.and_then(|p| p.port).unwrap_or(0),
                size_total: process.and_then(|p| p.size_total).unwrap_or(0),
                size_free: process.and_then(|p| p.size_free).unwrap_or(0),
                is_arbiter: b.is_arbiter,
            }
        })
        .collect();
    v1::VolumeStatus {
        name: info.name,
        r#type: info.type_str,
        status: info.status,
        replica: info.replica,
        arbiter: info.arbiter,
        disperse: info.disperse,
        redundancy: info.redundancy,
        bricks,
        options: info.options.into_iter().collect(),
        ..Default::default()
    }
}

const FSTAB: &str = "/etc/fstab";

/// The `glusterfs` lines of fstab `text` (comments skipped).
fn fstab_gluster_lines(text: &str) -> Vec<v1::FstabGlusterLine> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [source, mount_point, "glusterfs", rest @ ..] => Some(v1::FstabGlusterLine {
                    source: (*source).to_owned(),
                    mount_point: (*mount_point).to_owned(),
                    options: rest.first().copied().unwrap_or_default().to_owned(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// This host's glusterfs FUSE mounts, each with how it answered statvfs().
pub async fn local_mounts() -> Result<Vec<v1::GlusterMount>, Error> {
    let mounts =
        mountinfo::read().map_err(|source| Error::Io { context: "reading /proc/self/mountinfo".into(), source })?;
    let mut out = Vec::new();
    for m in fuse_mounts(&mounts) {
        let log = client::default_log(&m.mount_point);
        let answer = mount_answer(&m.mount_point, Path::new(&log)).await;
        let (size_total, size_free) = answer.sizes().unwrap_or_default();
        out.push(v1::GlusterMount {
            source: m.source.clone(),
            mount_point: m.mount_point.clone(),
            size_total,
            size_free,
            error: answer.problem(),
            stale: answer.stale(),
        });
    }
    Ok(out)
}

/// A captured gluster output from `fixtures/` (tests only).
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/src/gluster/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::runner::fake::FakeRunner;
    use crate::host::runner::Output;

    fn ctx(runner: FakeRunner) -> Context {
        Context::direct(runner)
    }

    #[test]
    fn fstab_gluster_lines_are_the_glusterfs_ones() {
        let text = "UUID=1 / ext4 defaults 0 1\n# gs1:/old /old glusterfs defaults 0 0\n\
                    gs1:/gv0 /mnt/gv glusterfs defaults,_netdev 0 0\n/dev/vdb1 /vdisk ext4 defaults 0 0\n";
        let lines = fstab_gluster_lines(text);
        let found: Vec<_> =
            lines.iter().map(|l| (l.source.as_str(), l.mount_point.as_str(), l.options.as_str())).collect();
        assert_eq!(found, [("gs1:/gv0", "/mnt/gv", "defaults,_netdev")]);
    }

    #[tokio::test]
    async fn cli_failure_surfaces_op_errstr() {
        let out = Output { code: Some(1), stdout: fixture("volume-create-exists.xml"), stderr: String::new() };
        let c =
            ctx(FakeRunner::default().expect_output("/usr/sbin/gluster --mode=script --xml volume create gv0", out));
        let err = cli(&c, &["volume", "create", "gv0"]).await.unwrap_err().to_string();
        assert!(err.contains("volume create gv0") && err.ends_with("Volume gv0 already exists"), "{err}");

        let down = Output {
            code: Some(1),
            stdout: "Connection failed. Please check if gluster daemon is operational.\n".into(),
            stderr: String::new(),
        };
        let c = ctx(FakeRunner::default().expect_output("/usr/sbin/gluster --mode=script --xml pool list", down));
        let err = cli(&c, &["pool", "list"]).await.unwrap_err();
        assert!(matches!(err, Error::NotReady(_)), "{err}");
        assert!(err.to_string().contains("Connection failed") && err.to_string().contains("EnsureGlusterd"), "{err}");
    }

    #[tokio::test]
    async fn a_command_refused_for_a_lock_held_elsewhere_runs_again() {
        let held = |what: &str| Output {
            code: Some(1),
            stdout: format!("<cliOutput><opRet>-1</opRet><opErrno>0</opErrno><opErrstr>{what}</opErrstr></cliOutput>"),
            stderr: String::new(),
        };
        let status = "/usr/sbin/gluster --mode=script --xml volume status gv0";
        let runner = FakeRunner::default()
            .expect_output(
                status,
                held("Another transaction is in progress for gv0. Please try again after some time."),
            )
            .expect_output(status, held("Locking failed on gs2. Please check log file for details."))
            .expect(status, &fixture("volume-status-brick-down.xml"));
        assert!(!brick_processes(&ctx(runner), "gv0").await.unwrap().is_empty(), "answered on the third run");

        // Other refusals are not retried.
        let create = "/usr/sbin/gluster --mode=script --xml volume create gv0";
        let out = Output { code: Some(1), stdout: fixture("volume-create-exists.xml"), stderr: String::new() };
        let err = cli(&ctx(FakeRunner::default().expect_output(create, out)), &["volume", "create", "gv0"]).await;
        assert!(err.unwrap_err().to_string().ends_with("Volume gv0 already exists"));
    }

    #[tokio::test]
    async fn status_joins_info_status_and_heals() {
        let runner = FakeRunner::default()
            .expect("/usr/sbin/gluster --mode=script --xml pool list", &fixture("pool-list.xml"))
            .expect("/usr/sbin/gluster --mode=script --xml volume info", &fixture("volume-info.xml"))
            .expect(
                "/usr/sbin/gluster --mode=script --xml volume status all detail",
                &fixture("volume-status-brick-down.xml"),
            )
            .expect(
                "/usr/sbin/gluster --mode=script --xml volume heal gv0 info summary",
                &fixture("heal-info-summary-pending.xml"),
            );
        let st = status_with(&ctx(runner), v1::VolumeDetail::Full, true).await.unwrap();
        assert!(st.glusterd_running);
        assert_eq!(st.peers.len(), 2);
        assert_eq!(
            (st.peers[0].hostname.as_str(), st.peers[0].other_names.as_slice()),
            ("198.18.250.2", &["gs2".to_owned()][..])
        );
        assert!(st.peers[1].is_local);
        let v = &st.volumes[0];
        assert_eq!(
            (v.name.as_str(), v.r#type.as_str(), v.status.as_str(), v.replica),
            ("gv0", "Replicate", "Started", 2)
        );
        assert_eq!(
            (v.pending_heals, v.split_brain, v.heal_unreachable.as_slice()),
            (2, 0, &["gs2:/srv/b1".to_owned()][..])
        );
        assert_eq!(v.options["performance.cache-size"], "512MB");
        assert!(v.bricks[0].online && v.bricks[0].port == 60427 && v.bricks[0].size_total == 12638031872);
        assert!(!v.bricks[1].online && v.bricks[1].port == 0);
    }

    #[tokio::test]
    async fn status_without_volumes_asks_only_the_pool() {
        let runner =
            FakeRunner::default().expect("/usr/sbin/gluster --mode=script --xml pool list", &fixture("pool-list.xml"));
        let st = status_with(&ctx(runner), v1::VolumeDetail::None, true).await.unwrap();
        assert!(st.glusterd_running && st.peers.len() == 2 && st.volumes.is_empty());
    }

    /// The layout (what plan and apply compare with the spec) is `volume info` alone: no
    /// cluster lock, no heal or rebalance queries.
    #[tokio::test]
    async fn status_with_the_layout_asks_only_pool_and_info() {
        let runner = FakeRunner::default()
            .expect("/usr/sbin/gluster --mode=script --xml pool list", &fixture("pool-list.xml"))
            .expect("/usr/sbin/gluster --mode=script --xml volume info", &fixture("volume-info.xml"));
        let st = status_with(&ctx(runner), v1::VolumeDetail::Layout, true).await.unwrap();
        let v = &st.volumes[0];
        assert_eq!((v.name.as_str(), v.replica, v.bricks.len()), ("gv0", 2, 2));
        assert_eq!(v.options["performance.cache-size"], "512MB");
    }

    /// Where glusterd does not run (a client), the gluster CLI is not started at all.
    #[tokio::test]
    async fn status_where_glusterd_does_not_run_runs_no_gluster_command() {
        let st = status_with(&ctx(FakeRunner::default()), v1::VolumeDetail::Full, false).await.unwrap();
        assert!(!st.glusterd_running && st.peers.is_empty() && st.volumes.is_empty());
    }

    #[tokio::test]
    async fn status_without_glusterd_reports_only_mounts() {
        let down = Output { code: Some(1), stdout: "Connection failed.\n".into(), stderr: String::new() };
        let runner = FakeRunner::default()
            .expect_output("/usr/sbin/gluster --mode=script --xml pool list", down.clone())
            .expect_output("/usr/sbin/gluster --mode=script --xml volume info", down.clone())
            .expect_output("/usr/sbin/gluster --mode=script --xml volume status all detail", down);
        let st = status_with(&ctx(runner), v1::VolumeDetail::Full, true).await.unwrap();
        assert!(!st.glusterd_running && st.peers.is_empty() && st.volumes.is_empty());
    }

    #[test]
    fn local_names() {
        assert!(is_local_name("gs1", "GS1") && is_local_name("gs1.example.org", "gs1"));
        assert!(is_local_name("gs1", "gs1.example.org") && is_local_name("gs1", "localhost"));
        assert!(!is_local_name("gs1", "gs2") && !is_local_name("gs1.a.org", "gs1.b.org"));
        assert!(!is_local_name("gs1", "gs10"));
    }

    #[tokio::test]
    async fn statvfs_reports_sizes() {
        let (total, free) = statvfs("/").await.sizes().unwrap();
        assert!(total > 0 && free <= total);
        assert_eq!(statvfs("/").await.problem(), "");
        assert_eq!(statvfs("/nonexistent-brickyard").await, MountAnswer::Error(nix::errno::Errno::ENOENT));
    }
}
