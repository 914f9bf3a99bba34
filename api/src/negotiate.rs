//! Media-type negotiation: which formats each structure family (and spec) offers, the file
//! extension aliases accepted by `format=`, and the choice between `format=` and `Accept`.

use serde_json::{Map, Value, json};
use tessera_common::structure::StructureFamily;

use crate::error::ApiError;

pub const OCTET: &str = "application/octet-stream";
pub const JSON: &str = "application/json";
pub const CSV: &str = "text/csv";
pub const PNG: &str = "image/png";
pub const TIFF: &str = "image/tiff";
pub const HTML: &str = "text/html";
pub const ARROW: &str = "application/vnd.apache.arrow.file";
pub const PARQUET: &str = "application/x-parquet";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub const JSON_SEQ: &str = "application/json-seq";
pub const HDF5: &str = "application/x-hdf5";
pub const NETCDF: &str = "application/x-netcdf";
/// The other spelling of NetCDF's media type; Tiled offers both.
pub const NETCDF_ALT: &str = "application/netcdf";
pub const ZIP: &str = "application/zip";
pub const MSGPACK: &str = "application/x-msgpack";

/// CSV spellings that all produce CSV.
pub const CSV_ALIASES: [&str; 5] = tessera_common::serializers::array::CSV_ALIASES;

/// Media types offered per family (first = default for `*/*`), in Tiled's order.
pub fn formats(family: StructureFamily) -> &'static [&'static str] {
    match family {
        StructureFamily::Array => &[
            OCTET,
            JSON,
            CSV,
            "text/x-comma-separated-values",
            "text/plain",
            "application/vnd.ms-excel",
            PNG,
            TIFF,
            HTML,
            HDF5,
            NETCDF,
            NETCDF_ALT,
        ],
        StructureFamily::Table => &[
            ARROW,
            PARQUET,
            CSV,
            "text/x-comma-separated-values",
            "text/plain",
            "application/vnd.ms-excel",
            HTML,
            XLSX,
            JSON,
            JSON_SEQ,
            HDF5,
        ],
        StructureFamily::Container => &[HDF5, JSON, NETCDF, NETCDF_ALT],
        StructureFamily::Sparse => &[ARROW, HDF5, XLSX, PARQUET, CSV, "text/plain", HTML, JSON],
        StructureFamily::Awkward => &[ZIP, JSON],
        StructureFamily::Ragged => &[JSON, ZIP],
        StructureFamily::Bytes => &[OCTET],
    }
}

/// Extra media types offered by nodes carrying a spec.
pub fn spec_formats(spec: &str) -> &'static [&'static str] {
    match spec {
        "xarray_dataset" => &[
            ARROW,
            PARQUET,
            CSV,
            "text/comma-separated-values",
            "text/plain",
            HTML,
            XLSX,
            JSON,
            HDF5,
            NETCDF,
            NETCDF_ALT,
        ],
        _ => &[],
    }
}

/// File-extension aliases for `format=`.
pub fn aliases() -> &'static [(&'static str, &'static [&'static str])] {
    &[
        (JSON, &["json"]),
        (CSV, &["csv"]),
        (
            "application/vnd.ms-excel",
            &["xls", "xlb", "xlm", "xla", "xlc", "xlt", "xlw"],
        ),
        (PNG, &["png"]),
        (TIFF, &["tiff", "tif"]),
        (HTML, &["html", "htm", "shtml"]),
        (HDF5, &["h5", "hdf5"]),
        (NETCDF_ALT, &["nc"]),
        (PARQUET, &["parquet"]),
        (ARROW, &["arrow", "feather"]),
        (XLSX, &["xlsx"]),
        (ZIP, &["zip"]),
        ("text/plain", &["text", "txt"]),
    ]
}

fn resolve_alias(name: &str) -> &str {
    for (mt, exts) in aliases() {
        if exts.contains(&name) {
            return mt;
        }
    }
    name
}

/// The `formats` and `aliases` objects of the root document.
pub fn root_formats() -> (Value, Value) {
    let families = [
        StructureFamily::Array,
        StructureFamily::Awkward,
        StructureFamily::Container,
        StructureFamily::Ragged,
        StructureFamily::Sparse,
        StructureFamily::Table,
    ];
    let mut format_map = Map::new();
    let mut alias_map = Map::new();
    let mut add = |name: &str, offered: &[&str]| {
        format_map.insert(name.to_string(), json!(offered));
        let mut a = Map::new();
        for (mt, exts) in aliases() {
            if offered.contains(mt) {
                a.insert(mt.to_string(), json!(exts));
            }
        }
        alias_map.insert(name.to_string(), Value::Object(a));
    };
    for f in families {
        add(f.as_str(), formats(f));
    }
    add("xarray_dataset", spec_formats("xarray_dataset"));
    (Value::Object(format_map), Value::Object(alias_map))
}

/// Picks the media type of a data response: `format=` (media type or alias, possibly a
/// comma-separated list) wins over `Accept`; `*/*` or nothing gives the family default.
pub fn choose(
    family: StructureFamily,
    specs: &[String],
    format: Option<&str>,
    accept: Option<&str>,
) -> Result<&'static str, ApiError> {
    let mut offered: Vec<&'static str> = Vec::new();
    for s in specs {
        offered.extend(spec_formats(s));
    }
    offered.extend(formats(family));
    let (requested, from_format): (Vec<&str>, bool) = match format {
        Some(f) if !f.is_empty() => (f.split(',').map(str::trim).collect(), true),
        _ => (
            accept
                .unwrap_or("*/*")
                .split(',')
                .map(|s| s.trim())
                .collect(),
            false,
        ),
    };
    let mut resolved: Vec<&str> = Vec::new();
    for r in &requested {
        let base = r.split(';').next().unwrap_or("").trim();
        let base = if from_format {
            resolve_alias(base)
        } else {
            base
        };
        resolved.push(base);
        if base == "*/*" || base.is_empty() && !from_format {
            return Ok(formats(family)[0]);
        }
        if family == StructureFamily::Array && base == "image/*" {
            return Ok(PNG);
        }
        if let Some(m) = offered.iter().find(|m| **m == base) {
            return Ok(m);
        }
    }
    let mut unique: Vec<&str> = Vec::new();
    for m in &offered {
        if !unique.contains(m) {
            unique.push(m);
        }
    }
    Err(ApiError::not_acceptable(format!(
        "None of the media types requested by the client are supported. Supported: {}. Requested: {}.",
        unique.join(", "),
        resolved.join(", ")
    )))
}

/// Whether the request asks for CSV without a header row (`text/csv;header=absent`, in
/// `format=` or `Accept`).
pub fn csv_header_absent(format: Option<&str>, accept: Option<&str>) -> bool {
    let wanted = match format {
        Some(f) if !f.is_empty() => f,
        _ => accept.unwrap_or(""),
    };
    wanted.split(',').any(|m| {
        let mut parts = m.split(';').map(str::trim);
        let base = parts.next().unwrap_or("");
        is_csv(base) && parts.any(|p| p.replace(' ', "").eq_ignore_ascii_case("header=absent"))
    })
}

/// Whether a document (metadata, search...) should be answered as msgpack.
pub fn wants_msgpack(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    for part in accept.split(',') {
        match part.split(';').next().unwrap_or("").trim() {
            MSGPACK => return true,
            JSON | "*/*" => return false,
            _ => {}
        }
    }
    false
}

/// True for either spelling of NetCDF.
pub fn is_netcdf(mt: &str) -> bool {
    mt == NETCDF || mt == NETCDF_ALT
}

/// True for CSV and its aliases.
pub fn is_csv(mt: &str) -> bool {
    CSV_ALIASES.contains(&mt)
}

/// The `Content-Type` header for a media type (text types carry a charset, as Tiled's do).
pub fn content_type(mt: &str) -> String {
    if mt.starts_with("text/") {
        format!("{mt}; charset=utf-8")
    } else {
        mt.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StructureFamily::*;

    #[test]
    fn format_param_beats_accept_and_resolves_aliases() {
        assert_eq!(choose(Array, &[], Some("csv"), Some(PNG)).unwrap(), CSV);
        assert_eq!(choose(Array, &[], Some("tif"), None).unwrap(), TIFF);
        assert_eq!(choose(Table, &[], Some("xlsx"), None).unwrap(), XLSX);
        assert_eq!(choose(Array, &[], Some("nc"), None).unwrap(), NETCDF_ALT);
        assert_eq!(choose(Container, &[], Some(NETCDF), None).unwrap(), NETCDF);
        assert!(choose(Table, &[], Some("nc"), None).is_err());
    }

    #[test]
    fn star_and_missing_accept_give_the_family_default() {
        assert_eq!(choose(Array, &[], None, None).unwrap(), OCTET);
        assert_eq!(choose(Table, &[], None, Some("*/*")).unwrap(), ARROW);
        assert_eq!(choose(Sparse, &[], None, None).unwrap(), ARROW);
        assert_eq!(choose(Container, &[], None, None).unwrap(), HDF5);
        assert_eq!(choose(Array, &[], None, Some("image/*")).unwrap(), PNG);
    }

    #[test]
    fn accept_list_takes_the_first_supported_ignoring_parameters() {
        let got = choose(Table, &[], None, Some("image/png, text/csv;header=absent")).unwrap();
        assert_eq!(got, CSV);
    }

    #[test]
    fn unsupported_lists_what_is_supported() {
        let err = choose(Array, &[], Some("foo"), None).unwrap_err();
        assert_eq!(err.status.as_u16(), 406);
        assert!(err.detail.contains("Supported: application/octet-stream"));
        assert!(err.detail.contains("Requested: foo."));
        assert!(choose(Table, &[], Some("png"), None).is_err());
    }

    #[test]
    fn specs_add_formats() {
        let specs = vec!["xarray_dataset".to_string()];
        assert_eq!(
            choose(Container, &specs, Some("arrow"), None).unwrap(),
            ARROW
        );
        assert!(choose(Container, &[], Some("arrow"), None).is_err());
    }

    #[test]
    fn csv_header_can_be_switched_off() {
        assert!(csv_header_absent(None, Some("text/csv;header=absent")));
        assert!(csv_header_absent(Some("text/csv; header=absent"), None));
        assert!(!csv_header_absent(None, Some("text/csv")));
        assert!(!csv_header_absent(
            Some("csv"),
            Some("text/csv;header=absent")
        ));
    }

    #[test]
    fn msgpack_only_when_asked_first() {
        assert!(wants_msgpack(Some(MSGPACK)));
        assert!(!wants_msgpack(Some(
            "application/json, application/x-msgpack"
        )));
        assert!(!wants_msgpack(None));
    }
}
