//! Stored (uncompressed) zip archives of named buffers: awkward and ragged arrays travel so.

use std::io::Write;

use super::SerializeError;

/// A zip with one stored entry per `(name, bytes)`, in order.
pub fn zip_stored(entries: &[(String, &[u8])]) -> Result<Vec<u8>, SerializeError> {
    let mut w = ::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = ::zip::write::SimpleFileOptions::default()
        .compression_method(::zip::CompressionMethod::Stored)
        .large_file(entries.iter().any(|(_, b)| b.len() >= u32::MAX as usize));
    for (name, bytes) in entries {
        w.start_file(name.as_str(), opts)
            .map_err(SerializeError::encode)?;
        w.write_all(bytes).map_err(SerializeError::encode)?;
    }
    Ok(w.finish().map_err(SerializeError::encode)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn entries_read_back_in_order() {
        let z = zip_stored(&[
            ("node0-offsets".into(), &[1u8, 2][..]),
            ("b".into(), &[][..]),
        ])
        .unwrap();
        let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(z)).unwrap();
        assert_eq!(archive.len(), 2);
        let mut first = archive.by_index(0).unwrap();
        assert_eq!(first.name().unwrap(), "node0-offsets");
        assert_eq!(first.compression(), ::zip::CompressionMethod::Stored);
        let mut buf = Vec::new();
        first.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, [1, 2]);
    }
}
