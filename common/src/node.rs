//! A tree of nodes as a static source describes it (the demo tree, later a scanned directory):
//! what a catalog loads, before it assigns ids and versions.

use serde_json::{Map, Value};

use crate::adapters::DataSource;
use crate::structure::{Spec, Structure, StructureFamily};

/// One node of a tree to be loaded into a catalog.
#[derive(Clone, Debug)]
pub struct TreeNode {
    pub key: String,
    pub family: StructureFamily,
    pub metadata: Map<String, Value>,
    pub specs: Vec<Spec>,
    /// `None` for containers.
    pub structure: Option<Structure>,
    /// Where the data lives; `None` for containers.
    pub source: Option<DataSource>,
    /// Children in insertion order (containers only).
    pub children: Vec<TreeNode>,
    /// Whether a metadata response inlines this container's children (xarray datasets do).
    pub inline_contents: bool,
}

impl TreeNode {
    /// A container with `children`.
    pub fn container(key: &str, metadata: Value, children: Vec<TreeNode>) -> Self {
        TreeNode {
            key: key.to_string(),
            family: StructureFamily::Container,
            metadata: as_map(metadata),
            specs: Vec::new(),
            structure: None,
            source: None,
            children,
            inline_contents: false,
        }
    }

    /// A data node of the structure's family read from `source`.
    pub fn data(key: &str, structure: Structure, source: DataSource) -> Self {
        TreeNode {
            key: key.to_string(),
            family: structure.family(),
            metadata: Map::new(),
            specs: Vec::new(),
            structure: Some(structure),
            source: Some(source),
            children: Vec::new(),
            inline_contents: false,
        }
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = as_map(metadata);
        self
    }

    /// Adds specs by name.
    pub fn with_specs(mut self, names: &[&str]) -> Self {
        self.specs = names.iter().map(|n| Spec::named(n)).collect();
        self
    }
}

fn as_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
