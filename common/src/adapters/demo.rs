//! The demo tree (`tessera serve demo`): the same keys, structures, specs and metadata as
//! Tiled's `tiled serve demo`, with the same values where Tiled draws them from numpy's
//! `default_rng(42)`. Random arrays are generated chunk by chunk on first read (the stream is
//! jumped to each row's position), so start-up costs nothing and memory holds only what is read.

use std::sync::{Arc, OnceLock};

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, RecordBatch,
    TimestampSecondArray, UInt8Array,
};
use arrow_schema::{DataType as ArrowType, Field as ArrowField, Schema, TimeUnit};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{
    Adapter, AdapterError, ArrayReader, AwkwardReader, DataSource, Management, RaggedReader,
    SparseBlock, SparseReader, TableReader,
};
use crate::array::{ArrayData, encode_unicode};
use crate::chunks::{ChunkGrid, auto_chunks};
use crate::dtype::{DataType, Field, StructDType};
use crate::node::TreeNode;
use crate::rng::{Pcg64, random_block};
use crate::serializers::table::arrow_schema_data_uri;
use crate::slicing::{Selection, copy_selection};
use crate::structure::{
    ArrayStructure, AwkwardStructure, RaggedStructure, SparseStructure, Structure, StructureFamily,
    TableStructure,
};

/// The mimetype of the demo's data sources; `parameters.name` names the array.
pub const MIMETYPE: &str = "application/x-tessera-demo";

const SEED: u64 = 42;
/// dask's default chunk size ("128MiB"), which Tiled's demo arrays are chunked by.
const AUTO_CHUNK_BYTES: usize = 128 * 1024 * 1024;

/// The large random arrays, in the order the demo draws them, with their shapes.
const RANDOM_ARRAYS: [(&str, &[usize]); 6] = [
    ("nested/images/big_image", &[10_000, 10_000]),
    ("nested/images/small_image", &[300, 300]),
    ("nested/images/medium_image", &[1000, 1000]),
    ("nested/images/tiny_image", &[50, 50]),
    ("nested/cubes/tiny_cube", &[50, 50, 50]),
    ("nested/cubes/tiny_hypercube", &[50, 50, 50, 50, 50]),
];

/// Position in the stream (in 64-bit draws) where random array `name` starts, and its shape.
fn random_array(name: &str) -> Option<(u128, &'static [usize])> {
    let mut base = 0u128;
    for (n, shape) in RANDOM_ARRAYS {
        if n == name {
            return Some((base, shape));
        }
        base += shape.iter().product::<usize>() as u128;
    }
    None
}

/// Draws after the big random arrays: small, generated together on first use.
struct Tail {
    high_entropy: Vec<i64>,
    tiny_column: Vec<f64>,
    short_int: Vec<u8>,
    short_float: Vec<f64>,
    long_column: Vec<f64>,
    complex: Vec<f64>,
    temperature: Vec<f64>,
    precipitation: Vec<f64>,
    sparse: Vec<f64>,
    flat: Vec<f64>,
}

fn tail() -> &'static Tail {
    static TAIL: OnceLock<Tail> = OnceLock::new();
    TAIL.get_or_init(|| {
        let mut rng = Pcg64::from_seed(SEED);
        let skip: u128 = RANDOM_ARRAYS
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u128)
            .sum();
        rng.advance(skip);
        let mut high_entropy = vec![0i64; 100 * 100];
        rng.integers_i64(-10, 10, &mut high_entropy);
        let mut tiny_column = vec![0.0; 10];
        rng.fill_random(&mut tiny_column);
        let mut short_int = vec![0u8; 100];
        rng.integers_u8(10, &mut short_int);
        let mut short_float = vec![0.0; 100];
        rng.fill_random(&mut short_float);
        let mut long_column = vec![0.0; 100_000];
        rng.fill_random(&mut long_column);
        let mut real = vec![0.0; 30 * 50];
        rng.fill_random(&mut real);
        let mut imag = vec![0.0; 30 * 50];
        rng.fill_random(&mut imag);
        let complex = real.iter().zip(&imag).flat_map(|(r, i)| [*r, *i]).collect();
        let temperature = (0..12)
            .map(|_| 15.0 + 8.0 * rng.standard_normal())
            .collect();
        let precipitation = (0..12).map(|_| 10.0 * rng.uniform()).collect();
        let mut sparse = vec![0.0; 100 * 100];
        rng.fill_random(&mut sparse);
        for v in &mut sparse {
            if *v < 0.9 {
                *v = 0.0;
            }
        }
        let mut flat = vec![0.0; 100];
        rng.fill_random(&mut flat);
        Tail {
            high_entropy,
            tiny_column,
            short_int,
            short_float,
            long_column,
            complex,
            temperature,
            precipitation,
            sparse,
            flat,
        }
    })
}

fn source(family: StructureFamily, name: &str) -> DataSource {
    let mut parameters = Map::new();
    parameters.insert("name".into(), Value::String(name.into()));
    DataSource {
        structure_family: family,
        mimetype: MIMETYPE.to_string(),
        parameters,
        assets: Vec::new(),
        management: Management::Immutable,
    }
}

/// The data source of the `dynamic` array while it holds `fill` everywhere.
pub fn dynamic_source(fill: u64) -> DataSource {
    let mut s = source(StructureFamily::Array, "dynamic");
    s.parameters.insert("fill".into(), Value::from(fill));
    s
}

fn array_node(key: &str, name: &str, dtype: DataType, shape: &[usize]) -> TreeNode {
    let chunks = auto_chunks(shape, dtype.itemsize(), AUTO_CHUNK_BYTES);
    array_node_chunked(key, name, dtype, shape, chunks)
}

fn array_node_chunked(
    key: &str,
    name: &str,
    dtype: DataType,
    shape: &[usize],
    chunks: Vec<Vec<usize>>,
) -> TreeNode {
    let structure = Structure::Array(ArrayStructure {
        data_type: dtype,
        chunks,
        shape: shape.to_vec(),
        dims: None,
        resizable: false,
    });
    TreeNode::data(key, structure, source(StructureFamily::Array, name))
}

fn xarray_var(key: &str, dtype: DataType, shape: &[usize], dims: &[&str], spec: &str) -> TreeNode {
    let mut node = array_node(
        key,
        &format!("structured_data/xarray_dataset/{key}"),
        dtype,
        shape,
    );
    if let Some(Structure::Array(s)) = &mut node.structure {
        s.dims = Some(dims.iter().map(|d| d.to_string()).collect());
    }
    node.with_metadata(json!({"attrs": {}})).with_specs(&[spec])
}

fn pets_dtype() -> DataType {
    DataType::Structured(StructDType {
        itemsize: 48,
        fields: vec![
            Field::scalar("name", DataType::unicode(10)),
            Field::scalar("age", DataType::i4()),
            Field::scalar("weight", DataType::f4()),
        ],
    })
}

fn awkward_form() -> Value {
    json!({"class": "ListOffsetArray", "offsets": "i64",
        "content": {"class": "RecordArray", "fields": ["x", "y"],
            "contents": [
                {"class": "NumpyArray", "primitive": "float64", "inner_shape": [],
                 "parameters": {}, "form_key": "node2"},
                {"class": "ListOffsetArray", "offsets": "i64",
                 "content": {"class": "NumpyArray", "primitive": "int64", "inner_shape": [],
                             "parameters": {}, "form_key": "node4"},
                 "parameters": {}, "form_key": "node3"}],
            "parameters": {}, "form_key": "node1"},
        "parameters": {}, "form_key": "node0"})
}

fn table_node(key: &str, metadata: Value) -> Result<TreeNode, AdapterError> {
    let name = format!("tables/{key}");
    let table = DemoTable::new(&name)?;
    let schema = table.schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != "index")
        .collect();
    let structure = Structure::Table(TableStructure {
        arrow_schema: arrow_schema_data_uri(&schema)
            .map_err(|e| AdapterError::Read(e.to_string()))?,
        npartitions: table.npartitions(),
        columns,
        resizable: false,
    });
    Ok(
        TreeNode::data(key, structure, source(StructureFamily::Table, &name))
            .with_metadata(metadata)
            .with_specs(&["dataframe"]),
    )
}

/// The whole demo tree, in Tiled's insertion order.
pub fn tree() -> Result<TreeNode, AdapterError> {
    let f8 = DataType::f8;
    let images = TreeNode::container(
        "images",
        json!({"animal": "cat", "color": "green"}),
        vec![
            array_node("tiny_image", "nested/images/tiny_image", f8(), &[50, 50]),
            array_node(
                "small_image",
                "nested/images/small_image",
                f8(),
                &[300, 300],
            ),
            array_node_chunked(
                "medium_image",
                "nested/images/medium_image",
                f8(),
                &[1000, 1000],
                vec![vec![250; 4], vec![100; 10]],
            ),
            array_node(
                "big_image",
                "nested/images/big_image",
                f8(),
                &[10_000, 10_000],
            ),
        ],
    );
    let cubes = TreeNode::container(
        "cubes",
        json!({"animal": "dog", "color": "red"}),
        vec![
            array_node("tiny_cube", "nested/cubes/tiny_cube", f8(), &[50, 50, 50]),
            array_node(
                "tiny_hypercube",
                "nested/cubes/tiny_hypercube",
                f8(),
                &[50, 50, 50, 50, 50],
            ),
        ],
    );
    let sparse = TreeNode::data(
        "sparse_image",
        Structure::Sparse(SparseStructure {
            chunks: vec![vec![100], vec![100]],
            shape: vec![100, 100],
            data_type: f8(),
            coord_data_type: DataType::i8(),
            dims: None,
            resizable: false,
            layout: "COO".into(),
        }),
        source(StructureFamily::Sparse, "nested/sparse_image"),
    );
    let awkward = TreeNode::data(
        "awkward_array",
        Structure::Awkward(AwkwardStructure {
            length: 3,
            form: awkward_form(),
        }),
        source(StructureFamily::Awkward, "nested/awkward_array"),
    );
    let ragged = TreeNode::data(
        "ragged_array",
        Structure::Ragged(RaggedStructure {
            data_type: f8(),
            shape: vec![Some(4), None, None],
            size: 9,
            chunks: vec![Some(vec![4]), None, None],
            dims: None,
            resizable: false,
        }),
        source(StructureFamily::Ragged, "nested/ragged_array"),
    );
    let nested = TreeNode::container(
        "nested",
        json!({"animal": "cat", "color": "green"}),
        vec![
            images,
            cubes,
            array_node("complex", "nested/complex", DataType::c16(), &[30, 50]),
            sparse,
            awkward,
            ragged,
        ],
    );
    let scalars = TreeNode::container(
        "scalars",
        json!({"numbers": "constants", "precision": 5}),
        vec![
            array_node("pi", "scalars/pi", f8(), &[]),
            array_node("e_arr", "scalars/e_arr", DataType::unicode(7), &[1]),
            array_node("fsc", "scalars/fsc", DataType::unicode(5), &[]),
            array_node("fortytwo", "scalars/fortytwo", DataType::i8(), &[]),
        ],
    );
    let tables = TreeNode::container(
        "tables",
        json!({}),
        vec![
            table_node("short_table", json!({"animal": "dog", "color": "red"}))?,
            table_node("long_table", json!({"animal": "dog", "color": "green"}))?,
            table_node("wide_table", json!({"animal": "dog", "color": "red"}))?,
        ],
    );
    let mut dataset = TreeNode::container(
        "xarray_dataset",
        json!({"attrs": {}}),
        vec![
            xarray_var(
                "temperature",
                f8(),
                &[2, 2, 3],
                &["x", "y", "time"],
                "xarray_data_var",
            ),
            xarray_var(
                "precipitation",
                f8(),
                &[2, 2, 3],
                &["x", "y", "time"],
                "xarray_data_var",
            ),
            xarray_var("lon", f8(), &[2, 2], &["x", "y"], "xarray_coord"),
            xarray_var("lat", f8(), &[2, 2], &["x", "y"], "xarray_coord"),
            xarray_var(
                "time",
                DataType::datetime("[ns]"),
                &[3],
                &["time"],
                "xarray_coord",
            ),
        ],
    )
    .with_specs(&["xarray_dataset"]);
    dataset.inline_contents = true;
    let structured = TreeNode::container(
        "structured_data",
        json!({"animal": "cat", "color": "green"}),
        vec![
            array_node("pets", "structured_data/pets", pets_dtype(), &[2]),
            dataset,
        ],
    );
    Ok(TreeNode::container(
        "",
        json!({}),
        vec![
            scalars,
            nested,
            tables,
            structured,
            array_node("flat_array", "flat_array", f8(), &[100]),
            array_node("low_entropy", "low_entropy", DataType::i4(), &[100, 100]),
            array_node("high_entropy", "high_entropy", DataType::i8(), &[100, 100]),
            TreeNode::data(
                "dynamic",
                Structure::Array(ArrayStructure {
                    data_type: f8(),
                    chunks: vec![vec![3], vec![3]],
                    shape: vec![3, 3],
                    dims: None,
                    resizable: false,
                }),
                dynamic_source(1),
            ),
        ],
    ))
}

/// Opens a demo data source.
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    let name = source
        .parameters
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| AdapterError::BadSource("demo data source has no 'name'".into()))?;
    Ok(match source.structure_family {
        StructureFamily::Array => {
            let fill = source.parameters.get("fill").and_then(Value::as_u64);
            Adapter::Array(Arc::new(DemoArray::new(name, fill)?))
        }
        StructureFamily::Table => Adapter::Table(Arc::new(DemoTable::new(name)?)),
        StructureFamily::Sparse => Adapter::Sparse(Arc::new(DemoSparse)),
        StructureFamily::Awkward => Adapter::Awkward(Arc::new(DemoAwkward)),
        StructureFamily::Ragged => Adapter::Ragged(Arc::new(DemoRagged)),
        other => {
            return Err(AdapterError::BadSource(format!(
                "the demo has no {} named {name}",
                other.as_str()
            )));
        }
    })
}

/// Where a demo array's values come from.
enum Values {
    /// A window of the seeded random stream starting `base` draws in.
    Random { base: u128 },
    /// Values held in memory (small arrays), C order.
    Fixed(ArrayData),
}

struct DemoArray {
    grid: ChunkGrid,
    dtype: DataType,
    values: Values,
}

fn f64s(shape: &[usize], v: &[f64]) -> ArrayData {
    ArrayData::from_f64(shape.to_vec(), v)
}

fn unicode(chars: usize, shape: &[usize], items: &[&str]) -> ArrayData {
    let mut b = Vec::new();
    for s in items {
        encode_unicode(s, chars, &mut b);
    }
    ArrayData::new(DataType::unicode(chars), shape.to_vec(), b)
}

/// Nanoseconds since the epoch of 2014-09-06, -07, -08 (the xarray dataset's time axis).
fn xarray_times() -> Vec<i64> {
    const DAY_NS: i64 = 86_400 * 1_000_000_000;
    // 2014-09-06 is 16319 days after 1970-01-01.
    (0..3).map(|d| (16_319 + d) * DAY_NS).collect()
}

impl DemoArray {
    fn new(name: &str, fill: Option<u64>) -> Result<Self, AdapterError> {
        if let Some((base, shape)) = random_array(name) {
            let chunks = if name == "nested/images/medium_image" {
                vec![vec![250; 4], vec![100; 10]]
            } else {
                auto_chunks(shape, 8, AUTO_CHUNK_BYTES)
            };
            return Ok(DemoArray {
                grid: ChunkGrid::new(shape, chunks)
                    .map_err(|e| AdapterError::BadSource(e.to_string()))?,
                dtype: DataType::f8(),
                values: Values::Random { base },
            });
        }
        let t = tail;
        let data = match name {
            // Tiled's demo value, five digits on purpose.
            #[allow(clippy::approx_constant)]
            "scalars/pi" => f64s(&[], &[3.14159]),
            "scalars/e_arr" => unicode(7, &[1], &["2.71828"]),
            "scalars/fsc" => unicode(5, &[], &["1/137"]),
            "scalars/fortytwo" => ArrayData::from_i64(vec![], &[42]),
            "nested/complex" => {
                let mut b = Vec::with_capacity(30 * 50 * 16);
                for v in &t().complex {
                    b.extend_from_slice(&v.to_le_bytes());
                }
                ArrayData::new(DataType::c16(), vec![30, 50], b)
            }
            "structured_data/pets" => {
                let mut b = Vec::with_capacity(96);
                for (pet, age, weight) in [("Rex", 9i32, 81.0f32), ("Fido", 3, 27.0)] {
                    encode_unicode(pet, 10, &mut b);
                    b.extend_from_slice(&age.to_le_bytes());
                    b.extend_from_slice(&weight.to_le_bytes());
                }
                ArrayData::new(pets_dtype(), vec![2], b)
            }
            "structured_data/xarray_dataset/temperature" => f64s(&[2, 2, 3], &t().temperature),
            "structured_data/xarray_dataset/precipitation" => f64s(&[2, 2, 3], &t().precipitation),
            "structured_data/xarray_dataset/lon" => {
                f64s(&[2, 2], &[-99.83, -99.32, -99.79, -99.23])
            }
            "structured_data/xarray_dataset/lat" => f64s(&[2, 2], &[42.25, 42.21, 42.63, 42.59]),
            "structured_data/xarray_dataset/time" => {
                let mut a = ArrayData::from_i64(vec![3], &xarray_times());
                a.dtype = DataType::datetime("[ns]");
                a
            }
            "flat_array" => f64s(&[100], &t().flat),
            "low_entropy" => {
                let b: Vec<u8> = (0..100 * 100).flat_map(|_| 1i32.to_le_bytes()).collect();
                ArrayData::new(DataType::i4(), vec![100, 100], b)
            }
            "high_entropy" => ArrayData::from_i64(vec![100, 100], &t().high_entropy),
            "dynamic" => {
                let k = fill.unwrap_or(1) as f64;
                f64s(&[3, 3], &[k; 9])
            }
            other => {
                return Err(AdapterError::BadSource(format!(
                    "the demo has no array named {other}"
                )));
            }
        };
        let chunks = auto_chunks(&data.shape, data.dtype.itemsize(), AUTO_CHUNK_BYTES);
        Ok(DemoArray {
            grid: ChunkGrid::new(&data.shape, chunks)
                .map_err(|e| AdapterError::BadSource(e.to_string()))?,
            dtype: data.dtype.clone(),
            values: Values::Fixed(data),
        })
    }
}

impl ArrayReader for DemoArray {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        let out_of_range = |e: crate::chunks::ChunkError| AdapterError::BlockOutOfRange {
            block: block.to_vec(),
            reason: e.to_string(),
        };
        let origin = self.grid.block_origin(block).map_err(out_of_range)?;
        let shape = self.grid.block_shape(block).map_err(out_of_range)?;
        match &self.values {
            Values::Random { base } => {
                let n: usize = shape.iter().product();
                let mut out = vec![0.0; n];
                random_block(SEED, *base, &self.grid.shape(), &origin, &shape, &mut out);
                Ok(f64s(&shape, &out))
            }
            Values::Fixed(data) => {
                if origin.iter().all(|&o| o == 0) && shape == data.shape {
                    return Ok(data.clone());
                }
                let sel = Selection {
                    dims: origin
                        .iter()
                        .zip(&shape)
                        .map(|(&start, &len)| crate::slicing::DimRange {
                            start,
                            step: 1,
                            len,
                            keep: true,
                        })
                        .collect(),
                };
                let bytes = copy_selection(&data.bytes, &data.shape, self.dtype.itemsize(), &sel);
                Ok(ArrayData::new(self.dtype.clone(), shape, bytes))
            }
        }
    }
}

/// The demo's tables: built in memory on open (at most 100,000 rows).
struct DemoTable {
    partitions: Vec<RecordBatch>,
}

fn pandas_schema(fields: Vec<(ArrowField, &str)>) -> Arc<Schema> {
    let columns: Vec<Value> = fields
        .iter()
        .map(|(f, pandas_type)| {
            let numpy_type = match f.data_type() {
                ArrowType::LargeUtf8 | ArrowType::Utf8 => "object".to_string(),
                ArrowType::Timestamp(TimeUnit::Second, _) => "datetime64[s]".to_string(),
                _ => pandas_type.to_string(),
            };
            json!({"name": f.name(), "field_name": f.name(), "pandas_type": pandas_type,
                   "numpy_type": numpy_type, "metadata": null})
        })
        .collect();
    let pandas = json!({
        "index_columns": ["index"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": columns,
        "attributes": {},
        "creator": {"library": "tessera", "version": env!("CARGO_PKG_VERSION")},
        "pandas_version": "2.3.3"
    });
    let metadata: std::collections::HashMap<String, String> =
        [("pandas".to_string(), pandas.to_string())]
            .into_iter()
            .collect();
    Arc::new(Schema::new_with_metadata(
        fields.into_iter().map(|(f, _)| f).collect::<Vec<_>>(),
        metadata,
    ))
}

fn batch(schema: &Arc<Schema>, columns: Vec<ArrayRef>) -> Result<RecordBatch, AdapterError> {
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| AdapterError::Read(e.to_string()))
}

fn f64_column(name: &str) -> (ArrowField, &'static str) {
    (ArrowField::new(name, ArrowType::Float64, true), "float64")
}

/// A small deterministic generator for the short table's string and bool columns, which
/// Tiled draws from Python's unseeded `random` (so no value can match there anyway).
fn short_table_choices() -> (Vec<String>, Vec<bool>) {
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
    let mut rng = Pcg64::from_seed(7);
    let strings = (0..100)
        .map(|_| {
            let c = letters[(rng.next_u64() % letters.len() as u64) as usize];
            std::iter::repeat_n(c, 3).collect()
        })
        .collect();
    let bools = (0..100).map(|_| rng.next_u64() & 1 == 1).collect();
    (strings, bools)
}

impl DemoTable {
    fn new(name: &str) -> Result<Self, AdapterError> {
        let t = tail();
        let index = |range: std::ops::Range<i64>| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(range))
        };
        let index_field = (ArrowField::new("index", ArrowType::Int64, true), "int64");
        let partitions = match name {
            "tables/short_table" => {
                let schema = pandas_schema(vec![
                    (ArrowField::new("A", ArrowType::UInt8, true), "uint8"),
                    f64_column("B"),
                    (ArrowField::new("C", ArrowType::LargeUtf8, true), "unicode"),
                    (
                        ArrowField::new("D", ArrowType::Timestamp(TimeUnit::Second, None), true),
                        "datetime",
                    ),
                    (ArrowField::new("E", ArrowType::Boolean, true), "bool"),
                    index_field,
                ]);
                let (strings, bools) = short_table_choices();
                // 2025-01-01 is 20089 days after the epoch.
                let days = (0..100).map(|d| (20_089 + d) * 86_400);
                vec![batch(
                    &schema,
                    vec![
                        Arc::new(UInt8Array::from(t.short_int.clone())),
                        Arc::new(Float64Array::from(t.short_float.clone())),
                        Arc::new(LargeStringArray::from_iter_values(strings)),
                        Arc::new(TimestampSecondArray::from_iter_values(days)),
                        Arc::new(BooleanArray::from(bools)),
                        index(0..100),
                    ],
                )?]
            }
            "tables/long_table" => {
                let schema = pandas_schema(vec![
                    f64_column("A"),
                    f64_column("B"),
                    f64_column("C"),
                    index_field,
                ]);
                t.long_column
                    .chunks(20_000)
                    .enumerate()
                    .map(|(p, a)| {
                        let start = (p * 20_000) as i64;
                        batch(
                            &schema,
                            vec![
                                Arc::new(Float64Array::from(a.to_vec())),
                                Arc::new(Float64Array::from_iter_values(a.iter().map(|v| 2.0 * v))),
                                Arc::new(Float64Array::from_iter_values(a.iter().map(|v| 3.0 * v))),
                                index(start..start + a.len() as i64),
                            ],
                        )
                    })
                    .collect::<Result<_, _>>()?
            }
            "tables/wide_table" => {
                let letters: Vec<String> = ('A'..='Z').map(String::from).collect();
                let mut fields: Vec<_> = letters.iter().map(|l| f64_column(l)).collect();
                fields.push(index_field);
                let schema = pandas_schema(fields);
                let mut columns: Vec<ArrayRef> = (1..=26)
                    .map(|k| -> ArrayRef {
                        Arc::new(Float64Array::from_iter_values(
                            t.tiny_column.iter().map(|v| k as f64 * v),
                        ))
                    })
                    .collect();
                columns.push(index(0..10));
                vec![batch(&schema, columns)?]
            }
            other => {
                return Err(AdapterError::BadSource(format!(
                    "the demo has no table named {other}"
                )));
            }
        };
        Ok(DemoTable { partitions })
    }

    fn schema(&self) -> Arc<Schema> {
        self.partitions
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(Schema::empty()))
    }

    fn npartitions(&self) -> usize {
        self.partitions.len()
    }
}

impl TableReader for DemoTable {
    fn read_partition(&self, i: usize) -> Result<RecordBatch, AdapterError> {
        self.partitions
            .get(i)
            .cloned()
            .ok_or(AdapterError::PartitionOutOfRange(i))
    }

    fn index_columns(&self) -> Vec<String> {
        vec!["index".to_string()]
    }
}

struct DemoSparse;

impl SparseReader for DemoSparse {
    fn read_block(&self, block: &[usize]) -> Result<SparseBlock, AdapterError> {
        if block != [0, 0] {
            return Err(AdapterError::BlockOutOfRange {
                block: block.to_vec(),
                reason: "sparse_image has a single block (0, 0)".into(),
            });
        }
        let (mut rows, mut cols, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for (i, v) in tail().sparse.iter().enumerate() {
            if *v != 0.0 {
                rows.push((i / 100) as i64);
                cols.push((i % 100) as i64);
                values.push(*v);
            }
        }
        let n = values.len();
        Ok(SparseBlock {
            coords: vec![rows, cols],
            data: ArrayData::from_f64(vec![n], &values),
        })
    }
}

fn le_bytes_i64(v: &[i64]) -> Bytes {
    Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn le_bytes_f64(v: &[f64]) -> Bytes {
    Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

struct DemoAwkward;

impl AwkwardReader for DemoAwkward {
    fn read_buffers(&self, form_keys: &[String]) -> Result<Vec<(String, Bytes)>, AdapterError> {
        // [[{x:1.1, y:[1]}, {x:2.2, y:[1,2]}], [], [{x:3.3, y:[1,2,3]}]]
        let all = [
            ("node0", "node0-offsets", le_bytes_i64(&[0, 2, 2, 3])),
            ("node2", "node2-data", le_bytes_f64(&[1.1, 2.2, 3.3])),
            ("node3", "node3-offsets", le_bytes_i64(&[0, 1, 3, 6])),
            ("node4", "node4-data", le_bytes_i64(&[1, 1, 2, 1, 2, 3])),
        ];
        const KNOWN: [&str; 5] = ["node0", "node1", "node2", "node3", "node4"];
        if let Some(bad) = form_keys.iter().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(AdapterError::BadSource(format!(
                "no form key '{bad}' in this awkward array; its form keys are {KNOWN:?}"
            )));
        }
        Ok(all
            .into_iter()
            .filter(|(k, _, _)| form_keys.is_empty() || form_keys.iter().any(|f| f == k))
            .map(|(_, name, b)| (name.to_string(), b))
            .collect())
    }
}

struct DemoRagged;

impl RaggedReader for DemoRagged {
    fn read(&self) -> Result<(Vec<Vec<i64>>, ArrayData), AdapterError> {
        // [[[1.1, 2.2, 3.3], []], [[4.4]], [], [[5.5, 6.6, 7.7, 8.8], [9.9]]]
        let values = [1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7, 8.8, 9.9];
        Ok((
            vec![vec![0, 2, 3, 3, 5], vec![0, 3, 3, 4, 8, 9]],
            ArrayData::from_f64(vec![9], &values),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(node: &'a TreeNode, path: &str) -> &'a TreeNode {
        path.split('/').fold(node, |n, k| {
            n.children
                .iter()
                .find(|c| c.key == k)
                .unwrap_or_else(|| panic!("no {k}"))
        })
    }

    fn array_structure(node: &TreeNode) -> &ArrayStructure {
        match &node.structure {
            Some(Structure::Array(s)) => s,
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn tree_has_tileds_top_level_keys_in_order() {
        let t = tree().unwrap();
        let keys: Vec<_> = t.children.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "scalars",
                "nested",
                "tables",
                "structured_data",
                "flat_array",
                "low_entropy",
                "high_entropy",
                "dynamic"
            ]
        );
    }

    #[test]
    fn large_arrays_are_chunked_like_dask_auto() {
        let t = tree().unwrap();
        let big = array_structure(find(&t, "nested/images/big_image"));
        assert_eq!(big.chunks, vec![vec![4096, 4096, 1808]; 2]);
        let cube = array_structure(find(&t, "nested/cubes/tiny_hypercube"));
        assert_eq!(cube.chunks, vec![vec![27, 23]; 5]);
        let medium = array_structure(find(&t, "nested/images/medium_image"));
        assert_eq!(medium.chunks[0], vec![250; 4]);
    }

    #[test]
    fn random_block_values_continue_the_stream_across_arrays() {
        // tiny_image starts right after big, small and medium images in the stream.
        let adapter = DemoArray::new("nested/images/tiny_image", None).unwrap();
        let block = adapter.read_block(&[0, 0]).unwrap();
        let mut rng = Pcg64::from_seed(SEED);
        rng.advance(100_000_000 + 90_000 + 1_000_000);
        let first = rng.random();
        assert_eq!(block.scalar(0).unwrap(), crate::array::Scalar::Float(first));
        // value captured from Tiled's demo (golden 051)
        assert_eq!(first, 0.3698032912574729);
    }

    #[test]
    fn medium_image_block_matches_the_stream_position() {
        let adapter = DemoArray::new("nested/images/medium_image", None).unwrap();
        let block = adapter.read_block(&[1, 3]).unwrap();
        assert_eq!(block.shape, vec![250, 100]);
        let mut rng = Pcg64::from_seed(SEED);
        // row 250, column 300 of the 1000x1000 array that starts at draw 100_090_000
        rng.advance(100_090_000 + 250 * 1000 + 300);
        assert_eq!(
            block.scalar(0).unwrap(),
            crate::array::Scalar::Float(rng.random())
        );
        assert!(adapter.read_block(&[4, 0]).is_err());
    }

    #[test]
    fn tables_have_partitions_and_pandas_index() {
        let long = DemoTable::new("tables/long_table").unwrap();
        assert_eq!(long.npartitions(), 5);
        let p = long.read_partition(4).unwrap();
        assert_eq!(p.num_rows(), 20_000);
        assert!(long.read_partition(5).is_err());
        let a = p.column(0).as_any().downcast_ref::<Float64Array>().unwrap();
        let b = p.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(b.value(7), 2.0 * a.value(7));
        assert!(p.schema().metadata().contains_key("pandas"));
    }

    #[test]
    fn awkward_buffers_filter_by_form_key_and_reject_unknown_keys() {
        let got = DemoAwkward
            .read_buffers(&["node0".into(), "node4".into()])
            .unwrap();
        let names: Vec<_> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["node0-offsets", "node4-data"]);
        assert!(DemoAwkward.read_buffers(&["node9".into()]).is_err());
    }

    #[test]
    fn xarray_time_axis_is_2014_09_06() {
        assert_eq!(xarray_times()[0], 1_409_961_600 * 1_000_000_000);
    }
}
