//! `POST /register/{parent}`: adds files tessera does not own (HDF5, Zarr, Parquet, CSV) to
//! the catalog without copying them. The body is the one `POST /metadata` takes, with a data
//! source whose assets name the files; what the client leaves out (the mimetype, the
//! structure) tessera reads from the files. Only files under the server's readable
//! directories may be registered, and a registration is checked by opening what it names
//! before the catalog shows it.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tessera_common::adapters::{self, Asset, DataSource, image_stack, table_files, zarr_tree};
use tessera_common::inspect::{self, Format, Formats};
use tessera_common::node::TreeNode;
use tessera_common::structure::{Spec, Structure, StructureFamily};

use super::Request;
use super::write::{
    created_response, json_body, key_and_family, parse_metadata, parse_specs, parse_tags,
};
use crate::catalog::NewNode;
use crate::error::ApiError;
use crate::state::AppState;

/// The one data source of a registration, as the client sent it.
struct Requested {
    mimetype: Option<String>,
    parameters: Map<String, Value>,
    structure: Option<Value>,
    assets: Vec<Asset>,
}

fn requested(body: &Map<String, Value>) -> Result<Requested, ApiError> {
    let sources = match body.get("data_sources") {
        Some(Value::Array(a)) => a,
        _ => {
            return Err(ApiError::unprocessable(
                "a registration needs 'data_sources': one data source whose assets name the files",
            ));
        }
    };
    let [source] = sources.as_slice() else {
        return Err(ApiError::unprocessable(format!(
            "a registration takes exactly one data source; {} given",
            sources.len()
        )));
    };
    let assets: Vec<Asset> = serde_json::from_value(source.get("assets").cloned().unwrap_or(json!([])))
        .map_err(|e| {
            ApiError::unprocessable(format!(
                "'assets' must be a list of {{\"data_uri\", \"is_directory\", \"parameter\", \"num\"}}: {e}"
            ))
        })?;
    if assets.is_empty() {
        return Err(ApiError::unprocessable(
            "the data source has no assets: name the files to register",
        ));
    }
    let parameters = match source.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "'parameters' must be a JSON object",
            ));
        }
    };
    if parameters.contains_key("slice") || parameters.get("squeeze") == Some(&json!(true)) {
        return Err(ApiError::unprocessable(
            "the 'slice' and 'squeeze' parameters are not supported: register the whole dataset",
        ));
    }
    Ok(Requested {
        mimetype: source
            .get("mimetype")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        parameters,
        structure: source.get("structure").cloned().filter(|s| !s.is_null()),
        assets,
    })
}

/// The local file an asset names, resolved, if it lies under one of `roots`.
fn readable_path(uri: &str, roots: &[PathBuf]) -> Result<PathBuf, ApiError> {
    let local = if uri.starts_with("file:") {
        format!("/{}", adapters::local_path(uri)?)
    } else if uri.starts_with('/') {
        uri.to_string()
    } else {
        return Err(ApiError::unprocessable(format!(
            "asset {uri:?}: only local files (file:// URIs or absolute paths) can be registered"
        )));
    };
    let real = Path::new(&local).canonicalize().map_err(|e| {
        ApiError::unprocessable(format!("asset {uri:?}: {local} cannot be opened ({e})"))
    })?;
    if !roots.iter().any(|r| real.starts_with(r)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("asset {uri:?} is outside the directories this server may read"),
        ));
    }
    Ok(real)
}

/// What a registration becomes in the catalog.
struct Registered {
    data: Option<(Structure, DataSource)>,
    children: Vec<TreeNode>,
    metadata: Map<String, Value>,
    specs: Vec<Spec>,
}

fn structure_or<T: serde::de::DeserializeOwned>(
    given: &Option<Value>,
    what: &str,
) -> Result<Option<T>, ApiError> {
    given
        .as_ref()
        .map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| {
                ApiError::unprocessable(format!("the structure of {what} is invalid: {e}"))
            })
        })
        .transpose()
}

/// Reads the files and describes the node (blocking: runs on the blocking pool).
fn describe(
    family: StructureFamily,
    format: Format,
    paths: &[PathBuf],
    req: &Requested,
    key: &str,
) -> Result<Registered, ApiError> {
    let one = || -> Result<&PathBuf, ApiError> {
        match paths {
            [p] => Ok(p),
            _ => Err(ApiError::unprocessable(format!(
                "a {} {} is read from one file; {} given",
                format.mimetype(),
                family.as_str(),
                paths.len()
            ))),
        }
    };
    let mut skipped = Vec::new();
    let from_tree = |t: TreeNode| Registered {
        data: t.structure.zip(t.source),
        children: t.children,
        metadata: t.metadata,
        specs: t.specs,
    };
    let reg = match (family, format) {
        (
            StructureFamily::Container,
            Format::Hdf5 | Format::Zarr | Format::Xlsx | Format::NetCdf,
        ) => {
            let t = inspect::file(one()?, format, key, &mut skipped)?;
            if t.family != StructureFamily::Container {
                return Err(ApiError::unprocessable(format!(
                    "{} holds a {}, not a container",
                    one()?.display(),
                    t.family.as_str()
                )));
            }
            let mut r = from_tree(t);
            r.data = None;
            r
        }
        (StructureFamily::Array, Format::Hdf5) => {
            use tessera_common::adapters::hdf5_file;
            let path = one()?;
            let dataset = hdf5_file::dataset_parameter(&req.parameters).ok_or_else(|| {
                ApiError::unprocessable(
                    "an HDF5 array needs the 'dataset' parameter (its path in the file)",
                )
            })?;
            let structure = match structure_or(&req.structure, "an array")? {
                Some(s) => s,
                None => hdf5_file::dataset_structure(path, &dataset)?,
            };
            let mut source = hdf5_file::data_source(&adapters::file_uri(path), &dataset);
            for (k, v) in &req.parameters {
                source.parameters.entry(k.clone()).or_insert(v.clone());
            }
            Registered {
                data: Some((Structure::Array(structure), source)),
                children: Vec::new(),
                metadata: Map::new(),
                specs: Vec::new(),
            }
        }
        (StructureFamily::Array, Format::Zarr) => {
            let t = zarr_tree::inspect(one()?, key, &mut skipped)?;
            if t.family != StructureFamily::Array {
                return Err(ApiError::unprocessable(format!(
                    "{} is a Zarr group, not an array: register it as a container",
                    one()?.display()
                )));
            }
            let mut r = from_tree(t);
            if let Some(s) = structure_or(&req.structure, "an array")? {
                r.data = r.data.map(|(_, src)| (Structure::Array(s), src));
            }
            r
        }
        (StructureFamily::Table, Format::Parquet | Format::Csv) => {
            let (inferred, mut source) = if format == Format::Parquet {
                table_files::inspect_parquet(paths)?
            } else {
                table_files::inspect_csv(paths, req.parameters.clone())?
            };
            let structure = match structure_or(&req.structure, "a table")? {
                Some(s) => {
                    // A client-described table is read a file per partition, as it described.
                    source.parameters.remove("partitions");
                    s
                }
                None => inferred,
            };
            Registered {
                data: Some((Structure::Table(structure), source)),
                children: Vec::new(),
                metadata: Map::new(),
                specs: Vec::new(),
            }
        }
        (StructureFamily::Array, Format::Tiff | Format::Npy) => {
            // A `multipart/related` mimetype names a sequence, even of one file.
            let (inferred, source) = match &req.mimetype {
                Some(m) => image_stack::inspect_as(
                    paths,
                    format == Format::Npy,
                    m.starts_with("multipart/related"),
                )?,
                None => image_stack::inspect(paths, format == Format::Npy)?,
            };
            let structure = structure_or(&req.structure, "an array")?.unwrap_or(inferred);
            Registered {
                data: Some((Structure::Array(structure), source)),
                children: Vec::new(),
                metadata: Map::new(),
                specs: Vec::new(),
            }
        }
        (family, format) => {
            return Err(ApiError::unprocessable(format!(
                "{} files cannot be registered as a {}",
                format.mimetype(),
                family.as_str()
            )));
        }
    };
    // Open what will be served, so a registration that cannot be read is refused now.
    if let Some((structure, source)) = &reg.data {
        let opened = match structure {
            Structure::Array(s) => adapters::with_structure(source, s),
            Structure::Table(s) => adapters::with_structure(source, s),
            _ => source.clone(),
        };
        adapters::open(&opened)?;
    }
    if !skipped.is_empty() {
        tracing::info!(key, skipped = ?skipped, "registered with parts left out");
    }
    Ok(reg)
}

/// `POST /register/{parent}`.
pub async fn register(
    state: &AppState,
    req: &Request,
    parent: &[String],
) -> Result<Response, ApiError> {
    if state.config.readable.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this server registers no files: start it with --read DIR to allow files under DIR",
        ));
    }
    state.check_access(req, parent).await?;
    let body = json_body(req)?;
    let (key, family) = key_and_family(&body)?;
    let metadata = parse_metadata(body.get("metadata"))?.unwrap_or_default();
    let specs = parse_specs(body.get("specs"))?;
    let access_tags = state.new_node_tags(req, parse_tags(body.get("access_tags"))?)?;
    let requested = requested(&body)?;
    let mut assets = requested.assets.clone();
    assets.sort_by_key(|a| a.num.unwrap_or(0));
    let paths = assets
        .iter()
        .map(|a| readable_path(&a.data_uri, &state.config.readable))
        .collect::<Result<Vec<_>, _>>()?;
    let format = match &requested.mimetype {
        Some(m) => Format::from_mimetype(m).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("no adapter reads {m:?}; tessera registers HDF5, NetCDF, Zarr, Parquet, CSV, Excel, TIFF and .npy"),
            )
        })?,
        None => Formats::default().of(&paths[0]).ok_or_else(|| {
            ApiError::unprocessable(format!(
                "cannot tell the format of {}: give the data source a mimetype",
                paths[0].display()
            ))
        })?,
    };
    let mut target = parent.to_vec();
    target.push(key.clone());
    if state.catalog.get(&target).await?.is_some() {
        return Err(crate::catalog::key_exists(&target));
    }
    let reg = {
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            // A panic in an adapter (a bug a crafted file found) refuses this registration
            // and leaves nothing behind; the server goes on.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                describe(family, format, &paths, &requested, &key)
            }))
            .unwrap_or_else(|_| {
                Err(ApiError::unprocessable(format!(
                    "{}: the file could not be described (it is damaged or crafted)",
                    paths
                        .first()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                )))
            })
        })
        .await
        .map_err(|e| ApiError::internal(format!("registration task failed: {e}")))??
    };
    // The client's metadata and specs go over what the file says.
    let mut merged = reg.metadata;
    merged.extend(metadata);
    let node = NewNode {
        key,
        family,
        metadata: merged,
        // The client's specs, if it gave any; else what the file says (NX_class,
        // xarray_dataset).
        specs: specs.filter(|s| !s.is_empty()).unwrap_or(reg.specs),
        access_tags,
        data: reg.data,
        children: reg.children,
    };
    let created = state.catalog.create(parent, node).await?;
    created_response(req, &created).await
}
