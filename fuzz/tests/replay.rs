//! Replays every committed input of every fuzz target (`corpus/<target>/`, the seeds and what
//! the fuzzer kept, and `regressions/<target>/`, inputs that once crashed) through the
//! target's harness: the fast check CI runs with `cargo test`.

use std::path::Path;

type Harness = fn(&[u8]);

const TARGETS: [(&str, Harness); 12] = [
    ("slice_parser", tessera_fuzz::slice_parser),
    ("query_filters", tessera_fuzz::query_filters),
    ("metadata_patch", tessera_fuzz::metadata_patch),
    ("json_body", tessera_fuzz::json_body),
    ("msgpack_body", tessera_fuzz::msgpack_body),
    ("arrow_ipc_upload", tessera_fuzz::arrow_ipc_upload),
    ("zarr_metadata", tessera_fuzz::zarr_metadata),
    ("npy_header", tessera_fuzz::npy_header),
    ("netcdf3_header", tessera_fuzz::netcdf3_header),
    ("bitshuffle_lz4", tessera_fuzz::bitshuffle_lz4),
    ("gzip_shuffle", tessera_fuzz::gzip_shuffle),
    ("tiff", tessera_fuzz::tiff),
];

/// The files directly in `dir` (none when it does not exist), in name order.
fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_target_replays_its_corpus_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    let mut crashed = Vec::new();
    for (name, harness) in TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name}/ is empty: run fuzz/seed.py"
        );
        let regressions = inputs(&root.join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            if std::panic::catch_unwind(|| harness(&data)).is_err() {
                crashed.push(path.display().to_string());
            }
        }
        println!(
            "{name}: replayed {} corpus and {} regression inputs",
            corpus.len(),
            regressions.len()
        );
        total += corpus.len() + regressions.len();
    }
    println!("replayed {total} inputs");
    assert!(crashed.is_empty(), "these inputs crash: {crashed:#?}");
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "{name} has no [[bin]] in fuzz/Cargo.toml"
        );
    }
}
