//! Caps on what a file's header may make tessera allocate or walk. Files served in place come
//! from anyone who can write to a served directory, so every shape, chunk count, depth and
//! size read from a header is checked here before it sizes a buffer or a loop; a file past a
//! cap is refused with [`AdapterError::Limit`], naming the cap.

use super::AdapterError;

/// Most dimensions an array may have (numpy's own limit).
pub const MAX_NDIM: usize = 64;

/// Most chunks along one axis. The structure lists every chunk's length per axis (Tiled's
/// `chunks`), so this bounds the structure's size: 2^20 entries are about 8 MiB of JSON.
pub const MAX_CHUNKS_PER_AXIS: usize = 1 << 20;

/// Most chunks in a whole array (the product over the axes).
pub const MAX_CHUNKS_TOTAL: u64 = 1 << 32;

/// Largest decoded chunk (one block is decoded whole, whatever slice of it is asked for).
pub const MAX_CHUNK_BYTES: u64 = 1 << 30;

/// Deepest nesting of groups in one file or store.
pub const MAX_GROUP_DEPTH: usize = 64;

/// Most nodes (groups and arrays) described from one file or store: hard links can make a
/// small file a tree of billions of paths.
pub const MAX_NODES_PER_FILE: usize = 100_000;

/// Largest metadata document (`zarr.json`, `.zarray`, `.zmetadata`) read whole.
pub const MAX_METADATA_BYTES: u64 = 64 << 20;

/// Largest text table (CSV) read: a partition is the whole file, parsed in memory.
pub const MAX_TEXT_TABLE_BYTES: u64 = 256 << 20;

/// Largest uncompressed content of a zip container (an `.xlsx` workbook).
pub const MAX_UNZIPPED_BYTES: u64 = 256 << 20;

/// Most cells of one worksheet (rows times columns of its used range): a sheet is read whole.
pub const MAX_SHEET_CELLS: u64 = 20_000_000;

fn limit(what: String) -> AdapterError {
    AdapterError::Limit(what)
}

/// The bytes an array of `shape` and `itemsize` holds, if that fits in 64 bits.
pub fn checked_bytes(shape: &[usize], itemsize: usize) -> Option<u64> {
    shape
        .iter()
        .try_fold(itemsize as u64, |n, &d| n.checked_mul(d as u64))
}

/// The chunk lists (Tiled's `chunks`) of an array of `shape` cut into regular chunks of
/// `chunk` (the last one per axis shorter), after checking the header's numbers against the
/// caps above: the rank, the array's size in bytes (it must fit in 64 bits), a chunk's size,
/// and the number of chunks per axis and in all, before anything is allocated.
pub fn chunk_lists(
    shape: &[usize],
    chunk: &[usize],
    itemsize: usize,
) -> Result<Vec<Vec<usize>>, AdapterError> {
    if shape.len() > MAX_NDIM {
        return Err(limit(format!(
            "the array has {} dimensions; at most {MAX_NDIM} are served",
            shape.len()
        )));
    }
    if chunk.len() != shape.len() {
        return Err(AdapterError::Corrupt(format!(
            "the chunk shape {chunk:?} and the array shape {shape:?} differ in length"
        )));
    }
    if checked_bytes(shape, itemsize).is_none() {
        return Err(limit(format!(
            "the array's shape {shape:?} of {itemsize}-byte elements holds more than 2^64 bytes"
        )));
    }
    let mut total: u64 = 1;
    for (axis, (&n, &c)) in shape.iter().zip(chunk).enumerate() {
        if c == 0 && n > 0 {
            return Err(AdapterError::Corrupt(format!(
                "the chunk length along axis {axis} is 0"
            )));
        }
        let count = if n == 0 { 1 } else { n.div_ceil(c) };
        if count > MAX_CHUNKS_PER_AXIS {
            return Err(limit(format!(
                "{count} chunks along axis {axis} (length {n} in chunks of {c}); at most \
                 {MAX_CHUNKS_PER_AXIS} per axis are served"
            )));
        }
        total = total.saturating_mul(count as u64);
    }
    if total > MAX_CHUNKS_TOTAL {
        return Err(limit(format!(
            "{total} chunks in all; at most {MAX_CHUNKS_TOTAL} are served"
        )));
    }
    let block: Vec<usize> = shape.iter().zip(chunk).map(|(&n, &c)| c.min(n)).collect();
    match checked_bytes(&block, itemsize) {
        Some(b) if b <= MAX_CHUNK_BYTES => {}
        _ => {
            return Err(limit(format!(
                "a chunk of shape {block:?} of {itemsize}-byte elements is larger than \
                 {MAX_CHUNK_BYTES} bytes, the most decoded at once"
            )));
        }
    }
    Ok(shape
        .iter()
        .zip(chunk)
        .map(|(&n, &c)| super::regular_chunks(n, c))
        .collect())
}

/// Counts the groups and arrays of one file as they are described, refusing past
/// [`MAX_NODES_PER_FILE`] nodes or [`MAX_GROUP_DEPTH`] levels.
#[derive(Debug, Default)]
pub struct Walk {
    nodes: usize,
}

impl Walk {
    /// Counts one more node at `depth` (the root is depth 0); the error says which cap.
    pub fn enter(&mut self, depth: usize) -> Result<(), String> {
        self.nodes += 1;
        if self.nodes > MAX_NODES_PER_FILE {
            return Err(format!(
                "more than {MAX_NODES_PER_FILE} groups and arrays (hard links may repeat a \
                 group many times); at most {MAX_NODES_PER_FILE} are served per file"
            ));
        }
        if depth > MAX_GROUP_DEPTH {
            return Err(format!(
                "groups nested more than {MAX_GROUP_DEPTH} deep; at most {MAX_GROUP_DEPTH} \
                 levels are served"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_chunks_of_a_huge_shape_are_refused_before_allocating() {
        let e = chunk_lists(&[1 << 40], &[1], 8).unwrap_err();
        assert!(matches!(e, AdapterError::Limit(_)));
        assert!(e.to_string().contains("per axis"), "{e}");
    }

    #[test]
    fn shapes_whose_size_overflows_are_refused() {
        let e = chunk_lists(&[1 << 62, 1 << 62], &[1 << 62, 1 << 62], 8).unwrap_err();
        assert!(e.to_string().contains("2^64"), "{e}");
        let e = chunk_lists(&[usize::MAX], &[usize::MAX], 1).unwrap_err();
        assert!(matches!(e, AdapterError::Limit(_)), "{e}");
    }

    #[test]
    fn too_many_chunks_in_all_and_too_large_chunks_are_refused() {
        let e = chunk_lists(&[1 << 17, 1 << 17], &[1, 1], 1).unwrap_err();
        assert!(e.to_string().contains("in all"), "{e}");
        let e = chunk_lists(&[1 << 16, 1 << 16], &[1 << 16, 1 << 16], 8).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        let e = chunk_lists(&[10], &[0], 8).unwrap_err();
        assert!(matches!(e, AdapterError::Corrupt(_)), "{e}");
    }

    #[test]
    fn ordinary_arrays_get_their_chunk_lists() {
        assert_eq!(
            chunk_lists(&[10, 4], &[3, 4], 8).unwrap(),
            vec![vec![3, 3, 3, 1], vec![4]]
        );
        assert_eq!(chunk_lists(&[0], &[5], 8).unwrap(), vec![vec![0]]);
        assert_eq!(chunk_lists(&[], &[], 8).unwrap(), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn walks_stop_at_the_depth_and_node_caps() {
        let mut w = Walk::default();
        assert!(w.enter(MAX_GROUP_DEPTH).is_ok());
        assert!(w.enter(MAX_GROUP_DEPTH + 1).is_err());
        let mut w = Walk::default();
        for _ in 0..MAX_NODES_PER_FILE {
            w.enter(1).unwrap();
        }
        assert!(w.enter(1).is_err());
    }
}
