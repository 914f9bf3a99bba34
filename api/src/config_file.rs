//! Config files as Tiled's: a YAML file, or a directory of them merged as Tiled merges them,
//! with `$VAR` expanded in every string. Tiled's keys map onto tessera's `Config`; tessera's
//! own settings live under `tessera:`. A key tessera does not know, or a Tiled feature it does
//! not have, is an error naming the file, the key and why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};

use crate::config::{Config, RESPONSE_BYTESIZE_LIMIT, Settings};
use tessera_common::stores::BucketSpec;

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file or directory cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not YAML, or not a mapping of keys.
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    /// Two files of a directory both give a key that is not a list merged across files.
    #[error(
        "{first} and {second} both give `{key}` (only trees, specs and allow_origins may be split over files)"
    )]
    Duplicate {
        key: String,
        first: String,
        second: String,
    },
    /// A key is unknown, has the wrong type, or names something tessera does not have.
    #[error("{file}: {key}: {message}")]
    Key {
        file: String,
        key: String,
        message: String,
    },
    /// A directory without config files.
    #[error("{}: no *.yml or *.yaml files in this directory", .0.display())]
    NoFiles(PathBuf),
}

/// Where each part of a merged configuration came from, to name it in errors.
#[derive(Clone, Debug, Default)]
struct Origins {
    /// The file (or environment variable) of each top-level key.
    keys: HashMap<String, String>,
    /// The file of each item of the lists merged across files (`trees`, ...).
    items: HashMap<String, Vec<String>>,
}

impl Origins {
    /// The file of `key`, or of its item `index` for a merged list.
    fn file_of(&self, key: &str, index: Option<usize>) -> String {
        index
            .and_then(|i| self.items.get(key)?.get(i))
            .or_else(|| self.keys.get(key))
            .cloned()
            .unwrap_or_else(|| "the configuration".into())
    }

    /// An error at `path` (dotted, as `trees[0].args.uri`).
    fn error(&self, path: &str, message: impl Into<String>) -> ConfigFileError {
        let top = path.split(['.', '[']).next().unwrap_or(path);
        let index = path
            .strip_prefix(top)
            .and_then(|rest| rest.strip_prefix('['))
            .and_then(|rest| rest.split(']').next())
            .and_then(|i| i.parse().ok());
        ConfigFileError::Key {
            file: self.file_of(top, index),
            key: path.into(),
            message: message.into(),
        }
    }
}

/// The top-level lists that several files of a directory may each give (concatenated).
const MERGED_LISTS: [&str; 3] = ["trees", "specs", "allow_origins"];

/// A configuration as read: Tiled's keys tessera honours, and its own under `tessera:`.
/// Serialised, it is the effective configuration `tessera check-config` prints.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// One catalog at `/` (Tiled's recommended form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<CatalogArgs>,
    /// Tiled's advanced form; tessera serves one tree, at `/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trees: Vec<TreeSpec>,
    /// The single-user API key or the login providers, and anonymous reads.
    #[serde(default)]
    pub authentication: Authentication,
    /// Where principals, sessions and API keys live (multi-user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
    /// Who sees and changes which nodes (multi-user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control: Option<AccessControl>,
    /// Largest uncompressed response body, in bytes. Default 300,000,000.
    #[serde(default = "response_bytesize_limit")]
    pub response_bytesize_limit: usize,
    /// Origins browsers may call the API from (CORS). Default none.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Where to listen.
    #[serde(default)]
    pub uvicorn: Uvicorn,
    /// Whether Prometheus metrics are served (Tiled's `metrics.prometheus`).
    #[serde(default)]
    pub metrics: MetricsSection,
    /// tessera's own settings.
    #[serde(default)]
    pub tessera: Settings,
    /// Where each key came from.
    #[serde(skip)]
    origins: Origins,
}

fn response_bytesize_limit() -> usize {
    RESPONSE_BYTESIZE_LIMIT
}

/// Tiled's `metrics` section.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve `/metrics` and `/api/v1/metrics`. Default true.
    #[serde(default = "yes")]
    pub prometheus: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { prometheus: true }
    }
}

fn yes() -> bool {
    true
}

/// A tree of Tiled's `trees` list.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSpec {
    /// Where the tree is mounted; tessera serves `/` only.
    pub path: String,
    /// `catalog` (or `tiled.catalog:from_uri`), or `tiled.examples.generated:tree` (the demo).
    pub tree: String,
    /// The catalog's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<CatalogArgs>,
}

/// The arguments of a catalog (Tiled's `catalog:` key, or `args` of `tree: catalog`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogArgs {
    /// The catalog database: an SQLite path or `sqlite:///...`, or `postgresql://...`.
    pub uri: String,
    /// Where written data goes: the first local directory or bucket is used.
    #[serde(
        default,
        deserialize_with = "storage_items",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub writable_storage: Vec<StorageItem>,
    /// Directories whose files may be registered.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub readable_storage: Vec<String>,
    /// Create the SQLite catalog if its file is missing.
    #[serde(default)]
    pub init_if_not_exists: bool,
    /// The root's access tags (with an access policy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_level_access_tags: Vec<String>,
}

/// Tiled's `authentication`: one API key (single-user), or login providers (multi-user).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Single-user: the API key; without one a key is generated and printed at start-up,
    /// as Tiled does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_user_api_key: Option<String>,
    /// Whether anonymous clients may read. Default false.
    #[serde(default)]
    pub allow_anonymous_access: bool,
    /// Multi-user: the login providers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderSpec>,
    /// Identities given role `admin`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiled_admins: Vec<AdminSpec>,
    /// Keys that sign tokens: the first signs, each checks (rotate by putting a new key
    /// first). None: a random key per process (tokens end with it; one node only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_keys: Vec<String>,
    /// Seconds an access token is good for. Default 900.
    #[serde(default = "access_token_max_age")]
    pub access_token_max_age: f64,
    /// Seconds a refresh token is good for. Default 604800 (a week).
    #[serde(default = "refresh_token_max_age")]
    pub refresh_token_max_age: f64,
    /// Seconds a session may be refreshed for. Default 31536000 (a year).
    #[serde(default = "session_max_age")]
    pub session_max_age: f64,
}

impl Default for Authentication {
    fn default() -> Self {
        Authentication {
            single_user_api_key: None,
            allow_anonymous_access: false,
            providers: Vec::new(),
            tiled_admins: Vec::new(),
            secret_keys: Vec::new(),
            access_token_max_age: access_token_max_age(),
            refresh_token_max_age: refresh_token_max_age(),
            session_max_age: session_max_age(),
        }
    }
}

fn access_token_max_age() -> f64 {
    900.0
}

fn refresh_token_max_age() -> f64 {
    7.0 * 24.0 * 3600.0
}

fn session_max_age() -> f64 {
    365.0 * 24.0 * 3600.0
}

/// The authenticators tessera has: Tiled's password dictionary and OpenID Connect, and
/// its own table of users with argon2 password hashes in the authentication database.
const DICTIONARY: &str = "tiled.authenticators:DictionaryAuthenticator";
const OIDC: &str = "tiled.authenticators:OIDCAuthenticator";
const USER_TABLE: &str = "tessera.authenticators:DatabaseAuthenticator";

/// A login provider of `authentication.providers`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The name in `/auth/provider/{provider}/...`.
    pub provider: String,
    /// `tiled.authenticators:DictionaryAuthenticator`, `tiled.authenticators:OIDCAuthenticator`
    /// or `tessera.authenticators:DatabaseAuthenticator`.
    pub authenticator: String,
    #[serde(default)]
    pub args: ProviderArgs,
    /// Printed by the client after login, `{id}` replaced by the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_message: Option<String>,
}

/// The arguments of an authenticator (each takes its own of these).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderArgs {
    /// `DictionaryAuthenticator`: user name to password.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub users_to_passwords: std::collections::BTreeMap<String, String>,
    /// `OIDCAuthenticator`: the client registered at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `OIDCAuthenticator`: the provider's discovery document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub well_known_uri: Option<String>,
    /// `OIDCAuthenticator`: an audience ID tokens may name besides the client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `OIDCAuthenticator`: the claim that names the user (`sub`, `email` or
    /// `preferred_username`; default `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id_claim: Option<String>,
    /// `OIDCAuthenticator`: where a browser login goes next (with the tokens in the query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_on_success: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_on_failure: Option<String>,
    /// As the provider's `confirmation_message` (Tiled takes it here, as an argument of the
    /// authenticator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_message: Option<String>,
}

/// An identity of `authentication.tiled_admins`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    pub provider: String,
    pub id: String,
}

/// The tag-based access policy tessera has.
const TAG_POLICY: &str = "tiled.access_control.access_policies:TagBasedAccessPolicy";

/// Tiled's `access_control`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessControl {
    /// `tiled.access_control.access_policies:TagBasedAccessPolicy`.
    pub access_policy: String,
    pub args: PolicyArgs,
}

/// The arguments of the tag-based policy.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyArgs {
    /// The login provider whose user names the tag definitions use.
    pub provider: String,
    /// Tiled's parser class; tessera reads the definitions itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_tags_parser: Option<String>,
    /// The scopes the policy may give. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// Tiled's `database`: where principals, sessions and API keys live.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// An SQLite path or `sqlite:///...`, or `postgresql://...` (a cluster's nodes share it).
    pub uri: String,
    /// Create the tables when missing. Default false.
    #[serde(default)]
    pub init_if_not_exists: bool,
    /// Accepted as Tiled's; tessera sizes its own pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_pre_ping: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_overflow: Option<u32>,
}

/// Tiled's `uvicorn` settings tessera uses.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Uvicorn {
    /// Address to bind. Default 127.0.0.1.
    pub host: String,
    /// Port to bind. Default 8000.
    pub port: u16,
}

impl Default for Uvicorn {
    fn default() -> Self {
        Uvicorn {
            host: "127.0.0.1".into(),
            port: 8000,
        }
    }
}

/// A string or a list of strings, as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string or a list of strings")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// An item of `writable_storage`: a path or URI, or a bucket as a mapping (`provider`, `uri`,
/// `config`).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum StorageItem {
    /// A directory, a `file://` URI, or a database URI (which tessera does not need).
    Place(String),
    /// An S3-compatible bucket.
    Bucket(BucketSpec),
}

/// `writable_storage`: one item or a list of them; a bucket's mapping is read with its own
/// errors (an unknown option names itself).
fn storage_items<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<StorageItem>, D::Error> {
    use serde::de::Error;
    let item = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => Ok(StorageItem::Place(s)),
        serde_json::Value::Object(_) => BucketSpec::deserialize(v)
            .map(StorageItem::Bucket)
            .map_err(|e| D::Error::custom(format!("a bucket: {e}"))),
        other => Err(D::Error::custom(format!(
            "expected a path, a URI or a bucket mapping, found {other}"
        ))),
    };
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items.into_iter().map(item).collect(),
        one => Ok(vec![item(one)?]),
    }
}

/// Where a catalog's written data goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Writable {
    /// A local directory (or a volume every node mounts).
    Dir(PathBuf),
    /// An S3-compatible bucket.
    Bucket(BucketSpec),
}

/// The tree a configuration serves.
#[derive(Clone, Debug, PartialEq)]
pub enum Tree {
    /// The demo tree (`tiled.examples.generated:tree`).
    Demo,
    /// A catalog.
    Catalog(CatalogTree),
}

/// A catalog to serve, and where its written data goes.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogTree {
    /// The catalog database.
    pub database: CatalogDatabase,
    /// Where written data goes; `None`: read-only.
    pub writable: Option<Writable>,
    /// Create a missing SQLite catalog.
    pub init_if_not_exists: bool,
}

/// A catalog database named by a URI as Tiled operators write them.
#[derive(Clone, Debug, PartialEq)]
pub enum CatalogDatabase {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URI (`postgresql://...`, without a driver suffix).
    Postgres(String),
}

impl CatalogDatabase {
    /// Reads `uri`: a path, `sqlite:PATH`, `sqlite:///PATH` or `sqlite+aiosqlite:///PATH`
    /// (as SQLAlchemy: `sqlite:////abs/path` is absolute, `sqlite:///rel` relative), or
    /// `postgresql://`, `postgres://`, `postgresql+asyncpg://...`.
    pub fn parse(uri: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = uri.split_once(':') else {
            return Ok(CatalogDatabase::Sqlite(uri.into()));
        };
        let dialect = scheme.split('+').next().unwrap_or(scheme);
        match dialect {
            "sqlite" => {
                let path = rest.strip_prefix("///").unwrap_or(rest);
                if path.is_empty() || path.starts_with("//") && !path.starts_with("///") {
                    return Err(format!("{uri:?}: give sqlite:///PATH"));
                }
                Ok(CatalogDatabase::Sqlite(path.into()))
            }
            "postgresql" | "postgres" => {
                Ok(CatalogDatabase::Postgres(format!("postgresql:{rest}")))
            }
            // A Windows drive letter, or a file name with a colon.
            _ if !rest.starts_with("//") => Ok(CatalogDatabase::Sqlite(uri.into())),
            _ => Err(format!(
                "{uri:?}: tessera's catalogs are SQLite (a path or sqlite:///PATH) or \
                 PostgreSQL (postgresql://...)"
            )),
        }
    }

    /// The database fit for a log: a path, or the URI without its password.
    pub fn display(&self) -> String {
        match self {
            CatalogDatabase::Sqlite(p) => p.display().to_string(),
            CatalogDatabase::Postgres(uri) => without_password(uri),
        }
    }
}

/// A database, Redis or NATS URI fit for a log: any password replaced by `***`.
pub fn without_password(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or("");
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => uri.to_string(),
    }
}

/// What a configuration starts: the tree, the node's settings and where to listen.
#[derive(Clone, Debug)]
pub struct Service {
    /// The tree served at `/`.
    pub tree: Tree,
    /// Multi-user access, started with the service; `None`: single-user.
    pub auth: Option<crate::auth::AuthSettings>,
    /// The node's settings.
    pub config: Config,
    /// Whether the API key was made up (and so must be printed for anyone to use it).
    pub generated_api_key: bool,
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// See `Settings::orphan_grace`.
    pub orphan_grace: Option<f64>,
}

/// A configuration read from `path` (a file or a directory), with its notes: the keys that
/// were accepted but have no effect in tessera.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub file: ConfigFile,
    /// One line per key accepted with no effect, naming it and why.
    pub notes: Vec<String>,
}

/// Reads the configuration at `path`; `env` looks up environment variables (for `$VAR` and
/// Tiled's `TILED_*` settings).
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigFileError> {
    let (mut map, mut origins) = read_merged(path, env)?;
    apply_tiled_env(&mut map, &mut origins, env);
    let notes = screen(&mut map, &origins)?;
    let mut file: ConfigFile =
        serde_path_to_error::deserialize(Value::Mapping(map)).map_err(|e| {
            let mut key = e.path().to_string();
            let mut message = e.inner().to_string();
            // Name the unknown key itself, not only the section it is in.
            if let Some(rest) = message.strip_prefix("unknown field `")
                && let Some((name, expected)) = rest.split_once('`')
            {
                // serde_path_to_error usually has the key in the path already.
                if key == "." {
                    key = name.to_string();
                } else if !key.ends_with(&format!(".{name}")) {
                    key = format!("{key}.{name}");
                }
                message = format!("unknown key{expected}");
            }
            origins.error(&key, message)
        })?;
    file.origins = origins;
    file.validate()?;
    Ok(Loaded { file, notes })
}

/// The files of `path`: the file itself, or a directory's `*.yml`/`*.yaml` files by name.
fn config_files(path: &Path) -> Result<Vec<PathBuf>, ConfigFileError> {
    let read_err = |source| ConfigFileError::Read {
        path: path.into(),
        source,
    };
    if !path.is_dir() {
        return Ok(vec![path.into()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let p = entry.map_err(read_err)?.path();
        let yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"));
        if yaml && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(ConfigFileError::NoFiles(path.into()));
    }
    Ok(files)
}

/// The top-level mapping of all files, expanded, with where each key came from.
fn read_merged(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Mapping, Origins), ConfigFileError> {
    let mut merged = Mapping::new();
    let mut origins = Origins::default();
    for file in config_files(path)? {
        let label = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigFileError::Read {
            path: file.clone(),
            source,
        })?;
        let syntax = |message: String| ConfigFileError::Syntax {
            file: label.clone(),
            message,
        };
        let mut value: Value = serde_norway::from_str(&text).map_err(|e| syntax(e.to_string()))?;
        value.apply_merge().map_err(|e| syntax(e.to_string()))?;
        expand_value(&mut value, env);
        let map = match value {
            Value::Null => Mapping::new(),
            Value::Mapping(m) => m,
            _ => return Err(syntax("the file must be a mapping of keys".into())),
        };
        for (k, v) in map {
            let Value::String(key) = k else {
                return Err(syntax(format!("{k:?}: keys must be strings")));
            };
            let count = v.as_sequence().map_or(1, Vec::len);
            match merged.get_mut(key.as_str()) {
                Some(Value::Sequence(list)) if MERGED_LISTS.contains(&key.as_str()) => {
                    let Value::Sequence(more) = v else {
                        return Err(ConfigFileError::Key {
                            file: label.clone(),
                            key,
                            message: "must be a list".into(),
                        });
                    };
                    list.extend(more);
                }
                Some(_) => {
                    return Err(ConfigFileError::Duplicate {
                        first: origins.file_of(&key, None),
                        second: label.clone(),
                        key,
                    });
                }
                None => {
                    origins.keys.insert(key.clone(), label.clone());
                    merged.insert(Value::String(key.clone()), v);
                }
            }
            if MERGED_LISTS.contains(&key.as_str()) {
                let items = origins.items.entry(key).or_default();
                items.extend(std::iter::repeat_n(label.clone(), count));
            }
        }
    }
    Ok((merged, origins))
}

/// Expands `$VAR` and `${VAR}` in every string at any depth, as Tiled does; a variable that
/// is not set is left as written.
fn expand_value(value: &mut Value, env: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::String(s) => *s = expand(s, env),
        Value::Sequence(items) => items.iter_mut().for_each(|v| expand_value(v, env)),
        Value::Mapping(map) => map.values_mut().for_each(|v| expand_value(v, env)),
        Value::Tagged(t) => expand_value(&mut t.value, env),
        _ => {}
    }
}

/// `s` with `$NAME` (letters, digits, `_`) and `${NAME}` replaced by their values.
fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match (len, env(name)) {
            (1.., Some(v)) if !name.is_empty() => out.push_str(&v),
            _ => out.push_str(&rest[at..at + 1 + len]),
        }
        rest = &rest[at + 1 + len..];
    }
    out.push_str(rest);
    out
}

/// Tiled's `TILED_<NAME>` environment variables: top-level settings that override the files
/// (as in Tiled), and the single-user settings the files leave out.
fn apply_tiled_env(map: &mut Mapping, origins: &mut Origins, env: &dyn Fn(&str) -> Option<String>) {
    for key in ["response_bytesize_limit", "allow_origins"] {
        let var = format!("TILED_{}", key.to_uppercase());
        if let Some(text) = env(&var) {
            let value = serde_norway::from_str(&text).unwrap_or(Value::String(text));
            let count = value.as_sequence().map(Vec::len);
            map.insert(Value::String(key.into()), value);
            origins
                .keys
                .insert(key.into(), format!("environment variable {var}"));
            if let Some(n) = count {
                let label = format!("environment variable {var}");
                origins.items.insert(key.into(), vec![label; n]);
            }
        }
    }
    for (key, typed) in [
        ("single_user_api_key", false),
        ("allow_anonymous_access", true),
    ] {
        let var = format!("TILED_{}", key.to_uppercase());
        let Some(text) = env(&var) else { continue };
        let auth = map
            .entry(Value::String("authentication".into()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Value::Mapping(auth) = auth
            && !auth.contains_key(key)
        {
            let value = if typed {
                serde_norway::from_str(&text).unwrap_or(Value::String(text))
            } else {
                Value::String(text)
            };
            auth.insert(Value::String(key.into()), value);
            origins
                .keys
                .entry("authentication".into())
                .or_insert(format!("environment variable {var}"));
        }
    }
}

/// How tessera treats a Tiled key it reads but does not map onto its own settings.
enum Rule {
    /// Accepted with no effect, because...
    Ignored(&'static str),
    /// An error when given (not empty, not false), because...
    Unsupported(&'static str),
}

const PYTHON_OBJECT: &str = "it names Python objects, which tessera cannot load";

/// The rule of Tiled key `key` in section `section` (`""` for the top level).
fn rule(section: &str, key: &str) -> Option<Rule> {
    use Rule::{Ignored, Unsupported};
    Some(match (section, key) {
        ("", "routers" | "media_types") => Unsupported(PYTHON_OBJECT),
        ("", "file_extensions") => {
            Unsupported("custom file extensions of export formats are not implemented yet")
        }
        ("", "streaming_cache") => Unsupported("live streaming of updates is not implemented yet"),
        ("", "webhooks") => Unsupported("webhooks are not implemented yet"),
        ("", "reject_undeclared_specs") => Unsupported("spec validation is not implemented yet"),
        ("", "exact_count_limit") => Ignored("tessera always counts exactly"),
        ("", "object_cache") => Ignored("deprecated in Tiled, where it has no effect either"),
        ("", "expose_raw_assets") => Ignored("tessera does not serve raw asset bytes"),
        ("", "create_mount_nodes_if_not_exist") => Ignored("it only matters with mount_node"),
        (
            _,
            "catalog_pool_size"
            | "storage_pool_size"
            | "catalog_max_overflow"
            | "storage_max_overflow",
        ) => Ignored("tessera sizes its own connection pool"),
        ("args", "metadata" | "specs") => {
            Unsupported("metadata and specs of the root from the config are not implemented yet")
        }
        ("args", "adapters_by_mimetype") => Unsupported(PYTHON_OBJECT),
        ("args", "mount_node") => {
            Unsupported("serving a node inside a catalog as the root is not implemented yet")
        }
        ("uvicorn", "root_path") => {
            Unsupported("serving under a path prefix is not implemented yet")
        }
        ("uvicorn", k) if k.starts_with("ssl") => {
            Unsupported("TLS is not implemented: terminate TLS at a reverse proxy")
        }
        ("uvicorn", "workers") => Ignored("one tessera process uses every core"),
        ("uvicorn", "proxy_headers" | "forwarded_allow_ips") => {
            Ignored("tessera always builds its links from the X-Forwarded-* headers")
        }
        ("uvicorn", "log_level" | "log_config" | "access_log") => {
            Ignored("tessera's logging is set with RUST_LOG")
        }
        _ => return None,
    })
}

/// Whether a value turns a feature on: not null, false, empty or zero-length.
fn in_use(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::Sequence(s) => !s.is_empty(),
        Value::Mapping(m) => !m.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// Removes the Tiled keys tessera reads but does not use (returning a note for each one
/// that was given), and refuses the features tessera does not have.
fn screen(map: &mut Mapping, origins: &Origins) -> Result<Vec<String>, ConfigFileError> {
    let mut notes = Vec::new();
    screen_section(map, "", "", origins, &mut notes)?;
    for section in ["authentication", "uvicorn", "catalog"] {
        if let Some(Value::Mapping(m)) = map.get_mut(section) {
            let rules = if section == "catalog" {
                "args"
            } else {
                section
            };
            screen_section(m, rules, section, origins, &mut notes)?;
        }
    }
    if let Some(Value::Sequence(trees)) = map.get_mut("trees") {
        for (i, tree) in trees.iter_mut().enumerate() {
            if let Some(Value::Mapping(args)) = tree.get_mut("args") {
                screen_section(
                    args,
                    "args",
                    &format!("trees[{i}].args"),
                    origins,
                    &mut notes,
                )?;
            }
        }
    }
    if let Some(Value::Sequence(specs)) = map.get("specs") {
        let validated = specs.iter().any(|s| s.get("validator").is_some_and(in_use));
        if validated {
            return Err(origins.error("specs", format!("validators: {PYTHON_OBJECT}")));
        }
        if !specs.is_empty() {
            notes.push(
                "specs: accepted with no effect: declared specs only matter with \
                 reject_undeclared_specs"
                    .into(),
            );
        }
        map.remove("specs");
    }
    Ok(notes)
}

/// `screen` for the keys of one section; `path` is its dotted path in the file.
fn screen_section(
    map: &mut Mapping,
    rules: &str,
    path: &str,
    origins: &Origins,
    notes: &mut Vec<String>,
) -> Result<(), ConfigFileError> {
    let keys: Vec<String> = map
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    for key in keys {
        let dotted = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let used = map.get(key.as_str()).is_some_and(in_use);
        match rule(rules, &key) {
            Some(Rule::Unsupported(why)) if used => return Err(origins.error(&dotted, why)),
            Some(Rule::Ignored(why)) if used => {
                notes.push(format!("{dotted}: accepted with no effect: {why}"));
            }
            Some(_) => {}
            None if path.is_empty() && !TOP_LEVEL.contains(&key.as_str()) && key != "specs" => {
                return Err(origins.error(
                    &dotted,
                    "unknown key (tessera reads Tiled's keys, and its own under `tessera:`)",
                ));
            }
            None => continue,
        }
        map.remove(key.as_str());
    }
    Ok(())
}

/// The top-level keys of `ConfigFile`.
const TOP_LEVEL: [&str; 10] = [
    "catalog",
    "trees",
    "authentication",
    "database",
    "access_control",
    "response_bytesize_limit",
    "allow_origins",
    "uvicorn",
    "metrics",
    "tessera",
];

/// The object path of Tiled's demo tree.
const DEMO_TREE: &str = "tiled.examples.generated:tree";

impl ConfigFile {
    /// Checks what serde cannot: one tree, known tree types, consistent settings.
    fn validate(&self) -> Result<(), ConfigFileError> {
        let o = &self.origins;
        match (&self.catalog, self.trees.len()) {
            (Some(_), 1..) => {
                return Err(o.error(
                    "catalog",
                    "give either `catalog` (one catalog) or `trees`, not both",
                ));
            }
            (None, 0) => {
                return Err(ConfigFileError::Key {
                    file: o.file_of("trees", None),
                    key: "trees".into(),
                    message: "give `catalog` or `trees`: there is nothing to serve".into(),
                });
            }
            (None, 2..) => {
                return Err(o.error(
                    "trees[1]",
                    "mounting several trees is not implemented yet: give one tree, at path /",
                ));
            }
            _ => {}
        }
        for (i, t) in self.trees.iter().enumerate() {
            if !t.path.trim_matches('/').is_empty() {
                let message = format!(
                    "{:?}: mounting a tree below / is not implemented yet: give path /",
                    t.path
                );
                return Err(o.error(&format!("trees[{i}].path"), message));
            }
            match (t.tree.as_str(), &t.args) {
                ("catalog" | "tiled.catalog:from_uri", None) => {
                    return Err(o.error(&format!("trees[{i}].args"), "a catalog needs args: uri"));
                }
                ("catalog" | "tiled.catalog:from_uri", Some(_)) | (DEMO_TREE, None) => {}
                (DEMO_TREE, Some(_)) => {
                    return Err(o.error(&format!("trees[{i}].args"), "the demo tree takes no args"));
                }
                (other, _) => {
                    let message = format!(
                        "{other:?} names a Python object, which tessera cannot load; it serves \
                         `catalog` and `{DEMO_TREE}`"
                    );
                    return Err(o.error(&format!("trees[{i}].tree"), message));
                }
            }
        }
        if let Some(key) = &self.authentication.single_user_api_key
            && (key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(o.error(
                "authentication.single_user_api_key",
                "must be letters and digits only (is an environment variable unset?)",
            ));
        }
        self.check_authentication()?;
        self.policy()?;
        for (i, origin) in self.allow_origins.iter().enumerate() {
            let plain = origin == "*" || origin.contains("://");
            if !plain || !origin.chars().all(|c| c.is_ascii_graphic()) {
                return Err(o.error(
                    &format!("allow_origins[{i}]"),
                    format!("{origin:?} is not an origin: give scheme://host[:port], or *"),
                ));
            }
        }
        if let Err((key, why)) = self.tessera.check() {
            return Err(o.error(&format!("tessera.{key}"), why));
        }
        self.catalog_args()
            .map(|(path, args)| self.catalog_tree(path, args))
            .transpose()?;
        Ok(())
    }

    /// The multi-user settings: providers tessera has, admins of those providers, sane ages.
    fn check_authentication(&self) -> Result<(), ConfigFileError> {
        let o = &self.origins;
        let a = &self.authentication;
        if a.providers.is_empty() {
            if !a.tiled_admins.is_empty() {
                return Err(o.error(
                    "authentication.tiled_admins",
                    "admins are identities of login providers: give authentication.providers",
                ));
            }
            return Ok(());
        }
        if a.single_user_api_key.is_some() {
            return Err(o.error(
                "authentication.single_user_api_key",
                "a single-user key cannot be combined with login providers: principals make \
                 their own API keys",
            ));
        }
        for (i, p) in a.providers.iter().enumerate() {
            let at = |key: &str| format!("authentication.providers[{i}].{key}");
            if ![DICTIONARY, OIDC, USER_TABLE].contains(&p.authenticator.as_str()) {
                let message = format!(
                    "{:?} is not an authenticator tessera has: it has {DICTIONARY}, {OIDC} and \
                     {USER_TABLE}",
                    p.authenticator
                );
                return Err(o.error(&at("authenticator"), message));
            }
            let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if p.provider.is_empty() || !p.provider.chars().all(plain) {
                return Err(o.error(&at("provider"), "must be letters, digits, '_' or '-'"));
            }
            if a.providers[..i].iter().any(|q| q.provider == p.provider) {
                return Err(o.error(&at("provider"), format!("{:?} is given twice", p.provider)));
            }
            let args = &p.args;
            let oidc_args = [
                ("client_id", args.client_id.is_some()),
                ("client_secret", args.client_secret.is_some()),
                ("well_known_uri", args.well_known_uri.is_some()),
                ("audience", args.audience.is_some()),
                ("user_id_claim", args.user_id_claim.is_some()),
                ("redirect_on_success", args.redirect_on_success.is_some()),
                ("redirect_on_failure", args.redirect_on_failure.is_some()),
            ];
            let foreign: Vec<&str> = match p.authenticator.as_str() {
                OIDC => (!args.users_to_passwords.is_empty())
                    .then_some("users_to_passwords")
                    .into_iter()
                    .collect(),
                _ => {
                    let mut f: Vec<&str> = oidc_args
                        .iter()
                        .filter(|(_, set)| *set)
                        .map(|(k, _)| *k)
                        .collect();
                    if p.authenticator == USER_TABLE && !args.users_to_passwords.is_empty() {
                        f.push("users_to_passwords");
                    }
                    f
                }
            };
            if let Some(k) = foreign.first() {
                let message = format!("{} takes no argument {k}", p.authenticator);
                return Err(o.error(&at(&format!("args.{k}")), message));
            }
            match p.authenticator.as_str() {
                DICTIONARY => {
                    if args.users_to_passwords.is_empty() {
                        return Err(
                            o.error(&at("args.users_to_passwords"), "give at least one user")
                        );
                    }
                    if let Some((user, _)) =
                        args.users_to_passwords.iter().find(|(_, pw)| pw.is_empty())
                    {
                        let message = format!(
                            "the password of {user:?} is empty (is an environment variable unset?)"
                        );
                        return Err(o.error(&at("args.users_to_passwords"), message));
                    }
                }
                OIDC => {
                    for (key, v) in [
                        ("client_id", &args.client_id),
                        ("client_secret", &args.client_secret),
                        ("well_known_uri", &args.well_known_uri),
                        ("audience", &args.audience),
                    ] {
                        if v.as_deref().is_none_or(str::is_empty) {
                            let message = format!(
                                "{OIDC} needs {key} (empty or missing; is an environment variable unset?)"
                            );
                            return Err(o.error(&at(&format!("args.{key}")), message));
                        }
                    }
                    let uri = args.well_known_uri.as_deref().unwrap_or("");
                    if !(uri.starts_with("https://") || uri.starts_with("http://")) {
                        return Err(o.error(
                            &at("args.well_known_uri"),
                            format!("{uri:?} is not an http(s) URL"),
                        ));
                    }
                    if let Some(claim) = &args.user_id_claim
                        && crate::auth::oidc::UserIdClaim::parse(claim).is_none()
                    {
                        return Err(o.error(
                            &at("args.user_id_claim"),
                            format!("{claim:?}: give sub, email or preferred_username"),
                        ));
                    }
                    for (key, v) in [
                        ("redirect_on_success", &args.redirect_on_success),
                        ("redirect_on_failure", &args.redirect_on_failure),
                    ] {
                        if let Some(v) = v
                            && openidconnect::url::Url::parse(v).is_err()
                        {
                            return Err(o.error(
                                &at(&format!("args.{key}")),
                                format!("{v:?} is not an absolute URL"),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        for (i, admin) in a.tiled_admins.iter().enumerate() {
            if !a.providers.iter().any(|p| p.provider == admin.provider) {
                let message = format!(
                    "{:?} is not one of authentication.providers",
                    admin.provider
                );
                return Err(o.error(
                    &format!("authentication.tiled_admins[{i}].provider"),
                    message,
                ));
            }
        }
        if a.secret_keys.iter().any(String::is_empty) {
            return Err(o.error(
                "authentication.secret_keys",
                "a secret key is empty (is an environment variable unset?)",
            ));
        }
        for (key, v) in [
            ("access_token_max_age", a.access_token_max_age),
            ("refresh_token_max_age", a.refresh_token_max_age),
            ("session_max_age", a.session_max_age),
        ] {
            if !(v.is_finite() && v >= 1.0) {
                return Err(o.error(
                    &format!("authentication.{key}"),
                    "must be a number of seconds, at least 1",
                ));
            }
        }
        Ok(())
    }

    /// The compiled access policy, if one is configured.
    fn policy(
        &self,
    ) -> Result<Option<std::sync::Arc<crate::auth::policy::TagPolicy>>, ConfigFileError> {
        let o = &self.origins;
        let Some(ac) = &self.access_control else {
            return Ok(None);
        };
        if ac.access_policy != TAG_POLICY {
            let message = format!(
                "{:?} is not a policy tessera has: it has {TAG_POLICY}",
                ac.access_policy
            );
            return Err(o.error("access_control.access_policy", message));
        }
        if !self
            .authentication
            .providers
            .iter()
            .any(|p| p.provider == ac.args.provider)
        {
            let message = format!(
                "{:?} is not one of authentication.providers: an access policy names users by \
                 their identity at a login provider",
                ac.args.provider
            );
            return Err(o.error("access_control.args.provider", message));
        }
        let scopes = match &ac.args.scopes {
            None => crate::auth::scopes::Scopes::parse(&crate::auth::scopes::NAMES[..16])
                .unwrap_or_default(),
            Some(list) => crate::auth::scopes::Scopes::parse(list).map_err(|bad| {
                o.error(
                    "access_control.args.scopes",
                    format!("unknown scope {bad:?}"),
                )
            })?,
        };
        let Some((path, args)) = self.catalog_args() else {
            return Err(o.error(
                "access_control",
                "an access policy needs a catalog tree: its nodes carry the access tags",
            ));
        };
        let _ = path;
        let Some(file) = &self.tessera.access_tag_definitions else {
            return Err(o.error(
                "access_control",
                "give the tag definitions in tessera.access_tag_definitions (Tiled compiles them \
                 with a script; tessera reads the same YAML)",
            ));
        };
        let key = "tessera.access_tag_definitions";
        let text = std::fs::read_to_string(file)
            .map_err(|e| o.error(key, format!("{}: {e}", file.display())))?;
        let defs: crate::auth::policy::Definitions = serde_norway::from_str(&text)
            .map_err(|e| o.error(key, format!("{}: {e}", file.display())))?;
        let policy = crate::auth::policy::TagPolicy::compile(
            &ac.args.provider,
            scopes,
            &defs,
            args.top_level_access_tags.clone(),
        )
        .map_err(|e| o.error(key, format!("{}: {e}", file.display())))?;
        Ok(Some(std::sync::Arc::new(policy)))
    }

    /// The multi-user settings, when login providers are configured (checked already).
    fn auth_settings(&self) -> Result<Option<crate::auth::AuthSettings>, ConfigFileError> {
        let a = &self.authentication;
        if a.providers.is_empty() {
            return Ok(None);
        }
        let secs = |s: f64| std::time::Duration::from_secs_f64(s.max(1.0));
        Ok(Some(crate::auth::AuthSettings {
            policy: self.policy()?,
            providers: a
                .providers
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    Ok(crate::auth::Provider {
                        name: p.provider.clone(),
                        kind: provider_kind(p).map_err(|e| {
                            self.origins
                                .error(&format!("authentication.providers[{i}]"), e.to_string())
                        })?,
                        confirmation_message: p
                            .confirmation_message
                            .clone()
                            .or_else(|| p.args.confirmation_message.clone()),
                    })
                })
                .collect::<Result<_, ConfigFileError>>()?,
            admins: a
                .tiled_admins
                .iter()
                .map(|t| (t.provider.clone(), t.id.clone()))
                .collect(),
            secret_keys: a.secret_keys.clone(),
            allow_anonymous_access: a.allow_anonymous_access,
            access_token_max_age: secs(a.access_token_max_age),
            refresh_token_max_age: secs(a.refresh_token_max_age),
            session_max_age: secs(a.session_max_age),
            database: self.database.as_ref().map(|d| d.uri.clone()),
            init_if_not_exists: self.database.as_ref().is_some_and(|d| d.init_if_not_exists),
            login_failures_per_minute: self.tessera.login_failures_per_minute,
        }))
    }

    /// The catalog's arguments and their dotted path, if the tree is a catalog.
    fn catalog_args(&self) -> Option<(String, &CatalogArgs)> {
        match (&self.catalog, self.trees.first()) {
            (Some(args), _) => Some(("catalog".into(), args)),
            (
                None,
                Some(TreeSpec {
                    args: Some(args), ..
                }),
            ) => Some(("trees[0].args".into(), args)),
            _ => None,
        }
    }

    /// The catalog tree of `args` (at dotted `path`).
    fn catalog_tree(
        &self,
        path: String,
        args: &CatalogArgs,
    ) -> Result<CatalogTree, ConfigFileError> {
        let o = &self.origins;
        let database =
            CatalogDatabase::parse(&args.uri).map_err(|e| o.error(&format!("{path}.uri"), e))?;
        if let CatalogDatabase::Sqlite(file) = &database
            && !args.init_if_not_exists
            && !file.exists()
        {
            let message = format!(
                "the catalog {} does not exist: set init_if_not_exists: true to create it",
                file.display()
            );
            return Err(o.error(&format!("{path}.uri"), message));
        }
        let mut writable = None;
        for (i, item) in args.writable_storage.iter().enumerate() {
            let place = match item {
                StorageItem::Place(place) => place,
                StorageItem::Bucket(spec) => {
                    // Checked here (options, URI), reached at start-up.
                    spec.build().map_err(|message| {
                        o.error(&format!("{path}.writable_storage[{i}]"), message)
                    })?;
                    writable.get_or_insert(Writable::Bucket(spec.clone()));
                    continue;
                }
            };
            match local_path(place) {
                Some(dir) => {
                    writable.get_or_insert(Writable::Dir(dir));
                }
                // Tiled keeps appendable tables in an SQL database; tessera keeps them in
                // the data directory.
                None if ["duckdb:", "sqlite:", "postgresql:", "postgres:"]
                    .iter()
                    .any(|s| place.starts_with(s)) => {}
                None => {
                    let message = format!(
                        "{:?}: writable storage is a local directory, or a bucket given as a \
                         mapping (provider: s3, uri: http://host:port/bucket, config: ...)",
                        without_password(place)
                    );
                    return Err(o.error(&format!("{path}.writable_storage[{i}]"), message));
                }
            }
        }
        if writable.is_none() && !args.writable_storage.is_empty() {
            return Err(o.error(
                &format!("{path}.writable_storage"),
                "give a local directory or a bucket: tessera keeps written arrays and tables \
                 there",
            ));
        }
        Ok(CatalogTree {
            database,
            writable,
            init_if_not_exists: args.init_if_not_exists,
        })
    }

    /// What the configuration starts. `api_key` and `public` override the file (the flags of
    /// `serve config`); a key is made up when none is given.
    pub fn service(
        &self,
        api_key: Option<String>,
        public: bool,
    ) -> Result<Service, ConfigFileError> {
        let o = &self.origins;
        let tree = match self.catalog_args() {
            Some((path, args)) => Tree::Catalog(self.catalog_tree(path, args)?),
            None => Tree::Demo,
        };
        let readable = self
            .catalog_args()
            .map(|(path, args)| {
                args.readable_storage
                    .iter()
                    .enumerate()
                    .map(|(i, place)| {
                        let key = format!("{path}.readable_storage[{i}]");
                        let dir = local_path(place).ok_or_else(|| {
                            o.error(&key, "only local directories are readable storage")
                        })?;
                        dir.canonicalize()
                            .map_err(|e| o.error(&key, format!("{}: {e}", dir.display())))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let given = api_key.or_else(|| self.authentication.single_user_api_key.clone());
        let generated_api_key = given.is_none();
        let key = given.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let config = Config {
            response_bytesize_limit: self.response_bytesize_limit,
            api_key: Some(key),
            public: public || self.authentication.allow_anonymous_access,
            readable,
            allow_origins: self.allow_origins.clone(),
            metrics: self.metrics.prometheus,
            ..self.tessera.config()
        };
        let auth = self.auth_settings()?;
        let config = Config {
            // Multi-user: principals and their keys, not one key.
            api_key: config.api_key.filter(|_| auth.is_none()),
            ..config
        };
        Ok(Service {
            auth,
            tree,
            config,
            generated_api_key: generated_api_key && self.authentication.providers.is_empty(),
            host: self.uvicorn.host.clone(),
            port: self.uvicorn.port,
            orphan_grace: self.tessera.orphan_grace.map(|s| s.get()),
        })
    }

    /// The buckets of every catalog's writable storage (a worker reads their data).
    pub fn buckets(&self) -> Vec<BucketSpec> {
        self.catalog
            .iter()
            .chain(self.trees.iter().filter_map(|t| t.args.as_ref()))
            .flat_map(|a| &a.writable_storage)
            .filter_map(|item| match item {
                StorageItem::Bucket(spec) => Some(spec.clone()),
                StorageItem::Place(_) => None,
            })
            .collect()
    }

    /// This configuration with its secrets masked: the API key, and passwords in URIs.
    pub fn masked(&self) -> ConfigFile {
        let mut c = self.clone();
        if let Some(key) = &mut c.authentication.single_user_api_key {
            *key = "***".into();
        }
        for key in c.authentication.secret_keys.iter_mut() {
            *key = "***".into();
        }
        for p in c.authentication.providers.iter_mut() {
            for pw in p.args.users_to_passwords.values_mut() {
                *pw = "***".into();
            }
            if let Some(secret) = &mut p.args.client_secret {
                *secret = "***".into();
            }
        }
        if let Some(d) = &mut c.database {
            d.uri = without_password(&d.uri);
        }
        let args = c
            .catalog
            .iter_mut()
            .chain(c.trees.iter_mut().filter_map(|t| t.args.as_mut()));
        for a in args {
            a.uri = without_password(&a.uri);
            for item in a.writable_storage.iter_mut() {
                *item = match item {
                    StorageItem::Place(place) => StorageItem::Place(without_password(place)),
                    StorageItem::Bucket(spec) => StorageItem::Bucket(spec.masked()),
                };
            }
            for place in a.readable_storage.iter_mut() {
                *place = without_password(place);
            }
        }
        for url in [&mut c.tessera.redis_url, &mut c.tessera.nats_url]
            .into_iter()
            .flatten()
        {
            *url = without_password(url);
        }
        c
    }
}

/// The local path a storage location names: a path or a `file://` URI.
fn local_path(place: &str) -> Option<PathBuf> {
    if let Some(rest) = place.strip_prefix("file://") {
        return Some(rest.strip_prefix("localhost").unwrap_or(rest).into());
    }
    match place.split_once("://") {
        Some(_) => None,
        None if place.starts_with("duckdb:") || place.starts_with("sqlite:") => None,
        None => Some(place.into()),
    }
}

/// How the users of provider `p` (checked already) log in.
fn provider_kind(p: &ProviderSpec) -> anyhow::Result<crate::auth::ProviderKind> {
    use crate::auth::ProviderKind;
    let a = &p.args;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(match p.authenticator.as_str() {
        OIDC => ProviderKind::Oidc(std::sync::Arc::new(crate::auth::oidc::Oidc::new(
            crate::auth::oidc::OidcSettings {
                client_id: text(&a.client_id),
                client_secret: text(&a.client_secret),
                well_known_uri: text(&a.well_known_uri),
                audience: text(&a.audience),
                user_id_claim: a
                    .user_id_claim
                    .as_deref()
                    .and_then(crate::auth::oidc::UserIdClaim::parse)
                    .unwrap_or(crate::auth::oidc::UserIdClaim::Sub),
                redirect_on_success: a.redirect_on_success.clone(),
                redirect_on_failure: a.redirect_on_failure.clone(),
            },
        )?)),
        USER_TABLE => ProviderKind::UserTable,
        _ => ProviderKind::Dictionary(a.users_to_passwords.clone().into_iter().collect()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test helpers: a failure here is a test failure

    use super::*;
    use crate::config::Fallback;

    /// A fresh directory holding `files` (name, text).
    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tessera-config-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// The error of loading one file `config.yml` holding `text`.
    fn error_of(text: &str) -> ConfigFileError {
        let dir = dir_with(&[("config.yml", text)]);
        load(&dir.join("config.yml"), &no_env).unwrap_err()
    }

    /// The key and message of a `Key` error.
    fn key_error(e: ConfigFileError) -> (String, String) {
        match e {
            ConfigFileError::Key { key, message, .. } => (key, message),
            other => panic!("not a key error: {other}"),
        }
    }

    const DEMO: &str = "trees:\n  - path: /\n    tree: tiled.examples.generated:tree\n";

    #[test]
    fn a_directory_concatenates_its_lists_and_takes_each_other_key_once() {
        let dir = dir_with(&[
            ("10-tree.yml", DEMO),
            ("20-cors.yaml", "allow_origins: [\"http://a.example\"]\n"),
            (
                "30-more.yml",
                "allow_origins: [\"http://b.example\"]\ntessera:\n  cache_bytes: 5\n",
            ),
            ("notes.txt", "not: [a config"),
        ]);
        let file = load(&dir, &no_env).unwrap().file;
        assert_eq!(file.allow_origins, ["http://a.example", "http://b.example"]);
        assert_eq!(file.tessera.cache_bytes, 5);
        assert_eq!(file.trees.len(), 1);
        let service = file.service(Some("k".into()), false).unwrap();
        assert_eq!(service.tree, Tree::Demo);
        assert_eq!(service.config.cache_bytes, 5);
    }

    #[test]
    fn a_key_in_two_files_names_the_key_and_both_files() {
        let dir = dir_with(&[
            ("a.yml", &format!("{DEMO}uvicorn: {{port: 1}}\n")),
            ("b.yml", "uvicorn: {port: 2}\n"),
        ]);
        match load(&dir, &no_env).unwrap_err() {
            ConfigFileError::Duplicate { key, first, second } => {
                assert_eq!(key, "uvicorn");
                assert!(first.ends_with("a.yml"), "{first}");
                assert!(second.ends_with("b.yml"), "{second}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_second_tree_is_refused_naming_the_file_that_gave_it() {
        let dir = dir_with(&[("a.yml", DEMO), ("b.yml", DEMO)]);
        let e = load(&dir, &no_env).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("b.yml: trees[1]: mounting several trees"),
            "{text}"
        );
    }

    #[test]
    fn variables_are_expanded_as_tiled_does() {
        let env = |name: &str| match name {
            "A" => Some("x".to_string()),
            "B_2" => Some("y".to_string()),
            _ => None,
        };
        assert_eq!(expand("$A/${B_2}/$A.z", &env), "x/y/x.z");
        assert_eq!(
            expand("$UNSET ${UNSET} $ ${} ${A", &env),
            "$UNSET ${UNSET} $ ${} ${A"
        );
        assert_eq!(expand("a$$A", &env), "a$x");
    }

    #[test]
    fn variables_are_expanded_at_any_depth() {
        let dir = dir_with(&[]);
        let text = "catalog:\n  uri: sqlite:///$TMPD/c.db\n  init_if_not_exists: true\n  \
                    writable_storage: [\"${TMPD}/data\"]\n\
                    authentication: {single_user_api_key: \"${KEY}\"}\n";
        std::fs::write(dir.join("config.yml"), text).unwrap();
        let tmpd = dir.display().to_string();
        let env = |name: &str| match name {
            "TMPD" => Some(tmpd.clone()),
            "KEY" => Some("secret123".to_string()),
            _ => None,
        };
        let service = load(&dir.join("config.yml"), &env)
            .unwrap()
            .file
            .service(None, false)
            .unwrap();
        assert_eq!(service.config.api_key.as_deref(), Some("secret123"));
        assert!(!service.config.public);
        assert!(!service.generated_api_key);
        let Tree::Catalog(tree) = service.tree else {
            panic!("not a catalog")
        };
        assert_eq!(tree.database, CatalogDatabase::Sqlite(dir.join("c.db")));
        assert_eq!(tree.writable, Some(Writable::Dir(dir.join("data"))));
    }

    #[test]
    fn tiled_environment_variables_fill_and_override() {
        let dir = dir_with(&[("config.yml", &format!("{DEMO}response_bytesize_limit: 5\n"))]);
        let env = |name: &str| match name {
            "TILED_RESPONSE_BYTESIZE_LIMIT" => Some("7".to_string()),
            "TILED_SINGLE_USER_API_KEY" => Some("fromenv".to_string()),
            "TILED_ALLOW_ORIGINS" => Some("[\"http://c.example\"]".to_string()),
            _ => None,
        };
        let file = load(&dir.join("config.yml"), &env).unwrap().file;
        assert_eq!(file.response_bytesize_limit, 7);
        assert_eq!(file.allow_origins, ["http://c.example"]);
        let service = file.service(None, false).unwrap();
        assert_eq!(service.config.api_key.as_deref(), Some("fromenv"));
    }

    #[test]
    fn a_wrong_type_names_the_file_and_the_key_path() {
        let dir = dir_with(&[(
            "config.yml",
            &format!("{DEMO}tessera:\n  cache_bytes: lots\n"),
        )]);
        let path = dir.join("config.yml");
        let e = load(&path, &no_env).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: tessera.cache_bytes: invalid type: string \"lots\", expected u64",
                path.display()
            )
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let (key, message) = key_error(error_of(&format!("{DEMO}tesera: {{}}\n")));
        assert_eq!(key, "tesera");
        assert!(message.contains("unknown key"), "{message}");
        let (key, message) = key_error(error_of(&format!("{DEMO}tessera: {{cache_byte: 1}}\n")));
        assert_eq!(key, "tessera.cache_byte");
        assert!(message.contains("unknown key"), "{message}");
        let (key, _) = key_error(error_of(&format!("{DEMO}uvicorn: {{prot: 1}}\n")));
        assert_eq!(key, "uvicorn.prot");
        let (key, _) = key_error(error_of(
            "catalog: {uri: x.db, init_if_not_exists: true, writeable_storage: d}\n",
        ));
        assert_eq!(key, "catalog.writeable_storage");
    }

    #[test]
    fn tiled_features_tessera_lacks_are_refused_with_why() {
        for (text, key, why) in [
            (
                "authentication:\n  providers:\n    - provider: pam\n      authenticator: tiled.authenticators:PAMAuthenticator\n",
                "authentication.providers[0].authenticator",
                "not an authenticator tessera has",
            ),
            (
                "authentication:\n  providers:\n    - provider: toy\n      authenticator: tiled.authenticators:DictionaryAuthenticator\n      args: {users_to_passwords: {a: b}}\n  single_user_api_key: k\n",
                "authentication.single_user_api_key",
                "cannot be combined with login providers",
            ),
            (
                "authentication:\n  tiled_admins: [{provider: toy, id: a}]\n",
                "authentication.tiled_admins",
                "give authentication.providers",
            ),
            (
                "access_control: {access_policy: \"my.policies:ProposalPolicy\", args: {provider: toy}}\n",
                "access_control.access_policy",
                "not a policy tessera has",
            ),
            (
                "access_control: {access_policy: \"tiled.access_control.access_policies:TagBasedAccessPolicy\", args: {provider: toy}}\n",
                "access_control.args.provider",
                "not one of authentication.providers",
            ),
            (
                "routers: [\"my.module:router\"]\n",
                "routers",
                "Python objects",
            ),
            (
                "uvicorn: {root_path: /tiled}\n",
                "uvicorn.root_path",
                "path prefix",
            ),
            (
                "uvicorn: {ssl_keyfile: k.pem}\n",
                "uvicorn.ssl_keyfile",
                "TLS",
            ),
        ] {
            let (k, message) = key_error(error_of(&format!("{DEMO}{text}")));
            assert_eq!(k, key);
            assert!(message.contains(why), "{key}: {message}");
        }
        let (key, message) = key_error(error_of(
            "trees:\n  - path: /\n    tree: my_package.trees:tree\n",
        ));
        assert_eq!(key, "trees[0].tree");
        assert!(message.contains("Python object"), "{message}");
        let (key, message) = key_error(error_of(
            "catalog: {uri: x.db, init_if_not_exists: true, adapters_by_mimetype: {a/b: \"c:d\"}}\n",
        ));
        assert_eq!(key, "catalog.adapters_by_mimetype");
        assert!(message.contains("Python objects"), "{message}");
    }

    #[test]
    fn login_providers_make_a_multi_user_service_and_their_secrets_are_masked() {
        let dir = dir_with(&[(
            "config.yml",
            &format!(
                "{DEMO}authentication:\n  providers:\n    - provider: toy\n      \
                 authenticator: tiled.authenticators:DictionaryAuthenticator\n      \
                 args: {{users_to_passwords: {{alice: pw-alice}}, confirmation_message: hi}}\n  \
                 tiled_admins: [{{provider: toy, id: alice}}]\n  secret_keys: [key-one, key-two]\n  \
                 access_token_max_age: 60\n\
                 database: {{uri: \"postgresql://u:dbpass@h/db\", init_if_not_exists: true}}\n"
            ),
        )]);
        let loaded = load(&dir.join("config.yml"), &no_env).unwrap();
        let service = loaded.file.service(None, false).unwrap();
        let auth = service.auth.expect("multi-user");
        let crate::auth::ProviderKind::Dictionary(users) = &auth.providers[0].kind else {
            panic!("a DictionaryAuthenticator is a dictionary of users");
        };
        assert_eq!(users["alice"], "pw-alice");
        assert_eq!(
            auth.providers[0].confirmation_message.as_deref(),
            Some("hi")
        );
        assert_eq!(auth.admins, vec![("toy".to_string(), "alice".to_string())]);
        assert_eq!(auth.access_token_max_age.as_secs(), 60);
        assert_eq!(auth.database.as_deref(), Some("postgresql://u:dbpass@h/db"));
        // No single-user key is made up or printed in multi-user mode.
        assert!(service.config.api_key.is_none() && !service.generated_api_key);
        let text = serde_norway::to_string(&loaded.file.masked()).unwrap();
        for secret in ["pw-alice", "key-one", "key-two", "dbpass"] {
            assert!(!text.contains(secret), "{secret} shown in:\n{text}");
        }
    }

    #[test]
    fn harmless_tiled_keys_are_accepted_with_a_note() {
        let dir = dir_with(&[(
            "config.yml",
            &format!(
                "{DEMO}exact_count_limit: 100\nmetrics: {{prometheus: true}}\ndatabase: null\n\
                 authentication: {{secret_keys: [abc], allow_anonymous_access: true}}\n"
            ),
        )]);
        let loaded = load(&dir.join("config.yml"), &no_env).unwrap();
        // `metrics` is honoured now, so only the count limit is noted.
        assert_eq!(loaded.notes.len(), 1, "{:?}", loaded.notes);
        assert!(
            loaded.notes[0].starts_with("exact_count_limit"),
            "{:?}",
            loaded.notes
        );
        let service = loaded.file.service(None, false).unwrap();
        assert!(service.config.public && service.config.metrics);
    }

    #[test]
    fn contradictions_are_refused() {
        let (key, message) = key_error(error_of(&format!(
            "{DEMO}tessera: {{nats_url: \"nats://127.0.0.1:4222\"}}\n"
        )));
        assert_eq!(key, "tessera.nats_url");
        assert!(message.contains("redis_url"), "{message}");
        let (key, _) = key_error(error_of(&format!(
            "{DEMO}catalog: {{uri: x.db, init_if_not_exists: true}}\n"
        )));
        assert_eq!(key, "catalog");
        let (key, _) = key_error(error_of("uvicorn: {port: 1}\n"));
        assert_eq!(key, "trees");
        let (key, message) = key_error(error_of(&format!(
            "{DEMO}tessera: {{request_timeout: -1}}\n"
        )));
        assert_eq!(key, "tessera.request_timeout");
        assert!(message.contains("non-negative"), "{message}");
        let (key, _) = key_error(error_of(
            "trees:\n  - path: /raw\n    tree: catalog\n    args: {uri: x.db}\n",
        ));
        assert_eq!(key, "trees[0].path");
        let (key, message) = key_error(error_of("catalog: {uri: missing.db}\n"));
        assert_eq!(key, "catalog.uri");
        assert!(message.contains("init_if_not_exists"), "{message}");
        let (key, _) = key_error(error_of(&format!(
            "{DEMO}authentication: {{single_user_api_key: \"${{UNSET_KEY}}\"}}\n"
        )));
        assert_eq!(key, "authentication.single_user_api_key");
    }

    #[test]
    fn the_cluster_section_maps_onto_config_cluster() {
        let dir = dir_with(&[(
            "config.yml",
            &format!(
                "{DEMO}tessera:\n  redis_url: redis://127.0.0.1:6379\n  nats_url: nats://n:4222\n  \
                 key_prefix: run7\n  l2_ttl: 1.5\n  fallback: unavailable\n"
            ),
        )]);
        let file = load(&dir.join("config.yml"), &no_env).unwrap().file;
        let cluster = file.service(None, false).unwrap().config.cluster.unwrap();
        assert_eq!(cluster.key_prefix, "run7");
        assert_eq!(cluster.nats_url.as_deref(), Some("nats://n:4222"));
        assert_eq!(cluster.l2_ttl, std::time::Duration::from_millis(1500));
        assert_eq!(cluster.fallback, Fallback::Unavailable);
        assert_eq!(
            cluster.worker_timeout,
            crate::config::Cluster::new("r").worker_timeout
        );
        let plain = dir_with(&[("c.yml", DEMO)]);
        let file = load(&plain.join("c.yml"), &no_env).unwrap().file;
        assert!(file.service(None, false).unwrap().config.cluster.is_none());
    }

    #[test]
    fn a_bucket_is_writable_storage_with_its_errors_named() {
        let bucket = |config: &str| {
            let text = format!(
                "catalog:\n  uri: postgresql://db/cat\n  writable_storage:\n    - provider: s3\n      \
                 uri: http://minio:9000/data/run7\n      config: {{{config}}}\n"
            );
            let dir = dir_with(&[("config.yml", &text)]);
            load(&dir.join("config.yml"), &no_env).map(|l| l.file)
        };
        let file =
            bucket("access_key_id: a, secret_access_key: hush, client_options: {allow_http: true}")
                .unwrap();
        let Tree::Catalog(tree) = file.service(None, false).unwrap().tree else {
            panic!("a catalog")
        };
        let Some(Writable::Bucket(spec)) = tree.writable else {
            panic!("a bucket: {:?}", tree.writable)
        };
        assert_eq!(spec.base(), "http://minio:9000/data/run7");
        assert_eq!(file.buckets(), vec![spec]);
        let masked = serde_norway::to_string(&file.masked()).unwrap();
        assert!(
            !masked.contains("hush") && masked.contains("minio:9000"),
            "{masked}"
        );

        let (key, message) = key_error(bucket("acces_key_id: a").unwrap_err());
        assert_eq!(key, "catalog.writable_storage[0]");
        assert!(
            message.contains("acces_key_id is not an option"),
            "{message}"
        );
        let (key, message) = key_error(error_of(
            "catalog:\n  uri: x.db\n  writable_storage: [{provider: s3, url: http://h/b}]\n",
        ));
        assert_eq!(key, "catalog.writable_storage");
        assert!(message.contains("unknown field `url`"), "{message}");
    }

    #[test]
    fn check_config_masks_secrets() {
        let dir = dir_with(&[(
            "config.yml",
            "trees:\n  - path: /\n    tree: catalog\n    args:\n      \
             uri: postgresql+asyncpg://tiled:pgpass@db:5432/cat\n      \
             writable_storage: [/data, \"postgresql://tiled:tabpass@db/tab\"]\n\
             authentication: {single_user_api_key: topsecret}\n\
             tessera:\n  redis_url: \"redis://:redispass@cache:6379\"\n  \
             nats_url: \"nats://w:natspass@nats:4222\"\n",
        )]);
        let file = load(&dir.join("config.yml"), &no_env).unwrap().file;
        let text = serde_norway::to_string(&file.masked()).unwrap();
        for secret in ["pgpass", "tabpass", "topsecret", "redispass", "natspass"] {
            assert!(!text.contains(secret), "{secret} in:\n{text}");
        }
        assert!(
            text.contains("postgresql+asyncpg://tiled:***@db:5432/cat"),
            "{text}"
        );
        assert!(text.contains("single_user_api_key: '***'"), "{text}");
        // The effective configuration shows the defaults too.
        assert!(text.contains("cache_bytes: 1073741824"), "{text}");
        // Unmasked, the secret is there (the mask is what removed it).
        assert!(
            serde_norway::to_string(&file)
                .unwrap()
                .contains("topsecret")
        );
    }

    #[test]
    fn catalog_uris_as_tiled_operators_write_them() {
        let parse = |s: &str| CatalogDatabase::parse(s).unwrap();
        assert_eq!(
            parse("sqlite:////abs/c.db"),
            CatalogDatabase::Sqlite("/abs/c.db".into())
        );
        assert_eq!(
            parse("sqlite+aiosqlite:///rel/c.db"),
            CatalogDatabase::Sqlite("rel/c.db".into())
        );
        assert_eq!(parse("sqlite:c.db"), CatalogDatabase::Sqlite("c.db".into()));
        assert_eq!(parse("c.db"), CatalogDatabase::Sqlite("c.db".into()));
        assert_eq!(
            parse("postgresql+asyncpg://u:p@h/db"),
            CatalogDatabase::Postgres("postgresql://u:p@h/db".into())
        );
        assert_eq!(
            parse("postgres://h/db"),
            CatalogDatabase::Postgres("postgresql://h/db".into())
        );
        assert!(CatalogDatabase::parse("duckdb:///x.duckdb").is_err());
    }

    #[test]
    fn passwords_stay_out_of_logged_uris() {
        assert_eq!(
            without_password("postgresql://tiled:s3cret@db.example:5432/cat?sslmode=require"),
            "postgresql://tiled:***@db.example:5432/cat?sslmode=require"
        );
        assert_eq!(
            without_password("postgresql://tiled@db/cat"),
            "postgresql://tiled@db/cat"
        );
        assert_eq!(without_password("catalog.db"), "catalog.db");
    }
}
