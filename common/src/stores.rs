//! Where data locations live: local directories (`file://` locations) and S3-compatible
//! buckets named in the configuration.
//!
//! A bucket location is written as Tiled writes it, the bucket's URI followed by the object
//! path: `http://host:9000/bucket/ab/0123….zarr`. Credentials are not part of a location (a
//! data source travels to workers and lands in the catalog): each process registers the
//! buckets of its configuration once at start-up, and a location is resolved against them by
//! its prefix. A location no registered bucket holds is an error that names no secret.

use std::sync::{Arc, LazyLock, RwLock};

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ClientConfigKey, ClientOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::adapters::AdapterError;

/// A bucket as Tiled's configuration names one in `writable_storage`: `provider: s3`, its
/// `uri` (`http(s)://host[:port]/bucket[/prefix]`, or `s3://bucket[/prefix]` on AWS) and the
/// store's options under `config` (obstore's names, which are object_store's:
/// `access_key_id`, `secret_access_key`, `region`, `virtual_hosted_style_request`,
/// `client_options: {allow_http: true}`, ...). Options not given come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, ...), as the AWS tools read them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BucketSpec {
    /// The kind of store; `s3` (any S3-compatible server) is the one built in.
    pub provider: String,
    /// The bucket, with the endpoint for servers other than AWS.
    pub uri: String,
    /// Options of the store.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
}

/// Option names whose values are secrets (masked when a configuration is printed).
pub const SECRET_OPTIONS: [&str; 4] = [
    "secret_access_key",
    "aws_secret_access_key",
    "session_token",
    "aws_session_token",
];

impl BucketSpec {
    /// The location prefix of this bucket (its URI without a trailing `/`).
    pub fn base(&self) -> &str {
        self.uri.trim_end_matches('/')
    }

    /// The same spec with its secret options replaced by `***`.
    pub fn masked(&self) -> BucketSpec {
        let mut spec = self.clone();
        for (key, value) in spec.config.iter_mut() {
            if SECRET_OPTIONS.contains(&key.as_str()) {
                *value = Value::String("***".into());
            }
        }
        spec
    }

    /// The bucket, and the object path inside it that locations begin with.
    fn parts(&self) -> Result<(Option<String>, String, String), String> {
        let (scheme, rest) = self
            .base()
            .split_once("://")
            .ok_or_else(|| format!("{:?} is not a URI", self.uri))?;
        let (endpoint, path) = match scheme {
            "s3" => (None, rest),
            "http" | "https" => {
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                (Some(format!("{scheme}://{host}")), path)
            }
            _ => {
                return Err(format!(
                    "{:?}: a bucket URI is s3://bucket or http(s)://host/bucket",
                    self.uri
                ));
            }
        };
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(format!("{:?} names no bucket", self.uri));
        }
        Ok((endpoint, bucket.to_string(), prefix.to_string()))
    }

    /// Checks the spec and builds its store; errors say which option is wrong.
    pub fn build(&self) -> Result<(Arc<dyn ObjectStore>, StorePath), String> {
        if self.provider != "s3" {
            return Err(format!(
                "provider {:?} is not built in: tessera writes to S3-compatible stores \
                 (provider: s3)",
                self.provider
            ));
        }
        let (endpoint, bucket, prefix) = self.parts()?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let mut client = ClientOptions::new();
        for (key, value) in &self.config {
            if key == "client_options" {
                let Value::Object(options) = value else {
                    return Err("config.client_options must be a mapping".into());
                };
                for (k, v) in options {
                    let option: ClientConfigKey = k
                        .parse()
                        .map_err(|_| format!("config.client_options.{k} is not a client option"))?;
                    client = client.with_config(option, scalar(v, k)?);
                }
                continue;
            }
            let option: AmazonS3ConfigKey = key
                .parse()
                .map_err(|_| format!("config.{key} is not an option of S3 stores"))?;
            if matches!(
                option,
                AmazonS3ConfigKey::Bucket | AmazonS3ConfigKey::Endpoint
            ) {
                return Err(format!(
                    "config.{key}: give the endpoint and the bucket in the uri \
                     (http://host:port/bucket)"
                ));
            }
            builder = builder.with_config(option, scalar(value, key)?);
        }
        let store = builder
            .with_client_options(client)
            .build()
            .map_err(|e| format!("{}: {e}", self.uri))?;
        let prefix = StorePath::parse(prefix).map_err(|e| format!("{}: {e}", self.uri))?;
        Ok((Arc::new(store), prefix))
    }
}

/// An option's value as the builders take it (YAML gives booleans and numbers too).
fn scalar(value: &Value, key: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!(
            "config.{key} must be a string, a number or a boolean"
        )),
    }
}

struct Registered {
    base: String,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
}

static BUCKETS: LazyLock<RwLock<Vec<Registered>>> = LazyLock::new(|| RwLock::new(Vec::new()));
static LOCAL: LazyLock<Arc<dyn ObjectStore>> = LazyLock::new(|| Arc::new(LocalFileSystem::new()));

/// Makes the bucket's locations readable (and writable) in this process; registering the same
/// URI again replaces the earlier store. Returns the store and the object path locations
/// begin with.
pub fn register(spec: &BucketSpec) -> Result<(Arc<dyn ObjectStore>, StorePath), String> {
    let (store, prefix) = spec.build()?;
    let mut buckets = BUCKETS.write().unwrap_or_else(|e| e.into_inner());
    buckets.retain(|b| b.base != spec.base());
    buckets.push(Registered {
        base: spec.base().to_string(),
        store: store.clone(),
        prefix: prefix.clone(),
    });
    Ok((store, prefix))
}

/// The store holding the location `uri` and its object path there (for a `file://` location,
/// the local file system rooted at `/`).
pub fn locate(uri: &str) -> Result<(Arc<dyn ObjectStore>, StorePath), AdapterError> {
    if uri.starts_with("file:") {
        let path = crate::adapters::local_path(uri)?;
        let path = StorePath::parse(&path)
            .map_err(|e| AdapterError::BadSource(format!("location {uri}: {e}")))?;
        return Ok((LOCAL.clone(), path));
    }
    let buckets = BUCKETS.read().unwrap_or_else(|e| e.into_inner());
    for b in buckets.iter() {
        let Some(rest) = uri
            .strip_prefix(b.base.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let rest = StorePath::parse(rest.trim_end_matches('/'))
            .map_err(|e| AdapterError::BadSource(format!("location {uri}: {e}")))?;
        let path = b.prefix.parts().chain(rest.parts()).collect();
        return Ok((b.store.clone(), path));
    }
    Err(AdapterError::BadSource(format!(
        "no storage configured here holds the location '{uri}': every API node and worker \
         needs the catalog's writable_storage in its configuration"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test helpers: a failure here is a test failure

    use super::*;

    fn spec(uri: &str, config: Value) -> BucketSpec {
        BucketSpec {
            provider: "s3".into(),
            uri: uri.into(),
            config: config.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn a_location_resolves_against_the_bucket_that_holds_it() {
        let s = spec(
            "http://127.0.0.9:9/unit-resolve/some/prefix/",
            serde_json::json!({"access_key_id": "a", "secret_access_key": "b",
                               "region": "us-east-1", "client_options": {"allow_http": true}}),
        );
        register(&s).unwrap();
        let (_, path) = locate("http://127.0.0.9:9/unit-resolve/some/prefix/ab/x.zarr").unwrap();
        assert_eq!(path.as_ref(), "some/prefix/ab/x.zarr");
        // A sibling bucket whose name extends this one's is not this one.
        let err = locate("http://127.0.0.9:9/unit-resolve-other/ab/x.zarr").unwrap_err();
        assert!(err.to_string().contains("no storage configured"), "{err}");
        // Locations cannot climb out of the bucket's prefix.
        assert!(locate("http://127.0.0.9:9/unit-resolve/some/prefix/../../x").is_err());
        let (_, path) = locate("file://localhost/tmp/a%20b/c.zarr").unwrap();
        assert_eq!(path.as_ref(), "tmp/a b/c.zarr");
    }

    #[test]
    fn wrong_specs_name_what_is_wrong() {
        let err = |s: BucketSpec| s.build().err().unwrap();
        assert!(err(spec("ftp://h/b", Value::Null)).contains("s3://bucket or http"));
        assert!(err(spec("http://h:9000", Value::Null)).contains("names no bucket"));
        let e = err(spec("http://h/b", serde_json::json!({"acess_key_id": "x"})));
        assert!(e.contains("config.acess_key_id is not an option"), "{e}");
        let e = err(spec("http://h/b", serde_json::json!({"bucket": "x"})));
        assert!(e.contains("in the uri"), "{e}");
        let e = err(spec(
            "http://h/b",
            serde_json::json!({"client_options": {"alow_http": true}}),
        ));
        assert!(e.contains("client_options.alow_http"), "{e}");
        let mut gcs = spec("gs://b", Value::Null);
        gcs.provider = "google".into();
        assert!(err(gcs).contains("not built in"));
        let masked = spec(
            "http://h/b",
            serde_json::json!({"secret_access_key": "s3cret"}),
        )
        .masked();
        assert_eq!(masked.config["secret_access_key"], "***");
    }
}
