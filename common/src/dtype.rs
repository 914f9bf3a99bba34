//! Data types as Tiled describes them on the wire (`data_type` in array, sparse and ragged
//! structures): numpy-style built-in types (kind, itemsize, byte order, datetime units) and
//! structured (record) types whose fields are laid out packed, in order.

use serde::{Deserialize, Serialize};

/// Byte order of a built-in type; one-byte types have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endianness {
    Little,
    Big,
    NotApplicable,
}

/// numpy's type kind codes (`numpy.dtype.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "t")]
    Bit,
    #[serde(rename = "b")]
    Bool,
    #[serde(rename = "i")]
    Int,
    #[serde(rename = "u")]
    UInt,
    #[serde(rename = "f")]
    Float,
    #[serde(rename = "c")]
    Complex,
    #[serde(rename = "m")]
    TimeDelta,
    #[serde(rename = "M")]
    DateTime,
    #[serde(rename = "S")]
    Bytes,
    #[serde(rename = "U")]
    Unicode,
    #[serde(rename = "V")]
    Void,
    #[serde(rename = "O")]
    Object,
}

impl Kind {
    /// The one-letter numpy code.
    pub fn code(self) -> char {
        match self {
            Kind::Bit => 't',
            Kind::Bool => 'b',
            Kind::Int => 'i',
            Kind::UInt => 'u',
            Kind::Float => 'f',
            Kind::Complex => 'c',
            Kind::TimeDelta => 'm',
            Kind::DateTime => 'M',
            Kind::Bytes => 'S',
            Kind::Unicode => 'U',
            Kind::Void => 'V',
            Kind::Object => 'O',
        }
    }
}

/// A numpy built-in type such as `<f8`, `|u1`, `<U5` or `<M8[ns]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BuiltinDType {
    pub endianness: Endianness,
    pub kind: Kind,
    pub itemsize: usize,
    #[serde(default)]
    pub dt_units: Option<String>,
}

/// One field of a structured type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub dtype: DataType,
    /// Sub-array shape of the field; `None` for a scalar field.
    #[serde(default)]
    pub shape: Option<Vec<usize>>,
}

impl Field {
    /// A scalar (non-sub-array) field.
    pub fn scalar(name: &str, dtype: DataType) -> Self {
        Field {
            name: name.to_string(),
            dtype,
            shape: None,
        }
    }
}

/// A structured (record) type: fields packed in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StructDType {
    pub itemsize: usize,
    pub fields: Vec<Field>,
}

/// Any array element type. Structured types are recognised by their `fields` key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DataType {
    Structured(StructDType),
    Builtin(BuiltinDType),
}

impl BuiltinDType {
    /// A little-endian (or byte-order-free, for one-byte types) type of `kind` and `itemsize`.
    pub fn new(kind: Kind, itemsize: usize) -> Self {
        let endianness = if itemsize == 1 && kind != Kind::Unicode {
            Endianness::NotApplicable
        } else {
            Endianness::Little
        };
        BuiltinDType {
            endianness,
            kind,
            itemsize,
            dt_units: None,
        }
    }

    /// A datetime64 / timedelta64 type with numpy units such as `"[ns]"`.
    pub fn time(kind: Kind, units: &str) -> Self {
        BuiltinDType {
            dt_units: Some(units.to_string()),
            ..BuiltinDType::new(kind, 8)
        }
    }

    /// The numpy type string, e.g. `<f8`, `|b1`, `<U5`, `<M8[s]`.
    pub fn numpy_str(&self) -> String {
        let order = match self.endianness {
            Endianness::Little => '<',
            Endianness::Big => '>',
            Endianness::NotApplicable => '|',
        };
        let size = if self.kind == Kind::Unicode {
            self.itemsize / 4
        } else {
            self.itemsize
        };
        format!(
            "{order}{}{size}{}",
            self.kind.code(),
            self.dt_units.as_deref().unwrap_or("")
        )
    }

    /// Parses a numpy type string (`<f8`, `|u1`, `>i4`, `<U5`, `|S3`, `<M8[ns]`), the inverse
    /// of [`BuiltinDType::numpy_str`]. `=` means this machine's order.
    pub fn parse_numpy(s: &str) -> Option<Self> {
        let mut chars = s.chars();
        let first = chars.next()?;
        let (endianness, rest) = match first {
            '<' => (Endianness::Little, chars.as_str()),
            '>' => (Endianness::Big, chars.as_str()),
            '|' => (Endianness::NotApplicable, chars.as_str()),
            '=' if cfg!(target_endian = "big") => (Endianness::Big, chars.as_str()),
            '=' => (Endianness::Little, chars.as_str()),
            _ => (Endianness::Little, s),
        };
        let mut rc = rest.chars();
        let kind = match rc.next()? {
            't' => Kind::Bit,
            'b' => Kind::Bool,
            'i' => Kind::Int,
            'u' => Kind::UInt,
            'f' => Kind::Float,
            'c' => Kind::Complex,
            'm' => Kind::TimeDelta,
            'M' => Kind::DateTime,
            'S' => Kind::Bytes,
            'U' => Kind::Unicode,
            'V' => Kind::Void,
            _ => return None,
        };
        let body = rc.as_str();
        let (digits, units) = match body.find('[') {
            Some(i) => (&body[..i], Some(body[i..].to_string())),
            None => (body, None),
        };
        let n: usize = digits.parse().ok()?;
        let itemsize = if kind == Kind::Unicode { n * 4 } else { n };
        if itemsize == 0 {
            return None;
        }
        let endianness = if itemsize == 1 && kind != Kind::Unicode {
            Endianness::NotApplicable
        } else if endianness == Endianness::NotApplicable && kind == Kind::Unicode {
            Endianness::Little
        } else {
            endianness
        };
        Some(BuiltinDType {
            endianness,
            kind,
            itemsize,
            dt_units: units,
        })
    }

    /// True when values are stored in the opposite byte order of this machine.
    pub fn is_byte_swapped(&self) -> bool {
        match self.endianness {
            Endianness::Little => cfg!(target_endian = "big"),
            Endianness::Big => cfg!(target_endian = "little"),
            Endianness::NotApplicable => false,
        }
    }
}

impl DataType {
    /// Bytes per element.
    pub fn itemsize(&self) -> usize {
        match self {
            DataType::Builtin(b) => b.itemsize,
            DataType::Structured(s) => s.itemsize,
        }
    }

    /// The built-in type, if this is not structured.
    pub fn builtin(&self) -> Option<&BuiltinDType> {
        match self {
            DataType::Builtin(b) => Some(b),
            DataType::Structured(_) => None,
        }
    }

    /// Shorthand constructors for the common little-endian types.
    pub fn f8() -> Self {
        DataType::Builtin(BuiltinDType::new(Kind::Float, 8))
    }
    pub fn f4() -> Self {
        DataType::Builtin(BuiltinDType::new(Kind::Float, 4))
    }
    pub fn i8() -> Self {
        DataType::Builtin(BuiltinDType::new(Kind::Int, 8))
    }
    pub fn i4() -> Self {
        DataType::Builtin(BuiltinDType::new(Kind::Int, 4))
    }
    pub fn u1() -> Self {
        DataType::Builtin(BuiltinDType::new(Kind::UInt, 1))
    }
    pub fn b1() -> Self {
        DataType::Builtin(BuiltinDType::new(Kind::Bool, 1))
    }
    pub fn c16() -> Self {
        DataType::Builtin(BuiltinDType::new(Kind::Complex, 16))
    }
    /// Fixed-width unicode of `chars` characters (UCS-4, 4 bytes each).
    pub fn unicode(chars: usize) -> Self {
        DataType::Builtin(BuiltinDType::new(Kind::Unicode, 4 * chars))
    }
    /// datetime64 with units such as `"[ns]"`.
    pub fn datetime(units: &str) -> Self {
        DataType::Builtin(BuiltinDType::time(Kind::DateTime, units))
    }

    /// Checks that the description is self-consistent (sizes match kinds, fields fit).
    pub fn validate(&self) -> Result<(), DTypeError> {
        match self {
            DataType::Builtin(b) => {
                let ok = match b.kind {
                    Kind::Bool | Kind::Bit => b.itemsize == 1,
                    Kind::Int | Kind::UInt => matches!(b.itemsize, 1 | 2 | 4 | 8),
                    Kind::Float => matches!(b.itemsize, 2 | 4 | 8 | 16),
                    Kind::Complex => matches!(b.itemsize, 8 | 16 | 32),
                    Kind::TimeDelta | Kind::DateTime => b.itemsize == 8,
                    Kind::Unicode => b.itemsize % 4 == 0,
                    Kind::Bytes | Kind::Void => true,
                    Kind::Object => false,
                };
                if ok {
                    Ok(())
                } else {
                    Err(DTypeError::Invalid(format!(
                        "kind '{}' cannot have itemsize {}",
                        b.kind.code(),
                        b.itemsize
                    )))
                }
            }
            DataType::Structured(s) => {
                let mut total = 0usize;
                for f in &s.fields {
                    f.dtype.validate()?;
                    let n: usize = f.shape.as_deref().unwrap_or(&[]).iter().product();
                    total += f.dtype.itemsize() * n;
                }
                if total > s.itemsize {
                    return Err(DTypeError::Invalid(format!(
                        "structured type fields need {total} bytes but itemsize is {}",
                        s.itemsize
                    )));
                }
                Ok(())
            }
        }
    }
}

/// A problem with a data type description.
#[derive(Debug, thiserror::Error)]
pub enum DTypeError {
    #[error("invalid data type: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_round_trips_tiled_json() {
        let json = r#"{"endianness":"little","kind":"f","itemsize":8,"dt_units":null}"#;
        let dt: DataType = serde_json::from_str(json).unwrap();
        assert_eq!(dt, DataType::f8());
        assert_eq!(serde_json::to_string(&dt).unwrap(), json);
    }

    #[test]
    fn one_byte_types_have_no_byte_order() {
        assert_eq!(DataType::u1().builtin().unwrap().numpy_str(), "|u1");
        assert_eq!(DataType::b1().builtin().unwrap().numpy_str(), "|b1");
        assert_eq!(DataType::unicode(5).builtin().unwrap().numpy_str(), "<U5");
    }

    #[test]
    fn numpy_strings_parse_back() {
        for s in [
            "<f8", "|u1", ">i4", "<U5", "|S3", "<M8[ns]", "<c16", "|b1", ">m8[s]",
        ] {
            let d = BuiltinDType::parse_numpy(s).unwrap();
            assert_eq!(d.numpy_str(), s);
        }
        assert_eq!(BuiltinDType::parse_numpy("<u1").unwrap().numpy_str(), "|u1");
        assert!(BuiltinDType::parse_numpy("<x4").is_none());
        assert!(BuiltinDType::parse_numpy("<f").is_none());
    }

    #[test]
    fn datetime_units_appear_in_numpy_string() {
        let dt = DataType::datetime("[ns]");
        assert_eq!(dt.builtin().unwrap().numpy_str(), "<M8[ns]");
        let json = serde_json::to_value(&dt).unwrap();
        assert_eq!(json["dt_units"], "[ns]");
        assert_eq!(json["kind"], "M");
    }

    #[test]
    fn big_endian_is_parsed_and_reported_swapped_on_little_machines() {
        let dt: BuiltinDType =
            serde_json::from_str(r#"{"endianness":"big","kind":"i","itemsize":4}"#).unwrap();
        assert_eq!(dt.numpy_str(), ">i4");
        assert_eq!(dt.is_byte_swapped(), cfg!(target_endian = "little"));
    }

    #[test]
    fn structured_types_are_recognised_by_fields() {
        let json = r#"{"itemsize":48,"fields":[
            {"name":"name","dtype":{"endianness":"little","kind":"U","itemsize":40,"dt_units":null},"shape":null},
            {"name":"age","dtype":{"endianness":"little","kind":"i","itemsize":4,"dt_units":null},"shape":null},
            {"name":"weight","dtype":{"endianness":"little","kind":"f","itemsize":4,"dt_units":null},"shape":null}]}"#;
        let dt: DataType = serde_json::from_str(json).unwrap();
        let DataType::Structured(s) = &dt else {
            panic!("expected structured")
        };
        assert_eq!(s.fields.len(), 3);
        assert_eq!(dt.itemsize(), 48);
        dt.validate().unwrap();
    }

    #[test]
    fn complex_and_inconsistent_sizes_validate() {
        DataType::c16().validate().unwrap();
        let bad = DataType::Builtin(BuiltinDType::new(Kind::Int, 3));
        assert!(bad.validate().is_err());
        let overfull = DataType::Structured(StructDType {
            itemsize: 4,
            fields: vec![Field {
                name: "a".into(),
                dtype: DataType::f8(),
                shape: None,
            }],
        });
        assert!(overfull.validate().is_err());
    }
}
