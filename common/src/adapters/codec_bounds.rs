//! Checks a stored chunk against what it may decode to before a codec library decodes it.
//! The Zarr codecs inflate without a bound (zstd and gzip read to the end of the stream), so a
//! chunk of a few kilobytes could fill memory: here the outermost codec's stream is measured
//! without keeping what it decodes (zstd and blosc by their headers, gzip by inflating into
//! nothing, stopping past the bound), and a chunk that would decode to more than its shape
//! holds is refused as corrupt.

use std::io::Read;

/// Bytes a codec may add to a chunk's size (headers, checksums).
const SLACK: u64 = 4096;

/// Checks `stored` (the bytes of one chunk as stored, `codec` being the last codec applied
/// when writing) against `decoded`, the bytes the chunk's shape holds. Unknown codecs pass:
/// they are bounded by their own format or refused by the library.
pub fn check(codec: &str, stored: &[u8], decoded: u64) -> Result<(), String> {
    let bound = decoded.saturating_add(SLACK);
    let within = |n: u64| {
        if n > bound {
            return Err(format!(
                "a {codec} chunk decodes to more than the {decoded} bytes its shape holds"
            ));
        }
        Ok(())
    };
    match codec {
        "zstd" => zstd_content_size(stored).and_then(within),
        "gzip" => inflated_size(flate2::read::GzDecoder::new(stored), bound).and_then(within),
        "zlib" => inflated_size(flate2::read::ZlibDecoder::new(stored), bound).and_then(within),
        "blosc" => blosc_size(stored).and_then(within),
        _ => Ok(()),
    }
}

/// The bytes a deflate stream inflates to, counted up to one past `bound`.
fn inflated_size(decoder: impl Read, bound: u64) -> Result<u64, String> {
    std::io::copy(&mut decoder.take(bound + 1), &mut std::io::sink())
        .map_err(|e| format!("the compressed stream is damaged ({e})"))
}

/// The decoded size of a blosc buffer, from its 16-byte header.
fn blosc_size(stored: &[u8]) -> Result<u64, String> {
    let header = stored
        .get(..16)
        .ok_or("the blosc chunk is shorter than its header")?;
    let word = |at: usize| {
        u64::from(u32::from_le_bytes([
            header[at],
            header[at + 1],
            header[at + 2],
            header[at + 3],
        ]))
    };
    if word(12) > stored.len() as u64 {
        return Err(format!(
            "the blosc header says {} bytes but the chunk has {}",
            word(12),
            stored.len()
        ));
    }
    Ok(word(4))
}

/// The total content size the zstd frames of `stored` declare. Every frame must declare it
/// (the decoder then stops at it); skippable frames count nothing.
fn zstd_content_size(stored: &[u8]) -> Result<u64, String> {
    let short = || "the zstd chunk ends early".to_string();
    let mut at = 0usize;
    let mut total: u64 = 0;
    while at < stored.len() {
        let magic = stored.get(at..at + 4).ok_or_else(short)?;
        let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
        if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
            let size = stored.get(at + 4..at + 8).ok_or_else(short)?;
            let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
            at = at.checked_add(8 + size).ok_or_else(short)?;
            continue;
        }
        if magic != 0xFD2F_B528 {
            return Err("not a zstd frame".into());
        }
        let fhd = *stored.get(at + 4).ok_or_else(short)?;
        let single = fhd & 0x20 != 0;
        let checksum = fhd & 0x04 != 0;
        let dict = [0usize, 1, 2, 4][usize::from(fhd & 3)];
        let fcs = match fhd >> 6 {
            0 if single => 1,
            0 => 0,
            1 => 2,
            2 => 4,
            _ => 8,
        };
        if fcs == 0 {
            return Err("a zstd frame does not declare its size".into());
        }
        let mut p = at + 5 + usize::from(!single) + dict;
        let field = stored.get(p..p + fcs).ok_or_else(short)?;
        let mut size = field
            .iter()
            .rev()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b));
        if fcs == 2 {
            size += 256;
        }
        total = total.saturating_add(size);
        p += fcs;
        // Walk the blocks to the next frame.
        loop {
            let h = stored.get(p..p + 3).ok_or_else(short)?;
            let h = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
            let last = h & 1 != 0;
            let kind = (h >> 1) & 3;
            let len = (h >> 3) as usize;
            p += 3 + if kind == 1 { 1 } else { len };
            if kind == 3 {
                return Err("a zstd block of a reserved type".into());
            }
            if last {
                break;
            }
        }
        at = p + if checksum { 4 } else { 0 };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zstd_bomb_is_refused_by_its_frames_sizes() {
        let frame = zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap();
        assert!(check("zstd", &frame, 1 << 20).is_ok());
        let bomb = frame.repeat(64);
        let e = check("zstd", &bomb, 1 << 20).unwrap_err();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn a_gzip_bomb_is_refused_without_inflating_it_whole() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(check("gzip", &bomb, 8 << 20).is_ok());
        assert!(check("gzip", &bomb, 8192).is_err());
        assert!(check("gzip", &bomb[..bomb.len() / 2], 8 << 20).is_err());
    }

    #[test]
    fn a_blosc_header_that_promises_too_much_is_refused() {
        let mut header = vec![2u8, 1, 1, 8];
        header.extend((64u32 << 20).to_le_bytes());
        header.extend(0u32.to_le_bytes());
        header.extend(16u32.to_le_bytes());
        assert!(check("blosc", &header, 8192).is_err());
        assert!(check("blosc", &header[..10], 8192).is_err());
    }
}
