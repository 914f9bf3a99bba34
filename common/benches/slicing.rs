//! Slicing and chunk assembly on the demo's medium_image layout (1000x1000 f64, 250x100
//! chunks) and one 4096x4096 block of big_image.

use std::hint::black_box;
use std::str::FromStr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tessera_common::chunks::{ChunkGrid, assemble};
use tessera_common::slicing::{Selection, SliceSpec, copy_selection};

fn bench_slicing(c: &mut Criterion) {
    let shape = [1000usize, 1000];
    let whole: Vec<u8> = (0..shape[0] * shape[1] * 8).map(|i| i as u8).collect();
    let grid = ChunkGrid::new(&shape, vec![vec![250; 4], vec![100; 10]]).expect("valid grid");
    let blocks: Vec<Vec<u8>> = (0..40)
        .map(|b| {
            let block = [b / 10, b % 10];
            let origin = grid.block_origin(&block).expect("in range");
            let spec = format!(
                "{}:{},{}:{}",
                origin[0],
                origin[0] + 250,
                origin[1],
                origin[1] + 100
            );
            let sel = SliceSpec::from_str(&spec)
                .expect("valid")
                .resolve(&shape)
                .expect("fits");
            copy_selection(&whole, &shape, 8, &sel)
        })
        .collect();
    let mut group = c.benchmark_group("medium_image");
    for (name, spec) in [
        ("full", ""),
        ("row band", "100:200"),
        ("strided", "::3,5:900:7"),
        ("one column", ":,417"),
        ("reversed", "::-1,::-1"),
    ] {
        let sel = SliceSpec::from_str(spec)
            .expect("valid")
            .resolve(&shape)
            .expect("fits");
        group.throughput(Throughput::Bytes((sel.num_elements() * 8) as u64));
        group.bench_function(format!("copy_selection {name}"), |b| {
            b.iter(|| copy_selection(black_box(&whole), &shape, 8, &sel))
        });
        group.bench_function(format!("plan+assemble {name}"), |b| {
            b.iter(|| {
                assemble(&grid, &sel, 8, |block: &[usize]| -> Result<&[u8], ()> {
                    Ok(&blocks[block[0] * 10 + block[1]])
                })
            })
        });
    }
    group.finish();

    let big = [4096usize, 4096];
    let block: Vec<u8> = vec![7; big[0] * big[1] * 8];
    let mut group = c.benchmark_group("big_image block");
    group.sample_size(10);
    let sel = Selection::full(&big);
    group.throughput(Throughput::Bytes(block.len() as u64));
    group.bench_function("copy 4096x4096 f64", |b| {
        b.iter(|| copy_selection(black_box(&block), &big, 8, &sel))
    });
    group.finish();
}

criterion_group!(benches, bench_slicing);
criterion_main!(benches);
