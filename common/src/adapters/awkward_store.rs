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

/// The most bytes a stored zip of buffers is read into: uploads are checked against the
/// upload limit when written, this only keeps a damaged object from inflating without bound.
const READ_LIMIT: u64 = 4 << 30;

/// The buffers of a zip body, by entry name (`<form_key>-<role>`), inflating at most `limit`
/// bytes in all. The sizes the zip declares are not trusted: a zip bomb stops at the limit.
pub fn buffers(zip: &[u8], limit: u64) -> Result<Vec<(String, Bytes)>, AdapterError> {
    let bad =
        |e: &dyn std::fmt::Display| AdapterError::BadSource(format!("the zip of buffers: {e}"));
    let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| bad(&e))?;
    let mut out = Vec::new();
    let mut left = limit;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(|e| bad(&e))?;
        let name = entry.name().map_err(|e| bad(&e))?.to_string();
        // Room for what the entry claims, but never more than is left (nor more than 64 MiB
        // ahead of the bytes actually read).
        let mut data = Vec::with_capacity(entry.size().min(left).min(64 << 20) as usize);
        entry
            .take(left + 1)
            .read_to_end(&mut data)
            .map_err(|e| bad(&e))?;
        left = left.checked_sub(data.len() as u64).ok_or_else(|| {
            AdapterError::BadSource(format!(
                "the zip of buffers inflates to more than {limit} bytes (entry {name:?})"
            ))
        })?;
        out.push((name, Bytes::from(data)));
    }
    Ok(out)
}

/// Stores the zip of buffers (checked first to be a readable zip that inflates to at most
/// `limit` bytes).
pub async fn write(uri: &str, zip: Bytes, limit: u64) -> Result<(), AdapterError> {
    buffers(&zip, limit)?;
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
        let all = buffers(&zip, READ_LIMIT)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            let opts = ::zip::write::SimpleFileOptions::default()
                .compression_method(::zip::CompressionMethod::Stored);
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn an_entry_over_the_limit_stops_at_it() {
        let zip = zip_of(&[("node0-data", vec![0u8; 2 << 20])]);
        let e = buffers(&zip, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("inflates to more than 1048576 bytes"), "{e}");
        let got = buffers(&zip, 2 << 20).unwrap();
        assert_eq!(got[0].1.len(), 2 << 20);
    }

    #[test]
    fn the_limit_counts_every_entry() {
        let zip = zip_of(&[("a-data", vec![1u8; 600]), ("b-data", vec![2u8; 600])]);
        assert!(buffers(&zip, 1000).is_err());
        assert_eq!(buffers(&zip, 1200).unwrap().len(), 2);
    }
}
