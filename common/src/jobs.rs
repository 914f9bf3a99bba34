//! Decode jobs and the content keys of their results. An API node asks for a job's result by
//! its key in the chunk cache; on a miss the job runs in-process or on a worker, which needs
//! nothing but the job itself (the data source travels with it, the catalog is never read).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::adapters::{Adapter, AdapterError, ArrayReader, DataSource};
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
    /// `..:e<hash of the selection and media type>` for an encoded selection.
    pub fn shared_key(&self, prefix: &str) -> String {
        let work = match &self.work {
            Work::Block(b) => {
                let ix: Vec<String> = b.iter().map(usize::to_string).collect();
                format!("b{}", ix.join(","))
            }
            Work::Partition(i) => format!("p{i}"),
            Work::Encode { selection, media } => {
                let text = serde_json::to_vec(&(selection, media)).unwrap_or_default();
                let hash = blake3::hash(&text);
                let hex: String = hash.as_bytes()[..16]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("e{hex}")
            }
        };
        format!("{prefix}:c:{}:{}:{work}", self.source, self.data_version)
    }
}

impl Job {
    /// The native blocks the job decodes (a partition counts as none).
    pub fn blocks_touched(&self) -> u64 {
        match &self.work {
            Work::Block(_) => 1,
            Work::Partition(_) => 0,
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
            (Work::Block(_) | Work::Encode { .. }, _) => Err(AdapterError::BadSource(
                "this data source is not an array".into(),
            )),
            (Work::Partition(_), _) => Err(AdapterError::BadSource(
                "this data source is not a table".into(),
            )),
        }
    }
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
