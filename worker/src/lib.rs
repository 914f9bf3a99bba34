//! tessera's decode jobs, in-process and over NATS.
//!
//! [`exec::Executor`] runs jobs against data sources on a bounded blocking pool, keeping opened
//! adapters; API nodes use it to decode inline. [`service`] is `tessera worker`: it takes jobs
//! from a NATS queue group, runs them with the same executor and leaves the results in the
//! shared store ([`store::SharedStore`], Redis), replying with their key and size: chunk bytes
//! never travel through NATS. [`protocol`] is what the two sides say to each other.

pub mod exec;
pub mod metrics;
pub mod protocol;
pub mod service;
pub mod store;
pub mod trace;
