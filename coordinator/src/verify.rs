//! `brickyard verify`: the seed's file tests through the agents' `VerifyFile` RPC. For each
//! volume mounted by clients, each step on all hosts at once: every client writes a line naming
//! itself to its own `.brickyard-verify-<random>-<n>`, the next client reads it back (a ring: each
//! file is read through another mount when there is one), the bricks that should hold each file
//! are read on the servers (replica bricks hold the whole file, an arbiter brick and disperse
//! bricks hold it without the data), then every client removes its file. Touches only those
//! files on the volumes.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use brickyard_proto::poll::{self, Look};
use brickyard_proto::v1;
use futures_util::future::join_all;
use serde::Serialize;

use crate::agents::Agents;
use crate::phases;
use crate::spec::{Spec, VolumeKind};

/// One pass/fail check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub volume: String,
    pub check: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }
}

/// A file name no earlier run left behind: `.brickyard-verify-` + 16 random hex digits.
fn file_name() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.write_u32(std::process::id());
    format!(".brickyard-verify-{:016x}", hasher.finish())
}

/// Which bricks of one replica/disperse set hold the file's data (false: the file exists
/// there without its content — an arbiter, or a disperse fragment).
fn holds_data(kind: VolumeKind, set_size: usize, index_in_set: usize) -> bool {
    match kind {
        VolumeKind::Distribute | VolumeKind::Replicate => true,
        VolumeKind::Arbiter => index_in_set + 1 < set_size,
        VolumeKind::Disperse => false,
    }
}

pub async fn run(spec: &Spec) -> VerifyReport {
    let agents = Arc::new(Agents::new(spec));
    let mut report = VerifyReport::default();
    for volume in &spec.volumes {
        let mounts: Vec<(&str, &str)> = spec
            .clients
            .iter()
            .flat_map(|c| {
                c.mounts.iter().filter(|m| m.volume == volume.name).map(move |m| (c.name.as_str(), m.path.as_str()))
            })
            .collect();
        if mounts.is_empty() {
            continue;
        }
        verify_volume(spec, &agents, volume, &mounts, &mut report.checks).await;
    }
    report
}

/// One mount's verify file: written through `path` on `client`, read back through the next
/// mount (through its own when it is the only one).
struct VerifyFile<'a> {
    index: usize,
    client: &'a str,
    path: &'a str,
    name: String,
    line: String,
}

impl VerifyFile<'_> {
    fn request(&self, op: v1::VerifyOp, dir: &str) -> v1::VerifyFileRequest {
        let line = if op == v1::VerifyOp::Append { self.line.clone() } else { String::new() };
        v1::VerifyFileRequest { op: op.into(), dir: dir.to_owned(), file_name: self.name.clone(), line }
    }

    fn content(&self) -> String {
        format!("{}\n", self.line)
    }
}

/// A check's name and verdict.
type Verdict = (String, Result<(), String>);

async fn verify_volume(
    spec: &Spec,
    agents: &Agents,
    volume: &crate::spec::Volume,
    mounts: &[(&str, &str)],
    checks: &mut Vec<Check>,
) {
    let mut record = |(check, result): Verdict| {
        let (ok, detail) = match result {
            Ok(()) => (true, String::new()),
            Err(detail) => (false, detail),
        };
        checks.push(Check { volume: volume.name.clone(), check, ok, detail });
    };
    // One file per mount, so no client reads a file whose size it has cached: FUSE keeps a
    // file's attributes for a second, and another client's append would show only after that.
    let base = file_name();
    let files: Vec<VerifyFile> = mounts
        .iter()
        .enumerate()
        .map(|(index, &(client, path))| VerifyFile {
            index,
            client,
            path,
            name: format!("{base}-{index}"),
            line: format!("written by {client} through {path}"),
        })
        .collect();

    // Every step runs on all hosts at once: write, read back elsewhere, bricks, remove.
    let writes = join_all(files.iter().map(|f| agents.verify_file(f.client, f.request(v1::VerifyOp::Append, f.path))));
    let mut written = Vec::new();
    for (f, result) in files.iter().zip(writes.await) {
        if result.is_ok() {
            written.push(f);
        }
        record((format!("{} writes {}/{}", f.client, f.path, f.name), result.map(|_| ()).map_err(|e| e.to_string())));
    }

    let reads = join_all(written.iter().map(|f| async move {
        let (reader, path) = mounts[(f.index + 1) % mounts.len()];
        let verdict = read_back(agents, reader, f.request(v1::VerifyOp::Read, path), &f.content()).await;
        (format!("{reader} reads {}'s file back from {path}", f.client), verdict)
    }));
    reads.await.into_iter().for_each(&mut record);

    let bricks = join_all(written.iter().map(|f| check_bricks(spec, agents, volume, f)));
    bricks.await.into_iter().flatten().for_each(&mut record);

    let removals = join_all(written.iter().map(|f| async move {
        let removed = match agents.verify_file(f.client, f.request(v1::VerifyOp::Remove, f.path)).await {
            Err(e) => Err(e.to_string()),
            Ok(_) => match agents.verify_file(f.client, f.request(v1::VerifyOp::Read, f.path)).await {
                Ok(r) if r.exists => Err("the file is still there after removal".into()),
                Ok(_) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
        };
        (format!("{} removes {}/{}", f.client, f.path, f.name), removed)
    }));
    removals.await.into_iter().for_each(&mut record);
}

/// How long a client may show a stale view of the file: FUSE caches attributes (1 s by
/// default) and gluster's md-cache too, so another client's append can take a moment to show.
const READ_BACK_DEADLINE: Duration = Duration::from_secs(10);
const READ_BACK_INTERVAL: Duration = Duration::from_millis(100);

/// Reads the file through a client mount until it holds `expected` or the deadline passes
/// (awaiting every client's append to become visible on this client).
async fn read_back(
    agents: &Agents,
    client: &str,
    request: v1::VerifyFileRequest,
    expected: &str,
) -> Result<(), String> {
    poll::until("every append to show", READ_BACK_DEADLINE, READ_BACK_INTERVAL, || async {
        Ok(match agents.verify_file(client, request.clone()).await {
            Err(e) => return Err(e.to_string()),
            Ok(r) if !r.exists => Look::NotYet("the file is missing".to_owned()),
            Ok(r) if r.content != expected => Look::NotYet(format!("read {:?}, expected {expected:?}", r.content)),
            Ok(_) => Look::Done(()),
        })
    })
    .await
}

/// Exactly one replica/disperse set holds the file, on every brick of the set.
async fn check_bricks(
    spec: &Spec,
    agents: &Agents,
    volume: &crate::spec::Volume,
    file: &VerifyFile<'_>,
) -> Vec<Verdict> {
    let Ok(layout) = volume.layout() else { return Vec::new() };
    let set_size = layout.set_size();
    let bricks = phases::bricks(spec, volume);
    let reads =
        join_all(bricks.iter().map(|b| agents.verify_file(&b.host, file.request(v1::VerifyOp::Read, &b.path)))).await;
    let sets: Vec<usize> = (0..bricks.len() / set_size.max(1))
        .filter(|s| (0..set_size).any(|i| reads[s * set_size + i].as_ref().is_ok_and(|r| r.exists)))
        .collect();
    if sets.len() != 1 {
        return vec![(
            format!("exactly one brick set holds {}", file.name),
            Err(format!("{} sets hold it (sets of {set_size} bricks in brick order)", sets.len())),
        )];
    }
    let set = sets[0];
    let expected = file.content();
    (0..set_size)
        .map(|i| {
            let brick = &bricks[set * set_size + i];
            let data = holds_data(layout.kind(), set_size, i);
            let verdict = match &reads[set * set_size + i] {
                Err(e) => Err(e.to_string()),
                Ok(r) if !r.exists => Err("the file is missing".into()),
                Ok(r) if data && r.content != expected => Err(format!("holds {:?}, expected {expected:?}", r.content)),
                Ok(_) => Ok(()),
            };
            let what = if data { "the file" } else { "the file (without its data)" };
            (format!("brick {}:{} holds {what} {}", brick.host, brick.path, file.name), verdict)
        })
        .collect()
}

/// The human report: one line per check.
pub fn render_text(report: &VerifyReport) -> String {
    let mut out = String::new();
    for c in &report.checks {
        let mark = if c.ok { "PASS" } else { "FAIL" };
        if c.detail.is_empty() {
            out.push_str(&format!("{mark}  {}: {}\n", c.volume, c.check));
        } else {
            out.push_str(&format!("{mark}  {}: {}: {}\n", c.volume, c.check, c.detail));
        }
    }
    if report.checks.is_empty() {
        out.push_str("verify: no client mounts a volume; nothing to check\n");
    } else {
        let passed = report.checks.iter().filter(|c| c.ok).count();
        out.push_str(&format!("verify: {passed} of {} checks passed\n", report.checks.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_bricks_hold_data() {
        assert!(holds_data(VolumeKind::Replicate, 2, 1));
        assert!(holds_data(VolumeKind::Arbiter, 3, 1));
        assert!(!holds_data(VolumeKind::Arbiter, 3, 2));
        assert!(!holds_data(VolumeKind::Disperse, 3, 0));
    }

    #[test]
    fn file_names_are_fresh_and_allowed() {
        let (a, b) = (file_name(), file_name());
        assert_ne!(a, b);
        assert!(a
            .strip_prefix(".brickyard-verify-")
            .is_some_and(|s| s.len() == 16 && s.chars().all(|c| c.is_ascii_hexdigit())));
    }
}
