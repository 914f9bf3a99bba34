//! The shared store: Redis, holding decoded chunks under their content keys for every node,
//! and carrying results from workers to the node that asked.
//!
//! A value is one Redis string: a tag byte `0` and the bytes. Values larger than the part
//! size are stored as parts `<key>:0`, `<key>:1`, ... and, under `<key>`, a manifest (tag `1`,
//! the number of parts as u32 and the total length as u64, little-endian), all written in one
//! MULTI so a reader never sees a manifest before its parts. Redis serves values of a few
//! megabytes well and large ones badly (one value occupies its connection and its single
//! thread while it is copied); parts keep each command small and let Redis evict by LRU as
//! usual: a missing part reads as a miss.
//!
//! Cross-node coalescing uses a lock key `<key>:lock` taken with `SET NX PX` and released
//! only by its holder (a token compared in a script).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use redis::RedisResult;
use redis::aio::ConnectionManager;

const WHOLE: u8 = 0;
const MANIFEST: u8 = 1;
/// Connections per process: one multiplexed connection carries many small commands well,
/// but a large value holds it while it is copied.
const CONNECTIONS: usize = 4;
/// More parts than any value of tessera has (the chunk size is capped at 1 GiB).
const MAX_PARTS: usize = 1 << 16;

/// A Redis-backed store of byte values, shared by every process of a cluster.
#[derive(Clone)]
pub struct SharedStore {
    conns: Arc<Vec<ConnectionManager>>,
    next: Arc<AtomicUsize>,
    part_bytes: usize,
}

impl SharedStore {
    /// Connects to `url`, storing values larger than `part_bytes` in parts.
    pub async fn connect(url: &str, part_bytes: usize) -> RedisResult<SharedStore> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut conns = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            conns.push(ConnectionManager::new_with_config(client.clone(), config.clone()).await?);
        }
        Ok(SharedStore {
            conns: Arc::new(conns),
            next: Arc::new(AtomicUsize::new(0)),
            part_bytes: part_bytes.max(1024),
        })
    }

    fn conn(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> RedisResult<()> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn();
        if value.len() <= self.part_bytes {
            let mut v = Vec::with_capacity(value.len() + 1);
            v.push(WHOLE);
            v.extend_from_slice(value);
            return redis::cmd("SET")
                .arg(key)
                .arg(v)
                .arg("PX")
                .arg(ms)
                .query_async(&mut conn)
                .await;
        }
        let parts: Vec<&[u8]> = value.chunks(self.part_bytes).collect();
        let mut manifest = vec![MANIFEST];
        manifest.extend_from_slice(&u32::try_from(parts.len()).unwrap_or(u32::MAX).to_le_bytes());
        manifest.extend_from_slice(&(value.len() as u64).to_le_bytes());
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (i, part) in parts.iter().enumerate() {
            pipe.cmd("SET")
                .arg(format!("{key}:{i}"))
                .arg(*part)
                .arg("PX")
                .arg(ms)
                .ignore();
        }
        pipe.cmd("SET")
            .arg(key)
            .arg(manifest)
            .arg("PX")
            .arg(ms)
            .ignore();
        pipe.query_async(&mut conn).await
    }

    /// The value under `key`, `None` if it is not there (or a part of it was evicted).
    pub async fn get(&self, key: &str) -> RedisResult<Option<Bytes>> {
        let mut conn = self.conn();
        let head: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
        let Some(head) = head else {
            return Ok(None);
        };
        match head.first() {
            Some(&WHOLE) => Ok(Some(Bytes::from(head).slice(1..))),
            Some(&MANIFEST) if head.len() == 13 => {
                let n = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
                let mut len = [0u8; 8];
                len.copy_from_slice(&head[5..13]);
                let len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
                if n == 0 || n > MAX_PARTS {
                    return Ok(None);
                }
                let names: Vec<String> = (0..n).map(|i| format!("{key}:{i}")).collect();
                let parts: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(&names)
                    .query_async(&mut conn)
                    .await?;
                let mut out = BytesMut::with_capacity(len.min(1 << 30));
                for part in parts {
                    match part {
                        Some(p) => out.extend_from_slice(&p),
                        None => return Ok(None),
                    }
                }
                Ok((out.len() == len).then(|| out.freeze()))
            }
            _ => Ok(None),
        }
    }

    /// Whether the store answers (a PING on one connection).
    pub async fn ping(&self) -> RedisResult<()> {
        redis::cmd("PING").query_async(&mut self.conn()).await
    }

    /// Removes the value under `key` (its parts are left to expire).
    pub async fn delete(&self, key: &str) -> RedisResult<()> {
        redis::cmd("DEL")
            .arg(key)
            .query_async(&mut self.conn())
            .await
    }

    /// Takes the lock of `key` for `ttl`: the token to release it with, or `None` if
    /// someone else holds it.
    pub async fn lock(&self, key: &str, ttl: Duration) -> RedisResult<Option<String>> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{key}:lock"))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .query_async(&mut self.conn())
            .await?;
        Ok(set.map(|_| token))
    }

    /// Releases the lock of `key` if `token` still holds it.
    pub async fn unlock(&self, key: &str, token: &str) -> RedisResult<()> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('DEL', KEYS[1]) else return 0 end",
            )
        });
        let _: i64 = SCRIPT
            .key(format!("{key}:lock"))
            .arg(token)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Whether anyone holds the lock of `key`.
    pub async fn locked(&self, key: &str) -> RedisResult<bool> {
        redis::cmd("EXISTS")
            .arg(format!("{key}:lock"))
            .query_async(&mut self.conn())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(part: usize) -> Option<SharedStore> {
        let url = std::env::var("TESSERA_TEST_REDIS")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        SharedStore::connect(&url, part).await.ok()
    }

    fn prefix() -> String {
        format!("tessera-test-{}", uuid::Uuid::new_v4().simple())
    }

    #[tokio::test]
    async fn values_round_trip_whole_and_in_parts() {
        let Some(s) = store(1024).await else {
            panic!("Redis is not reachable on 127.0.0.1:6379 (set TESSERA_TEST_REDIS)");
        };
        let p = prefix();
        let small: Vec<u8> = (0..100u8).collect();
        let large: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        s.put(&format!("{p}:a"), &small, Duration::from_secs(30))
            .await
            .unwrap();
        s.put(&format!("{p}:b"), &large, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(s.get(&format!("{p}:a")).await.unwrap().unwrap(), small);
        assert_eq!(s.get(&format!("{p}:b")).await.unwrap().unwrap(), large);
        assert_eq!(s.get(&format!("{p}:missing")).await.unwrap(), None);
        // An evicted part makes the whole value a miss, not a short one.
        s.delete(&format!("{p}:b:2")).await.unwrap();
        assert_eq!(s.get(&format!("{p}:b")).await.unwrap(), None);
        for k in ["a", "b", "b:0", "b:1", "b:3", "b:4"] {
            s.delete(&format!("{p}:{k}")).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_lock_has_one_holder_and_only_it_releases() {
        let Some(s) = store(1024).await else {
            panic!("Redis is not reachable on 127.0.0.1:6379 (set TESSERA_TEST_REDIS)");
        };
        let key = format!("{}:k", prefix());
        let token = s
            .lock(&key, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert!(
            s.lock(&key, Duration::from_secs(10))
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.locked(&key).await.unwrap());
        s.unlock(&key, "not-the-token").await.unwrap();
        assert!(s.locked(&key).await.unwrap());
        s.unlock(&key, &token).await.unwrap();
        assert!(!s.locked(&key).await.unwrap());
    }
}
