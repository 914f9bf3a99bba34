//! Building and running the HTTP server. `run` takes a bound listener and a shutdown future,
//! so tests bind port 0 and stop the server when they are done.

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use tessera_worker::exec::Executor;
use tessera_worker::store::SharedStore;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admission::Admission;
use crate::cache::{ChunkCache, EncodedCache, InlineRunner, JobRunner, L2};
use crate::catalog::Catalog;
use crate::catalog::memory::MemoryCatalog;
use crate::config::Config;
use crate::dispatch::Inline;
use crate::error::ApiError;
use crate::health::Health;
use crate::remote::Remote;
use crate::routes;
use crate::state::AppState;

/// Embedded shape: in-process cache and inline decoding over `catalog`.
pub fn embedded_state(config: Config, catalog: Arc<dyn Catalog>) -> Arc<AppState> {
    embedded(config, catalog, None)
}

/// Embedded shape with writable storage.
pub fn writable_state(
    config: Config,
    catalog: Arc<dyn Catalog>,
    storage: crate::storage::Storage,
) -> Arc<AppState> {
    embedded(config, catalog, Some(storage))
}

/// The embedded shape: the node's own cache and executor, nothing shared.
fn embedded(
    config: Config,
    catalog: Arc<dyn Catalog>,
    storage: Option<crate::storage::Storage>,
) -> Arc<AppState> {
    let exec = executor(&config);
    let cache = ChunkCache::embedded(config.cache_bytes, exec.clone());
    let encoded = EncodedCache::new(config.encoded_cache_bytes, None);
    let storage = storage.map(|s| Arc::new(s.with_removal_delay(config.request_timeout)));
    assemble(
        config,
        catalog,
        storage,
        cache,
        encoded,
        exec,
        Health::default(),
    )
}

/// The node's state in the shape its configuration asks for: with `config.cluster`, the
/// shared store as L2 and (with `nats_url`) jobs on workers; without, the embedded shape.
pub async fn state(
    config: Config,
    catalog: Arc<dyn Catalog>,
    storage: Option<crate::storage::Storage>,
) -> anyhow::Result<Arc<AppState>> {
    let Some(cluster) = config.cluster.clone() else {
        return Ok(embedded(config, catalog, storage));
    };
    let storage = storage.map(|s| Arc::new(s.with_removal_delay(config.request_timeout)));
    let exec = executor(&config);
    let store = SharedStore::connect(&cluster.redis_url, cluster.l2_part_bytes)
        .await
        .map_err(|e| {
            let url = crate::config_file::without_password(&cluster.redis_url);
            anyhow::anyhow!("the shared store {url}: {e}")
        })?;
    let inline = InlineRunner(exec.clone());
    let mut health = Health::default();
    health.store = Some(store.clone());
    let runner: Arc<dyn JobRunner> = match &cluster.nats_url {
        None => Arc::new(inline),
        Some(url) => {
            let nats = async_nats::ConnectOptions::new()
                .name("tessera-api")
                .retry_on_initial_connect()
                .connect(url.as_str())
                .await
                .map_err(|e| {
                    let url = crate::config_file::without_password(url);
                    anyhow::anyhow!("NATS {url}: {e}")
                })?;
            health.nats = Some(nats.clone());
            Arc::new(Remote {
                nats,
                store: store.clone(),
                prefix: cluster.key_prefix.clone(),
                keep: cluster.l2_cache,
                ttl: cluster.l2_ttl,
                timeout: cluster.worker_timeout,
                deadline: config.request_timeout,
                permits: Arc::new(tokio::sync::Semaphore::new(
                    cluster.max_jobs_in_flight.max(1),
                )),
                permit_wait: config.admission_wait,
                fallback: cluster.fallback,
                inline,
            })
        }
    };
    let l2 = cluster.l2_cache.then(|| L2 {
        store,
        prefix: cluster.key_prefix.clone(),
        ttl: cluster.l2_ttl,
        lock_ttl: (cluster.worker_timeout * 2).max(Duration::from_secs(2)),
    });
    let encoded = EncodedCache::new(config.encoded_cache_bytes, l2.clone());
    let cache = ChunkCache::new(config.cache_bytes, l2, runner, config.request_timeout);
    Ok(assemble(
        config, catalog, storage, cache, encoded, exec, health,
    ))
}

/// The node's executor: decode jobs and reads run there, `decode_threads` at once.
fn executor(config: &Config) -> Arc<Executor> {
    Arc::new(Executor::new(config.decode_threads))
}

/// The one place where components become a node's state.
fn assemble(
    config: Config,
    catalog: Arc<dyn Catalog>,
    storage: Option<Arc<crate::storage::Storage>>,
    cache: ChunkCache,
    encoded: EncodedCache,
    exec: Arc<Executor>,
    health: Health,
) -> Arc<AppState> {
    // Every catalog operation is timed and traced, whatever the backend.
    let catalog: Arc<dyn Catalog> = Arc::new(crate::catalog::metered::Metered(catalog));
    Arc::new(AppState {
        health,
        cache: Arc::new(cache),
        dispatcher: Arc::new(Inline::new(exec)),
        encoded,
        admission: Admission::new(
            config.max_in_flight_requests,
            config.max_bytes_in_flight,
            config.admission_wait,
        ),
        catalog,
        config,
        storage,
    })
}

/// The demo tree, with `dynamic` advancing every 3 seconds like Tiled's.
pub fn demo_catalog() -> anyhow::Result<MemoryCatalog> {
    use tessera_common::adapters::demo;
    let mut cat = MemoryCatalog::from_tree(demo::tree()?);
    cat.set_live(
        &["dynamic"],
        Box::new(|elapsed: Duration| {
            let k = elapsed.as_secs() / 3 + 1;
            (k, demo::dynamic_source(k))
        }),
    );
    Ok(cat)
}

/// The axum app: one handler for every path, a deadline per request, panics turned into
/// JSON 500s, and CORS for the configured origins.
pub fn app(state: Arc<AppState>) -> Router {
    let timeout = state.config.request_timeout;
    let cors = cors(&state.config.allow_origins);
    let router = Router::new()
        .fallback(routes::handle)
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::map_response(
            |mut resp: axum::response::Response| async move {
                resp.headers_mut()
                    .entry(header::SERVER)
                    .or_insert(HeaderValue::from_static("tessera"));
                resp
            },
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal(
                "internal error (a bug: please report it)",
            ))
        }));
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// CORS as Tiled answers it (credentials allowed, any method and header) for `origins`
/// (`*`: any); `None` without origins.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_credentials(true)
            .allow_methods(AllowMethods::mirror_request())
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers([header::HeaderName::from_static("x-request-id")]),
    )
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains: `/readyz` answers
/// 503 for `shutdown_delay` while the listener still accepts (the load balancer takes the
/// node out), then the listener closes, idle connections are closed, and requests in flight
/// get `shutdown_timeout` to finish before the server returns.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (delay, timeout) = (state.config.shutdown_delay, state.config.shutdown_timeout);
    let closing = Arc::new(tokio::sync::Notify::new());
    let drain = {
        let (state, closing) = (state.clone(), closing.clone());
        async move {
            shutdown.await;
            state.health.drain();
            tracing::info!(
                "draining: not ready for {:.1} s, then {:.1} s for requests in flight",
                delay.as_secs_f64(),
                timeout.as_secs_f64()
            );
            tokio::time::sleep(delay).await;
            closing.notify_one();
        }
    };
    state.health.serving();
    let app = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let serving = axum::serve(listener, app).with_graceful_shutdown(drain);
    let deadline = async {
        closing.notified().await;
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        served = serving.into_future() => served,
        () = deadline => {
            tracing::warn!(
                "requests still in flight {:.1} s after the listener closed: stopping anyway",
                timeout.as_secs_f64()
            );
            Ok(())
        }
    }
}
