//! `tessera register URL PATH`: walks PATH here and registers what it finds with a running
//! server over HTTP (`POST /metadata` for directories, `POST /register` for files), so the
//! server reads each file itself. Keys follow `tiled serve directory`.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tessera_common::adapters::file_uri;
use tessera_common::adapters::image_stack::{
    NPY_SEQUENCE_MIMETYPE, TIFF_SEQUENCE_MIMETYPE, sequence_stem,
};
use tessera_common::inspect::{EntryKind, Format, Formats, entries, key_of};

struct Client {
    http: reqwest::Client,
    api: String,
    api_key: Option<String>,
    root: std::path::PathBuf,
    registered: usize,
    containers: usize,
    skipped: Vec<String>,
}

impl Client {
    async fn post(
        &self,
        route: &str,
        path: &[String],
        body: &Value,
    ) -> anyhow::Result<Option<String>> {
        let encoded: Vec<String> = path
            .iter()
            .map(|s| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect();
        let url = format!("{}/{route}/{}", self.api, encoded.join("/"));
        let mut req = self.http.post(&url).json(body);
        if let Some(k) = &self.api_key {
            req = req.header("Authorization", format!("Apikey {k}"));
        }
        let resp = req.send().await.with_context(|| format!("POST {url}"))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(None);
        }
        let text = resp.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or(text);
        if status.as_u16() == 409 || status.is_client_error() {
            return Ok(Some(format!("{status}: {detail}")));
        }
        bail!("POST {url}: {status}: {detail}")
    }

    /// Creates a container, or finds it there already.
    async fn container(&mut self, parent: &[String], key: &str) -> anyhow::Result<()> {
        let body = json!({"id": key, "structure_family": "container", "metadata": {}, "specs": [], "data_sources": []});
        match self.post("metadata", parent, &body).await? {
            None => self.containers += 1,
            Some(e) if e.starts_with("409") => {}
            Some(e) => bail!(
                "creating container {key:?} under /{}: {e}",
                parent.join("/")
            ),
        }
        Ok(())
    }

    /// Registers one file, or a sequence of numbered images as one array.
    async fn files(
        &mut self,
        parent: &[String],
        paths: &[std::path::PathBuf],
        format: Format,
        key: &str,
    ) -> anyhow::Result<()> {
        let path = &paths[0];
        let family = match format {
            Format::Hdf5 | Format::Xlsx | Format::NetCdf => "container",
            Format::Zarr if is_zarr_array(path) => "array",
            Format::Zarr => "container",
            Format::Parquet | Format::Csv => "table",
            Format::Tiff | Format::Npy => "array",
        };
        let sequence = paths.len() > 1 || sequence_stem(path).is_some();
        let mimetype = match format {
            Format::Tiff if sequence => TIFF_SEQUENCE_MIMETYPE,
            Format::Npy if sequence => NPY_SEQUENCE_MIMETYPE,
            f => f.mimetype(),
        };
        let numbered = sequence || matches!(format, Format::Parquet | Format::Csv);
        let assets: Vec<Value> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "data_uri": file_uri(p),
                    "is_directory": p.is_dir(),
                    "parameter": if numbered { "data_uris" } else { "data_uri" },
                    "num": if numbered { json!(i) } else { Value::Null },
                })
            })
            .collect();
        let body = json!({
            "id": key,
            "structure_family": family,
            "metadata": {},
            "specs": [],
            "data_sources": [{
                "mimetype": mimetype,
                "structure_family": family,
                "structure": null,
                "parameters": {},
                "management": "external",
                "assets": assets,
            }],
        });
        match self.post("register", parent, &body).await? {
            None => self.registered += 1,
            Some(e) => self.skipped.push(format!("{}: {e}", path.display())),
        }
        Ok(())
    }

    async fn walk(
        &mut self,
        parent: &[String],
        dir: &Path,
        formats: &Formats,
    ) -> anyhow::Result<()> {
        let list = entries(&self.root, dir, formats)
            .with_context(|| format!("listing {}", dir.display()))?;
        for e in list {
            match e.kind {
                EntryKind::File(f) => self.files(parent, &[e.real], f, &e.key).await?,
                EntryKind::Sequence(f, files) => self.files(parent, &files, f, &e.key).await?,
                EntryKind::Directory => {
                    self.container(parent, &e.key).await?;
                    let mut sub = parent.to_vec();
                    sub.push(e.key);
                    Box::pin(self.walk(&sub, &e.real, formats)).await?;
                }
                EntryKind::Skipped(why) => {
                    self.skipped.push(format!("{}: {why}", e.path.display()))
                }
            }
        }
        Ok(())
    }
}

fn is_zarr_array(dir: &Path) -> bool {
    if dir.join(".zarray").is_file() {
        return true;
    }
    std::fs::read(dir.join("zarr.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v["node_type"] == "array")
}

/// Registers `path` under `prefix` with the server at `url`; returns a summary.
pub async fn register(
    url: &str,
    path: &Path,
    prefix: &str,
    api_key: Option<&str>,
) -> anyhow::Result<String> {
    let root = path
        .canonicalize()
        .with_context(|| format!("{} cannot be opened", path.display()))?;
    let base = url.trim_end_matches('/');
    let api = if base.ends_with("/api/v1") {
        base.to_string()
    } else {
        format!("{base}/api/v1")
    };
    let mut c = Client {
        http: reqwest::Client::new(),
        api,
        api_key: api_key.map(str::to_string),
        root: if root.is_dir() {
            root.clone()
        } else {
            root.parent().map(Path::to_path_buf).unwrap_or_default()
        },
        registered: 0,
        containers: 0,
        skipped: Vec::new(),
    };
    let mut parent = Vec::new();
    for seg in prefix.split('/').filter(|s| !s.is_empty()) {
        c.container(&parent, seg).await?;
        parent.push(seg.to_string());
    }
    let formats = Formats::default();
    match formats.of(&root) {
        Some(f) => {
            let key = key_of(&root).context("the file has no usable name")?;
            c.files(&parent, std::slice::from_ref(&root), f, &key)
                .await?;
        }
        None if root.is_dir() => c.walk(&parent, &root, &formats).await?,
        None => bail!("{}: no adapter reads this file type", root.display()),
    }
    let mut out = format!(
        "registered {} file(s) in {} new container(s) under /{}",
        c.registered,
        c.containers,
        parent.join("/")
    );
    for s in &c.skipped {
        out.push_str(&format!("\nskipped {s}"));
    }
    Ok(out)
}
