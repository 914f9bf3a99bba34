//! Building and running the HTTP server. `run` takes a bound listener and a shutdown future,
//! so tests bind port 0 and stop the server when they are done.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admission::Admission;
use crate::cache::{EncodedCache, MemoryCache};
use crate::catalog::Catalog;
use crate::catalog::memory::MemoryCatalog;
use crate::config::Config;
use crate::dispatch::Inline;
use crate::error::ApiError;
use crate::routes;
use crate::state::AppState;

/// Embedded shape: in-process cache and inline decoding over `catalog`.
pub fn embedded_state(config: Config, catalog: Arc<dyn Catalog>) -> Arc<AppState> {
    build_state(config, catalog, None)
}

/// Embedded shape with writable storage.
pub fn writable_state(
    config: Config,
    catalog: Arc<dyn Catalog>,
    storage: crate::storage::Storage,
) -> Arc<AppState> {
    build_state(config, catalog, Some(Arc::new(storage)))
}

/// The one place where settings become components.
fn build_state(
    config: Config,
    catalog: Arc<dyn Catalog>,
    storage: Option<Arc<crate::storage::Storage>>,
) -> Arc<AppState> {
    Arc::new(AppState {
        cache: Arc::new(MemoryCache::new(config.cache_bytes)),
        dispatcher: Arc::new(Inline::new(config.decode_threads)),
        encoded: EncodedCache::new(config.encoded_cache_bytes),
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

/// Serves `state` on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
