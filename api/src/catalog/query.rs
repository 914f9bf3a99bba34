//! Search filters (Tiled's registered query types), parsed from `filter[<name>][condition][<field>]`
//! parameters, and their evaluation against a node's metadata for catalogs that hold nodes
//! in memory. SQL catalogs compile the same [`Filter`] values to SQL.

use regex::Regex;
use serde_json::{Map, Value};
use tessera_common::structure::StructureFamily;

use crate::error::ApiError;

/// Ordered comparison operators of `Comparison`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Gt,
    Le,
    Ge,
}

/// One search condition; all conditions of a search combine with AND.
#[derive(Clone, Debug)]
pub enum Filter {
    FullText {
        text: String,
    },
    Lookup {
        key: String,
    },
    KeysFilter {
        keys: Vec<String>,
    },
    Regex {
        key: String,
        pattern: Regex,
    },
    Eq {
        key: String,
        value: Value,
    },
    NotEq {
        key: String,
        value: Value,
    },
    Comparison {
        op: CmpOp,
        key: String,
        value: Value,
    },
    Contains {
        key: String,
        value: Value,
    },
    In {
        key: String,
        values: Vec<Value>,
    },
    NotIn {
        key: String,
        values: Vec<Value>,
    },
    KeyPresent {
        key: String,
        exists: bool,
    },
    Like {
        key: String,
        /// The pattern as a regex, for in-memory matching and SQLite.
        pattern: Regex,
        /// The SQL LIKE pattern as given, for SQL engines with their own LIKE.
        like: String,
    },
    Specs {
        include: Vec<String>,
        exclude: Vec<String>,
    },
    StructureFamily {
        family: StructureFamily,
    },
    AccessTags {
        tags: Vec<String>,
    },
    /// Deep searches under an access policy: every container strictly between the search's
    /// root and the match carries one of `tags` (the match's own tags are an `AccessTags`).
    /// Never parsed from a request.
    AccessPath {
        tags: Vec<String>,
    },
}

/// The query names the root document advertises, in Tiled's order.
pub const QUERY_NAMES: [&str; 15] = [
    "fulltext",
    "lookup",
    "keys_filter",
    "regex",
    "eq",
    "noteq",
    "comparison",
    "contains",
    "in",
    "notin",
    "keypresent",
    "like",
    "specs",
    "access_tags_filter",
    "structure_family",
];

/// Parses every `filter[...]` parameter. Repeated fields of one query type pair up by position.
pub fn parse_filters(params: &[(String, String)]) -> Result<Vec<Filter>, ApiError> {
    // name -> field -> values in order
    // query name -> (field -> values in order), both in first-seen order
    type Fields = Vec<(String, Vec<String>)>;
    let mut by_name: Vec<(String, Fields)> = Vec::new();
    for (k, v) in params {
        let Some(rest) = k.strip_prefix("filter[") else {
            continue;
        };
        let parsed = rest
            .split_once("][condition][")
            .and_then(|(name, field)| Some((name, field.strip_suffix(']')?)));
        let Some((name, field)) = parsed else {
            return Err(ApiError::bad_request(format!(
                "malformed filter parameter '{k}'; expected filter[<query>][condition][<field>]"
            )));
        };
        if !QUERY_NAMES.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "unknown query type '{name}'; supported: {}",
                QUERY_NAMES.join(", ")
            )));
        }
        let entry = match by_name.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e,
            None => {
                by_name.push((name.to_string(), Vec::new()));
                let last = by_name.len() - 1;
                &mut by_name[last]
            }
        };
        match entry.1.iter_mut().find(|(f, _)| f == field) {
            Some((_, values)) => values.push(v.clone()),
            None => entry.1.push((field.to_string(), vec![v.clone()])),
        }
    }
    let mut filters = Vec::new();
    for (name, fields) in by_name {
        let n = fields.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        for i in 0..n {
            let get = |field: &str| -> Result<String, ApiError> {
                fields
                    .iter()
                    .find(|(f, _)| f == field)
                    .and_then(|(_, v)| v.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "query '{name}' is missing its '{field}' field"
                        ))
                    })
            };
            filters.push(build(&name, &get)?);
        }
    }
    Ok(filters)
}

fn json_field(name: &str, field: &str, raw: &str) -> Result<Value, ApiError> {
    serde_json::from_str(raw).map_err(|_| {
        ApiError::bad_request(format!(
            "query '{name}' field '{field}' must be JSON-encoded (strings in double quotes), got {raw:?}"
        ))
    })
}

fn json_list(name: &str, field: &str, raw: &str) -> Result<Vec<Value>, ApiError> {
    match json_field(name, field, raw)? {
        Value::Array(v) => Ok(v),
        _ => Err(ApiError::bad_request(format!(
            "query '{name}' field '{field}' must be a JSON list, got {raw:?}"
        ))),
    }
}

fn string_list(name: &str, field: &str, raw: &str) -> Result<Vec<String>, ApiError> {
    json_list(name, field, raw)?
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            other => Err(ApiError::bad_request(format!(
                "query '{name}' field '{field}' must list strings, found {other}"
            ))),
        })
        .collect()
}

fn parse_bool(name: &str, field: &str, raw: &str) -> Result<bool, ApiError> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "query '{name}' field '{field}' must be true or false, got {raw:?}"
        ))),
    }
}

/// Translates an SQL LIKE pattern (`%`, `_`, `\` escapes) into an anchored regex.
fn like_to_regex(pattern: &str) -> Result<Regex, ApiError> {
    let mut re = String::from("^(?s:");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            '\\' => {
                if let Some(n) = chars.next() {
                    re.push_str(&regex::escape(&n.to_string()));
                }
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push_str(")$");
    Regex::new(&re).map_err(|e| ApiError::bad_request(format!("bad LIKE pattern: {e}")))
}

fn build(name: &str, get: &dyn Fn(&str) -> Result<String, ApiError>) -> Result<Filter, ApiError> {
    Ok(match name {
        "fulltext" => Filter::FullText { text: get("text")? },
        "lookup" => Filter::Lookup { key: get("key")? },
        "keys_filter" => Filter::KeysFilter {
            keys: string_list(name, "keys", &get("keys")?)?,
        },
        "regex" => {
            let case_sensitive = match get("case_sensitive") {
                Ok(raw) => parse_bool(name, "case_sensitive", &raw)?,
                Err(_) => true,
            };
            let raw = get("pattern")?;
            // The flag goes into the pattern text, so SQL catalogs that compile the pattern
            // themselves see it too.
            let source = if case_sensitive {
                raw
            } else {
                format!("(?i){raw}")
            };
            let pattern = regex::RegexBuilder::new(&source)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    ApiError::bad_request(format!("query 'regex' has an invalid pattern: {e}"))
                })?;
            Filter::Regex {
                key: get("key")?,
                pattern,
            }
        }
        "eq" => Filter::Eq {
            key: get("key")?,
            value: json_field(name, "value", &get("value")?)?,
        },
        "noteq" => Filter::NotEq {
            key: get("key")?,
            value: json_field(name, "value", &get("value")?)?,
        },
        "comparison" => {
            let op = match get("operator")?.as_str() {
                "lt" => CmpOp::Lt,
                "gt" => CmpOp::Gt,
                "le" => CmpOp::Le,
                "ge" => CmpOp::Ge,
                other => {
                    return Err(ApiError::unprocessable(format!(
                        "comparison operator must be one of lt, gt, le, ge; got {other:?}"
                    )));
                }
            };
            Filter::Comparison {
                op,
                key: get("key")?,
                value: json_field(name, "value", &get("value")?)?,
            }
        }
        "contains" => Filter::Contains {
            key: get("key")?,
            value: json_field(name, "value", &get("value")?)?,
        },
        "in" => Filter::In {
            key: get("key")?,
            values: json_list(name, "value", &get("value")?)?,
        },
        "notin" => Filter::NotIn {
            key: get("key")?,
            values: json_list(name, "value", &get("value")?)?,
        },
        "keypresent" => Filter::KeyPresent {
            key: get("key")?,
            exists: match get("exists") {
                Ok(raw) => parse_bool(name, "exists", &raw)?,
                Err(_) => true,
            },
        },
        "like" => {
            let raw = get("pattern")?;
            let pattern = match json_field(name, "pattern", &raw)? {
                Value::String(s) => s,
                _ => {
                    return Err(ApiError::bad_request(
                        "query 'like' field 'pattern' must be a JSON string",
                    ));
                }
            };
            Filter::Like {
                key: get("key")?,
                pattern: like_to_regex(&pattern)?,
                like: pattern,
            }
        }
        "specs" => Filter::Specs {
            include: string_list(name, "include", &get("include")?)?,
            exclude: match get("exclude") {
                Ok(raw) => string_list(name, "exclude", &raw)?,
                Err(_) => Vec::new(),
            },
        },
        "structure_family" => {
            let raw = get("value")?;
            let family = StructureFamily::parse(raw.trim_matches('"')).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "unknown structure family {raw:?}; one of array, awkward, container, ragged, sparse, table"
                ))
            })?;
            Filter::StructureFamily { family }
        }
        "access_tags_filter" => Filter::AccessTags {
            tags: string_list(name, "tags", &get("tags")?)?,
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown query type '{other}'"
            )));
        }
    })
}

/// The value at a dotted path (`sample.name`) inside metadata.
pub fn lookup<'a>(metadata: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let first = metadata.get(parts.next()?)?;
    parts.try_fold(first, |v, p| v.as_object()?.get(p))
}

/// Orders two JSON values of the same kind (numbers or strings); `None` across kinds.
pub fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn words_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.extend(
            s.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase),
        ),
        Value::Array(a) => a.iter().for_each(|x| words_of(x, out)),
        Value::Object(m) => m.values().for_each(|x| words_of(x, out)),
        _ => {}
    }
}

/// What an in-memory catalog knows about a candidate node when filtering.
pub struct Candidate<'a> {
    pub key: &'a str,
    pub metadata: &'a Map<String, Value>,
    pub family: StructureFamily,
    pub specs: &'a [String],
    pub access_tags: &'a [String],
}

impl Filter {
    /// Whether `c` satisfies this condition.
    pub fn matches(&self, c: &Candidate<'_>) -> bool {
        let md = c.metadata;
        match self {
            Filter::FullText { text } => {
                let mut words = Vec::new();
                words_of(&Value::Object(md.clone()), &mut words);
                let mut wanted = Vec::new();
                words_of(&Value::String(text.clone()), &mut wanted);
                wanted.iter().any(|w| words.contains(w))
            }
            Filter::Lookup { key } => c.key == key,
            Filter::KeysFilter { keys } => keys.iter().any(|k| k == c.key),
            Filter::Regex { key, pattern } => lookup(md, key)
                .and_then(Value::as_str)
                .is_some_and(|s| pattern.is_match(s)),
            Filter::Like { key, pattern, .. } => lookup(md, key)
                .and_then(Value::as_str)
                .is_some_and(|s| pattern.is_match(s)),
            Filter::Eq { key, value } => lookup(md, key).is_some_and(|v| json_eq(v, value)),
            Filter::NotEq { key, value } => lookup(md, key).is_some_and(|v| !json_eq(v, value)),
            Filter::Comparison { op, key, value } => lookup(md, key)
                .and_then(|v| compare(v, value))
                .is_some_and(|o| match op {
                    CmpOp::Lt => o.is_lt(),
                    CmpOp::Gt => o.is_gt(),
                    CmpOp::Le => o.is_le(),
                    CmpOp::Ge => o.is_ge(),
                }),
            Filter::Contains { key, value } => lookup(md, key)
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| json_eq(x, value))),
            Filter::In { key, values } => {
                lookup(md, key).is_some_and(|v| values.iter().any(|x| json_eq(x, v)))
            }
            Filter::NotIn { key, values } => {
                values.is_empty()
                    || lookup(md, key).is_some_and(|v| !values.iter().any(|x| json_eq(x, v)))
            }
            Filter::KeyPresent { key, exists } => lookup(md, key).is_some() == *exists,
            Filter::Specs { include, exclude } => {
                include.iter().all(|s| c.specs.contains(s))
                    && !exclude.iter().any(|s| c.specs.contains(s))
            }
            Filter::StructureFamily { family } => c.family == *family,
            Filter::AccessTags { tags } => tags.iter().any(|t| c.access_tags.contains(t)),
            // In-memory trees have no access policy (it needs a catalog database); the
            // database catalogs compile this.
            Filter::AccessPath { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cand<'a>(md: &'a Map<String, Value>, specs: &'a [String]) -> Candidate<'a> {
        Candidate {
            key: "k",
            metadata: md,
            family: StructureFamily::Array,
            specs,
            access_tags: &[],
        }
    }

    #[test]
    fn repeated_fields_pair_by_position() {
        let f = parse_filters(&params(&[
            ("filter[eq][condition][key]", "animal"),
            ("filter[eq][condition][key]", "color"),
            ("filter[eq][condition][value]", "\"dog\""),
            ("filter[eq][condition][value]", "\"green\""),
        ]))
        .unwrap();
        assert_eq!(f.len(), 2);
        let md = json!({"animal": "dog", "color": "green"});
        let md = md.as_object().unwrap();
        assert!(f.iter().all(|q| q.matches(&cand(md, &[]))));
        let other = json!({"animal": "dog", "color": "red"});
        assert!(!f[1].matches(&cand(other.as_object().unwrap(), &[])));
    }

    #[test]
    fn unquoted_json_value_is_a_400_not_a_500() {
        let err = parse_filters(&params(&[
            ("filter[eq][condition][key]", "color"),
            ("filter[eq][condition][value]", "red"),
        ]))
        .unwrap_err();
        assert_eq!(err.status.as_u16(), 400);
        assert!(err.detail.contains("JSON"));
    }

    #[test]
    fn unknown_query_and_missing_field_are_rejected() {
        assert!(parse_filters(&params(&[("filter[bogus][condition][key]", "x")])).is_err());
        assert!(parse_filters(&params(&[("filter[eq][condition][key]", "x")])).is_err());
    }

    #[test]
    fn comparison_like_keypresent_and_fulltext() {
        let md = json!({"precision": 5, "color": "green", "sample": {"name": "Si wafer"}});
        let md = md.as_object().unwrap();
        let c = cand(md, &[]);
        let f = parse_filters(&params(&[
            ("filter[comparison][condition][operator]", "gt"),
            ("filter[comparison][condition][key]", "precision"),
            ("filter[comparison][condition][value]", "3"),
            ("filter[like][condition][key]", "color"),
            ("filter[like][condition][pattern]", "\"gr%\""),
            ("filter[keypresent][condition][key]", "sample.name"),
            ("filter[keypresent][condition][exists]", "true"),
            ("filter[fulltext][condition][text]", "WAFER"),
        ]))
        .unwrap();
        assert_eq!(f.len(), 4);
        for q in &f {
            assert!(q.matches(&c), "{q:?}");
        }
        let absent = parse_filters(&params(&[
            ("filter[keypresent][condition][key]", "nope"),
            ("filter[keypresent][condition][exists]", "false"),
        ]))
        .unwrap();
        assert!(absent[0].matches(&c));
    }

    #[test]
    fn specs_include_and_exclude() {
        let md = Map::new();
        let specs = vec!["xarray_dataset".to_string()];
        let f = parse_filters(&params(&[
            ("filter[specs][condition][include]", "[\"xarray_dataset\"]"),
            ("filter[specs][condition][exclude]", "[]"),
        ]))
        .unwrap();
        assert!(f[0].matches(&cand(&md, &specs)));
        assert!(!f[0].matches(&cand(&md, &[])));
    }

    #[test]
    fn notin_with_empty_list_keeps_everything() {
        let md = Map::new();
        let f = parse_filters(&params(&[
            ("filter[notin][condition][key]", "color"),
            ("filter[notin][condition][value]", "[]"),
        ]))
        .unwrap();
        assert!(f[0].matches(&cand(&md, &[])));
    }
}
