//! Query-string parameters as the Tiled client sends them: percent-encoded brackets, `+` for
//! spaces, repeated keys for lists. Kept in order so repeated filter fields pair up.

use crate::error::ApiError;

/// Decoded query parameters, in order.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Parses a raw query string (`None` = no query).
    pub fn parse(query: Option<&str>) -> Self {
        Params(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of `name` (a later repeat overrides, like the client's merged links).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `name` is present at all (even with an empty value).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`), default when absent.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" | "" => Ok(false),
                _ => Err(ApiError::unprocessable(format!(
                    "parameter '{name}' must be true or false, got {v:?}"
                ))),
            },
        }
    }

    /// A non-negative integer parameter, default when absent.
    pub fn usize(&self, name: &str, default: usize) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                ApiError::unprocessable(format!(
                    "parameter '{name}' must be a non-negative integer, got {v:?}"
                ))
            }),
        }
    }

    /// A comma-separated list of non-negative integers (`block=1,3`); empty means none.
    pub fn usize_list(&self, name: &str) -> Result<Option<Vec<usize>>, ApiError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if v.is_empty() {
            return Ok(Some(Vec::new()));
        }
        v.split(',')
            .map(|s| {
                s.parse().map_err(|_| {
                    ApiError::unprocessable(format!(
                        "parameter '{name}' must be comma-separated non-negative integers, got {v:?}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_brackets_plus_and_repeats() {
        let p = Params::parse(Some(
            "page%5Boffset%5D=2&filter%5Bin%5D%5Bcondition%5D%5Bvalue%5D=%5B%22a%22%2C+%22b%22%5D&column=A&column=B&fields=",
        ));
        assert_eq!(p.get("page[offset]"), Some("2"));
        assert_eq!(
            p.get("filter[in][condition][value]"),
            Some("[\"a\", \"b\"]")
        );
        assert_eq!(p.all("column"), ["A", "B"]);
        assert!(p.has("fields"));
        assert_eq!(p.get("fields"), Some(""));
    }

    #[test]
    fn numbers_and_lists_are_validated() {
        let p = Params::parse(Some("block=1,3&n=-1&e=&b=maybe"));
        assert_eq!(p.usize_list("block").unwrap(), Some(vec![1, 3]));
        assert_eq!(p.usize_list("e").unwrap(), Some(vec![]));
        assert!(p.usize("n", 0).is_err());
        assert!(p.bool("b", false).is_err());
        assert_eq!(p.usize("missing", 7).unwrap(), 7);
    }
}
