//! tessera's data model, shared by the API nodes and the workers: structures and dtypes,
//! slicing and chunk grids, the demo tree's data, and the serializers for every media type.
//! Nothing here knows about HTTP, SQL, Redis or NATS.

pub mod adapters;
pub mod array;
pub mod chunks;
pub mod dtype;
pub mod inspect;
pub mod jobs;
pub mod node;
pub mod rng;
pub mod serializers;
pub mod slicing;
pub mod stores;
pub mod structure;
