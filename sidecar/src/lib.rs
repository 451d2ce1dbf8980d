//! # vigil-sidecar: `vigil serve`
//!
//! Runs the engine next to a PSIM, VMS or access-control server: events come in over HTTP
//! (`POST /v1/events`) and raw TCP (NDJSON), alarms go out over Server-Sent Events, a paged HTTP
//! API and CEF over syslog, after they are written to a journal. See the README section "Run as
//! a sidecar" for the API and [`core`] for durability: the ingest log, checkpoints and recovery.
#![deny(missing_docs)]

pub mod cef;
pub mod core;
pub mod metrics;
pub mod seglog;
pub mod server;

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

pub use crate::core::{Config, Core, CoreError};
pub use crate::server::NetConfig;

/// Everything `vigil serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The core (engine, data dir, durability).
    pub core: Config,
    /// Network limits and the token.
    pub net: NetConfig,
    /// HTTP address.
    pub listen: SocketAddr,
    /// Raw TCP NDJSON address.
    pub tcp: Option<SocketAddr>,
    /// Allow a non-loopback address without a token.
    pub insecure: bool,
}

/// Errors of `vigil serve`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to listen on {0} without --token: anyone on the network could post events and read alarms \
         (give --token, or --insecure if a firewall or proxy guards it)"
    )]
    Insecure(SocketAddr),
    /// Could not bind or run.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The core failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The ingest log or the journal failed while serving; stopped without a checkpoint so a
    /// restart recovers from the files.
    #[error("stopped: {0}; restart to recover from the data dir")]
    Failed(String),
}

/// Runs the sidecar until SIGTERM or SIGINT, then stops accepting, checkpoints and returns.
pub fn run(opts: ServeOptions) -> Result<(), ServeError> {
    for addr in std::iter::once(opts.listen).chain(opts.tcp) {
        if !addr.ip().is_loopback() && opts.net.token.is_none() && !opts.insecure {
            return Err(ServeError::Insecure(addr));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("vigil-net")
        .build()
        .map_err(|source| ServeError::Io { what: "cannot start the runtime".into(), source })?;
    let core = Core::open(opts.core.clone())?;
    runtime.block_on(async move {
        let http = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| ServeError::Io { what: format!("cannot listen on {}", opts.listen), source })?;
        let tcp = match opts.tcp {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|source| ServeError::Io { what: format!("cannot listen on {a}"), source })?,
            ),
            None => None,
        };
        let http_addr = http.local_addr().map_err(|source| ServeError::Io { what: "local address".into(), source })?;
        let tcp_addr = tcp.as_ref().and_then(|t| t.local_addr().ok());
        {
            let mut out = std::io::stdout().lock();
            let tcp_text = tcp_addr.map_or("-".to_string(), |a| a.to_string());
            let _ = writeln!(out, "listening http={http_addr} tcp={tcp_text}");
            let _ = out.flush();
        }
        tracing::info!(%http_addr, tcp = ?tcp_addr, "vigil serve is up");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let http_task = tokio::spawn(server::serve_http(http, core.clone(), opts.net.clone(), stop_rx.clone()));
        let tcp_task =
            tcp.map(|t| tokio::spawn(server::serve_tcp(t, core.clone(), opts.net.max_line, stop_rx.clone())));

        // Live time and periodic checkpoints, off the async threads.
        let ticker_core = core.clone();
        let ticker_stop = stop_rx.clone();
        let ticker = std::thread::Builder::new()
            .name("vigil-ticker".into())
            .spawn(move || {
                while !*ticker_stop.borrow() && !ticker_core.stopping() {
                    if let Err(e) = ticker_core.tick() {
                        tracing::warn!(error = %e, "live tick failed");
                    }
                    if let Err(e) = ticker_core.maybe_checkpoint() {
                        tracing::warn!(error = %e, "periodic checkpoint failed");
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .map_err(|source| ServeError::Io { what: "cannot start the ticker".into(), source })?;

        let mut failure = core.failure();
        let failed = tokio::select! {
            _ = shutdown_signal() => None,
            f = failure.wait_for(Option::is_some) => f.ok().and_then(|f| f.clone()),
        };
        match &failed {
            None => tracing::info!("stopping: no new connections, draining, checkpointing"),
            Some(why) => tracing::error!(reason = %why, "stopping: no new connections, no checkpoint"),
        }
        let _ = stop_tx.send(true);
        let _ = http_task.await;
        if let Some(t) = tcp_task {
            let _ = t.await;
        }
        // The servers answered every request in progress before returning (see server.rs).
        let _ = ticker.join();
        // A failure during the drain (a request in progress hit a full disk) also forbids the
        // final checkpoint.
        let failed = failed.or_else(|| core.failure().borrow().clone());
        if let Some(why) = failed {
            let c = core.clone();
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
            return Err(ServeError::Failed(why));
        }
        let c = core.clone();
        tokio::task::spawn_blocking(move || c.shutdown())
            .await
            .map_err(|e| ServeError::Io { what: "shutdown".into(), source: std::io::Error::other(e) })??;
        tracing::info!("stopped cleanly");
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
