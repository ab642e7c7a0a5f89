//! The Switchboard reference backend: login, the protocol v1 WebSocket,
//! routing with queues, priorities and delays, an embedded SQLite store,
//! simulated callers, and static serving of the CCP and demo pages.
//!
//! [`app`] builds the router so tests bind port 0; [`start`] wires the
//! store, the center and its ticker; `main.rs` only parses arguments.

pub mod auth;
pub mod bridge;
pub mod center;
pub mod config;
pub mod customer;
pub mod fence;
pub mod flow;
pub mod hours;
pub mod http;
pub mod limits;
pub mod media_socket;
pub mod routing;
pub mod shutdown;
pub mod sim;
pub mod sip;
pub mod store;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;

pub use http::{app, crm_demo_app, AppState};

use crate::center::Center;
use crate::config::Config;
use crate::store::Store;

/// How often the center advances (ring-outs, answers, routing).
const TICK: Duration = Duration::from_millis(50);

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running backend.
pub struct Running {
    /// Where the backend listens.
    pub addr: SocketAddr,
    /// Where the demo CRM origin listens.
    pub crm_addr: Option<SocketAddr>,
    /// Shared state (tests reach into the center through it).
    pub state: AppState,
    /// Where the SIP gateway listens (UDP), when trunks are configured.
    pub sip_addr: Option<SocketAddr>,
    /// Closing it stops the listeners accepting.
    stop_accepting: tokio::sync::watch::Sender<bool>,
    /// The listeners' tasks.
    servers: Vec<tokio::task::JoinHandle<()>>,
    /// Syncs the store once a second (none for an in-memory store).
    syncer: Option<store::Syncer>,
}

/// The disconnect reason of calls a graceful stop ends.
pub const SHUTDOWN_REASON: &str = "backend_shutdown";

/// What a graceful stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Live calls ended with [`SHUTDOWN_REASON`].
    pub calls_ended: usize,
    /// Sockets still open at the deadline (0: every agent was told).
    pub sockets_left: usize,
    /// Whether the bridge finished every recording before the deadline
    /// (false also when media is off).
    pub bridge_done: bool,
    /// Whether the store's log was checkpointed into the database.
    pub store_flushed: bool,
}

/// Opens the store in the configured data directory and serves.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    let store = Store::open(&cfg.data_dir)?;
    let syncer = store::Syncer::spawn(&cfg.data_dir)?;
    let mut running = start_with_store(cfg, store).await?;
    running.syncer = Some(syncer);
    Ok(running)
}

impl Running {
    /// Stops gracefully, within about `deadline`: the listeners stop
    /// accepting; every live call ends with [`SHUTDOWN_REASON`] (recorded)
    /// and every agent gets `contact_destroyed` for its contacts; sockets
    /// flush and close; the bridge finishes every recording with a
    /// complete header, synced; the store is checkpointed. Each wait is
    /// bounded, so a client that does not read cannot hold the stop.
    pub async fn shutdown(mut self, deadline: Duration) -> StopReport {
        let until = tokio::time::Instant::now() + deadline;
        let _ = self.stop_accepting.send(true);
        let now = self.state.now();
        let calls_ended = match self.state.center.lock() {
            Ok(mut center) => center.shutdown(SHUTDOWN_REASON, now),
            Err(_) => 0,
        };
        self.state.shutdown.trigger();
        let bridge = self.state.bridge.clone();
        let recordings = async move {
            match bridge {
                Some(b) => tokio::time::timeout_at(until, b.shutdown())
                    .await
                    .is_ok_and(|answer| answer.is_some()),
                None => false,
            }
        };
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        let (sockets_left, bridge_done) =
            tokio::join!(self.state.shutdown.drained(left), recordings);
        for server in self.servers.drain(..) {
            let _ = tokio::time::timeout_at(until, server).await;
        }
        self.syncer = None;
        let store_flushed = match self.state.center.lock() {
            Ok(center) => center
                .store()
                .checkpoint()
                .map_err(|e| tracing::error!("flushing the store: {e}"))
                .is_ok(),
            Err(_) => false,
        };
        StopReport {
            calls_ended,
            sockets_left,
            bridge_done,
            store_flushed,
        }
    }
}

/// Serves with a given store (tests use an in-memory one).
pub async fn start_with_store(cfg: Config, store: Store) -> Result<Running, StartError> {
    let cfg = Arc::new(cfg);
    let mut center = Center::new(cfg.clone(), store, http::wall_clock())?;
    let bridge = bridge::Bridge::spawn(cfg.impairment, cfg.limits.bridge_frame_queue);
    center.set_bridge(bridge.clone());
    let (flow_jobs, flow_rx) = center::flow_channel();
    center.set_flow_jobs(flow_jobs);
    let mut state = AppState::new(center, cfg.clone());
    state.bridge = Some(bridge);
    tokio::spawn(flow::worker::run(state.clone(), flow_rx));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.listen,
        source,
    })?;
    // Signaling frames are small and latency-bound: without TCP_NODELAY,
    // Nagle's algorithm holds a response behind the event sent just before
    // it until the peer's delayed ACK, about 40 ms.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // With the peer address: sockets are counted (`[limits]`) and failed
    // logins throttled per remote address.
    let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let (stop_accepting, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut servers = Vec::new();
    let stop = stopped(stop_rx.clone());
    servers.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, service)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("backend stopped: {e}");
        }
    }));
    let crm_addr = match cfg.crm_demo_listen {
        Some(crm) => {
            let listener = tokio::net::TcpListener::bind(crm)
                .await
                .map_err(|source| StartError::Bind { addr: crm, source })?;
            let crm_addr = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr: crm, source })?;
            let router = crm_demo_app(&cfg, addr);
            let stop = stopped(stop_rx.clone());
            servers.push(tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(stop)
                    .await;
            }));
            Some(crm_addr)
        }
        None => None,
    };
    let ticker = state.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            let now = ticker.now();
            match ticker.center.lock() {
                Ok(mut center) => center.tick(now),
                Err(_) => break,
            }
        }
    });
    let sip_addr = if cfg.sip.enabled() {
        let listen = cfg.sip.listen_udp.unwrap_or(cfg.listen);
        Some(
            sip::start(state.clone())
                .await
                .map_err(|source| StartError::Bind {
                    addr: listen,
                    source,
                })?,
        )
    } else {
        None
    };
    Ok(Running {
        addr,
        crm_addr,
        state,
        sip_addr,
        stop_accepting,
        servers,
        syncer: None,
    })
}
