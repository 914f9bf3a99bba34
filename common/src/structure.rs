//! The structure families Tiled serves and the exact JSON shape of each family's `structure`
//! (array, sparse, table, awkward, ragged, container), as the Python client parses them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dtype::DataType;

/// Tiled's structure families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum StructureFamily {
    Array,
    Awkward,
    Bytes,
    Container,
    Ragged,
    Sparse,
    Table,
}

impl StructureFamily {
    /// The wire name, e.g. `"array"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StructureFamily::Array => "array",
            StructureFamily::Awkward => "awkward",
            StructureFamily::Bytes => "bytes",
            StructureFamily::Container => "container",
            StructureFamily::Ragged => "ragged",
            StructureFamily::Sparse => "sparse",
            StructureFamily::Table => "table",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "array" => StructureFamily::Array,
            "awkward" => StructureFamily::Awkward,
            "bytes" => StructureFamily::Bytes,
            "container" => StructureFamily::Container,
            "ragged" => StructureFamily::Ragged,
            "sparse" => StructureFamily::Sparse,
            "table" => StructureFamily::Table,
            _ => return None,
        })
    }
}

/// `structure` of an array node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArrayStructure {
    pub data_type: DataType,
    pub chunks: Vec<Vec<usize>>,
    pub shape: Vec<usize>,
    pub dims: Option<Vec<String>>,
    #[serde(default)]
    pub resizable: bool,
}

/// `structure` of a sparse (COO) node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SparseStructure {
    pub chunks: Vec<Vec<usize>>,
    pub shape: Vec<usize>,
    pub data_type: DataType,
    pub coord_data_type: DataType,
    pub dims: Option<Vec<String>>,
    #[serde(default)]
    pub resizable: bool,
    pub layout: String,
}

/// `structure` of a table node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableStructure {
    /// `data:application/vnd.apache.arrow.file;base64,` + an IPC schema message.
    pub arrow_schema: String,
    pub npartitions: usize,
    pub columns: Vec<String>,
    #[serde(default)]
    pub resizable: bool,
}

/// `structure` of an awkward node: its length and Awkward form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AwkwardStructure {
    pub length: usize,
    pub form: Value,
}

/// `structure` of a ragged node; variable dimensions are `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RaggedStructure {
    pub data_type: DataType,
    pub shape: Vec<Option<usize>>,
    pub size: usize,
    pub chunks: Vec<Option<Vec<usize>>>,
    pub dims: Option<Vec<String>>,
    #[serde(default)]
    pub resizable: bool,
}

/// A spec: a name (and optional version) that tells clients how to interpret a node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spec {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
}

impl Spec {
    /// A spec without a version.
    pub fn named(name: &str) -> Self {
        Spec {
            name: name.to_string(),
            version: None,
        }
    }
}

/// The structure of any non-container node.
#[derive(Clone, Debug, PartialEq)]
pub enum Structure {
    Array(ArrayStructure),
    Sparse(SparseStructure),
    Table(TableStructure),
    Awkward(AwkwardStructure),
    Ragged(RaggedStructure),
}

impl Structure {
    /// The family this structure belongs to.
    pub fn family(&self) -> StructureFamily {
        match self {
            Structure::Array(_) => StructureFamily::Array,
            Structure::Sparse(_) => StructureFamily::Sparse,
            Structure::Table(_) => StructureFamily::Table,
            Structure::Awkward(_) => StructureFamily::Awkward,
            Structure::Ragged(_) => StructureFamily::Ragged,
        }
    }

    /// Parses the stored/wire JSON of a structure of `family` (`None` if it does not fit).
    pub fn from_json(family: StructureFamily, v: Value) -> Option<Self> {
        Some(match family {
            StructureFamily::Array => Structure::Array(serde_json::from_value(v).ok()?),
            StructureFamily::Sparse => Structure::Sparse(serde_json::from_value(v).ok()?),
            StructureFamily::Table => Structure::Table(serde_json::from_value(v).ok()?),
            StructureFamily::Awkward => Structure::Awkward(serde_json::from_value(v).ok()?),
            StructureFamily::Ragged => Structure::Ragged(serde_json::from_value(v).ok()?),
            StructureFamily::Container | StructureFamily::Bytes => return None,
        })
    }

    /// The JSON the client expects under `attributes.structure`.
    pub fn to_json(&self) -> Value {
        let v = match self {
            Structure::Array(s) => serde_json::to_value(s),
            Structure::Sparse(s) => serde_json::to_value(s),
            Structure::Table(s) => serde_json::to_value(s),
            Structure::Awkward(s) => serde_json::to_value(s),
            Structure::Ragged(s) => serde_json::to_value(s),
        };
        // These types only hold strings, numbers, lists and maps: serialising cannot fail.
        v.unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_structure_has_the_client_keys() {
        let s = Structure::Array(ArrayStructure {
            data_type: DataType::f8(),
            chunks: vec![vec![50], vec![50]],
            shape: vec![50, 50],
            dims: None,
            resizable: false,
        });
        let v = s.to_json();
        for key in ["data_type", "chunks", "shape", "dims", "resizable"] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["resizable"], false);
        assert_eq!(s.family().as_str(), "array");
    }

    #[test]
    fn families_round_trip_their_names() {
        for f in [
            StructureFamily::Array,
            StructureFamily::Awkward,
            StructureFamily::Bytes,
            StructureFamily::Container,
            StructureFamily::Ragged,
            StructureFamily::Sparse,
            StructureFamily::Table,
        ] {
            assert_eq!(StructureFamily::parse(f.as_str()), Some(f));
        }
        assert_eq!(StructureFamily::parse("composite"), None);
    }
}
