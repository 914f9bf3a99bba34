//! `tessera serve directory`: a directory of files served as a tree. The root answers at once;
//! the files are indexed into the (SQLite) catalog in the background, each file as soon as its
//! adapter has described it, so the listing grows while indexing runs. With `--watch` the
//! directory is rescanned and files added, changed or removed are indexed again.
//!
//! A file that cannot be read stays in the tree as an empty container with the spec
//! [`UNREADABLE`] and its error in the metadata; reading it answers that error (a 4xx). So does
//! a file whose adapter panics while describing it: one hostile file never stops the scan.
//! Files are named relative to the served directory, never by their path on the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde_json::{Value, json};
use tessera_common::adapters::AdapterError;
use tessera_common::inspect::{self, Entry, EntryKind, Formats};
use tessera_common::node::TreeNode;
use tessera_common::structure::{Spec, StructureFamily};

use crate::catalog::{Catalog, NewNode};
use crate::error::ApiError;

/// The spec of a node standing for a file that could not be read.
pub const UNREADABLE: &str = "unreadable";

/// What a file looked like when it was indexed; a change means it is indexed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    size: u64,
}

fn stamp(path: &Path) -> Stamp {
    // A Zarr store's metadata file changes when the store is rewritten.
    let probe = ["zarr.json", ".zarray", ".zgroup", ".zmetadata"]
        .iter()
        .map(|f| path.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| path.to_path_buf());
    let md = std::fs::metadata(&probe).ok();
    Stamp {
        modified: md.as_ref().and_then(|m| m.modified().ok()),
        size: md.map_or(0, |m| m.len()),
    }
}

/// One stamp for several files (a sequence): the latest change and the total size, so
/// adding, removing or rewriting any of them changes it.
fn stamp_all(files: &[PathBuf]) -> Stamp {
    let stamps: Vec<Stamp> = files.iter().map(|f| stamp(f)).collect();
    Stamp {
        modified: stamps.iter().filter_map(|s| s.modified).max(),
        size: stamps.iter().map(|s| s.size).sum::<u64>() + files.len() as u64,
    }
}

impl Stamp {
    fn text(&self) -> String {
        let nanos = self
            .modified
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{nanos}-{}", self.size)
    }
}

/// Counters of an indexing pass, shown as progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub files: usize,
    pub unreadable: usize,
    pub skipped: usize,
    pub removed: usize,
}

/// Indexes a directory into a catalog and keeps it in step.
pub struct Indexer {
    catalog: Arc<dyn Catalog>,
    root: PathBuf,
    formats: Formats,
    /// Every indexed file (or store) by its path in the tree, with its stamp.
    known: BTreeMap<Vec<String>, (PathBuf, Stamp)>,
    /// Directories indexed, by their path in the tree.
    dirs: BTreeMap<Vec<String>, PathBuf>,
    pub progress: Progress,
    last_report: Instant,
}

impl Indexer {
    /// An indexer of `root` (canonicalized) into `catalog`, whose root container exists.
    pub fn new(catalog: Arc<dyn Catalog>, root: &Path, formats: Formats) -> std::io::Result<Self> {
        Ok(Indexer {
            catalog,
            root: root.canonicalize()?,
            formats,
            known: BTreeMap::new(),
            dirs: BTreeMap::new(),
            progress: Progress::default(),
            last_report: Instant::now(),
        })
    }

    /// One pass over the directory: indexes what is new or changed, removes what is gone.
    pub async fn scan(&mut self) -> Result<(), ApiError> {
        let mut seen_files = Vec::new();
        let mut seen_dirs = Vec::new();
        let root = self.root.clone();
        self.scan_dir(&[], &root, &mut seen_files, &mut seen_dirs)
            .await?;
        // Removed files and directories (a directory's removal takes its files with it).
        let gone_files: Vec<Vec<String>> = self
            .known
            .keys()
            .filter(|k| !seen_files.contains(k))
            .cloned()
            .collect();
        for path in gone_files {
            self.known.remove(&path);
            self.remove(&path).await?;
        }
        let gone_dirs: Vec<Vec<String>> = self
            .dirs
            .keys()
            .filter(|k| !seen_dirs.contains(k))
            .cloned()
            .collect();
        for path in gone_dirs {
            self.dirs.remove(&path);
            self.known.retain(|k, _| !k.starts_with(&path));
            self.remove(&path).await?;
        }
        Ok(())
    }

    async fn remove(&mut self, path: &[String]) -> Result<(), ApiError> {
        match self.catalog.delete(path, true, false).await {
            Ok(_) => {
                self.progress.removed += 1;
                tracing::info!(path = %path.join("/"), "removed from the tree");
                Ok(())
            }
            Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn report(&mut self, force: bool) {
        if force || self.last_report.elapsed() >= Duration::from_secs(2) {
            self.last_report = Instant::now();
            let p = &self.progress;
            tracing::info!(
                files = p.files,
                unreadable = p.unreadable,
                skipped = p.skipped,
                "indexing {}",
                self.root.display()
            );
        }
    }

    async fn scan_dir(
        &mut self,
        parent: &[String],
        dir: &Path,
        seen_files: &mut Vec<Vec<String>>,
        seen_dirs: &mut Vec<Vec<String>>,
    ) -> Result<(), ApiError> {
        let (root, d, formats) = (self.root.clone(), dir.to_path_buf(), self.formats.clone());
        let list = tokio::task::spawn_blocking(move || inspect::entries(&root, &d, &formats))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let list = match list {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("{}: cannot be listed ({e})", dir.display());
                return Ok(());
            }
        };
        // Files first (described on the blocking pool, several at once, created in name
        // order), then the subdirectories, as Tiled walks a directory.
        let mut todo = Vec::new();
        let mut subdirs = Vec::new();
        for e in list {
            let mut path = parent.to_vec();
            path.push(e.key.clone());
            match &e.kind {
                EntryKind::Skipped(why) => {
                    if !self.known.contains_key(&path) {
                        self.progress.skipped += 1;
                        tracing::info!("skipped {}: {why}", e.path.display());
                    }
                }
                EntryKind::Directory => subdirs.push((path, e)),
                EntryKind::File(_) | EntryKind::Sequence(..) => {
                    seen_files.push(path.clone());
                    let now = stamp_all(&e.files());
                    match self.known.get(&path) {
                        Some((_, then)) if *then == now => continue,
                        Some(_) => {
                            // The old node serves until the new one replaces it.
                            tracing::info!("{} changed: indexing it again", e.path.display());
                        }
                        None => {}
                    }
                    todo.push((path, e, now));
                }
            }
        }
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut described = futures::stream::iter(todo.into_iter().map(|(path, e, now)| {
            let entry = e.clone();
            async move {
                let result = tokio::task::spawn_blocking(move || describe(&entry)).await;
                (path, e, now, result)
            }
        }))
        .buffered(parallel);
        // Created in batches, one transaction each: the listing still grows as indexing runs.
        let mut batch: Vec<(Vec<String>, PathBuf, Stamp, TreeNode)> = Vec::new();
        while let Some((path, e, now, result)) = described.next().await {
            let node = match result.map_err(|e| ApiError::internal(e.to_string()))? {
                (Ok(mut t), skipped) => {
                    for s in skipped {
                        tracing::info!("left out {s}");
                    }
                    stamp_sources(&mut t, &now.text());
                    self.progress.files += 1;
                    t
                }
                (Err(err), _) => {
                    tracing::warn!("unreadable: {err}");
                    self.progress.unreadable += 1;
                    let root = &self.root;
                    unreadable(
                        &e.key,
                        &relative(root, &e.path.display().to_string()),
                        &relative(root, &err.to_string()),
                    )
                }
            };
            batch.push((path, e.real.clone(), now, node));
            if batch.len() >= BATCH {
                self.create_batch(parent, std::mem::take(&mut batch))
                    .await?;
            }
        }
        drop(described);
        self.create_batch(parent, batch).await?;
        for (path, e) in subdirs {
            seen_dirs.push(path.clone());
            if !self.dirs.contains_key(&path) {
                let node = TreeNode::container(&e.key, json!({}), Vec::new());
                self.create(parent, node).await?;
                self.dirs.insert(path.clone(), e.real.clone());
            }
            Box::pin(self.scan_dir(&path, &e.real, seen_files, seen_dirs)).await?;
        }
        Ok(())
    }

    async fn create_batch(
        &mut self,
        parent: &[String],
        batch: Vec<(Vec<String>, PathBuf, Stamp, TreeNode)>,
    ) -> Result<(), ApiError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut nodes = Vec::with_capacity(batch.len());
        let mut done = Vec::with_capacity(batch.len());
        for (path, real, now, t) in batch {
            nodes.push(new_node(t));
            done.push((path, real, now));
        }
        // Replacing, not skipping, taken keys: a changed file's node, or one a catalog kept
        // from an earlier run, gives way to what the file holds now, in one transaction.
        self.catalog.replace_all(parent, nodes).await?;
        for (path, real, now) in done {
            self.known.insert(path, (real, now));
        }
        self.report(false);
        Ok(())
    }

    async fn create(&self, parent: &[String], t: TreeNode) -> Result<(), ApiError> {
        match self.catalog.create(parent, new_node(t)).await {
            Ok(_) => Ok(()),
            // Indexed by an earlier pass that was interrupted: keep it.
            Err(e) if e.status == axum::http::StatusCode::CONFLICT => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Indexes everything once, then (with `watch`) rescans every `interval` forever.
    pub async fn run(mut self, watch: Option<Duration>) {
        let started = Instant::now();
        if let Err(e) = self.scan().await {
            tracing::error!("indexing {} failed: {e}", self.root.display());
        }
        self.report(true);
        tracing::info!(
            "indexed {} in {:.1} s",
            self.root.display(),
            started.elapsed().as_secs_f64()
        );
        let Some(interval) = watch else {
            return;
        };
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = self.scan().await {
                tracing::error!("rescanning {} failed: {e}", self.root.display());
            }
        }
    }
}

/// Files created per catalog transaction while indexing.
const BATCH: usize = 256;

fn new_node(t: TreeNode) -> NewNode {
    NewNode {
        key: t.key,
        family: t.family,
        metadata: t.metadata,
        specs: t.specs,
        access_tags: Vec::new(),
        data: t.structure.zip(t.source),
        children: t.children,
    }
}

/// Marks every data source of a file's tree with the file's stamp, so cached chunks of an
/// earlier version of the file are never served for the new one.
fn stamp_sources(t: &mut TreeNode, stamp: &str) {
    if let Some(src) = &mut t.source {
        src.parameters.insert("stamp".into(), json!(stamp));
    }
    for c in &mut t.children {
        stamp_sources(c, stamp);
    }
}

/// Describes one entry on the blocking pool. A panic in an adapter (a bug a crafted file
/// found) makes the file unreadable instead of ending the scan.
fn describe(entry: &Entry) -> (Result<TreeNode, AdapterError>, Vec<String>) {
    let mut skipped = Vec::new();
    let described = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        inspect::describe(entry, &mut skipped)
    }));
    let t = described.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(AdapterError::Corrupt(format!(
            "{}: describing it failed ({why})",
            entry.path.display()
        )))
    });
    (t, skipped)
}

/// `text` with the served directory's path taken out of every path in it, so a client sees
/// where a file is in the tree, not where the server keeps it.
fn relative(root: &Path, text: &str) -> String {
    let root = root.display().to_string();
    text.replace(&format!("{root}/"), "").replace(&root, ".")
}

/// The node standing for a file that cannot be read.
fn unreadable(key: &str, file: &str, error: &str) -> TreeNode {
    let mut t = TreeNode::container(key, json!({"file": file, "error": error}), Vec::new());
    t.specs = vec![Spec::named(UNREADABLE)];
    t
}

/// The error a node standing for an unreadable file answers, if it is one.
pub fn unreadable_error(
    family: StructureFamily,
    specs: &[Spec],
    metadata: &serde_json::Map<String, Value>,
) -> Option<ApiError> {
    if family != StructureFamily::Container || !specs.iter().any(|s| s.name == UNREADABLE) {
        return None;
    }
    let error = metadata.get("error").and_then(Value::as_str).unwrap_or("");
    Some(ApiError::unprocessable(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_files_relative_to_the_served_directory() {
        let root = Path::new("/srv/beamtime");
        assert_eq!(
            relative(root, "/srv/beamtime/raw/a.h5: not a readable HDF5 file"),
            "raw/a.h5: not a readable HDF5 file"
        );
        assert_eq!(relative(root, "in /srv/beamtime"), "in .");
    }

    #[test]
    fn a_panicking_adapter_makes_the_file_unreadable() {
        let entry = Entry {
            path: PathBuf::from("/nonexistent/x.h5"),
            real: PathBuf::from("/nonexistent/x.h5"),
            key: "x".into(),
            // Not a file: describing it is an error, and never a panic that escapes.
            kind: EntryKind::Directory,
        };
        let (t, _) = describe(&entry);
        assert!(t.is_err());
    }
}
