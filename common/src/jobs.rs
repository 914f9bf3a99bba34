//! Decode jobs and the content keys of their results. An API node asks for a job's result by
//! its key in the chunk cache; on a miss the job runs in-process or on a worker, which needs
//! nothing but the job itself (the data source travels with it, the catalog is never read).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::adapters::{Adapter, AdapterError, ArrayReader, DataSource, SparseBlock, TableReader};
use crate::array::ArrayData;
use crate::chunks::{Assembler, ChunkGrid};
use crate::slicing::Selection;
use crate::structure::ArrayStructure;

/// A collision-proof identity of a data source: the BLAKE3 hash of its description (format,
/// parameters, locations of every asset). A cache shared by a whole facility holds chunks of
/// millions of sources; a 64-bit hash would let two of them meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId([u8; 32]);

impl SourceId {
    /// The identity of `source`.
    pub fn of(source: &DataSource) -> SourceId {
        // Serializing a plain struct of strings, numbers and maps cannot fail.
        let json = serde_json::to_vec(source).unwrap_or_default();
        SourceId(*blake3::hash(&json).as_bytes())
    }

    /// The first 16 bytes, for ETags (which also carry the data version and the selection).
    pub fn short(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.0[..16]);
        b
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// What a job produces from its data source.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// The bytes of one native block of an array, C order, as its dtype lays them out.
    Block(Vec<usize>),
    /// One partition of a table, all columns, as an Arrow IPC file.
    Partition(usize),
    /// A selection of an array encoded as a media type (see
    /// [`crate::serializers::array::encode`]): the blocks it touches are decoded, assembled
    /// and encoded in one job, so a heavy image encode runs where the decoding runs.
    Encode { selection: Selection, media: String },
    /// Some columns of one partition of a table, as an Arrow IPC file.
    Columns {
        partition: usize,
        columns: Vec<String>,
    },
    /// One block of a sparse array: its points (see [`sparse_block_bytes`]).
    SparseBlock(Vec<usize>),
    /// Awkward buffers by form key (all of them for none; see [`named_buffers_bytes`]).
    Awkward(Vec<String>),
    /// A whole ragged array: offsets and values (see [`ragged_bytes`]).
    Ragged,
    /// Partitions of a table encoded as one response (see [`TableExport`]).
    ExportTable(TableExport),
}

/// Partitions of a table (some `columns`, with the index; all for `None`) encoded as `media`
/// (see [`crate::serializers::table::encode`]); refused once the kept batches pass `limit`
/// bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableExport {
    pub partitions: Vec<usize>,
    pub columns: Option<Vec<String>>,
    pub media: String,
    pub csv_header: bool,
    pub limit: u64,
}

/// One unit of decoding: a data source, the version of its data, and what to read from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub source: Arc<DataSource>,
    pub data_version: u64,
    pub work: Work,
}

/// The key of a job's result: equal keys have equal bytes, whichever node produced them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    pub source: SourceId,
    pub data_version: u64,
    pub work: Work,
}

impl ChunkKey {
    /// The key of `job`'s result, `source` being the identity of `job.source`.
    pub fn of(source: SourceId, job: &Job) -> ChunkKey {
        ChunkKey {
            source,
            data_version: job.data_version,
            work: job.work.clone(),
        }
    }

    /// The key in a store shared with other processes, under `prefix`:
    /// `<prefix>:c:<source>:<version>:b<i,j,..>` for a block, `..:p<i>` for a partition,
    /// `..:e<hash of the selection and media type>` for an encoded selection, `..:q<i>-<hash>`
    /// for columns of a partition, `..:s<i,j,..>` for a sparse block, `..:a<hash>` for
    /// awkward buffers, `..:r` for a ragged array.
    pub fn shared_key(&self, prefix: &str) -> String {
        let work = match &self.work {
            Work::Block(b) => {
                let ix: Vec<String> = b.iter().map(usize::to_string).collect();
                format!("b{}", ix.join(","))
            }
            Work::Partition(i) => format!("p{i}"),
            Work::Encode { selection, media } => format!("e{}", short_hash(&(selection, media))),
            Work::Columns { partition, columns } => {
                format!("q{partition}-{}", short_hash(columns))
            }
            Work::SparseBlock(b) => {
                let ix: Vec<String> = b.iter().map(usize::to_string).collect();
                format!("s{}", ix.join(","))
            }
            Work::Awkward(keys) => format!("a{}", short_hash(keys)),
            Work::Ragged => "r".into(),
            Work::ExportTable(export) => format!("x{}", short_hash(export)),
        };
        format!("{prefix}:c:{}:{}:{work}", self.source, self.data_version)
    }
}

impl Job {
    /// The native blocks the job decodes (a partition counts as none).
    pub fn blocks_touched(&self) -> u64 {
        match &self.work {
            Work::Block(_) => 1,
            Work::Partition(_)
            | Work::Columns { .. }
            | Work::SparseBlock(_)
            | Work::Awkward(_)
            | Work::Ragged
            | Work::ExportTable(_) => 0,
            Work::Encode { selection, .. } => {
                let Ok(s) = crate::adapters::structure_of::<ArrayStructure>(&self.source) else {
                    return 0;
                };
                ChunkGrid::new(&s.shape, s.chunks).map_or(0, |g| {
                    g.touched(selection).chunks.min(u64::MAX as u128) as u64
                })
            }
        }
    }

    /// Runs the job on the adapter of its data source.
    pub fn run(&self, adapter: &Adapter) -> Result<Bytes, AdapterError> {
        match (&self.work, adapter) {
            (Work::Block(block), Adapter::Array(r)) => Ok(r.read_block(block)?.bytes),
            (Work::Partition(i), Adapter::Table(r)) => {
                let batch = r.read_partition(*i)?;
                crate::serializers::table::to_arrow_file(&[batch])
                    .map(Bytes::from)
                    .map_err(|e| AdapterError::Read(format!("encoding the partition: {e}")))
            }
            (Work::Encode { selection, media }, Adapter::Array(r)) => {
                encode_selection(&self.source, r.as_ref(), selection, media)
            }
            (Work::Columns { partition, columns }, Adapter::Table(r)) => {
                let batch = r.read_columns(*partition, columns)?;
                crate::serializers::table::to_arrow_file(&[batch])
                    .map(Bytes::from)
                    .map_err(|e| AdapterError::Read(format!("encoding the partition: {e}")))
            }
            (Work::SparseBlock(block), Adapter::Sparse(r)) => {
                Ok(sparse_block_bytes(&r.read_block(block)?))
            }
            (Work::Awkward(keys), Adapter::Awkward(r)) => {
                Ok(named_buffers_bytes(&r.read_buffers(keys)?))
            }
            (Work::Ragged, Adapter::Ragged(r)) => {
                let (offsets, values) = r.read()?;
                Ok(ragged_bytes(&offsets, &values))
            }
            (Work::Block(_) | Work::Encode { .. }, _) => Err(AdapterError::BadSource(
                "this data source is not an array".into(),
            )),
            (Work::ExportTable(export), Adapter::Table(r)) => export_table(r.as_ref(), export),
            (Work::Columns { .. } | Work::ExportTable(_), _) => Err(AdapterError::BadSource(
                "this data source is not a table".into(),
            )),
            (Work::SparseBlock(_), _) => Err(AdapterError::BadSource(
                "this data source is not a sparse array".into(),
            )),
            (Work::Awkward(_), _) => Err(AdapterError::BadSource(
                "this data source is not an awkward array".into(),
            )),
            (Work::Ragged, _) => Err(AdapterError::BadSource(
                "this data source is not a ragged array".into(),
            )),
            (Work::Partition(_), _) => Err(AdapterError::BadSource(
                "this data source is not a table".into(),
            )),
        }
    }
}

/// The first 16 bytes of the BLAKE3 hash of `value`'s JSON, in hex.
fn short_hash<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_vec(value).unwrap_or_default();
    blake3::hash(&text).as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// Results made of several parts travel (through the shared store) as one frame: a
// little-endian u32 length, a JSON header, then the parts back to back, their lengths in the
// header's `parts`.

fn frame(mut header: serde_json::Value, parts: &[&[u8]]) -> Bytes {
    header["parts"] = parts.iter().map(|p| p.len()).collect();
    let head = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + head.len() + parts.iter().map(|p| p.len()).sum::<usize>());
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    for p in parts {
        out.extend_from_slice(p);
    }
    Bytes::from(out)
}

fn unframe(bytes: &Bytes) -> Result<(serde_json::Value, Vec<Bytes>), AdapterError> {
    let bad = |why: &str| AdapterError::Read(format!("a job's result is damaged: {why}"));
    let len = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("no header"))?;
    let head = bytes.get(4..4 + len).ok_or_else(|| bad("short header"))?;
    let header: serde_json::Value =
        serde_json::from_slice(head).map_err(|e| bad(&e.to_string()))?;
    let mut at = 4 + len;
    let mut parts = Vec::new();
    for n in header["parts"].as_array().ok_or_else(|| bad("no parts"))? {
        let n = n.as_u64().ok_or_else(|| bad("a part's length"))? as usize;
        let end = at.checked_add(n).filter(|&e| e <= bytes.len());
        parts.push(bytes.slice(at..end.ok_or_else(|| bad("short part"))?));
        at += n;
    }
    Ok((header, parts))
}

fn i64s_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64s(b: &[u8]) -> Vec<i64> {
    b.chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

/// A sparse block as one frame: its coordinates per dimension, then its values.
pub fn sparse_block_bytes(b: &SparseBlock) -> Bytes {
    let coords: Vec<Vec<u8>> = b.coords.iter().map(|c| i64s_bytes(c)).collect();
    let mut parts: Vec<&[u8]> = coords.iter().map(Vec::as_slice).collect();
    parts.push(&b.data.bytes);
    let header = serde_json::json!({"dtype": b.data.dtype, "shape": b.data.shape});
    frame(header, &parts)
}

/// The sparse block [`sparse_block_bytes`] framed.
pub fn sparse_block_of(bytes: &Bytes) -> Result<SparseBlock, AdapterError> {
    let (header, mut parts) = unframe(bytes)?;
    let data = array_data(&header, parts.pop())?;
    Ok(SparseBlock {
        coords: parts.iter().map(|p| i64s(p)).collect(),
        data,
    })
}

fn array_data(header: &serde_json::Value, bytes: Option<Bytes>) -> Result<ArrayData, AdapterError> {
    let bad = |why: String| AdapterError::Read(format!("a job's result is damaged: {why}"));
    let dtype = serde_json::from_value(header["dtype"].clone()).map_err(|e| bad(e.to_string()))?;
    let shape = serde_json::from_value(header["shape"].clone()).map_err(|e| bad(e.to_string()))?;
    Ok(ArrayData::new(
        dtype,
        shape,
        bytes.ok_or_else(|| bad("no values".into()))?,
    ))
}

/// Named buffers (awkward's, by form key and role) as one frame.
pub fn named_buffers_bytes(buffers: &[(String, Bytes)]) -> Bytes {
    let names: Vec<&str> = buffers.iter().map(|(n, _)| n.as_str()).collect();
    let parts: Vec<&[u8]> = buffers.iter().map(|(_, b)| &b[..]).collect();
    frame(serde_json::json!({"names": names}), &parts)
}

/// The buffers [`named_buffers_bytes`] framed.
pub fn named_buffers_of(bytes: &Bytes) -> Result<Vec<(String, Bytes)>, AdapterError> {
    let (header, parts) = unframe(bytes)?;
    let names: Vec<String> = serde_json::from_value(header["names"].clone())
        .map_err(|e| AdapterError::Read(format!("a job's result is damaged: {e}")))?;
    Ok(names.into_iter().zip(parts).collect())
}

/// A ragged array (offsets per variable dimension, values) as one frame.
pub fn ragged_bytes(offsets: &[Vec<i64>], values: &ArrayData) -> Bytes {
    let offsets: Vec<Vec<u8>> = offsets.iter().map(|o| i64s_bytes(o)).collect();
    let mut parts: Vec<&[u8]> = offsets.iter().map(Vec::as_slice).collect();
    parts.push(&values.bytes);
    let header = serde_json::json!({"dtype": values.dtype, "shape": values.shape});
    frame(header, &parts)
}

/// The ragged array [`ragged_bytes`] framed.
pub fn ragged_of(bytes: &Bytes) -> Result<(Vec<Vec<i64>>, ArrayData), AdapterError> {
    let (header, mut parts) = unframe(bytes)?;
    let values = array_data(&header, parts.pop())?;
    Ok((parts.iter().map(|p| i64s(p)).collect(), values))
}

/// Reads `partitions` of a table (with `columns`, those and the index) and encodes them as
/// `media`, refusing once the kept batches pass `limit` bytes.
fn export_table(reader: &dyn TableReader, export: &TableExport) -> Result<Bytes, AdapterError> {
    use crate::serializers::table;
    let TableExport {
        partitions,
        columns,
        media,
        csv_header,
        limit,
    } = export;
    let (columns, limit) = (columns.as_deref(), *limit);
    let index = reader.index_columns();
    let wanted: Option<Vec<String>> = columns.map(|c| c.iter().chain(&index).cloned().collect());
    let mut batches = Vec::with_capacity(partitions.len());
    let mut bytes = 0u64;
    for &p in partitions {
        let batch = match &wanted {
            Some(w) => reader.read_columns(p, w)?,
            None => reader.read_partition(p)?,
        };
        let batch = table::project(batch, columns, &index)
            .map_err(|e| AdapterError::Read(e.to_string()))?;
        bytes += batch.get_array_memory_size() as u64;
        if bytes > limit {
            return Err(AdapterError::Limit(format!(
                "Response would exceed {limit}. Request fewer partitions or columns."
            )));
        }
        batches.push(batch);
    }
    table::encode(batches, index, media, *csv_header)
        .map(Bytes::from)
        .map_err(|e| AdapterError::BadSource(format!("encoding as {media}: {e}")))
}

/// Decodes the blocks of `source` that `selection` touches, assembles the selection and encodes
/// it as `media`.
fn encode_selection(
    source: &DataSource,
    reader: &dyn ArrayReader,
    selection: &Selection,
    media: &str,
) -> Result<Bytes, AdapterError> {
    let structure: ArrayStructure = crate::adapters::structure_of(source)?;
    let grid = ChunkGrid::new(&structure.shape, structure.chunks.clone())
        .map_err(|e| AdapterError::BadSource(e.to_string()))?;
    if selection.dims.len() != structure.shape.len() {
        return Err(AdapterError::BadSource(format!(
            "a selection of {} dimensions for a {}-dimensional array",
            selection.dims.len(),
            structure.shape.len()
        )));
    }
    let itemsize = structure.data_type.itemsize();
    let mut out = Assembler::new(grid.clone(), selection, itemsize);
    for read in grid.plan(selection) {
        let block = reader.read_block(&read.block)?;
        out.place(&read, &block.bytes)
            .map_err(|e| AdapterError::Corrupt(format!("block {:?}: {e}", read.block)))?;
    }
    let data = ArrayData::new(
        structure.data_type.clone(),
        selection.out_shape(),
        Bytes::from(out.finish()),
    );
    crate::serializers::array::encode(&data, media)
        .map(Bytes::from)
        .map_err(|e| AdapterError::BadSource(format!("encoding as {media}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::{Asset, Management};
    use crate::structure::StructureFamily;

    fn source(uri: &str) -> DataSource {
        DataSource {
            structure_family: StructureFamily::Array,
            mimetype: "application/x-zarr".into(),
            parameters: Default::default(),
            assets: vec![Asset {
                data_uri: uri.into(),
                is_directory: true,
                parameter: Some("data_uri".into()),
                num: None,
            }],
            management: Management::Writable,
        }
    }

    #[test]
    fn keys_name_source_version_and_work() {
        let a = SourceId::of(&source("file:///data/a.zarr"));
        let b = SourceId::of(&source("file:///data/b.zarr"));
        assert_ne!(a, b);
        assert_eq!(a, SourceId::of(&source("file:///data/a.zarr")));
        let job = Job {
            source: Arc::new(source("file:///data/a.zarr")),
            data_version: 7,
            work: Work::Block(vec![1, 2]),
        };
        let key = ChunkKey::of(a, &job).shared_key("t1");
        assert_eq!(key, format!("t1:c:{a}:7:b1,2"));
        assert_eq!(a.to_string().len(), 64);
        let part = ChunkKey {
            work: Work::Partition(3),
            ..ChunkKey::of(a, &job)
        };
        assert!(part.shared_key("t1").ends_with(":7:p3"));
        let encode = |start: usize, media: &str| ChunkKey {
            work: Work::Encode {
                selection: Selection {
                    dims: vec![crate::slicing::DimRange {
                        start,
                        step: 1,
                        len: 4,
                        keep: true,
                    }],
                },
                media: media.into(),
            },
            ..ChunkKey::of(a, &job)
        };
        let png = encode(0, "image/png").shared_key("t1");
        let (head, tail) = png.rsplit_once(":e").unwrap();
        assert_eq!(head, format!("t1:c:{a}:7"));
        assert_eq!(tail.len(), 32);
        assert_eq!(png, encode(0, "image/png").shared_key("t1"));
        assert_ne!(png, encode(1, "image/png").shared_key("t1"));
        assert_ne!(png, encode(0, "image/tiff").shared_key("t1"));
    }

    #[test]
    fn framed_results_read_back_and_damage_is_an_error() {
        use crate::dtype::DataType;
        let f8: DataType = serde_json::from_value(serde_json::json!({
            "endianness": "little", "kind": "f", "itemsize": 8
        }))
        .unwrap();
        let values = ArrayData::new(f8, vec![3], Bytes::from(vec![7u8; 24]));
        let block = SparseBlock {
            coords: vec![vec![0, 5, 9], vec![-1, 2, 3]],
            data: values.clone(),
        };
        let framed = sparse_block_bytes(&block);
        let back = sparse_block_of(&framed).unwrap();
        assert_eq!(back.coords, block.coords);
        assert_eq!(back.data.bytes, block.data.bytes);
        assert_eq!(back.data.shape, vec![3]);
        assert!(sparse_block_of(&framed.slice(..framed.len() - 1)).is_err());
        assert!(sparse_block_of(&Bytes::from_static(b"\xff\xff")).is_err());

        let buffers = vec![
            ("node0-offsets".to_string(), Bytes::from_static(b"\x00\x01")),
            ("node1-data".to_string(), Bytes::new()),
        ];
        assert_eq!(
            named_buffers_of(&named_buffers_bytes(&buffers)).unwrap(),
            buffers
        );

        let offsets = vec![vec![0, 2, 3]];
        let (o, v) = ragged_of(&ragged_bytes(&offsets, &values)).unwrap();
        assert_eq!((o, v.bytes), (offsets, values.bytes));
    }

    #[test]
    fn jobs_travel_as_json() {
        let job = Job {
            source: Arc::new(source("file:///data/a.zarr")),
            data_version: 2,
            work: Work::Partition(0),
        };
        let back: Job = serde_json::from_slice(&serde_json::to_vec(&job).unwrap()).unwrap();
        assert_eq!(*back.source, *job.source);
        assert_eq!(back.work, Work::Partition(0));
    }
}
