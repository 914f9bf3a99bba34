//! Shared by the integration tests: a fresh PostgreSQL schema per test on the real server
//! (127.0.0.1:5432, database `test`), dropped when the test ends, even by a panic; and a
//! demo-tree server on a free port, stopped when the test ends.

#![allow(dead_code)] // each test binary uses a part of it

use std::sync::atomic::{AtomicUsize, Ordering};

/// A schema of its own in the `test` database; `DROP SCHEMA ... CASCADE` when dropped.
pub struct PgSchema {
    pub name: String,
}

fn user() -> String {
    std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "postgres".into())
}

fn admin_config() -> String {
    format!("host=127.0.0.1 port=5432 dbname=test user={}", user())
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_config(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL on 127.0.0.1:5432 is needed: {e}"));
    tokio::spawn(conn);
    client
}

impl PgSchema {
    /// Creates `tessera_<tag>_<pid>_<n>`.
    pub async fn create(tag: &str) -> PgSchema {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tessera_{tag}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin()
            .await
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await
            .unwrap();
        PgSchema { name }
    }

    /// A libpq-style connection string whose `search_path` is this schema.
    pub fn config(&self) -> String {
        format!("{} options=-csearch_path={}", admin_config(), self.name)
    }

    /// A URI form of [`config`](Self::config), as `tessera serve catalog` takes it.
    pub fn uri(&self) -> String {
        format!(
            "postgresql://{}@127.0.0.1:5432/test?options=-csearch_path%3D{}",
            user(),
            self.name
        )
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.config(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropped inside a runtime: do the async cleanup on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let (client, conn) =
                    tokio_postgres::connect(&admin_config(), tokio_postgres::NoTls)
                        .await
                        .ok()?;
                tokio::spawn(conn);
                // Never wait forever on a connection the test left open.
                client
                    .batch_execute(&format!(
                        "SET lock_timeout = '20s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                    ))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// `tessera serve demo` in-process on a free port, with a reqwest client.
pub struct DemoServer {
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl DemoServer {
    /// With the default settings.
    pub async fn start() -> Self {
        Self::with_config(tessera_api::config::Config::default()).await
    }

    /// With `config`.
    pub async fn with_config(config: tessera_api::config::Config) -> Self {
        use tessera_api::server;
        let catalog = std::sync::Arc::new(server::demo_catalog().unwrap());
        let state = server::embedded_state(config, catalog);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(server::run(listener, state, async {
            let _ = rx.await;
        }));
        DemoServer {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            _stop: tx,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_with(&self, path: &str, accept: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("accept", accept)
            .send()
            .await
            .unwrap()
    }

    /// The JSON document at `path`, which must answer 200.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }
}
