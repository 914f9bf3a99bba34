//! Slicing and chunk assembly on the demo's medium_image layout (1000x1000 f64, 250x100
//! chunks) and a 4096x4096 block of big_image, for copy_selection and plan+assemble.

use std::hint::black_box;
use std::str::FromStr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tessera_common::chunks::{ChunkError, ChunkGrid, assemble};
use tessera_common::slicing::{Selection, SliceSpec, copy_selection};

fn resolve(spec: &str, shape: &[usize]) -> Selection {
    SliceSpec::from_str(spec)
        .and_then(|s| s.resolve(shape))
        .unwrap_or_else(|e| panic!("bench slice {spec:?}: {e}"))
}

fn bench_medium(c: &mut Criterion) {
    let shape = [1000usize, 1000];
    let whole: Vec<u8> = (0..shape[0] * shape[1] * 8).map(|i| i as u8).collect();
    let grid = ChunkGrid::new(&shape, vec![vec![250; 4], vec![100; 10]]).expect("valid grid");
    // The decoded chunks, cut out of the whole array once.
    let blocks: Vec<Vec<u8>> = (0..40)
        .map(|b| {
            let origin = grid.block_origin(&[b / 10, b % 10]).expect("in range");
            let spec = format!(
                "{}:{},{}:{}",
                origin[0],
                origin[0] + 250,
                origin[1],
                origin[1] + 100
            );
            copy_selection(&whole, &shape, 8, &resolve(&spec, &shape))
        })
        .collect();
    let mut group = c.benchmark_group("medium_image 1000x1000 f64");
    for (name, spec) in [
        ("full", ""),
        ("row band", "100:200"),
        ("strided", "::3,5:900:7"),
        ("one column", ":,417"),
        ("reversed", "::-1,::-1"),
    ] {
        let sel = resolve(spec, &shape);
        group.throughput(Throughput::Bytes((sel.num_elements() * 8) as u64));
        group.bench_function(format!("copy_selection {name}"), |b| {
            b.iter(|| copy_selection(black_box(&whole), &shape, 8, &sel))
        });
        group.bench_function(format!("plan+assemble {name}"), |b| {
            b.iter(|| {
                assemble(&grid, &sel, 8, |block: &[usize]| {
                    Ok::<_, ChunkError>(blocks[block[0] * 10 + block[1]].as_slice())
                })
            })
        });
    }
    group.finish();
}

fn bench_big_block(c: &mut Criterion) {
    // big_image is 10000x10000 f64 in 4096x4096 chunks; reading block (1, 1) through
    // /array/full cuts it out of the whole array.
    let shape = [10_000usize, 10_000];
    let whole: Vec<u8> = vec![7; shape[0] * shape[1] * 8];
    let sel = resolve("4096:8192,4096:8192", &shape);
    let mut group = c.benchmark_group("big_image block 4096x4096 f64");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((sel.num_elements() * 8) as u64));
    group.bench_function("copy_selection", |b| {
        b.iter(|| copy_selection(black_box(&whole), &shape, 8, &sel))
    });
    let grid = ChunkGrid::regular(&shape, &[4096, 4096]);
    let block = copy_selection(&whole, &shape, 8, &sel);
    // The floor: one memcpy of the same bytes into a fresh buffer (mostly page faults).
    group.bench_function("baseline to_vec", |b| b.iter(|| black_box(&block).to_vec()));
    group.bench_function("plan+assemble", |b| {
        b.iter(|| {
            assemble(&grid, &sel, 8, |_: &[usize]| {
                Ok::<_, ChunkError>(block.as_slice())
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_medium, bench_big_block);
criterion_main!(benches);
