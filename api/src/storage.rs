//! Where written data lives: a root location in an object store (a local directory by
//! default, or an S3-compatible bucket, which every node and worker of a cluster reaches).
//! Every write goes to a fresh location that the catalog points at only once the write is
//! complete; locations nothing points at any more are removed afterwards. What a crash leaves
//! behind (a half-written location, one whose removal never ran, an interrupted put's staging
//! file) is swept at start-up.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use tessera_common::stores::{self, BucketSpec};

use crate::error::ApiError;

/// The writable storage of a catalog.
pub struct Storage {
    /// What every location of this storage begins with (ends with `/`).
    prefix: String,
    store: Arc<dyn ObjectStore>,
    /// The object path of the root in `store`.
    root: StorePath,
    /// The root directory, for a local storage (swept and tidied through the file system).
    local: Option<PathBuf>,
    /// How long a superseded location is kept before it is removed: readers that resolved
    /// the node before the write committed are still reading it (on any node).
    removal_delay: std::time::Duration,
}

impl Storage {
    /// Storage in the local directory `dir` (created if missing).
    pub fn local(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let root = dir.canonicalize()?;
        let prefix = format!("file://localhost{}/", root.display());
        let (store, path) = stores::locate(&prefix)?;
        Ok(Storage {
            prefix,
            store,
            root: path,
            local: Some(root),
            removal_delay: std::time::Duration::ZERO,
        })
    }

    /// Storage in a bucket (registered in this process, so that its locations can be read).
    /// The bucket must exist: a store that cannot be listed is a start-up error.
    pub async fn bucket(spec: &BucketSpec) -> anyhow::Result<Self> {
        let (store, root) = stores::register(spec).map_err(anyhow::Error::msg)?;
        let mut probe = store.list(Some(&root));
        if let Some(Err(e)) = probe.next().await {
            anyhow::bail!("the writable storage {} cannot be listed: {e}", spec.base());
        }
        Ok(Storage {
            prefix: format!("{}/", spec.base()),
            store,
            root,
            local: None,
            removal_delay: std::time::Duration::ZERO,
        })
    }

    /// The same storage, keeping superseded locations for `delay` before removing them (a
    /// node's request timeout: no read that began before the write outlives it).
    pub fn with_removal_delay(mut self, delay: std::time::Duration) -> Self {
        self.removal_delay = delay;
        self
    }

    /// The prefix every location of this storage begins with.
    pub fn prefix(&self) -> String {
        self.prefix.clone()
    }

    /// A new, unused location for one node's data (`file://localhost/...` or in the bucket).
    pub fn new_location(&self, ext: &str) -> String {
        let name = uuid::Uuid::new_v4().simple().to_string();
        // Spread over 256 directories so none grows huge.
        format!("{}{}/{name}.{ext}", self.prefix, &name[..2])
    }

    /// The object store path of a location of this storage, if it is one.
    fn object_path(&self, uri: &str) -> Option<StorePath> {
        // `file:///x` and `file://localhost/x` name the same place.
        let uri = match uri.strip_prefix("file:///") {
            Some(rest) => format!("file://localhost/{rest}"),
            None => uri.to_string(),
        };
        // Only locations inside the root are ours to remove.
        let rest = uri.strip_prefix(&self.prefix)?.trim_end_matches('/');
        let rest = StorePath::parse(rest).ok()?;
        if rest.parts().count() == 0 {
            return None;
        }
        Some(self.root.parts().chain(rest.parts()).collect())
    }

    /// Removes everything at `uri` (a location this storage handed out; others are left).
    pub async fn remove(&self, uri: &str) -> Result<(), ApiError> {
        let Some(prefix) = self.object_path(uri) else {
            return Ok(());
        };
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| ApiError::internal(format!("listing {uri}: {e}")))?;
            self.store
                .delete(&meta.location)
                .await
                .map_err(|e| ApiError::internal(format!("removing {uri}: {e}")))?;
        }
        // The local store leaves empty directories behind.
        if self.local.is_some() {
            let _ = tokio::fs::remove_dir_all(Path::new("/").join(prefix.as_ref())).await;
        }
        Ok(())
    }

    /// Removes a location in the background once the removal delay has passed, logging (not
    /// failing) if it cannot. A removal that a restart cuts short is the start-up sweep's.
    pub fn remove_later(self: &Arc<Self>, uri: String) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.removal_delay).await;
            if let Err(e) = this.remove(&uri).await {
                tracing::warn!("could not remove {uri}: {}", e.detail);
            }
        });
    }

    /// Removes what no catalog row points at and nothing touched since `before`: locations
    /// not in `kept` (data of writes a crash cut short, or of nodes whose removal never ran),
    /// and the staging files (`name#n`) interrupted puts leave inside kept locations (local
    /// storage only: a bucket's puts leave nothing half-written).
    /// `before` protects writes in flight (of this node or, with a shared catalog, others).
    pub async fn sweep(
        &self,
        kept: HashSet<String>,
        before: SystemTime,
    ) -> Result<Swept, ApiError> {
        let Some(root) = self.local.clone() else {
            return self.sweep_bucket(&kept, before).await;
        };
        let prefix = self.prefix();
        tokio::task::spawn_blocking(move || sweep_dir(&root, &prefix, &kept, before))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(format!("sweeping the storage: {e}")))
    }

    /// [`Storage::sweep`] of a bucket: its objects grouped by location (`<shard>/<name>`
    /// under the root), each location judged by its newest object.
    async fn sweep_bucket(
        &self,
        kept: &HashSet<String>,
        before: SystemTime,
    ) -> Result<Swept, ApiError> {
        let failed =
            |e: object_store::Error| ApiError::internal(format!("sweeping the storage: {e}"));
        let depth = self.root.parts().count();
        let mut locations: HashMap<String, (SystemTime, Vec<StorePath>)> = HashMap::new();
        let mut listing = self.store.list(Some(&self.root));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(failed)?;
            let parts: Vec<_> = meta.location.parts().skip(depth).take(2).collect();
            if parts.len() < 2 {
                continue; // not something this storage wrote
            }
            let name = format!("{}/{}", parts[0].as_ref(), parts[1].as_ref());
            let entry = locations
                .entry(name)
                .or_insert((SystemTime::UNIX_EPOCH, Vec::new()));
            entry.0 = entry.0.max(meta.last_modified.into());
            entry.1.push(meta.location);
        }
        let mut swept = Swept::default();
        for (name, (newest, objects)) in locations {
            if kept.contains(&format!("{}{name}", self.prefix)) || newest >= before {
                continue;
            }
            for object in objects {
                self.store.delete(&object).await.map_err(failed)?;
            }
            swept.locations += 1;
        }
        Ok(swept)
    }
}

/// What a sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub locations: usize,
    pub staging_files: usize,
}

fn sweep_dir(
    root: &Path,
    prefix: &str,
    kept: &HashSet<String>,
    before: SystemTime,
) -> std::io::Result<Swept> {
    let mut swept = Swept::default();
    for shard in std::fs::read_dir(root)? {
        let shard = shard?;
        if !shard.file_type()?.is_dir() {
            continue;
        }
        let shard_name = shard.file_name().to_string_lossy().into_owned();
        for entry in std::fs::read_dir(shard.path())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if kept.contains(&format!("{prefix}{shard_name}/{name}")) {
                swept.staging_files += remove_staging_files(&path, before)?;
            } else if newest_change(&path)? < before {
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
                swept.locations += 1;
            }
        }
    }
    Ok(swept)
}

/// The latest modification time of anything under `path`.
fn newest_change(path: &Path) -> std::io::Result<SystemTime> {
    let md = std::fs::symlink_metadata(path)?;
    let mut newest = md.modified()?;
    if md.is_dir() {
        for entry in std::fs::read_dir(path)? {
            newest = newest.max(newest_change(&entry?.path())?);
        }
    }
    Ok(newest)
}

/// Removes the object store's staging files (`name#n`) under `path` older than `before`.
fn remove_staging_files(path: &Path, before: SystemTime) -> std::io::Result<usize> {
    let md = std::fs::symlink_metadata(path)?;
    if !md.is_dir() {
        return Ok(0);
    }
    let mut n = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            n += remove_staging_files(&p, before)?;
        } else if entry.file_name().to_string_lossy().contains('#')
            && entry.metadata()?.modified()? < before
        {
            std::fs::remove_file(&p)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sweep_removes_what_no_row_points_at() {
        let dir = std::env::temp_dir().join(format!("tessera-sweep-{}", uuid::Uuid::new_v4()));
        let storage = Storage::local(&dir).unwrap();
        let kept_uri = storage.new_location("zarr");
        let orphan_uri = storage.new_location("parquet");
        let kept = Path::new("/").join(tessera_common::adapters::local_path(&kept_uri).unwrap());
        let orphan =
            Path::new("/").join(tessera_common::adapters::local_path(&orphan_uri).unwrap());
        std::fs::create_dir_all(kept.join("c/0")).unwrap();
        std::fs::write(kept.join("c/0/0"), b"chunk").unwrap();
        std::fs::write(kept.join("c/0/1#7"), b"half a put").unwrap();
        std::fs::create_dir_all(&orphan).unwrap();
        std::fs::write(orphan.join("part-0.parquet"), b"never committed").unwrap();

        // Everything is newer than a time in the past: nothing goes.
        let past = SystemTime::now() - std::time::Duration::from_secs(3600);
        let keep: HashSet<String> = [kept_uri.clone()].into();
        assert_eq!(
            storage.sweep(keep.clone(), past).await.unwrap(),
            Swept::default()
        );
        assert!(orphan.exists());

        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        let swept = storage.sweep(keep, later).await.unwrap();
        assert_eq!(
            swept,
            Swept {
                locations: 1,
                staging_files: 1
            }
        );
        assert!(!orphan.exists());
        assert!(kept.join("c/0/0").exists());
        assert!(!kept.join("c/0/1#7").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
