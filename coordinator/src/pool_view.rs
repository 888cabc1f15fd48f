//! The pool as one running server sees it (peers, volumes, bricks: no brick processes or heals), read once per `plan`,
//! `apply` or `destroy` before any host changes. The day-2 checks compare it with the spec:
//! servers gone from the spec that still hold bricks (`migrate`), clients and volumes that left
//! the spec (`retire`).

use std::collections::BTreeMap;

use brickyard_proto::v1;

use crate::agents::{AgentError, Agents};
use crate::spec::Spec;

/// `GetGlusterStatus` with the volumes' layout (`volume info`, no cluster lock, no heal or
/// brick queries) from the first member server whose glusterd runs (by `facts`); an empty
/// view when none does (a pool not formed yet has nothing to compare).
pub async fn read(
    spec: &Spec,
    agents: &Agents,
    facts: &BTreeMap<String, v1::Facts>,
) -> Result<v1::GlusterStatus, AgentError> {
    match spec.members().into_iter().find(|s| facts.get(&s.name).is_some_and(|f| f.glusterd_running)) {
        Some(server) => agents.gluster_status(&server.name, v1::VolumeDetail::Layout).await,
        None => Ok(v1::GlusterStatus::default()),
    }
}
