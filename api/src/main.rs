//! The `tessera` command: `tessera serve demo` runs the embedded server on the demo tree.

use std::sync::Arc;

use clap::{Parser, Subcommand};
use tessera_api::config::Config;
use tessera_api::server;

#[derive(Parser)]
#[command(name = "tessera", version, about = "A Tiled-compatible data service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a tree over Tiled's HTTP API v1.
    Serve {
        #[command(subcommand)]
        what: Serve,
    },
    /// Create or upgrade a catalog database: `postgresql://...` or an SQLite file path
    /// (`sqlite:PATH` or a plain path). Safe to run from several nodes at once.
    Migrate {
        /// The catalog database.
        database: String,
    },
}

#[derive(Subcommand)]
enum Serve {
    /// Serve the demo tree (the same as `tiled serve demo`), anonymously readable.
    Demo {
        #[command(flatten)]
        opts: ServeOpts,
    },
}

#[derive(clap::Args)]
struct ServeOpts {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1", env = "TESSERA_HOST")]
    host: String,
    /// Port to bind (0 picks a free one).
    #[arg(long, default_value_t = 8000, env = "TESSERA_PORT")]
    port: u16,
    /// Largest uncompressed response, in bytes.
    #[arg(
        long,
        default_value_t = 300_000_000,
        env = "TESSERA_RESPONSE_BYTESIZE_LIMIT"
    )]
    response_bytesize_limit: usize,
    /// Bytes of decoded chunks kept in memory.
    #[arg(long, default_value_t = 1 << 30, env = "TESSERA_CACHE_BYTES")]
    cache_bytes: u64,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate { database } => {
            use tessera_api::catalog::migrate;
            let applied =
                if database.starts_with("postgres://") || database.starts_with("postgresql://") {
                    let (mut client, conn) =
                        tokio_postgres::connect(&database, tokio_postgres::NoTls).await?;
                    tokio::spawn(conn);
                    migrate::migrate_postgres(&mut client).await?
                } else {
                    let path = database
                        .strip_prefix("sqlite:")
                        .unwrap_or(&database)
                        .to_string();
                    tokio::task::spawn_blocking(move || {
                        let mut conn = rusqlite::Connection::open(path)?;
                        migrate::migrate_sqlite(&mut conn)
                    })
                    .await??
                };
            if applied.is_empty() {
                println!("the catalog is up to date");
            } else {
                println!("applied migrations {applied:?}");
            }
        }
        Command::Serve {
            what: Serve::Demo { opts },
        } => {
            let started = std::time::Instant::now();
            let config = Config {
                response_bytesize_limit: opts.response_bytesize_limit,
                cache_bytes: opts.cache_bytes,
                ..Config::default()
            };
            let state = server::embedded_state(config, Arc::new(server::demo_catalog()?));
            let listener = tokio::net::TcpListener::bind((opts.host.as_str(), opts.port)).await?;
            let addr = listener.local_addr()?;
            tracing::info!(
                "tessera serving the demo tree at http://{addr}/api/v1/ (ready in {:.1} ms)",
                started.elapsed().as_secs_f64() * 1e3
            );
            println!("Serving the demo tree at http://{addr}");
            server::run(listener, state, shutdown_signal()).await?;
        }
    }
    Ok(())
}
