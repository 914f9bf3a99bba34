//! Encoders from in-memory structures to the media types Tiled serves: arrays (octet-stream,
//! JSON, CSV, PNG, TIFF, HTML), tables (Arrow IPC file, Parquet, CSV, JSON, JSON-seq, XLSX,
//! HTML), sparse arrays (as tables of coordinates), stored zips and HDF5 files.

pub mod array;
pub mod hdf5;
pub mod sparse;
pub mod table;
pub mod text;
pub mod zip;

/// Why a structure could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum SerializeError {
    /// The format cannot represent this structure (e.g. CSV of a 3-D array): a 406.
    #[error("{media_type} is not available for this data: {reason}")]
    Unsupported { media_type: String, reason: String },
    /// The encoder failed on data it should handle (a bug or an I/O failure).
    #[error("encoding failed: {0}")]
    Encode(String),
}

impl SerializeError {
    /// An `Unsupported` error.
    pub fn unsupported(media_type: &str, reason: impl Into<String>) -> Self {
        SerializeError::Unsupported {
            media_type: media_type.to_string(),
            reason: reason.into(),
        }
    }

    /// Wraps any encoder failure.
    pub fn encode(e: impl std::fmt::Display) -> Self {
        SerializeError::Encode(e.to_string())
    }
}
