//! Whether a node should get traffic: `/healthz` says the process answers, `/readyz` that
//! what it needs answers too (the catalog database, and in a cluster Redis and NATS), and
//! that it is not draining. A load balancer sends requests only to ready nodes; after
//! SIGTERM a node reports not ready for `shutdown_delay` before it closes its listener, so
//! no request is sent to a node that is going away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tessera_worker::store::SharedStore;

use crate::catalog::Catalog;
use crate::metrics;

/// The longest one readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node's readiness depends on.
#[derive(Default)]
pub struct Health {
    draining: AtomicBool,
    /// The shared store, in cluster shape.
    pub store: Option<SharedStore>,
    /// The NATS connection, when jobs go to workers.
    pub nats: Option<async_nats::Client>,
}

/// One dependency's state: `Ok` or why not.
pub type Check = (&'static str, Result<(), String>);

impl Health {
    /// From now on the node reports not ready (SIGTERM).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        metrics::READY.set(0);
    }

    /// Whether the node is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The node serves: ready unless draining.
    pub fn serving(&self) {
        if !self.draining() {
            metrics::READY.set(1);
        }
    }

    /// Each dependency's state, checked now (each within [`CHECK_TIMEOUT`]).
    pub async fn check(&self, catalog: &dyn Catalog) -> Vec<Check> {
        let within = |what: &'static str, r: Result<Result<(), String>, _>| match r {
            Ok(r) => (what, r),
            Err(_) => (
                what,
                Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
            ),
        };
        let mut checks = Vec::with_capacity(3);
        let root = tokio::time::timeout(CHECK_TIMEOUT, async {
            catalog.get(&[]).await.map(|_| ()).map_err(|e| e.detail)
        })
        .await;
        checks.push(within("catalog", root));
        if let Some(store) = &self.store {
            let ping = tokio::time::timeout(CHECK_TIMEOUT, async {
                store.ping().await.map_err(|e| e.to_string())
            })
            .await;
            checks.push(within("redis", ping));
        }
        if let Some(nats) = &self.nats {
            let state = nats.connection_state();
            checks.push((
                "nats",
                match state {
                    async_nats::connection::State::Connected => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            ));
        }
        checks
    }
}
