//! The pool as one running server sees it (peers, volumes, bricks: no brick processes or heals), read once per `plan`,
//! `apply` or `destroy` before any host changes, together with every host's facts. The day-2
//! checks compare it with the spec: servers gone from the spec that still hold bricks
//! (`migrate`), clients and volumes that left the spec (`retire`).

use std::sync::Arc;

use brickyard_proto::v1;

use crate::agents::{AgentError, Agents, Devices};
use crate::spec::{HostTarget, Spec};

/// Every host's answer to `GetFacts`, in spec order.
pub type FactsAnswers = Vec<(HostTarget, Result<v1::Facts, AgentError>)>;

/// Every host's facts and the view, read at once. The view is `GetGlusterStatus` with the
/// volumes' layout (`volume info`, no cluster lock, no heal or brick queries), asked of the
/// first member server while the facts come in, so a running pool pays one round trip for
/// both. When that server has no glusterd answering, the next member whose glusterd runs (by
/// its facts) is asked after them; when none does, the view is empty (a pool not formed yet has
/// nothing to compare).
pub async fn read_with_facts(
    spec: &Spec,
    agents: &Arc<Agents>,
) -> (FactsAnswers, Result<v1::GlusterStatus, AgentError>) {
    let members = spec.members();
    let first = members.first().map(|s| s.name.as_str());
    let early = async {
        match first {
            Some(server) => Some(layout(agents, server).await),
            None => None,
        }
    };
    let (answers, early) = tokio::join!(agents.every_host_facts(Devices::Omitted), early);
    let runs = |name: &str| answers.iter().any(|(h, a)| h.name == name && a.as_ref().is_ok_and(|f| f.glusterd_running));
    match early {
        Some(Ok(view)) if view.glusterd_running => return (answers, Ok(view)),
        Some(Err(e)) if first.is_some_and(runs) => return (answers, Err(e)),
        _ => {}
    }
    let view = match members.iter().skip(1).find(|s| runs(&s.name)) {
        Some(server) => layout(agents, &server.name).await,
        None => Ok(v1::GlusterStatus::default()),
    };
    (answers, view)
}

async fn layout(agents: &Agents, server: &str) -> Result<v1::GlusterStatus, AgentError> {
    agents.gluster_status(server, v1::VolumeDetail::Layout).await
}
