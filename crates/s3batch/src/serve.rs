//! `s3batch serve`: the API and the engine in one process (or the API alone, `--no-engine`); `s3batch worker`: the
//! engine alone, one of a fleet sharing a PostgreSQL job store.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use s3batch_api::{Accounts, AppState};
use s3batch_engine::roles::Roles;
use s3batch_engine::service::JobService;
use s3batch_engine::{CancellationToken, Engine};
use s3batch_storage::{BackendKind, Router};
use s3batch_store::JobStore;
use s3batch_store::postgres::PgStore;
use s3batch_store::sqlite::SqliteStore;

use crate::config::Config;

/// Open the job store a URL names (`sqlite://PATH` or `postgres://…`), creating or upgrading its tables.
pub async fn open_store(url: &str) -> Result<Arc<dyn JobStore>> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = std::path::Path::new(path.split('?').next().unwrap_or(path));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let store = SqliteStore::open(path).await.with_context(|| format!("opening {}", path.display()))?;
        Ok(Arc::new(store))
    } else if is_postgres(url) {
        // `{e}` and not a context chain: the store's error already says everything its sources would repeat.
        let store = PgStore::connect(url).await.map_err(|e| anyhow!("connecting to {}: {e}", redact_url(url)))?;
        Ok(Arc::new(store))
    } else {
        bail!("database URL '{}' is neither sqlite:// nor postgres://", redact_url(url))
    }
}

pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub use crate::config::redact_url;

/// Build the storage router, creating local roots.
pub fn open_router(config: &Config) -> Result<Arc<Router>> {
    let entries = config.storage_or_default();
    for e in &entries {
        if e.kind == BackendKind::Local
            && let Some(root) = &e.root
        {
            std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        }
    }
    Ok(Arc::new(Router::from_config(&entries)?))
}

/// The pieces of a running process.
pub struct Parts {
    pub engine: Arc<Engine>,
    pub service: JobService,
}

/// Store, storage, engine and service from the config; `role` is what `s3batch workers` calls the engine.
pub async fn build(config: &Config, role: &str) -> Result<Parts> {
    std::fs::create_dir_all(&config.server.data_dir)
        .with_context(|| format!("creating data dir {}", config.server.data_dir.display()))?;
    let store = open_store(&config.database_url()).await?;
    // Every storage call is counted and timed (the recorder is installed first, so the handles are live).
    crate::metrics::install()?;
    let router = open_router(config)?;
    let router = if crate::metrics::enabled() { Arc::new(router.metered()) } else { router };
    let mut engine_config = config.engine.clone();
    // Events name the region of the job ARNs the API gives out, unless [engine.events] names one.
    engine_config.events.region.get_or_insert_with(|| config.server.region.clone());
    // Per-task events go to the data dir unless [engine.events] names a file.
    engine_config.events.data_events_log.get_or_insert_with(|| config.server.data_dir.join("data-events.jsonl"));
    let roles = Roles::new(&config.roles, &config.storage_or_default(), router.clone(), !config.accounts.is_empty())
        .map_err(anyhow::Error::msg)?;
    let roles = Arc::new(roles);
    let engine = Engine::with_roles(store.clone(), roles.clone(), engine_config, role);
    let service = JobService::new(store, engine.wake.clone(), config.engine.retention_days)
        .with_max_live_jobs(config.engine.max_live_jobs_per_account)
        .with_storage(router, config.engine.concurrency)
        .with_roles(roles);
    Ok(Parts { engine, service })
}

/// Serve until `shutdown`; `ready` gets the bound address once the listener is up. `with_engine`: run the engine
/// in this process too (false: the API only, for a fleet whose workers run the jobs).
pub async fn serve(
    config: Config,
    shutdown: CancellationToken,
    with_engine: bool,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let accounts = Arc::new(Accounts::new(config.accounts.clone()).map_err(anyhow::Error::msg)?);
    let parts = build(&config, "serve").await?;
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    if accounts.is_open() {
        tracing::warn!("no [[accounts]] configured: the API is open to anyone who can reach {addr}");
    }
    let mut state = AppState::new(parts.service, accounts, config.server.region.clone());
    if config.server.requests_per_second > 0.0 {
        state.limiter =
            Arc::new(s3batch_api::RateLimiter::new(config.server.requests_per_second, config.server.request_burst));
    }
    state.allowed_hosts = config.server.allowed_hosts.clone();
    state.metrics = Some(crate::metrics::install()?);
    state.engine_worker = with_engine.then(|| parts.engine.worker_id.clone());
    let app = s3batch_api::router(state);
    if with_engine {
        parts.engine.register().await; // listed in `s3batch workers` by the time the address is printed
    }
    let engine = with_engine.then(|| tokio::spawn(parts.engine.clone().run(shutdown.clone())));
    if !with_engine {
        tracing::info!("--no-engine: serving the API only; `s3batch worker` processes run the jobs");
    }
    ready(addr);
    serve_http(listener, app, &config.server, shutdown.clone()).await;
    if let Some(engine) = engine {
        engine.await?;
    }
    Ok(())
}

/// Serve `app` on `listener` until `shutdown`, then let the requests in flight finish. At most
/// `server.max_connections` connections are served at once (the rest wait in the listen queue, so the process keeps
/// file descriptors for its engine and stores); a client that takes longer than `server.header_timeout_ms` to send
/// its headers, or keeps an idle connection that long, is disconnected; a body that sends nothing for
/// `server.body_timeout_ms` fails its request, and a request that takes longer than `server.request_timeout_ms`
/// answers 408.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: &crate::config::ServerConfig,
    shutdown: CancellationToken,
) {
    use std::time::Duration;

    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

    let app = app.layer(RequestBodyTimeoutLayer::new(Duration::from_millis(limits.body_timeout_ms))).layer(
        TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(limits.request_timeout_ms),
        ),
    );
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(limits.header_timeout_ms));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted: wait, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// `s3batch worker`: the engine alone until `shutdown`, then drain (see [`Engine::run`]). `ready` gets the worker
/// id once it runs.
pub async fn worker(
    config: Config,
    metrics_listen: Option<String>,
    shutdown: CancellationToken,
    ready: impl FnOnce(&str),
) -> Result<()> {
    let Some(url) = config.server.database_url.as_deref() else {
        bail!(
            "s3batch worker needs the database the fleet shares: --database-url postgres://… \
             (or server.database_url in the config, or S3BATCH_SERVER__DATABASE_URL)"
        );
    };
    if !is_postgres(url) {
        tracing::warn!(
            "this worker's job store is SQLite: only processes on this machine can share it; a fleet uses PostgreSQL"
        );
    }
    let parts = build(&config, "worker").await?;
    if let Some(addr) = &metrics_listen {
        let mut state = AppState::new(parts.service.clone(), Arc::new(Accounts::default()), "");
        state.metrics = Some(crate::metrics::install()?);
        state.engine_worker = Some(parts.engine.worker_id.clone());
        let app = axum::Router::new()
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .merge(s3batch_api::metrics::routes())
            .with_state(state);
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding --metrics-listen {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "metrics on /metrics");
        let (stop, limits) = (shutdown.clone(), config.server.clone());
        tokio::spawn(async move { serve_http(listener, app, &limits, stop).await });
    }
    parts.engine.register().await; // listed in `s3batch workers` by the time it says it runs
    let engine = tokio::spawn(parts.engine.clone().run(shutdown));
    ready(&parts.engine.worker_id);
    engine.await?;
    Ok(())
}

/// Cancel `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutting down (a second signal exits at once)");
        token.cancel();
        // A second signal while draining: stop now (leases expire and other workers take the chunks over).
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::warn!("second signal: exiting without waiting for the tasks in flight");
        std::process::exit(130);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(redact_url("postgres://u:secret@db:5432/s3batch"), "postgres://u:***@db:5432/s3batch");
        assert_eq!(redact_url("postgresql://u:p%40ss@db/x?sslmode=require"), "postgresql://u:***@db/x?sslmode=require");
        assert_eq!(redact_url("postgres://u:a/b@c@db/x"), "postgres://u:***@db/x");
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(redact_url("sqlite:///var/lib/s3batch.db"), "sqlite:///var/lib/s3batch.db");
        assert!(is_postgres("postgresql://db/x") && is_postgres("postgres://db/x") && !is_postgres("sqlite://x"));
    }
}
