//! tessera's HTTP service: Tiled's API v1 over the data model in `tessera-common`. The read
//! path runs route -> catalog -> planner -> cache -> dispatcher (decode) -> encode -> respond.

pub mod admission;
pub mod auth;
pub mod awkward;
pub mod blosc;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod config_file;
pub mod directory;
pub mod dispatch;
pub mod encode;
pub mod error;
pub mod health;
pub mod metrics;
pub mod negotiate;
pub mod params;
pub mod planner;
pub mod register_client;
pub mod remote;
pub mod resource;
pub mod respond;
pub mod routes;
pub mod server;
pub mod state;
pub mod storage;
pub mod telemetry;

/// The version reported as `library_version` (PEP 440, as the client parses it).
pub const LIBRARY_VERSION: &str = "0.2.20";
