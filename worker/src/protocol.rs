//! What API nodes and workers say over NATS. A job request goes to the subject
//! `<prefix>.jobs`, taken by one worker of the queue group `<prefix>.workers`, with the reply
//! subject of the asking node. The worker answers there: `accepted` at once, `working` every
//! heartbeat while it waits for a slot or decodes, then one of `done` (the result is in the
//! shared store under `key`), `failed` (the data cannot be read: the error to give the
//! client), `busy` (its queue is full: ask another), `expired` (the deadline passed before
//! it started) or `error`. A node that hears nothing for its timeout sends the job again.

use serde::{Deserialize, Serialize};
use tessera_common::adapters::AdapterError;
use tessera_common::jobs::Job;

/// The NATS header carrying a job's deadline, in milliseconds since the Unix epoch.
pub const DEADLINE_HEADER: &str = "Tessera-Deadline";

/// The subject jobs are sent to.
pub fn jobs_subject(prefix: &str) -> String {
    format!("{prefix}.jobs")
}

/// The queue group of the workers.
pub fn queue_group(prefix: &str) -> String {
    format!("{prefix}.workers")
}

/// A job and where its result goes.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobRequest {
    pub job: Job,
    /// The shared-store key the worker writes the result under.
    pub store_as: String,
    /// How long the result stays in the shared store, in milliseconds.
    pub ttl_ms: u64,
}

/// A worker's answer to a job (several per job: see the module's documentation).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Accepted,
    Working,
    Done { key: String, len: u64 },
    Failed { error: AdapterError },
    Busy,
    Expired,
    Error { detail: String },
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
