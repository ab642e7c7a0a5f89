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
pub mod hours;
pub mod http;
pub mod limits;
pub mod routing;
pub mod sim;
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
}

/// Opens the store in the configured data directory and serves.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    let store = Store::open(&cfg.data_dir)?;
    start_with_store(cfg, store).await
}

/// Serves with a given store (tests use an in-memory one).
pub async fn start_with_store(cfg: Config, store: Store) -> Result<Running, StartError> {
    let cfg = Arc::new(cfg);
    let mut center = Center::new(cfg.clone(), store, http::wall_clock())?;
    let bridge = bridge::Bridge::spawn(cfg.impairment, cfg.limits.bridge_frame_queue);
    center.set_bridge(bridge.clone());
    let mut state = AppState::new(center, cfg.clone());
    state.bridge = Some(bridge);
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
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!("backend stopped: {e}");
        }
    });
    let crm_addr = match cfg.crm_demo_listen {
        Some(crm) => {
            let listener = tokio::net::TcpListener::bind(crm)
                .await
                .map_err(|source| StartError::Bind { addr: crm, source })?;
            let crm_addr = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr: crm, source })?;
            let router = crm_demo_app(&cfg, addr);
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
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
    Ok(Running {
        addr,
        crm_addr,
        state,
    })
}
