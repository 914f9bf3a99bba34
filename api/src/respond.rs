//! Turning a payload into an HTTP answer: JSON or msgpack documents, ETags and `304`s,
//! `Content-Encoding` (zstd or gzip, only where it pays), and the headers Tiled's client reads.

use std::io::Write;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::negotiate;

/// Bodies smaller than this go out uncompressed (as Tiled does).
const MIN_COMPRESS: usize = 1000;
/// Compress only if the result is at most this fraction of the original (Tiled: 1/0.9).
const MAX_RATIO: f64 = 0.9;
/// Bodies above this size must shrink to [`MAX_RATIO_LARGE`] to be sent compressed.
const LARGE: usize = 1 << 20;
/// zstd costs about 1 ns per byte to encode here and the Python client about 1.2 ns per byte to
/// decode, so a 15 % saving pays only on links slower than about 500 Mbit/s: on a facility
/// network a large body that shrinks less than 20 % goes faster as it is. (A 60-frame stack of
/// 12-bit detector counts shrinks 14.5 %: compressing it made the client's whole read 1.7 times
/// slower over loopback.)
const MAX_RATIO_LARGE: f64 = 0.8;
/// Large bodies are probed on a prefix first, so incompressible data (random floats) costs
/// one small trial instead of a full pass.
const PROBE: usize = 64 * 1024;

/// A payload ready to send.
pub struct Payload {
    pub body: Bytes,
    pub media_type: String,
    pub etag: Option<String>,
    pub filename: Option<String>,
    /// For raw array bytes, the element size: such a body may go out as blosc2 (see
    /// [`crate::blosc`]) when the client offers it.
    pub typesize: Option<usize>,
}

/// A content-derived ETag.
pub fn etag_of(parts: &[&[u8]]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let hex: String = digest.as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

/// The encodings the client accepts, of those sent here: (zstd, gzip, blosc2).
fn accepted_encodings(headers: &HeaderMap) -> (bool, bool, bool) {
    let v = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let has = |name: &str| {
        v.split(',').any(|p| {
            let mut it = p.split(';');
            let n = it.next().unwrap_or("").trim();
            let q0 = it.any(|q| q.trim().replace(' ', "") == "q=0");
            n == name && !q0
        })
    };
    (has("zstd"), has("gzip"), has("blosc2"))
}

/// Bodies at least this large are compressed by zstd's worker threads.
const PARALLEL_ZSTD: usize = 8 << 20;

/// Threads compressing response bodies, for the whole process: one per core, shared by every
/// response (a large one takes the free ones), so 48 large answers at once do not start 96
/// compression threads.
static COMPRESSION_THREADS: std::sync::LazyLock<(Arc<Semaphore>, usize)> =
    std::sync::LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (Arc::new(Semaphore::new(cores)), cores)
    });

/// Permits for compressing one body: one (waited for), plus whichever others are free when
/// the body is large enough to share out.
async fn compression_permits(len: usize) -> Vec<OwnedSemaphorePermit> {
    let (sem, cores) = &*COMPRESSION_THREADS;
    let Ok(first) = sem.clone().acquire_owned().await else {
        return Vec::new();
    };
    let mut permits = vec![first];
    if len >= PARALLEL_ZSTD {
        while permits.len() < *cores {
            match sem.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
    }
    permits
}

fn zstd_with(data: &[u8], workers: usize) -> Option<Vec<u8>> {
    if workers <= 1 || data.len() < PARALLEL_ZSTD {
        return zstd::bulk::compress(data, 1).ok();
    }
    let mut c = zstd::bulk::Compressor::new(1).ok()?;
    c.set_parameter(zstd::stream::raw::CParameter::NbWorkers(workers as u32))
        .ok()?;
    c.compress(data).ok()
}

fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::fast(),
    );
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

/// Compresses `body` with the best encoding the client accepts, if that pays, on one thread.
pub fn compress(headers: &HeaderMap, body: &Bytes) -> Option<(&'static str, Bytes)> {
    compress_with(headers, body, 1, None)
}

/// As [`compress`], on up to `workers` threads for large bodies. Raw array bytes (elements of
/// `typesize`) go out as blosc2 when the client takes it: shuffled LZ4 encodes and decodes
/// several times faster than zstd for about the same size.
fn compress_with(
    headers: &HeaderMap,
    body: &Bytes,
    workers: usize,
    typesize: Option<usize>,
) -> Option<(&'static str, Bytes)> {
    if body.len() < MIN_COMPRESS {
        return None;
    }
    let (z, g, b) = accepted_encodings(headers);
    let zstd = move |d: &[u8]| zstd_with(d, workers);
    let blosc = move |d: &[u8]| Some(crate::blosc::encode(d, typesize.unwrap_or(1), workers));
    type Codec<'a> = &'a dyn Fn(&[u8]) -> Option<Vec<u8>>;
    let (name, f): (&'static str, Codec) = if b && typesize.is_some() {
        ("blosc2", &blosc)
    } else if z {
        ("zstd", &zstd)
    } else if g {
        ("gzip", &gzip)
    } else {
        return None;
    };
    let max_ratio = if body.len() > LARGE {
        MAX_RATIO_LARGE
    } else {
        MAX_RATIO
    };
    if body.len() > 4 * PROBE {
        let probe = f(&body[..PROBE])?;
        if probe.len() as f64 > max_ratio * PROBE as f64 {
            return None;
        }
    }
    let out = f(body)?;
    (out.len() as f64 <= max_ratio * body.len() as f64).then(|| (name, Bytes::from(out)))
}

/// Whether the client already holds the representation named `etag`.
pub fn not_modified(headers: &HeaderMap, etag: &str) -> Option<Response> {
    let inm = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    if !inm.split(',').any(|t| t.trim() == etag || t.trim() == "*") {
        return None;
    }
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Some(r)
}

/// Answers a data request whose ETag is known before any data is read: 304 if the client
/// has it, else the body from the encoded-response cache, producing it on a miss.
pub async fn cached(
    headers: &HeaderMap,
    encoded: &crate::cache::EncodedCache,
    etag: String,
    media_type: &str,
    filename: Option<String>,
    produce: impl std::future::Future<Output = Result<Bytes, ApiError>>,
) -> Result<Response, ApiError> {
    if let Some(r) = not_modified(headers, &etag) {
        return Ok(r);
    }
    let body = encoded.get_or_encode(&etag, produce).await?;
    Ok(send(
        headers,
        Payload {
            body,
            media_type: media_type.to_string(),
            etag: Some(etag),
            filename,
            typesize: None,
        },
    )
    .await)
}

/// Builds the response: 304 on a matching `If-None-Match`, else the (maybe compressed) body.
/// Compression of large bodies runs on the blocking pool.
pub async fn send(headers: &HeaderMap, p: Payload) -> Response {
    if let Some(r) = p.etag.as_deref().and_then(|e| not_modified(headers, e)) {
        return r;
    }
    let body = p.body.clone();
    let compressed = if body.len() > 256 * 1024 {
        let hdrs = headers.clone();
        let permits = compression_permits(body.len()).await;
        let typesize = p.typesize;
        tokio::task::spawn_blocking(move || {
            let workers = permits.len();
            compress_with(&hdrs, &body, workers, typesize)
        })
        .await
        .ok()
        .flatten()
    } else {
        compress_with(headers, &body, 1, p.typesize)
    };
    let mut resp = match &compressed {
        Some((_, b)) => b.clone().into_response(),
        None => p.body.into_response(),
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&negotiate::content_type(&p.media_type)) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some((enc, _)) = compressed {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(etag) = p.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        h.insert(header::ETAG, etag);
    }
    if let Some(name) = p.filename {
        let safe: String = name
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

/// Serializes a document as msgpack (when the client asks for it first) or JSON, with an ETag.
pub async fn document(headers: &HeaderMap, doc: &Value) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (body, media_type) = if negotiate::wants_msgpack(accept) {
        let b = rmp_serde::to_vec_named(doc).map_err(|e| ApiError::internal(e.to_string()))?;
        (b, negotiate::MSGPACK)
    } else {
        let b = serde_json::to_vec(doc).map_err(|e| ApiError::internal(e.to_string()))?;
        (b, negotiate::JSON)
    };
    let etag = etag_of(&[&body]);
    Ok(send(
        headers,
        Payload {
            body: Bytes::from(body),
            media_type: media_type.to_string(),
            etag: Some(etag),
            filename: None,
            typesize: None,
        },
    )
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(ae: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(ae).unwrap());
        h
    }

    #[test]
    fn compressible_bodies_use_zstd_when_offered() {
        let body = Bytes::from(vec![1u8; 40_000]);
        let (enc, out) = compress(&hdrs("gzip, deflate, zstd, blosc2"), &body).unwrap();
        assert_eq!(enc, "zstd");
        assert_eq!(zstd::bulk::decompress(&out, 40_000).unwrap(), body.to_vec());
        let (enc, _) = compress(&hdrs("gzip"), &body).unwrap();
        assert_eq!(enc, "gzip");
    }

    #[test]
    fn small_random_or_unaccepted_bodies_stay_plain() {
        assert!(compress(&hdrs("zstd"), &Bytes::from(vec![1u8; 100])).is_none());
        assert!(compress(&hdrs("identity"), &Bytes::from(vec![1u8; 40_000])).is_none());
        let noise = crate::blosc::tests::noise(300_000, 0x9e37_79b9_7f4a_7c15);
        assert!(compress(&hdrs("zstd"), &Bytes::from(noise)).is_none());
    }

    /// Bytes drawn uniformly from `0..levels`, which zstd shrinks to about log2(levels) / 8.
    fn levels(n: usize, levels: u64) -> Bytes {
        let mut x = 0x2545f4914f6cdd1du64;
        Bytes::from(
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % levels) as u8
                })
                .collect::<Vec<u8>>(),
        )
    }

    #[test]
    fn large_bodies_must_shrink_a_fifth_to_be_compressed() {
        let z = hdrs("zstd");
        // 7 bits of 8: about 0.88, worth it for a small body only.
        assert!(compress(&z, &levels(500_000, 128)).is_some());
        assert!(compress(&z, &levels(2 << 20, 128)).is_none());
        // 4 bits of 8: about half, worth it at any size.
        assert!(compress(&z, &levels(2 << 20, 16)).is_some());
    }

    #[test]
    fn large_bodies_compress_in_parallel_to_one_frame() {
        let body = levels(PARALLEL_ZSTD + 12345, 4);
        let (enc, out) = compress_with(&hdrs("zstd"), &body, 2, None).unwrap();
        assert_eq!(enc, "zstd");
        // One frame that any zstd decoder reads whole, with its size recorded.
        assert_eq!(
            zstd::bulk::decompress(&out, body.len()).unwrap(),
            body.to_vec()
        );
    }

    #[tokio::test]
    async fn compression_threads_are_shared_by_the_process() {
        let (_, cores) = &*COMPRESSION_THREADS;
        let large = compression_permits(PARALLEL_ZSTD).await;
        assert_eq!(large.len(), *cores);
        // While a large body holds every thread, the next waits for one.
        let next = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            compression_permits(1 << 20),
        )
        .await;
        assert!(next.is_err());
        drop(large);
        assert_eq!(compression_permits(1 << 20).await.len(), 1);
    }

    #[test]
    fn etags_depend_on_every_part() {
        assert_ne!(etag_of(&[b"a", b"bc"]), etag_of(&[b"ab", b"c"]));
        assert_eq!(etag_of(&[b"x"]), etag_of(&[b"x"]));
    }
}
