//! Admission to the agent's listener, so a flood of TCP connects or slow TLS handshakes cannot
//! exhaust the agent while the coordinator still gets in. It accepts TCP itself and runs each
//! handshake (given by the caller: the TLS accept) with a deadline, holding at most
//! [`MAX_HANDSHAKES`] at a time: a new connection that finds every slot taken evicts the oldest
//! pending handshake of the address holding the most slots, so one flooding address evicts
//! only itself. Connections past their handshake hold one of [`MAX_CONNECTIONS`] slots until
//! they close; beyond that they are dropped. Touches only its own sockets.
//!
//! A connect flood at a rate no slot count can absorb is the firewall's job (port 7420 admits
//! only the coordinator addresses).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// TLS handshakes in flight at once. A coordinator command runs one handshake per agent, a few
/// milliseconds each, so even several commands at once use a handful; each pending handshake
/// holds a socket and rustls state, so this bounds the file descriptors and memory that
/// connections which never finish can take.
pub const MAX_HANDSHAKES: usize = 32;

/// How long a TCP connection may take to finish its TLS handshake. The coordinator gives up
/// after its own connect timeout (5 s, `brickyard::client::CONNECT_TIMEOUT`), so waiting longer
/// only serves connections that stall on purpose.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Authenticated connections open at once. A coordinator command holds one connection per agent
/// (HTTP/2 multiplexes its RPCs on it), so this admits dozens of commands at once while bounding
/// what holders of a pool certificate can pin.
pub const MAX_CONNECTIONS: usize = 64;

/// HTTP/2 ping interval on open connections, so a peer that vanished without closing (network
/// cut, crashed host) gives its connection slot back after one unanswered ping.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// After a failed `accept` (e.g. out of file descriptors), how long to wait before the next one
/// instead of spinning on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The admission limits; [`Limits::default`] is the constants above (tests use smaller ones).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_handshakes: usize,
    pub handshake_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_handshakes: MAX_HANDSHAKES, handshake_timeout: HANDSHAKE_TIMEOUT, max_connections: MAX_CONNECTIONS }
    }
}

/// An admitted connection: the handshaken stream plus its connection slot, freed when tonic
/// drops the connection.
pub struct Admitted<IO> {
    io: IO,
    _slot: OwnedSemaphorePermit,
}

impl<IO: Connected> Connected for Admitted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Admitted<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Admitted<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The connections admitted from `listener`, each through `handshake`, for
/// `Server::serve_with_incoming`. The accepting task ends when the stream is dropped.
pub fn incoming<IO, H, F>(
    listener: TcpListener,
    limits: Limits,
    handshake: H,
) -> ReceiverStream<io::Result<Admitted<IO>>>
where
    H: Fn(TcpStream) -> F + Send + 'static,
    F: Future<Output = io::Result<IO>> + Send + 'static,
    IO: Send + 'static,
{
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(admit(listener, limits, handshake, tx));
    ReceiverStream::new(rx)
}

/// One pending handshake, oldest first in [`Pending`].
struct PendingHandshake {
    task: tokio::task::Id,
    peer: SocketAddr,
    abort: AbortHandle,
}

/// The pending handshakes, oldest first.
#[derive(Default)]
struct Pending(VecDeque<PendingHandshake>);

impl Pending {
    /// The oldest pending handshake of the address that holds the most (ties: the address
    /// whose oldest handshake is older).
    fn eviction_victim(&self) -> Option<usize> {
        let held_by = |ip: IpAddr| self.0.iter().filter(|p| p.peer.ip() == ip).count();
        let most = self.0.iter().map(|p| held_by(p.peer.ip())).max()?;
        self.0.iter().position(|p| held_by(p.peer.ip()) == most)
    }

    fn remove(&mut self, task: tokio::task::Id) {
        self.0.retain(|p| p.task != task);
    }
}

/// Why a connection was dropped.
#[derive(Debug, Clone, Copy)]
enum Dropped {
    Evicted,
    HandshakeTimedOut,
    NoConnectionSlot,
}

/// Connections dropped so far, per [`Dropped`]; the log says the first of each kind and then
/// every thousandth, so a flood cannot flood the log too.
static DROPPED: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn dropped(peer: SocketAddr, why: Dropped, limits: &Limits) {
    let reason = match why {
        Dropped::Evicted => {
            format!(
                "all {} handshake slots are taken; evicted the oldest pending handshake of the address holding most",
                limits.max_handshakes
            )
        }
        Dropped::HandshakeTimedOut => format!("no TLS handshake within {:?}", limits.handshake_timeout),
        Dropped::NoConnectionSlot => format!("all {} connection slots are taken", limits.max_connections),
    };
    let count = DROPPED[why as usize].fetch_add(1, Ordering::Relaxed) + 1;
    if count % 1000 == 1 {
        tracing::warn!(%peer, so_far = count, "dropped a connection: {reason}");
    } else {
        tracing::debug!(%peer, "dropped a connection: {reason}");
    }
}

type HandshakeResult<IO> = (SocketAddr, Result<io::Result<IO>, tokio::time::error::Elapsed>);

async fn admit<IO, H, F>(
    listener: TcpListener,
    limits: Limits,
    handshake: H,
    tx: mpsc::Sender<io::Result<Admitted<IO>>>,
) where
    H: Fn(TcpStream) -> F + Send + 'static,
    F: Future<Output = io::Result<IO>> + Send + 'static,
    IO: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut handshakes: JoinSet<HandshakeResult<IO>> = JoinSet::new();
    let mut pending = Pending::default();
    loop {
        tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    if pending.0.len() >= limits.max_handshakes {
                        if let Some(victim) = pending.eviction_victim().and_then(|i| pending.0.remove(i)) {
                            victim.abort.abort();
                            dropped(victim.peer, Dropped::Evicted, &limits);
                        }
                    }
                    let handshake = tokio::time::timeout(limits.handshake_timeout, handshake(tcp));
                    let abort = handshakes.spawn(async move { (peer, handshake.await) });
                    pending.0.push_back(PendingHandshake { task: abort.id(), peer, abort });
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed; retrying in {ACCEPT_BACKOFF:?}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(done) = handshakes.join_next_with_id() => {
                let (peer, result) = match done {
                    Ok((task, outcome)) => {
                        pending.remove(task);
                        outcome
                    }
                    // Evicted (already out of `pending`) or panicked.
                    Err(err) => {
                        pending.remove(err.id());
                        continue;
                    }
                };
                match result {
                    Err(_) => dropped(peer, Dropped::HandshakeTimedOut, &limits),
                    Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                    Ok(Ok(io)) => match slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            if tx.send(Ok(Admitted { io, _slot: slot })).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => dropped(peer, Dropped::NoConnectionSlot, &limits),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    /// A handshake that completes when the client sends one byte.
    async fn one_byte(mut tcp: TcpStream) -> io::Result<TcpStream> {
        let mut byte = [0u8];
        tcp.read_exact(&mut byte).await?;
        Ok(tcp)
    }

    async fn serve(limits: Limits) -> (SocketAddr, ReceiverStream<io::Result<Admitted<TcpStream>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (addr, incoming(listener, limits, one_byte))
    }

    /// Connects from `source` (any 127/8 address) to `addr`.
    async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(addr).await.unwrap()
    }

    /// Whether the agent side closed `tcp` (EOF or reset) within `wait`.
    async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
        let mut buf = [0u8; 1];
        matches!(tokio::time::timeout(wait, tcp.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
    }

    const SHORT: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn a_flood_from_one_address_evicts_only_its_own_handshakes() {
        let limits = Limits { max_handshakes: 4, handshake_timeout: Duration::from_secs(30), max_connections: 8 };
        let (addr, mut admitted) = serve(limits).await;
        let mut honest = connect_from("127.0.0.1", addr).await;
        let mut flood = Vec::new();
        for _ in 0..20 {
            flood.push(connect_from("127.0.0.2", addr).await);
        }
        // The honest handshake finishes after the flood: it was never evicted.
        honest.write_all(b"x").await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), admitted.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(first.io.peer_addr().unwrap(), honest.local_addr().unwrap());
        let mut closed = 0;
        for tcp in &mut flood {
            closed += usize::from(closed_within(tcp, SHORT).await);
        }
        // 3 slots for the flood next to the honest one: the other 17 were evicted, oldest first.
        assert_eq!(closed, 17);
        for tcp in &mut flood[..17] {
            assert!(closed_within(tcp, Duration::ZERO).await);
        }
    }

    #[tokio::test]
    async fn a_stalled_handshake_is_dropped_after_the_timeout() {
        let limits = Limits { max_handshakes: 4, handshake_timeout: Duration::from_millis(200), max_connections: 8 };
        let (addr, _admitted) = serve(limits).await;
        let mut stalled = connect_from("127.0.0.1", addr).await;
        let started = std::time::Instant::now();
        assert!(closed_within(&mut stalled, Duration::from_secs(5)).await);
        assert!(started.elapsed() >= Duration::from_millis(200), "closed after {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_dropped_until_a_slot_frees() {
        let limits = Limits { max_handshakes: 4, handshake_timeout: Duration::from_secs(30), max_connections: 2 };
        let (addr, mut admitted) = serve(limits).await;
        let mut kept = Vec::new();
        for _ in 0..2 {
            let mut tcp = connect_from("127.0.0.1", addr).await;
            tcp.write_all(b"x").await.unwrap();
            kept.push(admitted.next().await.unwrap().unwrap());
        }
        let mut third = connect_from("127.0.0.1", addr).await;
        third.write_all(b"x").await.unwrap();
        assert!(closed_within(&mut third, Duration::from_secs(5)).await, "a third connection was kept");
        drop(kept.pop());
        let mut fourth = connect_from("127.0.0.1", addr).await;
        fourth.write_all(b"x").await.unwrap();
        let admitted = tokio::time::timeout(Duration::from_secs(5), admitted.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(admitted.io.peer_addr().unwrap(), fourth.local_addr().unwrap());
    }

    #[tokio::test]
    async fn the_victim_is_the_oldest_of_the_address_holding_most() {
        let mut set = JoinSet::new();
        let mut pending = Pending::default();
        assert_eq!(pending.eviction_victim(), None);
        for source in ["10.0.0.1", "10.0.0.2", "10.0.0.2", "10.0.0.1", "10.0.0.2"] {
            let abort = set.spawn(std::future::pending::<()>());
            let peer = SocketAddr::new(source.parse().unwrap(), 4000);
            pending.0.push_back(PendingHandshake { task: abort.id(), peer, abort });
        }
        assert_eq!(pending.eviction_victim(), Some(1));
        set.abort_all();
    }
}
