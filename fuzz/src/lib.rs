//! Fuzz harnesses for the code that reads what clients send and what files hold: one function
//! per target, run under libFuzzer by `fuzz_targets/<target>.rs` (`scripts/fuzz.sh`) and
//! replayed over the committed corpus by `tests/replay.rs`. Each calls tessera's own entry
//! points; errors are expected, while a panic, a hang or an unbounded allocation is a bug.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tessera_api::catalog::MetadataUpdate;
use tessera_api::catalog::query::{Candidate, parse_filters};
use tessera_api::params::Params;
use tessera_api::routes::write::{
    MetadataPatch, new_data_structure, parse_arrow_ipc, parse_json_body, parse_new_node,
    table_batches,
};
use tessera_common::adapters::{self, Adapter, DataSource, hdf5_file, image_stack};
use tessera_common::adapters::{netcdf3_file, zarr, zarr_tree};
use tessera_common::chunks::ChunkGrid;
use tessera_common::node::TreeNode;
use tessera_common::serializers::table::{arrow_schema_data_uri, to_arrow_file, to_parquet};
use tessera_common::slicing::{Selection, SliceSpec, copy_selection};
use tessera_common::structure::{ArrayStructure, Spec, Structure, StructureFamily, TableStructure};

/// The largest block a harness decodes. The service bounds what one request may decode; the
/// harness stays well below the fuzzer's memory limit.
const MAX_BLOCK_BYTES: usize = 16 << 20;

// ---------------------------------------------------------------------------------------------
// Files: readers that only open paths get the input written to a temporary file.

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh path in the temporary directory, unique to this process and call.
fn temp_path(suffix: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "tessera-fuzz-{}-{n}-input{suffix}",
        std::process::id()
    ))
}

/// A temporary file or directory, removed when dropped.
struct Temp(PathBuf);

impl Temp {
    fn file(suffix: &str, data: &[u8]) -> Option<Temp> {
        let path = temp_path(suffix);
        std::fs::write(&path, data).ok()?;
        Some(Temp(path))
    }

    fn dir() -> Option<Temp> {
        let path = temp_path(".d");
        std::fs::create_dir_all(&path).ok()?;
        Some(Temp(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// The runtime the store readers block on (they are called from the blocking pool in the
/// service; here from the fuzzer's thread).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

/// Opens an array data source as the read path does (structure in its parameters) and reads
/// its first and last blocks when they are small enough; checks each block's size.
fn read_array(structure: &ArrayStructure, source: &DataSource) {
    let _entered = RUNTIME.enter();
    let Ok(Adapter::Array(reader)) = adapters::open(&adapters::with_structure(source, structure))
    else {
        return;
    };
    let Ok(grid) = ChunkGrid::new(&structure.shape, structure.chunks.clone()) else {
        return;
    };
    let grid_shape = grid.grid_shape();
    if grid_shape.contains(&0) {
        return;
    }
    let first = vec![0; grid_shape.len()];
    let last: Vec<usize> = grid_shape.iter().map(|n| n - 1).collect();
    for block in [first, last] {
        let Ok(shape) = grid.block_shape(&block) else {
            continue;
        };
        let itemsize = structure.data_type.itemsize();
        let bytes = shape
            .iter()
            .try_fold(itemsize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_BLOCK_BYTES);
        let Some(bytes) = bytes else {
            continue;
        };
        if let Ok(data) = reader.read_block(&block) {
            assert_eq!(data.shape, shape, "block {block:?} has the wrong shape");
            assert_eq!(
                data.bytes.len(),
                bytes,
                "block {block:?} of shape {shape:?} has the wrong size"
            );
        }
    }
}

/// Reads the first blocks of every array in a tree (at most `budget` arrays).
fn read_tree(node: &TreeNode, budget: &mut usize) {
    if let (Some(Structure::Array(s)), Some(source)) = (&node.structure, &node.source) {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        read_array(s, source);
    }
    for child in &node.children {
        read_tree(child, budget);
    }
}

// ---------------------------------------------------------------------------------------------
// Request parsing

/// `slice=`: the first byte gives the rank (and, with its high bit, huge dimensions), the
/// next bytes the dimensions, the rest is the slice text. Checks that a resolved selection
/// stays inside the shape and that the fast copy agrees with a plain element-by-element one.
pub fn slice_parser(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let ndim = usize::from(head % 6);
    if rest.len() < ndim {
        return;
    }
    let (dims, text) = rest.split_at(ndim);
    let huge = head & 0x80 != 0;
    let shape: Vec<usize> = dims
        .iter()
        .map(|&b| {
            if huge {
                usize::MAX >> (b % 64)
            } else {
                usize::from(b % 16)
            }
        })
        .collect();
    let text = String::from_utf8_lossy(text);
    let Ok(spec) = SliceSpec::from_str(&text) else {
        return;
    };
    let Ok(sel) = spec.resolve(&shape) else {
        return;
    };
    assert_eq!(sel.dims.len(), shape.len(), "one range per dimension");
    for (d, &n) in sel.dims.iter().zip(&shape) {
        assert!(d.len <= n, "{d:?} is longer than its dimension {n}");
        if d.len > 0 {
            let last = d.start as i128 + (d.len as i128 - 1) * d.step as i128;
            assert!(
                d.start < n && (0..n as i128).contains(&last),
                "{d:?} leaves 0..{n}"
            );
        }
        assert!(d.keep || d.len == 1, "an integer index selects one element");
    }
    let out = sel.out_shape();
    assert!(out.len() <= shape.len());
    let elements = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if let Some(total) = elements.filter(|&t| t <= 1 << 16) {
        assert!(sel.num_elements() <= total);
        assert_eq!(out.iter().product::<usize>(), sel.num_elements());
        let src: Vec<u8> = (0..total as u32).flat_map(|i| i.to_le_bytes()).collect();
        let got = copy_selection(&src, &shape, 4, &sel);
        assert_eq!(
            got,
            plain_copy(&src, &shape, &sel),
            "copy of {text:?} from {shape:?}"
        );
    }
}

/// The selected 4-byte elements of a C-order buffer, one index at a time.
fn plain_copy(src: &[u8], shape: &[usize], sel: &Selection) -> Vec<u8> {
    let mut out = Vec::new();
    if sel.dims.iter().any(|d| d.len == 0) {
        return out;
    }
    let mut k = vec![0usize; shape.len()];
    loop {
        let at = sel
            .dims
            .iter()
            .zip(&k)
            .zip(shape)
            .fold(0, |acc, ((d, &k), &n)| acc * n + d.index(k));
        out.extend_from_slice(&src[at * 4..at * 4 + 4]);
        let mut i = shape.len();
        loop {
            if i == 0 {
                return out;
            }
            i -= 1;
            k[i] += 1;
            if k[i] < sel.dims[i].len {
                break;
            }
            k[i] = 0;
        }
    }
}

/// Metadata the filters of [`query_filters`] are evaluated against.
static CANDIDATE_METADATA: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let v = json!({
        "color": "green", "precision": 5, "ratio": 0.25, "flag": true, "none": null,
        "tags": ["a", "b", 3], "sample": {"name": "Si wafer", "temperature": -12.5},
        "text": "The quick brown fox"
    });
    v.as_object().cloned().unwrap_or_default()
});

/// A raw query string (`filter[...]`, `sort`, `page[...]`...), parsed as the search routes
/// parse it; every filter that parses is evaluated against a node.
pub fn query_filters(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    let p = Params::parse(Some(&query));
    let _ = p.bool("counts", false);
    let _ = p.usize("page[limit]", 100);
    let _ = p.usize_list("block");
    let _ = p.all("sort");
    let Ok(filters) = parse_filters(&p.0) else {
        return;
    };
    let specs = [String::from("xarray_dataset")];
    let tags = [String::from("public")];
    let c = Candidate {
        key: "scan",
        metadata: &CANDIDATE_METADATA,
        family: StructureFamily::Array,
        specs: &specs,
        access_tags: &tags,
    };
    for f in &filters {
        let _ = f.matches(&c);
    }
}

/// A node's current metadata, specs and access tags, as [`metadata_patch`] patches them.
static CURRENT: LazyLock<MetadataUpdate> = LazyLock::new(|| {
    let md = json!({"color": "red", "n": 1, "list": [1, 2, 3], "nested": {"a": {"b": [true]}}});
    MetadataUpdate {
        metadata: md.as_object().cloned().unwrap_or_default(),
        specs: vec![Spec::named("xarray_dataset")],
        access_tags: vec!["public".into(), "beamline".into()],
    }
});

/// The body of `PATCH /metadata` (JSON Patch or Merge Patch), applied to a node as the route
/// applies it. What a patch produces must be storable and readable back by the catalog.
pub fn metadata_patch(data: &[u8]) {
    let Ok(body) = parse_json_body(data) else {
        return;
    };
    let Ok(patch) = MetadataPatch::parse(&body) else {
        return;
    };
    let n = &*CURRENT;
    let Ok(update) = patch.apply(&n.metadata, &n.specs, &n.access_tags) else {
        return;
    };
    check_storable(&Value::Object(update.metadata));
}

/// The catalogs store metadata as JSON text and parse it back with serde_json's limits.
fn check_storable(v: &Value) {
    let text = serde_json::to_string(v).expect("metadata serializes");
    let back: Value = serde_json::from_str(&text).expect("stored metadata reads back");
    assert_eq!(&back, v, "metadata changes when stored");
}

/// The checks of the write routes on a decoded JSON or msgpack document body: node creation
/// (`POST /metadata`) and a metadata patch.
fn document_body(body: &Map<String, Value>) {
    if let Ok((node, sources)) = parse_new_node(body)
        && let Ok(Some((Structure::Array(s), _, _))) = new_data_structure(node.family, &sources)
    {
        // What `POST /metadata` does next with an array: its Zarr metadata.
        let _ = zarr::metadata(&s);
    }
    if let Ok(patch) = MetadataPatch::parse(body) {
        let n = &*CURRENT;
        let _ = patch.apply(&n.metadata, &n.specs, &n.access_tags);
    }
}

/// A JSON request body of the write routes (`POST`/`PUT`/`PATCH /metadata`).
pub fn json_body(data: &[u8]) {
    if let Ok(body) = parse_json_body(data) {
        document_body(&body);
    }
}

/// A msgpack document: tessera answers documents in msgpack when asked (`respond`), and the
/// same checks as [`json_body`] apply to a decoded one; what decodes must encode and decode
/// again to the same document.
pub fn msgpack_body(data: &[u8]) {
    let Ok(doc) = rmp_serde::from_slice::<Value>(data) else {
        return;
    };
    let encoded = rmp_serde::to_vec_named(&doc).expect("a decoded document encodes");
    let again: Value = rmp_serde::from_slice(&encoded).expect("an encoded document decodes");
    assert_eq!(again, doc, "msgpack round trip");
    if let Value::Object(body) = doc {
        document_body(&body);
    }
}

/// Runs `f`, which catches panics of a dependency itself (as [`parse_arrow_ipc`] does), with
/// the panic hook silenced: libFuzzer's hook would abort on a panic the service contains.
fn contained<T>(f: impl FnOnce() -> T) -> T {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = f();
    std::panic::set_hook(hook);
    out
}

/// An Arrow IPC file uploaded to `PUT /table/...`: decoded, checked against a table made from
/// its own schema, then encoded as the service stores (Parquet) and serves (Arrow) it.
pub fn arrow_ipc_upload(data: &[u8]) {
    let Ok((schema, batches)) = contained(|| parse_arrow_ipc(Bytes::copy_from_slice(data))) else {
        return;
    };
    for b in &batches {
        assert_eq!(
            b.schema().fields(),
            schema.fields(),
            "a batch with another schema"
        );
    }
    let Ok(arrow_schema) = arrow_schema_data_uri(&schema) else {
        return;
    };
    let table = TableStructure {
        arrow_schema,
        npartitions: 1,
        columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        resizable: false,
    };
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let Ok(batches) = table_batches(&schema, batches, &table) else {
        return;
    };
    let _ = to_parquet(&batches);
    if let Ok(file) = to_arrow_file(&batches)
        && let Ok((_, back)) = contained(|| parse_arrow_ipc(Bytes::from(file)))
    {
        assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), rows);
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// The names a [`zarr_metadata`] input's parts are written under.
const ZARR_NAMES: [&str; 16] = [
    "zarr.json",
    ".zarray",
    ".zattrs",
    ".zgroup",
    ".zmetadata",
    "a/zarr.json",
    "a/.zarray",
    "a/.zattrs",
    "a/.zgroup",
    "c/0",
    "c/0/0",
    "0",
    "0.0",
    "a/c/0",
    "a/0",
    "a/c/0/0",
];

/// Separates the parts of a [`zarr_metadata`] input (never in JSON text, which is UTF-8).
pub const ZARR_PART_SEPARATOR: &[u8] = b"\xff\xfe";

/// A Zarr store (v2 or v3): parts separated by [`ZARR_PART_SEPARATOR`], each a name byte (an
/// index into the names above) and the file's bytes. Each metadata document is parsed alone
/// (tessera's structure and zarrs' metadata); then the store is described and its arrays'
/// first blocks read as `serve directory` would.
pub fn zarr_metadata(data: &[u8]) {
    let mut files: Vec<(&str, &[u8])> = Vec::new();
    let mut rest = data;
    loop {
        let (part, next) = match rest
            .windows(ZARR_PART_SEPARATOR.len())
            .position(|w| w == ZARR_PART_SEPARATOR)
        {
            Some(i) => (&rest[..i], Some(&rest[i + ZARR_PART_SEPARATOR.len()..])),
            None => (rest, None),
        };
        if let Some((&name, bytes)) = part.split_first() {
            files.push((ZARR_NAMES[usize::from(name) % ZARR_NAMES.len()], bytes));
        }
        match next {
            Some(n) if files.len() < 8 => rest = n,
            _ => break,
        }
    }
    for (name, bytes) in &files {
        if name.ends_with("zarr.json") || name.ends_with(".zarray") {
            if let Ok(doc) = serde_json::from_slice::<Value>(bytes)
                && let Ok(s) = zarr_tree::array_structure(&doc, &Map::new())
            {
                assert!(
                    ChunkGrid::new(&s.shape, s.chunks.clone()).is_ok(),
                    "the chunks of {s:?} do not tile its shape"
                );
            }
            let _ = serde_json::from_slice::<zarrs::array::ArrayMetadata>(bytes);
        }
    }
    let Some(dir) = Temp::dir() else {
        return;
    };
    for (name, bytes) in &files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&path, bytes);
    }
    let mut skipped = Vec::new();
    if let Ok(tree) = zarr_tree::inspect(dir.path(), "store", &mut skipped) {
        read_tree(&tree, &mut 2);
    }
}

/// A `.npy` file: its header read and its first and last blocks read, as `serve directory`
/// serves one.
pub fn npy_header(data: &[u8]) {
    let Some(file) = Temp::file(".npy", data) else {
        return;
    };
    if let Ok((s, source)) = image_stack::inspect_as(&[file.path().to_path_buf()], true, false) {
        read_array(&s, &source);
    }
}

/// A NetCDF-3 file: described as an xarray dataset, and the first blocks of its first
/// variables read.
pub fn netcdf3_header(data: &[u8]) {
    let Some(file) = Temp::file(".nc", data) else {
        return;
    };
    let mut skipped = Vec::new();
    if let Ok(tree) = netcdf3_file::inspect(file.path(), "dataset", &mut skipped) {
        read_tree(&tree, &mut 4);
    }
}

/// A TIFF file: described (pages, type) and its first and last pages read through the
/// image-stack adapter.
pub fn tiff(data: &[u8]) {
    let Some(file) = Temp::file(".tif", data) else {
        return;
    };
    if let Ok((s, source)) = image_stack::inspect_as(&[file.path().to_path_buf()], false, false) {
        read_array(&s, &source);
    }
}

/// Element sizes the raw-chunk harnesses pick from.
const ITEMSIZES: [usize; 8] = [1, 2, 4, 8, 3, 16, 12, 6];

/// A stored HDF5 chunk written by the bitshuffle/LZ4 filter: the first byte picks the element
/// size, the rest is the chunk. The chunk size is taken from the chunk's own header when it
/// is plausible (so the decoder gets past its first check), as the file's chunk shape would
/// give it.
pub fn bitshuffle_lz4(data: &[u8]) {
    let Some((&sel, chunk)) = data.split_first() else {
        return;
    };
    let itemsize = ITEMSIZES[usize::from(sel) % ITEMSIZES.len()];
    let declared = chunk
        .get(..8)
        .map(|h| u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]))
        .unwrap_or(0);
    let full = (declared % (4 << 20)) as usize / itemsize * itemsize;
    if let Ok(out) = hdf5_file::bitshuffle_lz4(chunk, itemsize, full) {
        assert_eq!(out.len(), full, "a decoded chunk of the wrong size");
    }
}

/// A stored HDF5 chunk written by the shuffle and gzip filters: the first byte picks the
/// element size, the next three the chunk size (little-endian), the rest is the zlib stream.
/// Decoded in the order the raw-chunk reader undoes the filters.
pub fn gzip_shuffle(data: &[u8]) {
    let Some((head, stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let itemsize = ITEMSIZES[usize::from(head[0]) % ITEMSIZES.len()];
    let full = u32::from_le_bytes([head[1], head[2], head[3], 0]) as usize;
    let Ok(inflated) = hdf5_file::inflate(stream, full) else {
        return;
    };
    assert!(inflated.len() <= full + 1, "inflated past the chunk");
    let out = hdf5_file::unshuffle(&inflated, itemsize);
    assert_eq!(out.len(), inflated.len(), "unshuffle changed the size");
    if out.len() == full {
        // Shuffling again gives the stored bytes back.
        let n = full / itemsize;
        for (b, plane) in inflated[..n * itemsize].chunks(n.max(1)).enumerate() {
            for (i, &byte) in plane.iter().enumerate() {
                assert_eq!(
                    out[i * itemsize + b],
                    byte,
                    "unshuffle is not shuffle's inverse"
                );
            }
        }
    }
}
