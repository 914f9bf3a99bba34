//! Encoders on a 1000x1000 f64 array (octet-stream, JSON, CSV, PNG, TIFF) and a 100,000-row
//! table (Arrow IPC file, Parquet, CSV, JSON), plus the demo's random chunk generation.

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::{Float64Array, RecordBatch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tessera_common::array::ArrayData;
use tessera_common::rng::random_block;
use tessera_common::serializers::{array, table};

fn bench_encoders(c: &mut Criterion) {
    let n = 1000;
    let mut values = vec![0.0; n * n];
    random_block(42, 0, &[n, n], &[0, 0], &[n, n], &mut values);
    let a = ArrayData::from_f64(vec![n, n], &values);
    let mut group = c.benchmark_group("array 1000x1000 f64");
    group.throughput(Throughput::Bytes((n * n * 8) as u64));
    group.sample_size(10);
    group.bench_function("octet-stream", |b| {
        b.iter(|| array::to_octet_stream(black_box(&a)))
    });
    group.bench_function("json", |b| b.iter(|| array::to_json(black_box(&a))));
    group.bench_function("csv", |b| b.iter(|| array::to_csv(black_box(&a))));
    group.bench_function("png", |b| b.iter(|| array::to_png(black_box(&a))));
    group.bench_function("tiff", |b| b.iter(|| array::to_tiff(black_box(&a))));
    group.bench_function("demo random chunk", |b| {
        let mut out = vec![0.0; n * n];
        b.iter(|| random_block(42, 0, &[10_000, 10_000], &[0, 0], &[n, n], &mut out))
    });
    group.finish();

    let rows = 100_000;
    let col: Vec<f64> = values[..rows].to_vec();
    let batch = RecordBatch::try_from_iter([
        ("A", Arc::new(Float64Array::from(col.clone())) as _),
        ("B", Arc::new(Float64Array::from(col.clone())) as _),
        ("C", Arc::new(Float64Array::from(col)) as _),
    ])
    .expect("valid batch");
    let mut group = c.benchmark_group("table 100000x3 f64");
    group.throughput(Throughput::Bytes((rows * 3 * 8) as u64));
    group.sample_size(10);
    let batches = vec![batch];
    group.bench_function("arrow file", |b| {
        b.iter(|| table::to_arrow_file(black_box(&batches)))
    });
    group.bench_function("parquet", |b| {
        b.iter(|| table::to_parquet(black_box(&batches)))
    });
    group.bench_function("csv", |b| {
        b.iter(|| table::to_csv(black_box(&batches), &[]))
    });
    group.bench_function("json", |b| {
        b.iter(|| table::to_json(black_box(&batches), &[]))
    });
    group.finish();
}

criterion_group!(benches, bench_encoders);
criterion_main!(benches);
