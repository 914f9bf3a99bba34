//! Arrays stored as Zarr v3 through `object_store` (a local directory by default; any store
//! object_store reaches is configuration). Writes go through zarrs, which splits a region into
//! chunk puts (each put is atomic in the store); reads decode exactly the block asked for.
//!
//! Numeric types are stored as Zarr's own types (little-endian, zstd), so zarr-python and
//! other Zarr readers see proper arrays. Types Zarr v3 has no core type for (datetimes,
//! fixed-width strings and bytes, big-endian numbers) are stored as raw bits of the same width:
//! bit-exact for tessera and Tiled clients, opaque bytes to other Zarr readers.

use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use serde_json::{Value, json};
use zarrs::array::{Array, ArrayBytes, ArrayMetadata, ArraySubset};
use zarrs_object_store::AsyncObjectStore;

use super::{Adapter, AdapterError, ArrayReader, DataSource};
use crate::array::ArrayData;
use crate::chunks::ChunkGrid;
use crate::dtype::{DataType, Endianness, Kind};
use crate::structure::ArrayStructure;

/// The mimetype of data sources kept in Zarr.
pub const MIMETYPE: &str = "application/x-zarr";

type Store = AsyncObjectStore<Arc<dyn ObjectStore>>;

/// The object store holding `uri` and the array's path inside it.
///
/// `file://localhost/abs/dir` and `file:///abs/dir` name a local directory; other locations
/// are in the buckets this process registered (see [`crate::stores`]).
pub fn locate(uri: &str) -> Result<(Arc<Store>, String), AdapterError> {
    let (store, path) = crate::stores::locate(uri)?;
    Ok((Arc::new(AsyncObjectStore::new(store)), format!("/{path}")))
}

/// The Zarr data type name and fill value for a Tiled data type.
fn zarr_type(dtype: &DataType) -> (String, Value) {
    let raw = |size: usize| (format!("r{}", size * 8), json!(vec![0; size]));
    let DataType::Builtin(b) = dtype else {
        return raw(dtype.itemsize());
    };
    if b.endianness == Endianness::Big && b.itemsize > 1 {
        return raw(b.itemsize);
    }
    let name = match (b.kind, b.itemsize) {
        (Kind::Bool, 1) => return ("bool".into(), json!(false)),
        (Kind::Int, n @ (1 | 2 | 4 | 8)) => format!("int{}", n * 8),
        (Kind::UInt, n @ (1 | 2 | 4 | 8)) => format!("uint{}", n * 8),
        (Kind::Float, n @ (2 | 4 | 8)) => format!("float{}", n * 8),
        (Kind::Complex, 8) => return ("complex64".into(), json!([0.0, 0.0])),
        (Kind::Complex, 16) => return ("complex128".into(), json!([0.0, 0.0])),
        _ => return raw(b.itemsize),
    };
    let fill = if b.kind == Kind::Float {
        json!(0.0)
    } else {
        json!(0)
    };
    (name, fill)
}

/// Checks that a structure can be stored: its chunks tile the shape, and they are regular
/// (all equal along each axis but a smaller last one), as Zarr's chunk grid requires.
pub fn validate(s: &ArrayStructure) -> Result<(), AdapterError> {
    ChunkGrid::new(&s.shape, s.chunks.clone())
        .map_err(|e| AdapterError::BadSource(e.to_string()))?;
    for (axis, c) in s.chunks.iter().enumerate() {
        let first = c.first().copied().unwrap_or(0);
        let regular =
            c.iter().rev().skip(1).all(|&x| x == first) && c.last().is_none_or(|&l| l <= first);
        if !regular {
            return Err(AdapterError::BadSource(format!(
                "chunks {c:?} along axis {axis} are not regular: every chunk but the last must \
                 have the same size, and the last may only be smaller"
            )));
        }
    }
    if let Some(dims) = &s.dims
        && dims.len() != s.shape.len()
    {
        return Err(AdapterError::BadSource(format!(
            "{} dims given for a {}-dimensional array",
            dims.len(),
            s.shape.len()
        )));
    }
    Ok(())
}

/// The Zarr v3 array metadata (`zarr.json`) for a structure.
pub fn metadata(s: &ArrayStructure) -> Result<ArrayMetadata, AdapterError> {
    validate(s)?;
    let chunk_shape: Vec<usize> = s
        .chunks
        .iter()
        .map(|c| c.first().copied().unwrap_or(1).max(1))
        .collect();
    let (data_type, fill_value) = zarr_type(&s.data_type);
    let doc = json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": s.shape,
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunk_shape}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_value,
        "codecs": [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "zstd", "configuration": {"level": 1, "checksum": false}},
        ],
        "attributes": {},
        "dimension_names": s.dims,
    });
    serde_json::from_value(doc).map_err(|e| AdapterError::BadSource(format!("zarr metadata: {e}")))
}

fn array(uri: &str, s: &ArrayStructure) -> Result<Array<Store>, AdapterError> {
    let (store, path) = locate(uri)?;
    Array::new_with_metadata(store, &path, metadata(s)?)
        .map_err(|e| AdapterError::BadSource(format!("zarr array at {uri}: {e}")))
}

/// Creates an empty array (every element the fill value) at `uri`.
pub async fn create(uri: &str, s: &ArrayStructure) -> Result<(), AdapterError> {
    array(uri, s)?
        .async_store_metadata()
        .await
        .map_err(|e| AdapterError::Read(format!("writing zarr metadata at {uri}: {e}")))
}

/// Writes the C-order `bytes` of the region at `start` with `shape`.
pub async fn write_region(
    uri: &str,
    s: &ArrayStructure,
    start: &[usize],
    shape: &[usize],
    bytes: Bytes,
) -> Result<(), AdapterError> {
    let a = array(uri, s)?;
    let subset = region(start, shape)?;
    let uri = uri.to_string();
    // Encoding the chunks is CPU work: it runs on the blocking pool, borrowing the body
    // rather than copying it.
    let handle = super::runtime()?;
    tokio::task::spawn_blocking(move || {
        handle
            .block_on(a.async_store_array_subset(&subset, ArrayBytes::new_flen(&bytes[..])))
            .map_err(|e| AdapterError::Read(format!("writing zarr data at {uri}: {e}")))
    })
    .await
    .map_err(|e| AdapterError::Read(format!("writing zarr data: {e}")))?
}

/// Reads the C-order bytes of the region at `start` with `shape`.
pub async fn read_region(
    uri: &str,
    s: &ArrayStructure,
    start: &[usize],
    shape: &[usize],
) -> Result<Vec<u8>, AdapterError> {
    let a = array(uri, s)?;
    let subset = region(start, shape)?;
    let bytes: ArrayBytes<'static> = a
        .async_retrieve_array_subset(&subset)
        .await
        .map_err(|e| AdapterError::Read(format!("reading zarr data at {uri}: {e}")))?;
    bytes
        .into_fixed()
        .map(|b| b.into_owned())
        .map_err(|e| AdapterError::Read(format!("zarr data at {uri}: {e}")))
}

fn region(start: &[usize], shape: &[usize]) -> Result<ArraySubset, AdapterError> {
    let start: Vec<u64> = start.iter().map(|&x| x as u64).collect();
    let shape: Vec<u64> = shape.iter().map(|&x| x as u64).collect();
    ArraySubset::new_with_start_shape(start, shape)
        .map_err(|e| AdapterError::BadSource(format!("region: {e}")))
}

/// Reads blocks of a Zarr array written by tessera. The read path hands the node's structure
/// in the data source's parameters (`structure`, see [`super::with_structure`]), so no metadata read
/// is needed and an array that grew gets a new reader.
struct ZarrReader {
    uri: String,
    structure: ArrayStructure,
    grid: ChunkGrid,
    handle: tokio::runtime::Handle,
}

impl ArrayReader for ZarrReader {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        let (start, shape) = super::block_region(&self.grid, block)?;
        let bytes =
            self.handle
                .block_on(read_region(&self.uri, &self.structure, &start, &shape))?;
        Ok(ArrayData::new(
            self.structure.data_type.clone(),
            shape,
            bytes,
        ))
    }
}

/// Reads blocks of a Zarr v2 or v3 array that tessera did not write (a registered store): the
/// array's own metadata (codecs, chunk grid, sharding) is read once, on the first block.
struct ExternalReader {
    uri: String,
    structure: ArrayStructure,
    grid: ChunkGrid,
    array: tokio::sync::OnceCell<Array<Store>>,
    handle: tokio::runtime::Handle,
}

impl ArrayReader for ExternalReader {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        let (start, shape) = super::block_region(&self.grid, block)?;
        let uri = &self.uri;
        let name = super::shown_uri(uri);
        let mut bytes = self.handle.block_on(async {
            let a = self
                .array
                .get_or_try_init(|| async {
                    let (store, path) = locate(uri)?;
                    Array::async_open(store, &path).await.map_err(|e| {
                        AdapterError::Corrupt(format!("{name}: not a readable Zarr array ({e})"))
                    })
                })
                .await?;
            if a.shape()
                != self
                    .structure
                    .shape
                    .iter()
                    .map(|&n| n as u64)
                    .collect::<Vec<_>>()
            {
                return Err(AdapterError::BadSource(format!(
                    "{name}: the array has shape {:?} but the node declares {:?}",
                    a.shape(),
                    self.structure.shape
                )));
            }
            let subset = region(&start, &shape)?;
            let itemsize = self.structure.data_type.itemsize();
            check_stored_chunks(a, &subset, itemsize).map_err(|e| match e {
                AdapterError::Corrupt(m) => AdapterError::Corrupt(format!("{name}: {m}")),
                AdapterError::Outside(m) => AdapterError::Outside(format!("{name}: {m}")),
                other => other,
            })?;
            let bytes: ArrayBytes<'static> = a
                .async_retrieve_array_subset(&subset)
                .await
                .map_err(|e| AdapterError::Corrupt(format!("{name}: cannot be decoded ({e})")))?;
            bytes
                .into_fixed()
                .map(|b| b.into_owned())
                .map_err(|e| AdapterError::BadSource(format!("{name}: {e}")))
        })?;
        if bytes.len() != shape.iter().product::<usize>() * self.structure.data_type.itemsize() {
            return Err(AdapterError::BadSource(format!(
                "{name}: the array's elements are not {} as the node declares",
                self.structure
                    .data_type
                    .builtin()
                    .map_or("structured".into(), |b| b.numpy_str())
            )));
        }
        super::to_declared_order(&self.structure.data_type, &mut bytes);
        Ok(ArrayData::new(
            self.structure.data_type.clone(),
            shape,
            bytes,
        ))
    }
}

/// The codec a registered array's chunks were last encoded with (the first one decoding
/// meets), and whether a checksum codec (crc32c, 4 bytes at the end) wraps it; `None` for
/// sharded arrays (their inner chunks are indexed inside the shard).
fn outer_codec(a: &Array<Store>) -> Option<(String, bool)> {
    let meta = serde_json::to_value(a.metadata()).ok()?;
    if let Some(codecs) = meta["codecs"].as_array() {
        let names: Vec<&str> = codecs.iter().filter_map(|c| c["name"].as_str()).collect();
        if names.contains(&"sharding_indexed") {
            return None;
        }
        let mut rest = names.iter().rev();
        return match rest.next() {
            Some(&"crc32c") => rest.next().map(|n| (n.to_string(), true)),
            Some(n) => Some((n.to_string(), false)),
            None => None,
        };
    }
    meta["compressor"]["id"]
        .as_str()
        .map(|id| (id.to_string(), false))
}

/// Checks the stored chunks a subset needs before zarrs decodes them: each chunk file must
/// lie in the array's directory (a symlink out of it is refused), and must not decode to more
/// than its shape holds (see [`super::codec_bounds`]).
fn check_stored_chunks(
    a: &Array<Store>,
    subset: &ArraySubset,
    itemsize: usize,
) -> Result<(), AdapterError> {
    let array_dir =
        std::path::PathBuf::from(format!("/{}", a.path().as_str().trim_start_matches('/')));
    let real_dir = array_dir
        .canonicalize()
        .map_err(|e| AdapterError::BadSource(format!("the array cannot be resolved ({e})")))?;
    let codec = outer_codec(a);
    let Ok(Some(chunks)) = a.chunks_in_array_subset(subset) else {
        return Ok(());
    };
    for idx in &chunks.indices() {
        let key = a.chunk_key(&idx);
        let file = std::path::PathBuf::from(format!("/{}", key.as_str()));
        let Ok(real) = file.canonicalize() else {
            continue; // never written: the fill value
        };
        if !real.starts_with(&real_dir) {
            return Err(AdapterError::Outside(format!(
                "chunk {idx:?} is a symlink that leads out of the array's directory"
            )));
        }
        let Some((name, crc)) = &codec else {
            continue;
        };
        let decoded = a
            .chunk_shape(&idx)
            .ok()
            .and_then(|s| {
                s.iter()
                    .try_fold(itemsize as u64, |n, d| n.checked_mul(d.get()))
            })
            .unwrap_or(u64::MAX);
        let len = real.metadata().map_or(0, |m| m.len());
        if len > decoded.saturating_mul(2).saturating_add(1 << 20) {
            return Err(AdapterError::Corrupt(format!(
                "chunk {idx:?} is stored in {len} bytes, far more than the {decoded} it holds"
            )));
        }
        let stored =
            std::fs::read(&real).map_err(|e| AdapterError::Read(format!("chunk {idx:?}: {e}")))?;
        let body = if *crc {
            &stored[..stored.len().saturating_sub(4)]
        } else {
            &stored[..]
        };
        super::codec_bounds::check(name, body, decoded)
            .map_err(|e| AdapterError::Corrupt(format!("chunk {idx:?}: {e}")))?;
    }
    Ok(())
}

/// Opens a Zarr data source (its first asset is the array's location). Arrays tessera wrote
/// are read with the metadata their structure implies; registered arrays with their own.
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let structure: ArrayStructure = super::structure_of(source)?;
    let grid = ChunkGrid::new(&structure.shape, structure.chunks.clone())
        .map_err(|e| AdapterError::BadSource(e.to_string()))?;
    let uri = super::first_asset(source)?;
    let handle = super::runtime()?;
    if source.management == super::Management::External {
        return Ok(Adapter::Array(Arc::new(ExternalReader {
            uri,
            structure,
            grid,
            array: tokio::sync::OnceCell::new(),
            handle,
        })));
    }
    Ok(Adapter::Array(Arc::new(ZarrReader {
        uri,
        structure,
        grid,
        handle,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::BuiltinDType;

    fn structure(
        kind: Kind,
        itemsize: usize,
        shape: Vec<usize>,
        chunks: Vec<Vec<usize>>,
    ) -> ArrayStructure {
        ArrayStructure {
            data_type: DataType::Builtin(BuiltinDType::new(kind, itemsize)),
            chunks,
            shape,
            dims: None,
            resizable: false,
        }
    }

    #[test]
    fn only_regular_chunk_grids_are_stored() {
        assert!(validate(&structure(Kind::Float, 8, vec![7], vec![vec![3, 3, 1]])).is_ok());
        let irregular = validate(&structure(Kind::Float, 8, vec![5], vec![vec![2, 3]]));
        assert!(irregular.unwrap_err().to_string().contains("not regular"));
        let short = validate(&structure(Kind::Float, 8, vec![5], vec![vec![2, 2]]));
        assert!(short.is_err(), "chunks must cover the shape");
    }

    #[test]
    fn numeric_types_are_zarr_types_and_others_raw_bits() {
        let name = |kind, size| zarr_type(&DataType::Builtin(BuiltinDType::new(kind, size))).0;
        assert_eq!(name(Kind::Float, 8), "float64");
        assert_eq!(name(Kind::UInt, 2), "uint16");
        assert_eq!(name(Kind::Complex, 16), "complex128");
        assert_eq!(name(Kind::Unicode, 12), "r96");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regions_round_trip_and_unwritten_chunks_read_as_zero() {
        let dir = std::env::temp_dir().join(format!("tessera-zarr-{}", std::process::id()));
        let uri = format!("file://localhost{}/a.zarr", dir.display());
        let s = structure(Kind::Int, 4, vec![5, 4], vec![vec![2, 2, 1], vec![4]]);
        create(&uri, &s).await.unwrap();
        let block: Vec<u8> = (0..8i32).flat_map(|v| v.to_le_bytes()).collect();
        write_region(&uri, &s, &[2, 0], &[2, 4], Bytes::from(block.clone()))
            .await
            .unwrap();
        assert_eq!(
            read_region(&uri, &s, &[2, 0], &[2, 4]).await.unwrap(),
            block
        );
        assert_eq!(
            read_region(&uri, &s, &[0, 0], &[2, 4]).await.unwrap(),
            vec![0; 32]
        );
        // The last, partial block reads at its own size.
        assert_eq!(
            read_region(&uri, &s, &[4, 0], &[1, 4]).await.unwrap().len(),
            16
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
