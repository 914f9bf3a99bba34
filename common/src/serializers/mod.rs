//! Encoders from in-memory structures to the media types Tiled serves: arrays (octet-stream,
//! JSON, CSV, PNG, TIFF, HTML), tables (Arrow IPC file, Parquet, CSV, JSON, JSON-seq, XLSX,
//! HTML), sparse arrays (as tables of coordinates), stored zips, HDF5 and NetCDF files.

pub mod array;
pub mod hdf5;
pub mod netcdf;
pub mod sparse;
pub mod table;
pub mod text;
pub mod zip;

/// Raw C-order bytes (arrays' default).
pub const OCTET_STREAM: &str = "application/octet-stream";
/// JSON documents and array/table values.
pub const JSON: &str = "application/json";
/// Comma-separated values.
pub const CSV: &str = "text/csv";
/// Plain text (Tiled serves CSV under it).
pub const TEXT_PLAIN: &str = "text/plain";
/// PNG images.
pub const PNG: &str = "image/png";
/// TIFF images.
pub const TIFF: &str = "image/tiff";
/// HTML pages and tables.
pub const HTML: &str = "text/html";
/// Arrow IPC file (random-access) format: tables' and sparse arrays' default.
pub const ARROW_FILE: &str = "application/vnd.apache.arrow.file";
/// Parquet (Tiled's unofficial type).
pub const PARQUET: &str = "application/x-parquet";
/// Excel workbooks.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
/// RFC 7464 JSON text sequences.
pub const JSON_SEQ: &str = "application/json-seq";
/// HDF5 files (containers' default).
pub const HDF5: &str = "application/x-hdf5";
/// NetCDF files (Tiled offers them for xarray datasets; tessera for arrays and containers too).
pub const NETCDF: &str = "application/x-netcdf";
/// Zip archives (awkward and ragged buffers).
pub const ZIP: &str = "application/zip";

/// Why a structure could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum SerializeError {
    /// The format cannot represent this structure (e.g. CSV of a 3-D array): a 406.
    #[error("{media_type} is not available for this data: {reason}")]
    Unsupported { media_type: String, reason: String },
    /// The encoder failed on data it should handle (a bug or an I/O failure): a 500.
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
