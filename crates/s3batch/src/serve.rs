//! `s3batch serve`: the API and the engine in one process.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use s3batch_api::{Accounts, AppState};
use s3batch_engine::service::JobService;
use s3batch_engine::{CancellationToken, Engine};
use s3batch_storage::{BackendKind, Router};
use s3batch_store::JobStore;
use s3batch_store::sqlite::SqliteStore;

use crate::config::Config;

/// Open the job store a URL names.
pub async fn open_store(url: &str) -> Result<Arc<dyn JobStore>> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = std::path::Path::new(path.split('?').next().unwrap_or(path));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let store = SqliteStore::open(path).await.with_context(|| format!("opening {}", path.display()))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!("the PostgreSQL job store is not available yet in this version; use a sqlite:// URL")
    } else {
        bail!("database URL '{url}' is neither sqlite:// nor postgres://")
    }
}

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

/// Store, storage, engine and service from the config.
pub async fn build(config: &Config) -> Result<Parts> {
    std::fs::create_dir_all(&config.server.data_dir)
        .with_context(|| format!("creating data dir {}", config.server.data_dir.display()))?;
    let store = open_store(&config.database_url()).await?;
    let router = open_router(config)?;
    let engine = Engine::new(store.clone(), router, config.engine.clone());
    let service = JobService::new(store, engine.wake.clone(), config.engine.retention_days);
    Ok(Parts { engine, service })
}

/// Serve until `shutdown`; `ready` gets the bound address once the listener is up.
pub async fn serve(config: Config, shutdown: CancellationToken, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let accounts = Arc::new(Accounts::new(config.accounts.clone()).map_err(anyhow::Error::msg)?);
    let parts = build(&config).await?;
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    if accounts.is_open() {
        tracing::warn!("no [[accounts]] configured: the API is open to anyone who can reach {addr}");
    }
    let app = s3batch_api::router(AppState { service: parts.service, accounts, region: config.server.region.clone() });
    let engine = tokio::spawn(parts.engine.clone().run(shutdown.clone()));
    ready(addr);
    axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned()).await?;
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
        tracing::info!("shutting down: no new chunks are claimed, tasks in flight finish");
        token.cancel();
    });
}
