//! The gRPC layer: binds the listen address, admits connections through the caps of
//! `crate::rpc::limits`, serves `brickyard.v1.Agent` and the standard health service over
//! mutual TLS only, and keeps every RPC thin: open a span, validate the
//! whole batch into typed tasks before anything runs, call the task, convert the result
//! (`crate::rpc::conversions`). `Apply` batches run at once unless they share a lane
//! (`crate::tasks::Lane`: packages, /etc/hosts, firewall, disks, fstab, glusterd): a batch holds
//! every lane its tasks use, so two batches (of one coordinator's task graph, or of two
//! coordinators) never change the same resource or /etc file at the same time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use brickyard_proto::v1;
use brickyard_proto::v1::agent_server::{Agent, AgentServer};
use tokio::sync::{mpsc, Mutex};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::host::Context;
use crate::rpc::config::Config;
use crate::rpc::conversions;
use crate::rpc::identity::Identity;
use crate::rpc::limits::{self, Limits};
use crate::rpc::tls::{CoordinatorOnly, TlsError};
use crate::tasks::{self, AnyTask, Lane};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr} (`listen` in {config}): {source}")]
    Bind { addr: SocketAddr, config: std::path::PathBuf, source: std::io::Error },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The `Agent` service: the host context, one lock per lane of `Apply` batches and the agent's
/// live TLS identity.
pub struct AgentService {
    ctx: Arc<Context>,
    lanes: Arc<[Arc<Mutex<()>>; Lane::ALL.len()]>,
    identity: Arc<Identity>,
}

impl AgentService {
    pub fn new(ctx: Context, identity: Arc<Identity>) -> Self {
        let lanes = Arc::new(std::array::from_fn(|_| Arc::new(Mutex::new(()))));
        Self { ctx: Arc::new(ctx), lanes, identity }
    }
}

/// The lanes the batch's tasks use, each once, in [`Lane`] order.
fn batch_lanes(batch: &v1::TaskBatch) -> Vec<Lane> {
    let mut lanes: Vec<Lane> = batch.tasks.iter().flat_map(tasks::lanes).copied().collect();
    lanes.sort_unstable();
    lanes.dedup();
    lanes
}

fn rpc_span<T>(method: &'static str, request: &Request<T>) -> tracing::Span {
    tracing::info_span!("rpc", method, peer = ?request.remote_addr())
}

/// A validated batch: each task with its id.
type Tasks = Vec<(String, Box<dyn AnyTask>)>;

/// Validates every task of the batch; the first invalid one rejects the whole batch. The
/// tasks learn the request's source address.
fn validate(request: &Request<v1::TaskBatch>) -> Result<Tasks, Status> {
    let peer = request.remote_addr().map(|a| a.ip());
    request
        .get_ref()
        .tasks
        .iter()
        .map(|t| {
            tasks::from_proto(t, peer)
                .map(|task| (t.id.clone(), task))
                .map_err(|e| conversions::invalid_task(&t.id, &e))
        })
        .collect()
}

/// Applies `tasks` in order, sending events (with each task's progress lines); after a failure
/// the rest are reported skipped.
async fn apply_batch(ctx: &Context, tasks: Tasks, tx: mpsc::Sender<Result<v1::TaskEvent, Status>>) {
    use v1::task_event::Event;
    let mut failed: Option<String> = None;
    for (id, task) in tasks {
        let event = match &failed {
            Some(first) => conversions::event(
                &id,
                Event::Skipped(v1::TaskError {
                    kind: v1::ErrorKind::NotReady as i32,
                    message: format!("not run: task {first:?} failed"),
                }),
            ),
            None => {
                if tx.send(Ok(conversions::event(&id, Event::Started(v1::Unchanged {})))).await.is_err() {
                    tracing::warn!(task = %id, "coordinator went away; stopping before this task");
                    return;
                }
                let progress = {
                    let (tx, id) = (tx.clone(), id.clone());
                    // A full channel drops a progress event rather than stall the task.
                    Arc::new(move |p| drop(tx.try_send(Ok(conversions::event(&id, Event::Progress(p))))))
                };
                let run = task.run(ctx).instrument(tracing::info_span!("task", id = %id));
                let result = crate::host::progress::scoped(progress, run).await;
                match &result {
                    Ok(changes) => tracing::info!(task = %id, ?changes, "applied"),
                    Err(err) => {
                        tracing::warn!(task = %id, %err, "failed");
                        failed = Some(id.clone());
                    }
                }
                conversions::applied(&id, result)
            }
        };
        if tx.send(Ok(event)).await.is_err() {
            tracing::warn!(task = %id, "coordinator went away; stopping after this task");
            return;
        }
    }
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn get_facts(&self, request: Request<v1::GetFactsRequest>) -> Result<Response<v1::Facts>, Status> {
        let span = rpc_span("GetFacts", &request);
        let block_devices = request.get_ref().block_devices;
        async {
            let facts =
                crate::facts::collect(&self.ctx, block_devices).await.map_err(|e| conversions::status(&e.into()))?;
            Ok(Response::new(facts))
        }
        .instrument(span)
        .await
    }

    async fn plan(&self, request: Request<v1::TaskBatch>) -> Result<Response<v1::PlanReport>, Status> {
        let span = rpc_span("Plan", &request);
        async {
            let tasks = validate(&request)?;
            // A check changes nothing, so no check waits for the one before it: they run at
            // once (identical gluster queries among them share one CLI run).
            let checks = tasks.iter().map(|(id, task)| async move {
                let check = task.check(&self.ctx).instrument(tracing::info_span!("task", id = %id)).await;
                conversions::verdict(id, check)
            });
            let verdicts = futures_util::future::join_all(checks).await;
            Ok(Response::new(v1::PlanReport { verdicts }))
        }
        .instrument(span)
        .await
    }

    type ApplyStream = ReceiverStream<Result<v1::TaskEvent, Status>>;

    async fn apply(&self, request: Request<v1::TaskBatch>) -> Result<Response<Self::ApplyStream>, Status> {
        let span = rpc_span("Apply", &request);
        let tasks = span.in_scope(|| validate(&request))?;
        let lanes: Vec<Arc<Mutex<()>>> =
            batch_lanes(request.get_ref()).into_iter().map(|lane| self.lanes[lane as usize].clone()).collect();
        let (tx, rx) = mpsc::channel(16);
        let ctx = self.ctx.clone();
        tokio::spawn(
            async move {
                // In lane order, every batch alike: no two batches wait on each other in a cycle.
                let mut held = Vec::with_capacity(lanes.len());
                for lane in lanes {
                    held.push(lane.lock_owned().await);
                }
                apply_batch(&ctx, tasks, tx).await;
                drop(held);
            }
            .instrument(span),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_gluster_status(
        &self,
        request: Request<v1::GlusterStatusRequest>,
    ) -> Result<Response<v1::GlusterStatus>, Status> {
        let span = rpc_span("GetGlusterStatus", &request);
        let detail = request.get_ref().volumes();
        async {
            crate::gluster::status(&self.ctx, detail)
                .await
                .map(Response::new)
                .map_err(|e| conversions::status(&e.into()))
        }
        .instrument(span)
        .await
    }

    async fn verify_file(
        &self,
        request: Request<v1::VerifyFileRequest>,
    ) -> Result<Response<v1::VerifyFileResponse>, Status> {
        let span = rpc_span("VerifyFile", &request);
        async {
            crate::rpc::verify_file::handle(request.get_ref())
                .await
                .map(Response::new)
                .map_err(|e| conversions::status(&e))
        }
        .instrument(span)
        .await
    }

    async fn identity_csr(
        &self,
        request: Request<v1::IdentityCsrRequest>,
    ) -> Result<Response<v1::IdentityCsrResponse>, Status> {
        let _span = rpc_span("IdentityCsr", &request).entered();
        self.identity.csr(request.get_ref().rotate).map(Response::new).map_err(|e| e.status())
    }

    async fn identity_install(
        &self,
        request: Request<v1::IdentityInstallRequest>,
    ) -> Result<Response<v1::IdentityInstallResponse>, Status> {
        let _span = rpc_span("IdentityInstall", &request).entered();
        let serial = self.identity.install(&request.get_ref().cert_pem).map_err(|e| e.status())?;
        Ok(Response::new(v1::IdentityInstallResponse { serial }))
    }

    async fn identity_crl(
        &self,
        request: Request<v1::IdentityCrlRequest>,
    ) -> Result<Response<v1::IdentityCrlResponse>, Status> {
        let _span = rpc_span("IdentityCrl", &request).entered();
        let certs = request.peer_certs().ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let caller = certs.first().ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let revoked = self.identity.install_crl(&request.get_ref().crl_pem, caller).map_err(|e| e.status())?;
        Ok(Response::new(v1::IdentityCrlResponse { revoked: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }
}

/// Binds the configured listen address (port in use → an error naming the address).
pub fn bind(config: &Config) -> Result<tokio::net::TcpListener, ServeError> {
    let bind_err = |source| ServeError::Bind { addr: config.listen, config: config.path.clone(), source };
    let listener = std::net::TcpListener::bind(config.listen).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    tokio::net::TcpListener::from_std(listener).map_err(bind_err)
}

/// Serves the agent on `listener` with `identity` until `shutdown` completes, admitting
/// connections through the TLS handshake within `crate::rpc::limits`.
pub async fn serve(
    config: &Config,
    identity: Arc<Identity>,
    listener: tokio::net::TcpListener,
    ctx: Context,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let only_coordinator = CoordinatorOnly::new(&config.coordinator_identity);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AgentServer<AgentService>>().await;
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config());
    let incoming = limits::incoming(listener, Limits::default(), move |tcp| {
        // A reply goes out as it is written: with Nagle's algorithm its last small HTTP/2
        // frames waited for the coordinator's delayed ACK, some 25 ms on every call.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("TCP_NODELAY on a connection: {e}");
        }
        acceptor.accept(tcp)
    });
    Server::builder()
        .http2_keepalive_interval(Some(limits::KEEPALIVE_INTERVAL))
        .add_service(InterceptedService::new(health_service, only_coordinator.clone()))
        .add_service(AgentServer::with_interceptor(AgentService::new(ctx, identity), only_coordinator))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Checks the key material, binds, logs `listening on ADDR` and serves until `shutdown`.
pub async fn run(config: &Config, ctx: Context, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
    let identity = Identity::load(config)?;
    let listener = bind(config)?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        config: config.path.clone(),
        source,
    })?;
    tracing::info!("listening on {addr}");
    serve(config, identity, listener, ctx, shutdown).await
}

#[cfg(test)]
mod tests {
    use brickyard_proto::v1::task::Kind;

    use super::*;

    fn batch(kinds: Vec<Kind>) -> v1::TaskBatch {
        v1::TaskBatch { tasks: kinds.into_iter().map(|k| v1::Task { id: "t".into(), kind: Some(k) }).collect() }
    }

    #[test]
    fn glusterd_and_disk_batches_share_no_lane_but_both_fstab_writers_do() {
        let glusterd = batch(vec![
            Kind::EnsurePackages(Default::default()),
            Kind::EnsureHosts(Default::default()),
            Kind::OpenPorts(Default::default()),
            Kind::GlusterTls(Default::default()),
            Kind::EnsureGlusterd(Default::default()),
        ]);
        let disk = batch(vec![
            Kind::PartitionDisk(Default::default()),
            Kind::MountFilesystem(Default::default()),
            Kind::BrickDir(Default::default()),
            Kind::EnsureFuse(Default::default()),
        ]);
        assert_eq!(batch_lanes(&glusterd), [Lane::Packages, Lane::Hosts, Lane::Firewall, Lane::Gluster]);
        assert_eq!(batch_lanes(&disk), [Lane::Disk, Lane::Fstab]);
        let client_mount = batch(vec![Kind::MountGlusterVolume(Default::default())]);
        assert_eq!(batch_lanes(&client_mount), [Lane::Fstab]);
        assert!(batch_lanes(&batch(vec![Kind::EnsureFuse(Default::default())])).is_empty());
    }
}
