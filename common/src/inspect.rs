//! What a file or directory holds, as a tree of nodes ready for a catalog: the adapter is
//! chosen by file extension (configurable, like Tiled's `file_extensions`), keys follow
//! `tiled serve directory` (the name with every suffix removed), and anything that cannot be
//! served is reported, not guessed at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Map;

use crate::adapters::{
    AdapterError, DataSource, Management, image_stack, netcdf3_file, parquet_table, table_files,
    xlsx, zarr,
};
use crate::node::TreeNode;
use crate::structure::{Structure, StructureFamily};

/// File formats tessera reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Hdf5,
    Zarr,
    Parquet,
    Csv,
    Tiff,
    Npy,
    Xlsx,
    NetCdf,
}

impl Format {
    /// The mimetype data sources of this format carry.
    pub fn mimetype(self) -> &'static str {
        match self {
            Format::Hdf5 => "application/x-hdf5",
            Format::Zarr => zarr::MIMETYPE,
            Format::Parquet => parquet_table::MIMETYPE,
            Format::Csv => table_files::CSV_MIMETYPE,
            Format::Tiff => image_stack::TIFF_MIMETYPE,
            Format::Npy => image_stack::NPY_MIMETYPE,
            Format::Xlsx => xlsx::MIMETYPE,
            Format::NetCdf => netcdf3_file::MIMETYPE,
        }
    }

    /// The format a mimetype names.
    pub fn from_mimetype(m: &str) -> Option<Format> {
        let mut parts = m.split(';').map(str::trim);
        let mut base = parts.next().unwrap_or("");
        // A sequence (`multipart/related;type=image/tiff`) is of its parts' format.
        if base == "multipart/related" {
            base = parts
                .find_map(|p| p.strip_prefix("type="))
                .unwrap_or("")
                .trim_matches('"');
        }
        Some(match base {
            "application/x-hdf5" | "application/x-nexus" => Format::Hdf5,
            "application/x-zarr" => Format::Zarr,
            "application/x-parquet" => Format::Parquet,
            "text/csv" | "text/x-comma-separated-values" => Format::Csv,
            "image/tiff" => Format::Tiff,
            "application/x-npy" => Format::Npy,
            xlsx::MIMETYPE => Format::Xlsx,
            "application/x-netcdf" | "application/netcdf" => Format::NetCdf,
            _ => return None,
        })
    }
}

/// Which format each file extension is read as.
#[derive(Clone, Debug)]
pub struct Formats {
    by_extension: BTreeMap<String, Format>,
}

impl Default for Formats {
    fn default() -> Self {
        let mut by_extension = BTreeMap::new();
        for (ext, f) in [
            ("h5", Format::Hdf5),
            ("hdf5", Format::Hdf5),
            ("hdf", Format::Hdf5),
            ("nxs", Format::Hdf5),
            ("zarr", Format::Zarr),
            ("parquet", Format::Parquet),
            ("csv", Format::Csv),
            ("tif", Format::Tiff),
            ("tiff", Format::Tiff),
            ("npy", Format::Npy),
            ("xlsx", Format::Xlsx),
            ("nc", Format::NetCdf),
        ] {
            by_extension.insert(ext.to_string(), f);
        }
        Formats { by_extension }
    }
}

impl Formats {
    /// Reads files ending in `.ext` as the format `mimetype` names.
    pub fn set(&mut self, ext: &str, mimetype: &str) -> Result<(), String> {
        let f = Format::from_mimetype(mimetype)
            .ok_or_else(|| format!("no adapter reads {mimetype:?}"))?;
        self.by_extension
            .insert(ext.trim_start_matches('.').to_ascii_lowercase(), f);
        Ok(())
    }

    /// The format of `path`, by its last extension (Zarr stores are also recognised by
    /// their metadata files).
    pub fn of(&self, path: &Path) -> Option<Format> {
        if path.is_dir() {
            return zarr_tree_store(path).then_some(Format::Zarr);
        }
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        self.by_extension.get(&ext).copied()
    }
}

fn zarr_tree_store(path: &Path) -> bool {
    crate::adapters::zarr_tree::is_store(path)
}

/// The key `tiled serve directory` gives a file: its name with every suffix removed
/// (`scan.v2.h5` -> `scan`); dot-files have none.
pub fn key_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') {
        return None;
    }
    let key = name.split('.').next().unwrap_or(name);
    (!key.is_empty()).then(|| key.to_string())
}

/// The tree of one file or store of `format`, keyed `key`. Parts that cannot be served are
/// listed in `skipped`.
pub fn file(
    path: &Path,
    format: Format,
    key: &str,
    skipped: &mut Vec<String>,
) -> Result<TreeNode, AdapterError> {
    let mut node = match format {
        #[cfg(feature = "hdf5")]
        Format::Hdf5 => crate::adapters::hdf5_file::inspect(path, key, skipped)?,
        #[cfg(not(feature = "hdf5"))]
        Format::Hdf5 => {
            return Err(AdapterError::BadSource(format!(
                "{}: this build of tessera has no HDF5 support",
                path.display()
            )));
        }
        Format::Zarr => crate::adapters::zarr_tree::inspect(path, key, skipped)?,
        Format::Parquet => {
            let (s, src) = table_files::inspect_parquet(&[path.to_path_buf()])?;
            TreeNode::data(key, Structure::Table(s), src)
        }
        Format::Csv => {
            let (s, src) = table_files::inspect_csv(&[path.to_path_buf()], Map::new())?;
            TreeNode::data(key, Structure::Table(s), src)
        }
        Format::Xlsx => xlsx::inspect(path, key, skipped)?,
        Format::NetCdf => netcdf3_file::inspect_any(path, key, skipped)?,
        Format::Tiff | Format::Npy => {
            let (s, src) = image_stack::inspect(&[path.to_path_buf()], format == Format::Npy)?;
            TreeNode::data(key, Structure::Array(s), src)
        }
    };
    if node.family == StructureFamily::Container {
        // Remember where a container came from (for registration and re-scans).
        node.source = Some(DataSource {
            structure_family: StructureFamily::Container,
            mimetype: format.mimetype().into(),
            parameters: Map::new(),
            assets: vec![crate::adapters::Asset {
                data_uri: crate::adapters::file_uri(path),
                is_directory: path.is_dir(),
                parameter: Some("data_uri".into()),
                num: None,
            }],
            management: Management::External,
        });
    }
    Ok(node)
}

/// What one entry of a directory is to a walk.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryKind {
    /// A file (or Zarr store) of this format.
    File(Format),
    /// Numbered TIFF or `.npy` files (`<stem><digits>.tif`), in name order, read as one
    /// array with a leading axis over the files.
    Sequence(Format, Vec<PathBuf>),
    /// A directory to walk into.
    Directory,
    /// Left out, with the reason.
    Skipped(String),
}

/// One entry of a directory, with the key it is served under.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: PathBuf,
    /// `path` with symlinks resolved.
    pub real: PathBuf,
    pub key: String,
    pub kind: EntryKind,
}

impl Entry {
    /// The files this entry reads: its own, or its sequence's.
    pub fn files(&self) -> Vec<PathBuf> {
        match &self.kind {
            EntryKind::Sequence(_, files) => files.clone(),
            _ => vec![self.real.clone()],
        }
    }
}

/// The tree of a file or sequence entry (see [`file`]).
pub fn describe(e: &Entry, skipped: &mut Vec<String>) -> Result<TreeNode, AdapterError> {
    match &e.kind {
        EntryKind::File(f) => file(&e.real, *f, &e.key, skipped),
        EntryKind::Sequence(f, files) => {
            let (s, src) = image_stack::inspect(files, *f == Format::Npy)?;
            Ok(TreeNode::data(&e.key, Structure::Array(s), src))
        }
        _ => Err(AdapterError::BadSource(format!(
            "{}: not a file",
            e.path.display()
        ))),
    }
}

/// The entries of directory `dir` (inside the served directory `root`, both canonical), in
/// name order. Dot-files are left out silently; symlinks that lead outside `root`, symlink
/// loops, files no adapter reads and keys taken by an earlier name are [`EntryKind::Skipped`].
pub fn entries(root: &Path, dir: &Path, formats: &Formats) -> std::io::Result<Vec<Entry>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut out = Vec::with_capacity(paths.len());
    // Numbered images group into sequences, keyed by their stem, placed at the first file.
    let mut sequences: BTreeMap<String, (usize, Format, Vec<PathBuf>)> = BTreeMap::new();
    for path in paths {
        if let (Some(stem), Some(f @ (Format::Tiff | Format::Npy))) =
            (image_stack::sequence_stem(&path), formats.of(&path))
            && let Ok(real) = path.canonicalize()
            && real.starts_with(root)
            && real.is_file()
        {
            let key = key_of(Path::new(&stem)).unwrap_or(stem);
            let at = out.len();
            let seq = sequences.entry(key.clone()).or_insert_with(|| {
                out.push(Entry {
                    path: path.clone(),
                    real: real.clone(),
                    key: key.clone(),
                    kind: EntryKind::Skipped(String::new()),
                });
                (at, f, Vec::new())
            });
            seq.2.push(real);
            continue;
        }
        let Some(key) = key_of(&path) else {
            continue;
        };
        let (real, kind) = match path.canonicalize() {
            Err(e) => (
                path.clone(),
                EntryKind::Skipped(format!("cannot be resolved ({e})")),
            ),
            Ok(real) if !real.starts_with(root) => (
                real,
                EntryKind::Skipped("leads outside the served directory".into()),
            ),
            Ok(real) => {
                let kind = match formats.of(&real) {
                    Some(f) => EntryKind::File(f),
                    // A directory that is one of its own ancestors is a symlink loop.
                    None if real.is_dir() && dir.starts_with(&real) => {
                        EntryKind::Skipped("a symlink loop".into())
                    }
                    None if real.is_dir() => EntryKind::Directory,
                    None => EntryKind::Skipped("no adapter for this file type".into()),
                };
                (real, kind)
            }
        };
        let kind = match (kind, taken.get(&key)) {
            (EntryKind::Skipped(why), _) => EntryKind::Skipped(why),
            (_, Some(first)) => EntryKind::Skipped(format!(
                "its key {key:?} is already taken by {}",
                first.display()
            )),
            (kind, None) => {
                taken.insert(key.clone(), path.clone());
                kind
            }
        };
        out.push(Entry {
            path,
            real,
            key,
            kind,
        });
    }
    for (key, (at, format, files)) in sequences {
        out[at].kind = match taken.get(&key) {
            Some(first) => EntryKind::Skipped(format!(
                "the sequence's key {key:?} is already taken by {}",
                first.display()
            )),
            None => EntryKind::Sequence(format, files),
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_drop_every_suffix() {
        assert_eq!(key_of(Path::new("/d/scan.h5")).as_deref(), Some("scan"));
        assert_eq!(
            key_of(Path::new("/d/v0.7.1.parquet")).as_deref(),
            Some("v0")
        );
        assert_eq!(key_of(Path::new("/d/.hidden.h5")), None);
    }

    #[test]
    fn formats_follow_extensions_and_can_be_changed() {
        let mut f = Formats::default();
        assert_eq!(f.of(Path::new("/nonexistent/a.NXS")), Some(Format::Hdf5));
        assert_eq!(f.of(Path::new("/nonexistent/a.txt")), None);
        f.set(".txt", "text/csv").unwrap();
        assert_eq!(f.of(Path::new("/nonexistent/a.txt")), Some(Format::Csv));
        assert!(f.set("x", "image/x-unknown").is_err());
    }
}
