//! Where written data lives: a root location in an object store (a local directory by
//! default). Every write goes to a fresh location that the catalog points at only once the
//! write is complete; locations nothing points at any more are removed afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::ApiError;

/// The writable storage of a catalog.
pub struct Storage {
    root: PathBuf,
    store: Arc<dyn ObjectStore>,
}

impl Storage {
    /// Storage in the local directory `dir` (created if missing).
    pub fn local(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let root = dir.canonicalize()?;
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        Ok(Storage { root, store })
    }

    /// A new, unused location for one node's data (`file://localhost/...`).
    pub fn new_location(&self, ext: &str) -> String {
        let name = uuid::Uuid::new_v4().simple().to_string();
        // Spread over 256 directories so none grows huge.
        format!(
            "file://localhost{}/{}/{name}.{ext}",
            self.root.display(),
            &name[..2]
        )
    }

    /// The object store path of a location of this storage, if it is one.
    fn object_path(&self, uri: &str) -> Option<object_store::path::Path> {
        let path = tessera_common::adapters::local_path(uri).ok()?;
        // Only locations inside the root are ours to remove.
        Path::new("/").join(&path).strip_prefix(&self.root).ok()?;
        object_store::path::Path::parse(path).ok()
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
        let _ = tokio::fs::remove_dir_all(Path::new("/").join(prefix.as_ref())).await;
        Ok(())
    }

    /// Removes a location in the background, logging (not failing) if it cannot.
    pub fn remove_later(self: &Arc<Self>, uri: String) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.remove(&uri).await {
                tracing::warn!("could not remove {uri}: {}", e.detail);
            }
        });
    }
}
