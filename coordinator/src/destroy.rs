//! `brickyard destroy -f SPEC --volume NAME [--yes]`: stops and deletes one volume, the only
//! command that removes a volume (apply never does). In order, changing nothing until the last
//! step:
//! 1. the volume must be gone from the spec (else the next apply would create it again), and
//!    the refusal names the spec's clients that mount it;
//! 2. no client of the spec, nor one that left it, may still have it mounted (they are named:
//!    `apply` unmounts mounts that left the spec);
//! 3. the first server's agent plans `DestroyVolume` (volume stop, volume delete), which is
//!    shown, with the brick directories that keep their files;
//! 4. the operator types the volume name back (or passes `--yes`); without a terminal on stdin
//!    and without `--yes` it refuses;
//! 5. the agent applies it. Brick directories and their files are never removed. Network only.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use brickyard_proto::v1;
use brickyard_proto::v1::task::Kind;
use brickyard_proto::v1::task_verdict::Verdict;

use crate::agents::{task_error, Agents};
use crate::apply;
use crate::phases::HostBatch;
use crate::pool_view;
use crate::progress;
use crate::retire;
use crate::spec::Spec;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestroyError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

/// Step 1: the spec no longer has the volume.
fn check_spec(spec: &Spec, volume: &str) -> Result<(), DestroyError> {
    if spec.volume(volume).is_none() {
        return Ok(());
    }
    let mounting: Vec<String> = spec
        .clients
        .iter()
        .flat_map(|c| c.mounts.iter().filter(|m| m.volume == volume).map(move |m| format!("{} at {}", c.name, m.path)))
        .collect();
    let clients = if mounting.is_empty() {
        String::new()
    } else {
        format!(" and the mounts of it (clients {})", mounting.join(", "))
    };
    Err(DestroyError::Refused(format!(
        "volume {volume} is still in the spec {}: remove its [[volume]] entry{clients} first and apply, or the \
         next apply creates it again; nothing changed",
        spec.path.display()
    )))
}

/// Whether a mount's source (`SERVER:/VOLUME`) is `volume`.
fn mounts_volume(mount: &v1::GlusterMount, volume: &str) -> bool {
    mount.source.split_once(":/").is_some_and(|(_, v)| v == volume)
}

/// Step 2: the hosts (spec clients and clients that left the spec) that still mount it.
async fn check_mounts(spec: &Spec, agents: &Arc<Agents>, volume: &str) -> Result<(), DestroyError> {
    let mut facts = BTreeMap::new();
    let (answers, view) = pool_view::read_with_facts(spec, agents).await;
    for (host, answer) in answers {
        let answer = answer.map_err(|e| DestroyError::Refused(format!("{e}; nothing changed")))?;
        facts.insert(host.name, answer);
    }
    let view = view.map_err(|e| DestroyError::Refused(format!("cannot read the pool: {e}; nothing changed")))?;
    let survey = retire::survey(spec, agents, &mut facts, &view).await;
    let clients = spec.clients.iter().map(|c| c.name.clone()).chain(survey.retired.iter().map(|r| r.name.clone()));
    let mut mounting = Vec::new();
    for client in clients {
        let status = agents.gluster_status(&client, v1::VolumeDetail::None).await.map_err(|e| {
            DestroyError::Refused(format!("cannot tell whether {client} mounts volume {volume}: {e}; nothing changed"))
        })?;
        mounting.extend(
            status.mounts.iter().filter(|m| mounts_volume(m, volume)).map(|m| format!("{client} at {}", m.mount_point)),
        );
    }
    if mounting.is_empty() {
        return Ok(());
    }
    Err(DestroyError::Refused(format!(
        "volume {volume} is still mounted by clients {}: run `brickyard apply -f {}` first (it unmounts the mounts \
         the spec no longer has); nothing changed",
        mounting.join(", "),
        spec.path.display()
    )))
}

/// Step 4: `--yes`, or the volume name typed back on a terminal.
fn confirm(volume: &str, yes: bool) -> Result<(), DestroyError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(DestroyError::Refused(format!(
            "not destroying volume {volume}: no confirmation (stdin is not a terminal); pass --yes to confirm; \
             nothing changed"
        )));
    }
    print!("Type the volume name ({volume}) to destroy it: ");
    std::io::stdout().flush().map_err(|e| DestroyError::Failed(format!("writing the prompt: {e}")))?;
    let mut typed = String::new();
    stdin.lock().read_line(&mut typed).map_err(|e| DestroyError::Failed(format!("reading the confirmation: {e}")))?;
    if typed.trim() == volume {
        Ok(())
    } else {
        Err(DestroyError::Refused(format!("{:?} is not {volume}: not confirmed; nothing changed", typed.trim())))
    }
}

/// Runs the steps; prints what it will do and what it did.
pub async fn run(spec: &Spec, volume: &str, yes: bool) -> Result<(), DestroyError> {
    check_spec(spec, volume)?;
    let first = spec.servers.first().ok_or_else(|| DestroyError::Refused("the spec has no server".into()))?;
    let agents = Arc::new(Agents::new(spec));
    check_mounts(spec, &agents, volume).await?;
    let task = v1::Task {
        id: format!("destroy volume {volume}"),
        kind: Some(Kind::DestroyVolume(v1::DestroyVolume { name: volume.to_owned() })),
    };
    let report = agents.plan(&first.name, vec![task.clone()]).await.map_err(|e| DestroyError::Failed(e.to_string()))?;
    let changes = match report.verdicts.into_iter().next().and_then(|v| v.verdict) {
        Some(Verdict::WouldChange(c)) => c.changes,
        Some(Verdict::Unchanged(_)) => {
            println!("volume {volume} does not exist on the pool: nothing to do");
            return Ok(());
        }
        Some(Verdict::Refused(e)) => return Err(DestroyError::Refused(task_error(&e))),
        None => return Err(DestroyError::Failed(format!("{}: the agent returned no verdict", first.name))),
    };
    println!("brickyard destroy will, on {}:", first.name);
    for change in &changes {
        println!("  - {change}");
    }
    println!("Brick data is never removed: the brick directories keep their files.");
    confirm(volume, yes)?;
    let reporter = progress::reporter(false);
    let batch = HostBatch { host: first.name.clone(), tasks: vec![task] };
    apply::apply_single(&agents, "destroy", batch, reporter.as_ref())
        .await
        .map_err(|f| DestroyError::Failed(f.to_string()))?;
    println!("volume {volume} destroyed; its brick directories and their files are untouched");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_spec::SpecText;

    #[test]
    fn a_volume_in_the_spec_is_refused_naming_its_clients() {
        let spec = SpecText::pool("lab")
            .server("s1", "10.0.0.1")
            .volume("gv0", "distribute", "b")
            .set("force", "true")
            .client("c1", "10.0.0.21")
            .mount("gv0", "/data")
            .spec();
        let e = check_spec(&spec, "gv0").unwrap_err().to_string();
        assert_eq!(
            e,
            "volume gv0 is still in the spec cluster.toml: remove its [[volume]] entry and the mounts of it (clients \
             c1 at /data) first and apply, or the next apply creates it again; nothing changed"
        );
        assert_eq!(check_spec(&spec, "old"), Ok(()));
    }

    #[test]
    fn mounts_are_matched_by_volume() {
        let mount = |source: &str| v1::GlusterMount { source: source.into(), ..Default::default() };
        assert!(mounts_volume(&mount("s1:/gv0"), "gv0"));
        assert!(!mounts_volume(&mount("s1:/gv00"), "gv0"));
    }
}
