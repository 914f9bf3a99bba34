//! `tessera worker`: takes jobs from the NATS queue group, runs them on a bounded pool and
//! leaves the results in the shared store (see [`crate::protocol`] for the conversation).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, Message};
use bytes::Bytes;
use futures::StreamExt;
use tessera_common::adapters::AdapterError;
use tessera_common::jobs::Work;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::exec::Executor;
use crate::metrics;
use crate::protocol::{self, DEADLINE_HEADER, JobRequest, Reply};
use crate::store::SharedStore;

/// How a worker connects and how much it takes on.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub nats_url: String,
    pub redis_url: String,
    /// Prefix of the NATS subjects and Redis keys of this cluster.
    pub key_prefix: String,
    /// Jobs decoded at once.
    pub threads: usize,
    /// Jobs held beyond those decoding; more are answered `busy` (the node asks another
    /// worker).
    pub queue: usize,
    /// Results larger than this go to the shared store in parts.
    pub part_bytes: usize,
    /// How often a held job says it is still alive.
    pub heartbeat: Duration,
    /// How long in-flight jobs may take to finish at shutdown.
    pub drain: Duration,
    /// Where `/metrics` is served (none if `None`).
    pub metrics_addr: Option<SocketAddr>,
}

/// Why a job produced no result.
enum JobFailure {
    Adapter(AdapterError),
    Expired,
}

impl From<AdapterError> for JobFailure {
    fn from(e: AdapterError) -> Self {
        JobFailure::Adapter(e)
    }
}

/// What the worker shares between its jobs.
struct Worker {
    nats: Client,
    store: SharedStore,
    exec: Executor,
    held: AtomicUsize,
    limit: usize,
    heartbeat: Duration,
}

/// Runs a worker until `shutdown` resolves, then stops taking jobs and lets those it holds
/// finish (within `drain`).
pub async fn run(opts: WorkerOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let nats = async_nats::ConnectOptions::new()
        .name("tessera-worker")
        .retry_on_initial_connect()
        .connect(opts.nats_url.as_str())
        .await?;
    let store = SharedStore::connect(&opts.redis_url, opts.part_bytes).await?;
    let worker = Arc::new(Worker {
        nats: nats.clone(),
        store,
        exec: Executor::new(opts.threads),
        held: AtomicUsize::new(0),
        limit: opts.threads.max(1) + opts.queue,
        heartbeat: opts.heartbeat,
    });
    // Ready while connected to NATS and taking jobs.
    let ready = Arc::new(Readiness {
        nats: nats.clone(),
        taking: AtomicBool::new(false),
    });
    if let Some(addr) = opts.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(
            "worker metrics at http://{}/metrics",
            listener.local_addr()?
        );
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(|| async { metrics::render() }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route(
                "/readyz",
                axum::routing::get(readyz).with_state(ready.clone()),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let mut jobs = nats
        .queue_subscribe(
            protocol::jobs_subject(&opts.key_prefix),
            protocol::queue_group(&opts.key_prefix),
        )
        .await?;
    // The subscription is registered with the server before the worker says it is ready.
    nats.flush().await?;
    tracing::info!(
        "tessera worker taking jobs from {} ({} at once, {} queued)",
        protocol::jobs_subject(&opts.key_prefix),
        opts.threads,
        opts.queue
    );
    let mut tasks = JoinSet::new();
    ready.taking.store(true, Ordering::SeqCst);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            msg = jobs.next() => match msg {
                Some(msg) => {
                    let span = tracing::info_span!(
                        "worker.job",
                        otel.kind = "consumer",
                        job.kind = tracing::field::Empty,
                        job.outcome = tracing::field::Empty,
                    );
                    crate::trace::continue_trace(&span, msg.headers.as_ref());
                    tasks.spawn(worker.clone().take(msg).instrument(span));
                }
                None => break,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    ready.taking.store(false, Ordering::SeqCst);
    let _ = jobs.unsubscribe().await;
    tracing::info!("worker stopping: finishing {} jobs", tasks.len());
    let _ = tokio::time::timeout(opts.drain, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let _ = nats.flush().await;
    Ok(())
}

/// What a worker's `/readyz` looks at.
struct Readiness {
    nats: async_nats::Client,
    /// Subscribed and not draining.
    taking: AtomicBool,
}

/// `GET /readyz` of a worker: 200 while it takes jobs from a connected NATS, else 503.
async fn readyz(
    axum::extract::State(ready): axum::extract::State<Arc<Readiness>>,
) -> (axum::http::StatusCode, String) {
    let connected = ready.nats.connection_state() == async_nats::connection::State::Connected;
    match (ready.taking.load(Ordering::SeqCst), connected) {
        (true, true) => (axum::http::StatusCode::OK, "ready".into()),
        (false, _) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not taking jobs (starting or draining)".into(),
        ),
        (true, false) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "NATS is not connected".into(),
        ),
    }
}

impl Worker {
    /// Answers `to` with `reply`.
    async fn say(&self, to: &async_nats::Subject, reply: &Reply) {
        // Serializing the reply enum cannot fail; a lost reply shows as a timeout.
        let payload = serde_json::to_vec(reply).unwrap_or_default();
        if let Err(e) = self.nats.publish(to.clone(), Bytes::from(payload)).await {
            tracing::warn!("a job reply was not sent: {e}");
        }
    }

    /// Takes one job message: refuses it when full, drops it when its deadline passed, else
    /// runs it with a heartbeat.
    async fn take(self: Arc<Self>, msg: Message) {
        let Some(to) = msg.reply.clone() else {
            return;
        };
        let started = Instant::now();
        let request: JobRequest = match serde_json::from_slice(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                metrics::WORKER_JOBS
                    .with_label_values(&["unknown", "error"])
                    .inc();
                let detail = format!("the job is not understood: {e}");
                self.say(&to, &Reply::Error { detail }).await;
                return;
            }
        };
        let kind = match request.job.work {
            Work::Block(_) => "block",
            Work::Partition(_) => "partition",
            Work::Encode { .. } => "encode",
            Work::Columns { .. } => "columns",
            Work::SparseBlock(_) => "sparse",
            Work::Awkward(_) => "awkward",
            Work::Ragged => "ragged",
            Work::ExportTable(_) => "export",
        };
        tracing::Span::current().record("job.kind", kind);
        let count = |outcome: &str| {
            tracing::Span::current().record("job.outcome", outcome);
            metrics::WORKER_JOBS
                .with_label_values(&[kind, outcome])
                .inc();
        };
        let deadline = deadline_of(msg.headers.as_ref());
        if deadline.is_some_and(|d| protocol::now_ms() >= d) {
            count("expired");
            self.say(&to, &Reply::Expired).await;
            return;
        }
        if self.held.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.held.fetch_sub(1, Ordering::SeqCst);
            count("busy");
            self.say(&to, &Reply::Busy).await;
            return;
        }
        metrics::WORKER_JOBS_HELD.inc();
        self.say(&to, &Reply::Accepted).await;
        let work = self
            .exec
            .run(&request.job, move || match deadline {
                Some(d) if protocol::now_ms() >= d => Err(JobFailure::Expired),
                _ => Ok(()),
            })
            .instrument(tracing::info_span!("decode"));
        tokio::pin!(work);
        let mut beat = tokio::time::interval(self.heartbeat);
        beat.tick().await;
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = beat.tick() => self.say(&to, &Reply::Working).await,
            }
        };
        let reply = match result {
            Ok(bytes) => {
                let ttl = Duration::from_millis(request.ttl_ms);
                let stored = self.store.put(&request.store_as, &bytes, ttl);
                tokio::pin!(stored);
                // Storing a large result takes a while too: keep saying so.
                let stored = loop {
                    tokio::select! {
                        r = &mut stored => break r,
                        _ = beat.tick() => self.say(&to, &Reply::Working).await,
                    }
                };
                match stored {
                    Ok(()) => {
                        count("done");
                        Reply::Done {
                            key: request.store_as.clone(),
                            len: bytes.len() as u64,
                        }
                    }
                    Err(e) => {
                        count("error");
                        Reply::Error {
                            detail: format!("the shared store refused the result: {e}"),
                        }
                    }
                }
            }
            Err(JobFailure::Adapter(error)) => {
                count("failed");
                Reply::Failed { error }
            }
            Err(JobFailure::Expired) => {
                count("expired");
                Reply::Expired
            }
        };
        self.say(&to, &reply).await;
        self.held.fetch_sub(1, Ordering::SeqCst);
        metrics::WORKER_JOBS_HELD.dec();
        metrics::WORKER_JOB_SECONDS
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// The deadline a job carries in its headers.
fn deadline_of(headers: Option<&HeaderMap>) -> Option<u64> {
    headers?.get(DEADLINE_HEADER)?.as_str().parse().ok()
}
