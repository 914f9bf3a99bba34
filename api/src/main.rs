//! The `tessera` command: `tessera serve demo` runs the embedded server on the demo tree.

use std::sync::Arc;

use clap::{Parser, Subcommand};
use tessera_api::config::{Config, Fallback, LogFormat, Seconds, Settings};
use tessera_api::config_file::{self, CatalogDatabase, CatalogTree, Service, Tree, Writable};
use tessera_api::server;
use tessera_api::storage::Storage;

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
    /// Check a config file (or a directory of them) as `serve config` reads it, and print
    /// the effective configuration with its secrets masked.
    CheckConfig {
        /// A YAML file, or a directory of `*.yml`/`*.yaml` files.
        #[arg(env = "TILED_CONFIG", default_value = "config.yml")]
        path: std::path::PathBuf,
    },
    /// Create or upgrade a catalog database: `postgresql://...` or an SQLite file path
    /// (`sqlite:PATH` or a plain path), or with `--config` the catalog and the
    /// authentication database of a config file (the deployment's migration job). Safe to
    /// run from several nodes at once.
    Migrate {
        /// The catalog database.
        #[arg(required_unless_present = "config", conflicts_with = "config")]
        database: Option<String>,
        /// A config file (or directory): migrate the databases it names.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
    /// Register the files under PATH (or the file PATH) with a running server, without
    /// copying them: directories become containers, each HDF5, Zarr, Parquet or CSV file a
    /// node. The server must be started with `--read` covering PATH.
    Register {
        /// The server, e.g. http://127.0.0.1:8000
        url: String,
        /// A file, a Zarr store or a directory.
        path: std::path::PathBuf,
        /// Where in the tree to put them (containers are created as needed).
        #[arg(long, default_value = "")]
        prefix: String,
        /// The server's API key.
        #[arg(long, env = "TESSERA_API_KEY")]
        api_key: Option<String>,
    },
    /// Keep per-container value counts of metadata keys of a PostgreSQL catalog (e.g.
    /// `plan_name`), so `distinct` on them stays fast in containers of millions of nodes.
    /// For keys with few distinct values; existing nodes are counted once, holding writes.
    Facet {
        /// The catalog database (`postgresql://...`).
        database: String,
        /// Dotted metadata keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Manage the users of a `tessera.authenticators:DatabaseAuthenticator` provider in the
    /// authentication database of a config file (e.g. the first admin, before any admin
    /// can log in to add others over HTTP).
    User {
        /// The config file (or directory) naming the provider and the database.
        #[arg(long, env = "TILED_CONFIG", default_value = "config.yml")]
        config: std::path::PathBuf,
        #[command(subcommand)]
        action: UserAction,
    },
    /// Run a worker of a cluster: take decode jobs from NATS, leave results in Redis.
    Worker {
        #[command(flatten)]
        opts: WorkerOpts,
    },
    /// Index hot metadata keys of a PostgreSQL catalog for range filters and sorting
    /// (e.g. `time`, `start.time`), without blocking writes.
    Index {
        /// The catalog database (`postgresql://...`).
        database: String,
        /// Dotted metadata keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user, or set a user's password: read from the first line of standard input.
    Set { provider: String, username: String },
    /// Remove a user and end their sessions.
    Remove { provider: String, username: String },
    /// List the users of a provider.
    List { provider: String },
}

#[derive(Subcommand)]
enum Serve {
    /// Serve the demo tree (the same as `tiled serve demo`), anonymously readable.
    Demo {
        #[command(flatten)]
        opts: ServeOpts,
    },
    /// Serve a directory of files (HDF5, Zarr, Parquet, CSV) as a tree, as `tiled serve
    /// directory` does: the root answers at once, files are indexed in the background.
    Directory {
        #[command(flatten)]
        dir: DirectoryOpts,
        #[command(flatten)]
        opts: ServeOpts,
    },
    /// Serve a catalog (SQLite file or PostgreSQL), writable with --write, as
    /// `tiled serve catalog` does.
    Catalog {
        #[command(flatten)]
        catalog: CatalogOpts,
        #[command(flatten)]
        opts: ServeOpts,
    },
    /// Serve what a Tiled config file (or a directory of them) describes, as `tiled serve
    /// config` does; tessera's own settings go under its `tessera:` key.
    Config {
        /// A YAML file, or a directory of `*.yml`/`*.yaml` files.
        #[arg(env = "TILED_CONFIG", default_value = "config.yml")]
        path: std::path::PathBuf,
        /// Let anonymous clients read (overrides the file).
        #[arg(long)]
        public: bool,
        /// The single-user API key (overrides the file).
        #[arg(long)]
        api_key: Option<String>,
        /// Address to bind (overrides uvicorn.host).
        #[arg(long)]
        host: Option<String>,
        /// Port to bind (overrides uvicorn.port; 0 picks a free one).
        #[arg(long)]
        port: Option<u16>,
    },
}

#[derive(clap::Args)]
struct CatalogOpts {
    /// The catalog database: an SQLite file path (or `sqlite:///path`), or a
    /// `postgresql://` URI. Migrated at start-up.
    #[arg(required_unless_present = "temp")]
    database: Option<String>,
    /// Use a fresh catalog in a temporary directory, deleted at exit.
    #[arg(long, conflicts_with = "database")]
    temp: bool,
    /// Accepted for Tiled compatibility: the catalog is always created if missing.
    #[arg(long, alias = "init")]
    init_if_not_exists: bool,
    /// A directory where written data is stored (Zarr arrays). Without it, read-only.
    #[arg(long, env = "TESSERA_WRITE")]
    write: Option<std::path::PathBuf>,
    /// The single-user API key (one is generated and printed if not given).
    #[arg(long, env = "TESSERA_API_KEY")]
    api_key: Option<String>,
    /// Let anonymous clients read; writes still need the API key.
    #[arg(long)]
    public: bool,
    /// A directory whose files may be registered (POST /register); repeatable.
    #[arg(long = "read", value_name = "DIR")]
    read: Vec<std::path::PathBuf>,
    /// At start-up, data in --write that no catalog row points at is removed once nothing
    /// in it changed for this many seconds (what a crash left behind). The default is 0
    /// with SQLite (this process is its only writer) and 3600 with PostgreSQL (other nodes
    /// may be writing).
    #[arg(long, value_name = "SECONDS", env = "TESSERA_ORPHAN_GRACE")]
    orphan_grace: Option<f64>,
}

#[derive(clap::Args)]
struct DirectoryOpts {
    /// The directory to serve.
    directory: std::path::PathBuf,
    /// Rescan the directory and pick up files added, changed and removed.
    #[arg(long)]
    watch: bool,
    /// Seconds between rescans with --watch.
    #[arg(long, default_value_t = 2.0)]
    watch_interval: f64,
    /// Read files ending in EXT as MIMETYPE (e.g. `--ext nx5=application/x-hdf5`); repeatable.
    #[arg(long = "ext", value_name = "EXT=MIMETYPE")]
    extensions: Vec<String>,
    /// The catalog database (SQLite file); a temporary one by default.
    #[arg(long)]
    catalog: Option<std::path::PathBuf>,
    /// The single-user API key (one is generated and printed if not given).
    #[arg(long, env = "TESSERA_API_KEY")]
    api_key: Option<String>,
    /// Let anonymous clients read.
    #[arg(long)]
    public: bool,
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
    /// Requests handled at once; more are answered 503 with Retry-After.
    #[arg(long, env = "TESSERA_MAX_IN_FLIGHT_REQUESTS")]
    max_in_flight_requests: Option<usize>,
    /// Bytes of request and response bodies held at once; a request that does not fit waits,
    /// then is answered 503.
    #[arg(long, env = "TESSERA_MAX_BYTES_IN_FLIGHT")]
    max_bytes_in_flight: Option<u64>,
    /// Bytes of native chunks one request may decode.
    #[arg(long, env = "TESSERA_MAX_DECODED_BYTES_PER_REQUEST")]
    max_decoded_bytes_per_request: Option<u64>,
    /// Native chunks (or table partitions) one request may touch.
    #[arg(long, env = "TESSERA_MAX_CHUNKS_PER_REQUEST")]
    max_chunks_per_request: Option<usize>,
    /// Seconds one catalog statement may run.
    #[arg(long, env = "TESSERA_STATEMENT_TIMEOUT")]
    statement_timeout: Option<f64>,
    /// Cluster shape: the Redis server shared by all nodes (L2 chunk cache).
    #[arg(long, env = "TESSERA_REDIS_URL")]
    redis_url: Option<String>,
    /// Cluster shape: the NATS server whose workers decode (needs --redis-url).
    #[arg(long, env = "TESSERA_NATS_URL", requires = "redis_url")]
    nats_url: Option<String>,
    /// Prefix of the cluster's Redis keys and NATS subjects.
    #[arg(long, env = "TESSERA_KEY_PREFIX")]
    key_prefix: Option<String>,
    /// Do not keep chunks in Redis (it only carries results from workers).
    #[arg(long)]
    no_l2_cache: bool,
    /// When no worker answers: `inline` (decode here) or `unavailable` (503).
    #[arg(long, env = "TESSERA_FALLBACK", value_enum)]
    fallback: Option<Fallback>,
    /// Seconds after SIGTERM during which /readyz answers 503 before the listener closes.
    #[arg(long, value_name = "SECONDS", env = "TESSERA_SHUTDOWN_DELAY")]
    shutdown_delay: Option<f64>,
    /// Seconds requests in flight get to finish once the listener has closed.
    #[arg(long, value_name = "SECONDS", env = "TESSERA_SHUTDOWN_TIMEOUT")]
    shutdown_timeout: Option<f64>,
}

#[derive(clap::Args)]
struct WorkerOpts {
    /// The cluster's config file (or directory): its `tessera:` section gives `nats_url`,
    /// `redis_url`, `key_prefix`, `l2_part_bytes` and `decode_threads`; flags override it.
    #[arg(long, env = "TESSERA_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// The NATS server jobs come from (default nats://127.0.0.1:4222).
    #[arg(long, env = "TESSERA_NATS_URL")]
    nats_url: Option<String>,
    /// The Redis server results go to, the cluster's shared chunk cache (default
    /// redis://127.0.0.1:6379/).
    #[arg(long, env = "TESSERA_REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of the cluster's NATS subjects and Redis keys (the API nodes' `key_prefix`).
    #[arg(long, env = "TESSERA_KEY_PREFIX")]
    key_prefix: Option<String>,
    /// Jobs decoded at once (default: the number of cores).
    #[arg(long, env = "TESSERA_WORKER_THREADS")]
    threads: Option<usize>,
    /// Jobs held beyond those decoding; more are refused so the API node asks another worker.
    #[arg(long, env = "TESSERA_WORKER_QUEUE", default_value_t = 64)]
    queue: usize,
    /// Address of the worker's /metrics (e.g. 127.0.0.1:9101); none if not given.
    #[arg(long, env = "TESSERA_WORKER_METRICS")]
    metrics: Option<std::net::SocketAddr>,
    /// Seconds in-flight jobs may take to finish after SIGTERM (default: the config's
    /// `shutdown_timeout`, 30).
    #[arg(long)]
    drain: Option<f64>,
}

impl ServeOpts {
    /// The node's settings: the defaults, with what was given on the command line.
    fn settings(&self) -> anyhow::Result<Settings> {
        let d = Settings::default();
        Ok(Settings {
            cache_bytes: self.cache_bytes,
            max_in_flight_requests: self
                .max_in_flight_requests
                .unwrap_or(d.max_in_flight_requests),
            max_bytes_in_flight: self.max_bytes_in_flight.unwrap_or(d.max_bytes_in_flight),
            max_decoded_bytes_per_request: self
                .max_decoded_bytes_per_request
                .unwrap_or(d.max_decoded_bytes_per_request),
            max_chunks_per_request: self
                .max_chunks_per_request
                .unwrap_or(d.max_chunks_per_request),
            statement_timeout: match self.statement_timeout {
                Some(s) => Seconds::new(s.max(0.001))
                    .map_err(|e| anyhow::anyhow!("--statement-timeout: {e}"))?,
                None => d.statement_timeout,
            },
            redis_url: self.redis_url.clone(),
            nats_url: self.nats_url.clone(),
            key_prefix: self.key_prefix.clone().unwrap_or(d.key_prefix.clone()),
            l2_cache: !self.no_l2_cache,
            fallback: self.fallback.unwrap_or(d.fallback),
            shutdown_delay: seconds("--shutdown-delay", self.shutdown_delay, d.shutdown_delay)?,
            shutdown_timeout: seconds(
                "--shutdown-timeout",
                self.shutdown_timeout,
                d.shutdown_timeout,
            )?,
            ..d
        })
    }

    /// The node's `Config`: `settings()` and the response limit.
    fn config(&self) -> anyhow::Result<Config> {
        Ok(Config {
            response_bytesize_limit: self.response_bytesize_limit,
            ..self.settings()?.config()
        })
    }
}

/// A flag's seconds, or the default.
fn seconds(flag: &str, given: Option<f64>, default: Seconds) -> anyhow::Result<Seconds> {
    given.map_or(Ok(default), |s| {
        Seconds::new(s).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
    })
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

/// Binds, says where `what` is served and how long start-up took, and serves until a
/// shutdown signal.
async fn serve(
    state: Arc<tessera_api::state::AppState>,
    (host, port): (&str, u16),
    what: &str,
    started: std::time::Instant,
    url_suffix: &str,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((host, port)).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "tessera serving {what} at http://{addr}/api/v1/ (ready in {:.1} ms)",
        started.elapsed().as_secs_f64() * 1e3
    );
    println!("Serving {what} at http://{addr}{url_suffix}");
    server::run(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// `tessera serve catalog`: the flags as the `Service` a config file would describe.
async fn serve_catalog(c: CatalogOpts, opts: ServeOpts) -> anyhow::Result<()> {
    let CatalogOpts {
        database,
        temp,
        init_if_not_exists: _,
        write,
        api_key,
        public,
        read,
        orphan_grace,
    } = c;
    // --temp: a catalog and storage in a directory removed at exit.
    let tempdir = temp
        .then(|| std::env::temp_dir().join(format!("tessera-{}", uuid::Uuid::new_v4().simple())));
    if let Some(dir) = &tempdir {
        std::fs::create_dir_all(dir)?;
    }
    let database = match (&database, &tempdir) {
        (Some(db), _) => CatalogDatabase::parse(db).map_err(anyhow::Error::msg)?,
        (None, Some(dir)) => CatalogDatabase::Sqlite(dir.join("catalog.db")),
        (None, None) => anyhow::bail!("give a catalog database or --temp"),
    };
    let key = api_key.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let config = Config {
        api_key: Some(key),
        public,
        readable: read
            .iter()
            .map(|d| {
                d.canonicalize()
                    .map_err(|e| anyhow::anyhow!("--read {}: {e}", d.display()))
            })
            .collect::<anyhow::Result<_>>()?,
        ..opts.config()?
    };
    let service = Service {
        auth: None,
        tree: Tree::Catalog(CatalogTree {
            database,
            writable: write
                .or_else(|| tempdir.as_ref().map(|d| d.join("data")))
                .map(Writable::Dir),
            init_if_not_exists: true,
        }),
        config,
        // As `tiled serve catalog`: the URL with the key is printed.
        generated_api_key: true,
        host: opts.host.clone(),
        port: opts.port,
        orphan_grace,
    };
    let served = run_service(service).await;
    if let Some(dir) = tempdir {
        let _ = std::fs::remove_dir_all(dir);
    }
    served
}

/// Serves what `service` describes until a shutdown signal.
async fn run_service(service: Service) -> anyhow::Result<()> {
    use tessera_api::catalog::Catalog;
    use tessera_api::catalog::postgres::PostgresCatalog;
    use tessera_api::catalog::sqlite::SqliteCatalog;
    let started = std::time::Instant::now();
    let Service {
        auth,
        tree,
        mut config,
        generated_api_key,
        host,
        port,
        orphan_grace,
    } = service;
    if let Some(settings) = auth {
        let database = settings.database.clone();
        let auth = tessera_api::auth::Auth::start(settings)
            .await
            .map_err(|e| {
                let at = database.map_or("memory".into(), |d| config_file::without_password(&d));
                anyhow::anyhow!("the authentication database ({at}): {e}")
            })?;
        // In a cluster, failed logins are counted for all nodes in the shared Redis.
        if let Some(cluster) = &config.cluster {
            auth.count_failures_in(&cluster.redis_url, &cluster.key_prefix)
                .await
                .map_err(|e| {
                    let url = config_file::without_password(&cluster.redis_url);
                    anyhow::anyhow!("the shared store {url}: {e}")
                })?;
        }
        config.auth = Some(Arc::new(auth));
    }
    let suffix = match (&config.api_key, generated_api_key) {
        (Some(key), true) => format!("?api_key={key}"),
        _ => String::new(),
    };
    let tree = match tree {
        Tree::Demo => {
            let state = server::state(config, Arc::new(server::demo_catalog()?), None).await?;
            return serve(state, (&host, port), "the demo tree", started, &suffix).await;
        }
        Tree::Catalog(tree) => tree,
    };
    // A new catalog gets its root container.
    let catalog: Arc<dyn Catalog> = match &tree.database {
        CatalogDatabase::Postgres(uri) => {
            let cat =
                PostgresCatalog::connect_with(uri, 16, Some(config.statement_timeout)).await?;
            if cat.get(&[]).await?.is_none() {
                cat.load_tree(empty_root()).await?;
            }
            Arc::new(cat)
        }
        CatalogDatabase::Sqlite(path) => {
            let cat = SqliteCatalog::open(&path.display().to_string())?
                .with_statement_timeout(config.statement_timeout);
            if cat.get(&[]).await?.is_none() {
                cat.load_tree(empty_root())?;
            }
            Arc::new(cat)
        }
    };
    let storage = match &tree.writable {
        Some(writable) => {
            let storage = match writable {
                Writable::Dir(dir) => Storage::local(dir)?,
                Writable::Bucket(spec) => Storage::bucket(spec).await?,
            };
            let postgres = matches!(tree.database, CatalogDatabase::Postgres(_));
            let grace = orphan_grace.unwrap_or(if postgres { 3600.0 } else { 0.0 });
            sweep(catalog.as_ref(), &storage, grace).await?;
            Some(storage)
        }
        None => None,
    };
    let state = server::state(config, catalog, storage).await?;
    let what = format!("the catalog {}", tree.database.display());
    serve(state, (&host, port), &what, started, &suffix).await
}

/// `tessera serve config`: a Tiled config file (`loaded` from `path`), with the flags over it.
async fn serve_config(
    path: &std::path::Path,
    loaded: config_file::Loaded,
    api_key: Option<String>,
    public: bool,
    host: Option<String>,
    port: Option<u16>,
) -> anyhow::Result<()> {
    for note in &loaded.notes {
        tracing::info!("{}: {note}", path.display());
    }
    let mut service = loaded.file.service(api_key, public)?;
    service.host = host.unwrap_or(service.host);
    service.port = port.unwrap_or(service.port);
    run_service(service).await
}

/// `tessera worker`: the settings of the config file's `tessera:` section (`file`, read from
/// `--config`), flags over them.
async fn run_worker(opts: WorkerOpts, file: Option<config_file::ConfigFile>) -> anyhow::Result<()> {
    let settings = match file {
        Some(file) => {
            let at = opts
                .config
                .as_deref()
                .unwrap_or(std::path::Path::new("config"));
            // The data written to buckets is read here too.
            for spec in file.buckets() {
                tessera_common::stores::register(&spec)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", at.display()))?;
            }
            file.tessera
        }
        None => Settings::default(),
    };
    let options = tessera_worker::service::WorkerOptions {
        nats_url: opts
            .nats_url
            .or(settings.nats_url)
            .unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
        redis_url: opts
            .redis_url
            .or(settings.redis_url)
            .unwrap_or_else(|| "redis://127.0.0.1:6379/".into()),
        key_prefix: opts.key_prefix.unwrap_or(settings.key_prefix),
        threads: opts.threads.unwrap_or(settings.decode_threads),
        queue: opts.queue,
        part_bytes: settings.l2_part_bytes,
        heartbeat: std::time::Duration::from_millis(500),
        drain: seconds("--drain", opts.drain, settings.shutdown_timeout)?.duration(),
        metrics_addr: opts.metrics,
    };
    tessera_worker::service::run(options, shutdown_signal()).await
}

/// `tessera check-config`: the effective configuration, secrets masked, and what has no
/// effect.
async fn manage_users(config: &std::path::Path, action: UserAction) -> anyhow::Result<()> {
    let loaded = config_file::load(config, &|name| std::env::var(name).ok())?;
    let settings = loaded
        .file
        .service(None, false)?
        .auth
        .ok_or_else(|| anyhow::anyhow!("{}: no authentication.providers", config.display()))?;
    if settings.database.is_none() {
        anyhow::bail!(
            "{}: give a `database` section: users kept in memory would end with this command",
            config.display()
        );
    }
    let auth = tessera_api::auth::Auth::start(settings).await?;
    let failed = |e: tessera_api::error::ApiError| anyhow::anyhow!("{}", e.detail);
    match action {
        UserAction::Set { provider, username } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            let added = auth
                .set_user_password(&provider, &username, password)
                .await
                .map_err(failed)?;
            println!(
                "{} {username} at {provider}",
                if added {
                    "added"
                } else {
                    "changed the password of"
                }
            );
        }
        UserAction::Remove { provider, username } => {
            if !auth
                .remove_user(&provider, &username)
                .await
                .map_err(failed)?
            {
                anyhow::bail!("{provider} has no user {username:?}");
            }
            println!("removed {username} from {provider}");
        }
        UserAction::List { provider } => {
            let users = auth.users(&provider).await.map_err(failed)?;
            for u in users.as_array().into_iter().flatten() {
                println!("{}", u["username"].as_str().unwrap_or(""));
            }
        }
    }
    Ok(())
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let loaded = config_file::load(path, &|name| std::env::var(name).ok())?;
    // Also what start-up checks: readable directories exist.
    loaded.file.service(None, false)?;
    print!("{}", serde_norway::to_string(&loaded.file.masked())?);
    for note in &loaded.notes {
        println!("# {note}");
    }
    Ok(())
}

/// Removes from `storage` what no catalog row points at (what a crash left behind), once
/// nothing in it changed for `grace` seconds.
async fn sweep(
    catalog: &dyn tessera_api::catalog::Catalog,
    storage: &Storage,
    grace: f64,
) -> anyhow::Result<()> {
    // One node of a shared catalog sweeps at a time; the others start without waiting.
    let lock_name = ["tessera-storage-sweep".to_string(), storage.prefix()];
    let Some(_sweeping) = catalog.try_lock_data(&lock_name).await? else {
        tracing::info!("another node is sweeping the storage; not sweeping here");
        return Ok(());
    };
    let kept = catalog
        .data_uris(&storage.prefix())
        .await?
        .into_iter()
        .collect();
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs_f64(grace.max(0.0));
    let swept = storage.sweep(kept, before).await?;
    if swept != Default::default() {
        tracing::info!(
            "removed {} data locations no catalog row points at and {} staging files of \
             interrupted writes",
            swept.locations,
            swept.staging_files
        );
    }
    Ok(())
}

/// `tessera serve directory`.
async fn serve_directory(dir: DirectoryOpts, opts: ServeOpts) -> anyhow::Result<()> {
    use tessera_api::catalog::sqlite::SqliteCatalog;
    use tessera_api::directory::Indexer;
    let started = std::time::Instant::now();
    let root = dir
        .directory
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.directory.display()))?;
    if !root.is_dir() {
        anyhow::bail!("{} is not a directory", root.display());
    }
    let mut formats = tessera_common::inspect::Formats::default();
    for spec in &dir.extensions {
        let (ext, mimetype) = spec
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--ext {spec:?}: give EXT=MIMETYPE"))?;
        formats
            .set(ext, mimetype)
            .map_err(|e| anyhow::anyhow!("--ext {spec:?}: {e}"))?;
    }
    // A fresh catalog each start: the directory is the source of truth.
    let tempdir = std::env::temp_dir().join(format!("tessera-{}", uuid::Uuid::new_v4().simple()));
    let db = match &dir.catalog {
        Some(path) => {
            if path.exists() {
                std::fs::remove_file(path)?;
            }
            path.clone()
        }
        None => {
            std::fs::create_dir_all(&tempdir)?;
            tempdir.join("catalog.db")
        }
    };
    let cat = SqliteCatalog::open(&db.display().to_string())?
        .with_statement_timeout(opts.config()?.statement_timeout);
    cat.load_tree(empty_root())?;
    let catalog: Arc<dyn tessera_api::catalog::Catalog> = Arc::new(cat);
    let indexer = Indexer::new(catalog.clone(), &root, formats)?;
    let watch = dir
        .watch
        .then(|| std::time::Duration::from_secs_f64(dir.watch_interval.max(0.1)));
    let indexing = tokio::spawn(indexer.run(watch));
    // As `tiled serve directory`: a key is made up and printed unless one is given, and
    // only --public lets anonymous clients read.
    let key = dir
        .api_key
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let config = Config {
        api_key: Some(key.clone()),
        public: dir.public,
        ..opts.config()?
    };
    let state = server::state(config, catalog, None).await?;
    let suffix = format!("?api_key={key}");
    serve(
        state,
        (&opts.host, opts.port),
        &format!("the directory {}", root.display()),
        started,
        &suffix,
    )
    .await?;
    // Requests have drained: the indexer stops between files (each file's nodes are
    // written in one transaction, so none is left half-indexed).
    indexing.abort();
    let _ = indexing.await;
    let _ = std::fs::remove_dir_all(tempdir);
    Ok(())
}

/// Applies the catalog migrations `db` lacks; returns their numbers.
async fn migrate_catalog(db: &CatalogDatabase) -> anyhow::Result<Vec<i32>> {
    use tessera_api::catalog::migrate;
    Ok(match db {
        CatalogDatabase::Postgres(uri) => {
            let (mut client, conn) = tokio_postgres::connect(uri, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            migrate::migrate_postgres(&mut client).await?
        }
        CatalogDatabase::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let mut conn = rusqlite::Connection::open(path)?;
                migrate::migrate_sqlite(&mut conn)
            })
            .await??
        }
    })
}

fn report_migrated(what: &str, applied: Vec<i32>) {
    if applied.is_empty() {
        println!("{what} is up to date");
    } else {
        println!("{what}: applied migrations {applied:?}");
    }
}

/// `tessera migrate --config`: the catalog of the config's tree and its authentication
/// database, brought up to date (what a deployment runs before new nodes start).
async fn migrate_config(path: &std::path::Path) -> anyhow::Result<()> {
    let loaded = config_file::load(path, &|name| std::env::var(name).ok())?;
    let service = loaded.file.service(None, false)?;
    match &service.tree {
        Tree::Catalog(tree) => report_migrated(
            &format!("the catalog {}", tree.database.display()),
            migrate_catalog(&tree.database).await?,
        ),
        Tree::Demo => println!("the demo tree has no catalog database"),
    }
    if let Some(auth) = service.auth {
        let at = auth
            .database
            .clone()
            .map_or("memory".into(), |d| config_file::without_password(&d));
        // Starting the authentication store creates or upgrades its tables.
        tessera_api::auth::Auth::start(auth)
            .await
            .map_err(|e| anyhow::anyhow!("the authentication database ({at}): {e}"))?;
        println!("the authentication database {at} is up to date");
    }
    Ok(())
}

/// The config file a command serves or works for, if it names one.
fn config_path(command: &Command) -> Option<&std::path::Path> {
    match command {
        Command::Serve {
            what: Serve::Config { path, .. },
        } => Some(path.as_path()),
        Command::Worker { opts } => opts.config.as_deref(),
        _ => None,
    }
}

/// How this command logs and traces: the `tessera:` section of its config file, if any,
/// then `TESSERA_LOG_FORMAT`, `TESSERA_OTLP_ENDPOINT` and `TESSERA_TRACE_SAMPLE_RATIO` over
/// it (a value they cannot mean is an error, as in the file).
fn telemetry_settings(
    command: &Command,
    file: Option<&config_file::ConfigFile>,
) -> anyhow::Result<tessera_api::telemetry::TelemetrySettings> {
    let settings = file.map(|f| f.tessera.clone()).unwrap_or_default();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let log_format = match env("TESSERA_LOG_FORMAT").as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => anyhow::bail!("TESSERA_LOG_FORMAT={other:?}: give text or json"),
        None => settings.log_format,
    };
    let sample_ratio = match env("TESSERA_TRACE_SAMPLE_RATIO") {
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| {
                anyhow::anyhow!("TESSERA_TRACE_SAMPLE_RATIO={v:?}: give a fraction from 0 to 1")
            })?,
        None => settings.trace_sample_ratio,
    };
    Ok(tessera_api::telemetry::TelemetrySettings {
        log_format,
        otlp_endpoint: env("TESSERA_OTLP_ENDPOINT").or(settings.otlp_endpoint),
        sample_ratio,
        service: if matches!(command, Command::Worker { .. }) {
            "tessera-worker"
        } else {
            "tessera-api"
        },
    })
}

/// The root container of a new catalog.
fn empty_root() -> tessera_common::node::TreeNode {
    tessera_common::node::TreeNode {
        key: String::new(),
        family: tessera_common::structure::StructureFamily::Container,
        metadata: Default::default(),
        specs: Vec::new(),
        structure: None,
        source: None,
        children: Vec::new(),
        inline_contents: false,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Read once: its `tessera:` section also says how to log and trace.
    let loaded = config_path(&cli.command)
        .map(|p| config_file::load(p, &|name| std::env::var(name).ok()))
        .transpose()?;
    let file = loaded.as_ref().map(|l| &l.file);
    let telemetry = tessera_api::telemetry::init(&telemetry_settings(&cli.command, file)?)?;
    let result = run(cli.command, loaded).await;
    // What the trace exporter still holds is sent before the process ends.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result
}

/// Runs `command`; `loaded` is its config file, read already (see [`config_path`]).
async fn run(command: Command, loaded: Option<config_file::Loaded>) -> anyhow::Result<()> {
    match command {
        Command::Migrate { database, config } => match (database, config) {
            (Some(database), _) => {
                let db = CatalogDatabase::parse(&database).map_err(anyhow::Error::msg)?;
                report_migrated("the catalog", migrate_catalog(&db).await?);
            }
            (None, Some(path)) => migrate_config(&path).await?,
            (None, None) => anyhow::bail!("give a catalog database or --config"),
        },
        Command::Index { database, keys } => {
            let cat =
                tessera_api::catalog::postgres::PostgresCatalog::connect(&database, 1).await?;
            for key in keys {
                let name = cat.index_key(&key).await?;
                println!("{key}: index {name}");
            }
        }
        Command::Facet { database, keys } => {
            let cat =
                tessera_api::catalog::postgres::PostgresCatalog::connect(&database, 1).await?;
            for key in keys {
                let n = cat.facet_key(&key).await?;
                println!("{key}: counting values ({n} container/value pairs so far)");
            }
        }
        Command::Serve {
            what: Serve::Directory { dir, opts },
        } => serve_directory(dir, opts).await?,
        Command::Serve {
            what: Serve::Demo { opts },
        } => {
            let service = Service {
                auth: None,
                tree: Tree::Demo,
                config: opts.config()?,
                generated_api_key: false,
                host: opts.host.clone(),
                port: opts.port,
                orphan_grace: None,
            };
            run_service(service).await?;
        }
        Command::Serve {
            what:
                Serve::Config {
                    path,
                    public,
                    api_key,
                    host,
                    port,
                },
        } => {
            let loaded = loaded.ok_or_else(|| anyhow::anyhow!("{}: not read", path.display()))?;
            serve_config(&path, loaded, api_key, public, host, port).await?
        }
        Command::CheckConfig { path } => check_config(&path)?,
        Command::Serve {
            what: Serve::Catalog { catalog, opts },
        } => serve_catalog(catalog, opts).await?,
        Command::Worker { opts } => run_worker(opts, loaded.map(|l| l.file)).await?,
        Command::User { config, action } => manage_users(&config, action).await?,
        Command::Register {
            url,
            path,
            prefix,
            api_key,
        } => {
            let summary =
                tessera_api::register_client::register(&url, &path, &prefix, api_key.as_deref())
                    .await?;
            println!("{summary}");
        }
    }
    Ok(())
}
