//! What left the spec: clients to retire and volumes no longer managed, found before `plan` and
//! `apply` change anything.
//!
//! **Who was a client.** The coordinator keeps no state, so it needs a record that outlives the
//! spec change. It uses the one Brickyard itself writes on every host: the managed /etc/hosts
//! block (`# BEGIN brickyard pool`), which lists every host of the last applied spec with its
//! address (the agents report it in their facts). A name there that the spec no longer has and
//! that is not a gluster peer of the pool (a server — draining servers is another matter) is a
//! retired client; its agent is reached at that address on the default agent port. The record
//! is rewritten, without the client, by the servers phase of the same apply, so the retire phase
//! runs first: a retirement that fails (a mount still in use) stops the apply with the record
//! intact, and the next run retries. A retired client whose agent does not answer is reported
//! (plan and apply warn, naming it and its address, and say what to undo there by hand); apply
//! then does the rest — /etc/hosts, `auth.allow` and the firewall follow the spec, which no
//! longer has the client — after which Brickyard no longer knows that host.
//!
//! A client that stays in the spec but lost a mount gives up that mount in the same phase (its
//! `RetireGlusterMounts` keeps the mount points the spec still lists), so a moved mount point is
//! unmounted before the clients phase mounts the new one.
//!
//! **Unmanaged volumes.** A volume the pool has and the spec does not is never touched; plan and
//! apply warn that it is no longer managed and how to destroy it (`brickyard destroy`).
//!
//! Network only (facts and gluster status through the agents).

use std::collections::BTreeMap;
use std::sync::Arc;

use brickyard_proto::v1;
use brickyard_proto::v1::task::Kind;

use crate::agents::{self, Agents, Devices};
use crate::phases::{HostBatch, Phase, PhasePlan};
use crate::spec::{HostTarget, Spec};

/// A client in the pool's record but not in the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    pub name: String,
    pub address: String,
    /// Why its agent could not be asked, when it could not.
    pub unreachable: Option<String>,
}

/// What left the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    pub retired: Vec<Retired>,
    /// Volumes of the pool that the spec does not list.
    pub unmanaged_volumes: Vec<String>,
}

/// The hosts of the pool's record (every reporting host's managed /etc/hosts block, spec order)
/// that are neither in the spec nor among `peers`, with their addresses.
fn former_clients(spec: &Spec, facts: &BTreeMap<String, v1::Facts>, peers: &[v1::Peer]) -> Vec<(String, String)> {
    let known = |name: &str| {
        spec.hosts().iter().any(|h| h.name.eq_ignore_ascii_case(name))
            || spec.is_replaced(name)
            || peers.iter().any(|p| {
                p.hostname.eq_ignore_ascii_case(name) || p.other_names.iter().any(|o| o.eq_ignore_ascii_case(name))
            })
    };
    let mut former: Vec<(String, String)> = Vec::new();
    for host in spec.hosts() {
        for entry in facts.get(&host.name).map(|f| f.pool_hosts.as_slice()).unwrap_or_default() {
            if !known(&entry.name) && !former.iter().any(|(n, _)| n.eq_ignore_ascii_case(&entry.name)) {
                former.push((entry.name.clone(), entry.address.clone()));
            }
        }
    }
    former
}

/// Finds what left the spec. Retired clients are added to `agents` (and their facts, when
/// they answer, to `facts`, so plan and apply treat them as reachable hosts).
/// `status` is the pool as one server sees it ([`crate::pool_view`]).
pub async fn survey(
    spec: &Spec,
    agents: &Arc<Agents>,
    facts: &mut BTreeMap<String, v1::Facts>,
    status: &v1::GlusterStatus,
) -> Survey {
    let mut survey = Survey {
        unmanaged_volumes: status
            .volumes
            .iter()
            .filter(|v| spec.volume(&v.name).is_none())
            .map(|v| v.name.clone())
            .collect(),
        ..Default::default()
    };
    let former = former_clients(spec, facts, &status.peers);
    for (name, address) in &former {
        let port = brickyard_proto::DEFAULT_AGENT_PORT;
        agents.add_host(HostTarget { name: name.clone(), address: address.clone(), port });
    }
    let answers = agents::each(former.iter().map(|(name, _)| name.as_str()), |host| {
        let agents = agents.clone();
        async move { agents.facts(&host, Devices::Omitted).await }
    })
    .await;
    for ((name, address), (_, answer)) in former.into_iter().zip(answers) {
        let unreachable = match answer {
            Ok(f) => {
                facts.insert(name.clone(), f);
                None
            }
            Err(e) => Some(e.to_string()),
        };
        survey.retired.push(Retired { name, address, unreachable });
    }
    survey
}

impl Survey {
    /// The retire phase: each reachable retired client gives up its Brickyard mounts, and each
    /// client of the spec those the spec no longer gives it.
    pub fn phase(&self, spec: &Spec) -> PhasePlan {
        let batch = |host: &str, id: String, keep: Vec<String>| HostBatch {
            host: host.to_owned(),
            tasks: vec![v1::Task { id, kind: Some(Kind::RetireGlusterMounts(v1::RetireGlusterMounts { keep })) }],
        };
        let retired = self
            .retired
            .iter()
            .filter(|r| r.unreachable.is_none())
            .map(|r| batch(&r.name, format!("retire client {} ({})", r.name, r.address), Vec::new()));
        let staying = spec.clients.iter().map(|c| {
            batch(&c.name, "mounts gone from the spec".into(), c.mounts.iter().map(|m| m.path.clone()).collect())
        });
        PhasePlan { phase: Phase::Retire, steps: vec![retired.chain(staying).collect()] }
    }

    /// What plan and apply tell the operator about what left the spec.
    pub fn warnings(&self, spec: &Spec) -> Vec<String> {
        let unreachable = self.retired.iter().filter_map(|r| r.unreachable.as_ref().map(|e| (r, e)));
        let clients = unreachable.map(|(r, error)| {
            format!(
                "client {} ({}) left the spec but cannot be retired now ({error}): apply drops it from /etc/hosts, \
                 auth.allow and the firewall anyway, after which Brickyard no longer knows it; on {} unmount its \
                 glusterfs mounts and remove the fstab lines after `# brickyard-managed:` markers by hand",
                r.name, r.address, r.name
            )
        });
        let volumes = self.unmanaged_volumes.iter().map(|v| {
            format!(
                "volume {v} is on the pool but not in the spec: it is no longer managed and is left as is (to \
                 delete it, keeping its brick data: brickyard destroy -f {} --volume {v})",
                spec.path.display()
            )
        });
        clients.chain(volumes).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_spec::SpecText;

    /// One server, one client.
    fn spec() -> Spec {
        SpecText::pool("lab").server("s1", "10.0.0.1").client("c1", "10.0.0.21").spec()
    }

    fn entry(name: &str, address: &str) -> v1::HostEntry {
        v1::HostEntry { name: name.into(), address: address.into() }
    }

    #[test]
    fn former_clients_are_in_the_record_but_neither_in_the_spec_nor_peers() {
        let spec = spec();
        let record =
            vec![entry("s1", "10.0.0.1"), entry("s2", "10.0.0.2"), entry("C1", "10.0.0.21"), entry("c2", "10.0.0.22")];
        let facts: BTreeMap<String, v1::Facts> = ["s1", "c1"]
            .iter()
            .map(|h| (h.to_string(), v1::Facts { pool_hosts: record.clone(), ..Default::default() }))
            .collect();
        let peers = [v1::Peer { hostname: "10.0.0.2".into(), other_names: vec!["S2".into()], ..Default::default() }];
        assert_eq!(former_clients(&spec, &facts, &peers), [("c2".to_owned(), "10.0.0.22".to_owned())]);
    }

    #[test]
    fn unreachable_clients_and_unmanaged_volumes_are_warned_about() {
        let spec = spec();
        let survey = Survey {
            retired: vec![
                Retired {
                    name: "c2".into(),
                    address: "10.0.0.22".into(),
                    unreachable: Some("connection refused".into()),
                },
                Retired { name: "c3".into(), address: "10.0.0.23".into(), unreachable: None },
            ],
            unmanaged_volumes: vec!["old".into()],
        };
        let warnings = survey.warnings(&spec);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0]
            .starts_with("client c2 (10.0.0.22) left the spec but cannot be retired now (connection refused)"));
        assert!(warnings[1].ends_with("brickyard destroy -f cluster.toml --volume old)"), "{warnings:?}");
        let phase = survey.phase(&spec);
        let ids: Vec<_> = phase.steps[0].iter().map(|b| (b.host.as_str(), b.tasks[0].id.as_str())).collect();
        assert_eq!(ids, [("c3", "retire client c3 (10.0.0.23)"), ("c1", "mounts gone from the spec")]);
    }
}
