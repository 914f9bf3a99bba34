//! Awkward arrays written through the API: the uploaded zip of buffers (`<form_key>-<role>`
//! entries) kept as one object under the array's location, so a write is one atomic put.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{Adapter, AdapterError, AwkwardReader, DataSource};

/// The mimetype of awkward arrays kept as a zip of their buffers.
pub const MIMETYPE: &str = "application/x-awkward-buffers+zip";

fn object(uri: &str) -> Result<(Arc<dyn ObjectStore>, StorePath), AdapterError> {
    super::parquet_table::object_path(uri, "buffers.zip")
}

/// The buffers of a zip body, by entry name (`<form_key>-<role>`).
pub fn buffers(zip: &[u8]) -> Result<Vec<(String, Bytes)>, AdapterError> {
    let bad =
        |e: &dyn std::fmt::Display| AdapterError::BadSource(format!("the zip of buffers: {e}"));
    let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| bad(&e))?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| bad(&e))?;
        let name = entry.name().map_err(|e| bad(&e))?.to_string();
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(|e| bad(&e))?;
        out.push((name, Bytes::from(data)));
    }
    Ok(out)
}

/// Stores the zip of buffers (checked to be a readable zip first).
pub async fn write(uri: &str, zip: Bytes) -> Result<(), AdapterError> {
    buffers(&zip)?;
    let (store, path) = object(uri)?;
    store
        .put(&path, PutPayload::from(zip))
        .await
        .map_err(|e| AdapterError::Read(format!("writing {path}: {e}")))?;
    Ok(())
}

struct AwkwardZip {
    uri: String,
    handle: tokio::runtime::Handle,
}

impl AwkwardReader for AwkwardZip {
    fn read_buffers(&self, form_keys: &[String]) -> Result<Vec<(String, Bytes)>, AdapterError> {
        let (store, path) = object(&self.uri)?;
        let zip = self.handle.block_on(async {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        let zip = zip
            .map_err(|e| AdapterError::Read(format!("reading {path}: {e}")))?
            .ok_or_else(|| {
                AdapterError::Read("this awkward array has not been written yet".into())
            })?;
        let all = buffers(&zip)?;
        Ok(all
            .into_iter()
            .filter(|(name, _)| {
                form_keys.is_empty()
                    || name
                        .rsplit_once('-')
                        .is_some_and(|(key, _)| form_keys.iter().any(|k| k == key))
            })
            .collect())
    }
}

/// Opens an awkward data source (its first asset is the array's location).
pub fn open(source: &DataSource) -> Result<Adapter, AdapterError> {
    Ok(Adapter::Awkward(Arc::new(AwkwardZip {
        uri: super::first_asset(source)?,
        handle: super::runtime()?,
    })))
}
