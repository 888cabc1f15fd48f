//! The agents of one spec: one mutual-TLS connection per host, opened on first use and shared
//! by every RPC of a run (facts, plan, apply, status, verify), facts from every host at once, and how an agent's task error reads. Every error names the host.
//! Network only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use brickyard_proto::v1;
use brickyard_proto::v1::agent_client::AgentClient;
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::client::{self, ConnectError};
use crate::spec::{HostTarget, Spec};

/// How long a read-only RPC (facts, plan, status, verify) may take once connected. `Apply`
/// has no overall deadline: its tasks carry their own (package installs can be slow).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Connect(String),
    #[error("host {host}: {rpc} failed: {code:?}: {message}")]
    Rpc { host: String, rpc: &'static str, code: tonic::Code, message: String },
    #[error("host {host}: no answer to {rpc} within {RPC_TIMEOUT:?}")]
    Timeout { host: String, rpc: &'static str },
    #[error("host {0} is not in the spec")]
    UnknownHost(String),
}

impl From<ConnectError> for AgentError {
    fn from(err: ConnectError) -> Self {
        AgentError::Connect(client::error_chain(&err))
    }
}

impl AgentError {
    pub fn rpc(host: &str, rpc: &'static str, status: tonic::Status) -> Self {
        AgentError::Rpc { host: host.to_owned(), rpc, code: status.code(), message: status.message().to_owned() }
    }
}

/// One host's target and its connection, once made.
type Slot = Arc<(HostTarget, OnceCell<AgentClient<Channel>>)>;

/// Whether `GetFacts` lists the host's block devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devices {
    /// Not listed: plan and apply do not need them (each disk task inspects its own disk).
    Omitted,
    /// Listed with what each holds (a sysfs scan and a `blkid -p` of every device).
    Listed,
}

/// The agents of a spec's hosts (and of hosts that left it, once added), connected lazily.
pub struct Agents {
    pki_dir: PathBuf,
    /// The spec's hosts in spec order (servers, then clients).
    order: Vec<HostTarget>,
    hosts: RwLock<BTreeMap<String, Slot>>,
}

impl Agents {
    pub fn new(spec: &Spec) -> Self {
        let order = spec.hosts();
        let hosts = order.iter().map(|h| (h.name.clone(), Arc::new((h.clone(), OnceCell::new())))).collect();
        Agents { pki_dir: spec.pki_dir(), order, hosts: RwLock::new(hosts) }
    }

    /// Makes `target`, a host outside the spec (a client that left it), reachable by name.
    pub fn add_host(&self, target: HostTarget) {
        let mut hosts = self.hosts.write().expect("agents lock poisoned");
        hosts.entry(target.name.clone()).or_insert_with(|| Arc::new((target, OnceCell::new())));
    }

    /// A client for `host`'s agent (connecting on first use; a failed connect is retried on
    /// the next call).
    pub async fn client(&self, host: &str) -> Result<AgentClient<Channel>, AgentError> {
        let slot = self.hosts.read().expect("agents lock poisoned").get(host).cloned();
        let slot = slot.ok_or_else(|| AgentError::UnknownHost(host.to_owned()))?;
        let (target, cell) = &*slot;
        let client = cell.get_or_try_init(|| client::connect(&self.pki_dir, target)).await?;
        Ok(client.clone())
    }

    /// A unary RPC with the read-only deadline.
    pub async fn call<T, F, Fut>(&self, host: &str, rpc: &'static str, f: F) -> Result<T, AgentError>
    where
        F: FnOnce(AgentClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.client(host).await?;
        match tokio::time::timeout(RPC_TIMEOUT, f(client)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(AgentError::rpc(host, rpc, status)),
            Err(_) => Err(AgentError::Timeout { host: host.to_owned(), rpc }),
        }
    }

    /// The host's facts, its block devices listed or not.
    pub async fn facts(&self, host: &str, devices: Devices) -> Result<v1::Facts, AgentError> {
        let request = v1::GetFactsRequest { block_devices: devices == Devices::Listed };
        self.call(host, "GetFacts", |mut c| async move { c.get_facts(request).await }).await
    }

    /// `GetFacts` from every host of the spec at once (the one way facts are gathered, by
    /// `facts`, `plan` and `apply`); answers in spec order.
    pub async fn every_host_facts(
        self: &Arc<Self>,
        devices: Devices,
    ) -> Vec<(HostTarget, Result<v1::Facts, AgentError>)> {
        let answers = each(self.order.iter().map(|h| h.name.as_str()), |host| {
            let agents = self.clone();
            async move { agents.facts(&host, devices).await }
        })
        .await;
        self.order.iter().cloned().zip(answers.into_iter().map(|(_, answer)| answer)).collect()
    }

    /// The host's pool and mounts, and the volumes as it sees them in as much `detail`.
    pub async fn gluster_status(&self, host: &str, detail: v1::VolumeDetail) -> Result<v1::GlusterStatus, AgentError> {
        self.call(host, "GetGlusterStatus", |mut c| async move {
            c.get_gluster_status(v1::GlusterStatusRequest { volumes: detail.into() }).await
        })
        .await
    }

    pub async fn plan(&self, host: &str, tasks: Vec<v1::Task>) -> Result<v1::PlanReport, AgentError> {
        self.call(host, "Plan", |mut c| async move { c.plan(v1::TaskBatch { tasks }).await }).await
    }

    pub async fn verify_file(
        &self,
        host: &str,
        request: v1::VerifyFileRequest,
    ) -> Result<v1::VerifyFileResponse, AgentError> {
        self.call(host, "VerifyFile", |mut c| async move { c.verify_file(request).await }).await
    }
}

/// What an agent's task error means (an unknown kind from a newer agent reads as unspecified).
pub fn error_kind(e: &v1::TaskError) -> v1::ErrorKind {
    v1::ErrorKind::try_from(e.kind).unwrap_or(v1::ErrorKind::Unspecified)
}

/// An agent's task error as one line: its message and what kind of error it is, e.g.
/// `volume gluV1 already exists and differs: ... (conflict)`.
pub fn task_error(e: &v1::TaskError) -> String {
    let kind = match error_kind(e) {
        v1::ErrorKind::Unspecified => return e.message.clone(),
        v1::ErrorKind::Invalid => "invalid",
        v1::ErrorKind::Unsafe => "unsafe",
        v1::ErrorKind::Conflict => "conflict",
        v1::ErrorKind::NotReady => "not ready",
        v1::ErrorKind::Failed => "failed",
        v1::ErrorKind::Unsupported => "unsupported",
    };
    format!("{} ({kind})", e.message)
}

/// At most this many RPCs toward agents at once from one `each` (at 100 hosts, opening every
/// TLS connection at the same instant starves the coordinator's 2 cores and the agents' accept
/// queues; a bound keeps the handshakes flowing).
pub const MAX_CONCURRENT_HOSTS: usize = 32;

/// Runs `f` for every host name concurrently, at most [`MAX_CONCURRENT_HOSTS`] at once;
/// results in the order of `hosts`.
pub async fn each<'a, T, F, Fut>(hosts: impl IntoIterator<Item = &'a str>, f: F) -> Vec<(String, T)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_HOSTS));
    let mut set = JoinSet::new();
    let mut order = Vec::new();
    for (i, host) in hosts.into_iter().enumerate() {
        order.push(host.to_owned());
        let fut = f(host.to_owned());
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("the semaphore is never closed");
            (i, fut.await)
        });
    }
    let mut results: Vec<Option<T>> = order.iter().map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, value) = joined.expect("a per-host task panicked");
        results[i] = Some(value);
    }
    order.into_iter().zip(results).map(|(h, r)| (h, r.expect("every host answered"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_errors_say_their_kind() {
        let e = |kind: v1::ErrorKind| v1::TaskError { kind: kind.into(), message: "/vdisk is not mounted".into() };
        assert_eq!(task_error(&e(v1::ErrorKind::NotReady)), "/vdisk is not mounted (not ready)");
        assert_eq!(task_error(&e(v1::ErrorKind::Unsafe)), "/vdisk is not mounted (unsafe)");
        assert_eq!(task_error(&e(v1::ErrorKind::Unspecified)), "/vdisk is not mounted");
        let newer = v1::TaskError { kind: 99, message: "m".into() };
        assert_eq!((error_kind(&newer), task_error(&newer).as_str()), (v1::ErrorKind::Unspecified, "m"));
    }

    #[tokio::test]
    async fn each_bounds_its_concurrency_and_keeps_host_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let names: Vec<String> = (0..100).map(|i| format!("client{i}")).collect();
        let answers = each(names.iter().map(String::as_str), |host| {
            let (running, peak) = (running.clone(), peak.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Hand over to the other hosts' tasks while holding the permit.
                tokio::task::yield_now().await;
                running.fetch_sub(1, Ordering::SeqCst);
                host.len()
            }
        })
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), MAX_CONCURRENT_HOSTS);
        assert_eq!(answers.iter().map(|(h, _)| h.clone()).collect::<Vec<_>>(), names);
        assert!(answers.iter().all(|(h, len)| h.len() == *len));
    }
}
