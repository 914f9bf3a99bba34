//! `Content-Encoding: blosc2` for raw array bytes, which the Tiled client offers and decodes
//! with C-Blosc2 (each chunk with `blosc2.decompress`, chunk after chunk). Arrays of counts,
//! such as detector frames, shrink about as much as with zstd but encode and decode several
//! times faster: the elements are byte-shuffled by their size, then LZ4-compressed, in blocks.
//!
//! The body is a sequence of independent chunks in the Blosc chunk format (the 16-byte header
//! of format version 2, which C-Blosc2 reads): a header (version, compressor format version,
//! flags, type size, uncompressed size, block size, compressed size), the offsets of the blocks,
//! then each block as a 32-bit size and its LZ4 data, or its shuffled bytes as they are when
//! LZ4 does not shrink them (the size is then the block's own).

/// Uncompressed bytes per chunk (rounded down to whole elements).
const CHUNK_BYTES: usize = 8 << 20;
/// Uncompressed bytes per block (rounded down to whole elements).
const BLOCK_BYTES: usize = 256 << 10;
/// Header flags: byte shuffle, blocks not split into streams, LZ4 (compressor 1, bits 5-7).
const SHUFFLE: u8 = 0x01;
const DONT_SPLIT: u8 = 0x10;
const LZ4: u8 = 1 << 5;

/// `data` (elements of `typesize` bytes) as blosc2-decodable chunks, encoded on up to
/// `workers` threads.
pub fn encode(data: &[u8], typesize: usize, workers: usize) -> Vec<u8> {
    // Blosc's type size is one byte; wider elements (structured) are shuffled as bytes.
    let typesize = if (1..=255).contains(&typesize) && data.len().is_multiple_of(typesize) {
        typesize
    } else {
        1
    };
    let chunk = (CHUNK_BYTES / typesize).max(1) * typesize;
    let parts: Vec<&[u8]> = data.chunks(chunk).collect();
    let workers = workers.clamp(1, parts.len().max(1));
    let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(parts.len());
    if workers == 1 {
        encoded.extend(parts.iter().map(|p| encode_chunk(p, typesize)));
    } else {
        let per = parts.len().div_ceil(workers);
        std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .chunks(per)
                .map(|group| {
                    s.spawn(move || {
                        group
                            .iter()
                            .map(|p| encode_chunk(p, typesize))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                // A panic in a worker is a bug here; it surfaces as this thread's panic.
                encoded.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
        });
    }
    encoded.concat()
}

/// One chunk of at most [`CHUNK_BYTES`].
fn encode_chunk(data: &[u8], typesize: usize) -> Vec<u8> {
    let block = (BLOCK_BYTES / typesize).max(1) * typesize;
    let block = block.min(data.len()).max(1);
    let blocks: Vec<&[u8]> = data.chunks(block).collect();
    let header = 16 + 4 * blocks.len();
    let mut out = vec![0u8; header];
    let mut shuffled = vec![0u8; block];
    for (i, b) in blocks.iter().enumerate() {
        let start = u32::try_from(out.len()).unwrap_or(u32::MAX);
        out[16 + 4 * i..20 + 4 * i].copy_from_slice(&start.to_le_bytes());
        let raw: &[u8] = if typesize > 1 {
            shuffle(b, typesize, &mut shuffled[..b.len()]);
            &shuffled[..b.len()]
        } else {
            b
        };
        let packed = lz4_flex::block::compress(raw);
        // A block LZ4 does not shrink is stored as it is: its size says so.
        let body: &[u8] = if packed.len() < raw.len() {
            &packed
        } else {
            raw
        };
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
    }
    let flags = DONT_SPLIT | LZ4 | if typesize > 1 { SHUFFLE } else { 0 };
    out[0] = 2; // format version (Blosc 1.x chunks, which C-Blosc2 reads)
    out[1] = 1; // LZ4 format version
    out[2] = flags;
    out[3] = typesize as u8;
    let total = out.len() as u32;
    out[4..8].copy_from_slice(&(data.len() as u32).to_le_bytes());
    out[8..12].copy_from_slice(&(block as u32).to_le_bytes());
    out[12..16].copy_from_slice(&total.to_le_bytes());
    out
}

/// Byte shuffle: byte `j` of every element together, for each `j` in turn.
fn shuffle(src: &[u8], typesize: usize, dst: &mut [u8]) {
    let n = src.len() / typesize;
    for (i, element) in src.chunks_exact(typesize).enumerate() {
        for (j, &byte) in element.iter().enumerate() {
            dst[j * n + i] = byte;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` bytes of xorshift noise (which no compressor shrinks).
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Decodes what [`encode`] writes (the reading side is C-Blosc2 in the client; this checks
    /// the layout the tests in tests/compat decode for real).
    fn decode(mut body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !body.is_empty() {
            let word =
                |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap()) as usize;
            let (typesize, nbytes, block, cbytes) = (body[3] as usize, word(4), word(8), word(12));
            let nblocks = nbytes.div_ceil(block);
            for i in 0..nblocks {
                let start = word(16 + 4 * i);
                let len = (nbytes - i * block).min(block);
                let csize = word(start);
                let stream = &body[start + 4..start + 4 + csize];
                let raw = if csize == len {
                    stream.to_vec()
                } else {
                    lz4_flex::block::decompress(stream, len).unwrap()
                };
                let n = len / typesize;
                for e in 0..n {
                    for j in 0..typesize {
                        out.push(raw[j * n + e]);
                    }
                }
            }
            body = &body[cbytes..];
        }
        out
    }

    #[test]
    fn chunks_round_trip_for_every_element_size() {
        for typesize in [1usize, 2, 4, 8, 3] {
            for len in [typesize, 1000 * typesize, (BLOCK_BYTES + 7) * typesize] {
                let data: Vec<u8> = (0..len).map(|i| ((i * 7) % 13) as u8).collect();
                let body = encode(&data, typesize, 2);
                assert_eq!(decode(&body), data, "typesize {typesize}, {len} bytes");
                assert_eq!(body[3] as usize, typesize);
            }
        }
    }

    #[test]
    fn large_bodies_are_several_chunks_and_noise_is_stored() {
        let data = noise(CHUNK_BYTES * 2 + 12, 0x2545_F491_4F6C_DD1D);
        let body = encode(&data, 4, 3);
        assert_eq!(decode(&body), data);
        // Three chunks; noise is stored as it is, so only the headers are added.
        let nblocks = data.len().div_ceil(BLOCK_BYTES);
        assert_eq!(body.len(), data.len() + 3 * 16 + 8 * nblocks);
    }
}
