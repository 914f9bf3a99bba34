//! NetCDF variables decoded as `xarray.open_dataset` decodes them by default
//! (`mask_and_scale=True`): values equal to `_FillValue` or `missing_value` become NaN (the
//! type promoted to a float that holds them), `scale_factor` and `add_offset` unpack the
//! stored integers, and `_Unsigned = "true"` reads signed integers as unsigned. The float type
//! follows xarray's rules, so a client comparing with its own `open_dataset` sees the same
//! dtype and the same values. Those attributes then leave the variable's metadata, as they
//! leave xarray's `attrs` for its `encoding`. Times (`units = "<unit> since <date>"` in the
//! standard calendar) become `datetime64[ns]`, and their `units` and `calendar` leave the
//! metadata too; other calendars (which xarray turns into cftime objects) are served as stored.

use std::sync::Arc;

use super::{AdapterError, ArrayReader};
use crate::array::ArrayData;
use crate::dtype::{BuiltinDType, DataType, Endianness, Kind};

/// The attributes decoding consumes, which are not shown among a decoded variable's.
pub const ENCODING_ATTRIBUTES: [&str; 5] = [
    "_FillValue",
    "missing_value",
    "scale_factor",
    "add_offset",
    "_Unsigned",
];

/// An attribute's number with the type it is stored as (the type decides the float type).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    F32(f32),
    F64(f64),
    Int(i64),
}

impl Num {
    fn f64(self) -> f64 {
        match self {
            Num::F32(x) => f64::from(x),
            Num::F64(x) => x,
            Num::Int(x) => x as f64,
        }
    }
}

/// A variable's decoding attributes, as its reader found them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CfAttrs {
    pub fill_value: Vec<Num>,
    pub missing_value: Vec<Num>,
    pub scale_factor: Option<Num>,
    pub add_offset: Option<Num>,
    /// `_Unsigned`: `Some(true)` for "true", `Some(false)` for "false".
    pub unsigned: Option<bool>,
    /// `units` and `calendar`, for times.
    pub units: Option<String>,
    pub calendar: Option<String>,
}

impl CfAttrs {
    /// Whether any attribute decoding consumes is present.
    pub fn any(&self) -> bool {
        !(self.fill_value.is_empty() && self.missing_value.is_empty())
            || self.scale_factor.is_some()
            || self.add_offset.is_some()
            || self.unsigned.is_some()
            || self.time().is_some()
    }

    /// Nanoseconds per unit and the reference instant (ns since 1970) of a time variable.
    fn time(&self) -> Option<(i64, i64)> {
        let standard = match self.calendar.as_deref().map(str::to_ascii_lowercase) {
            None => true,
            Some(c) => matches!(c.as_str(), "standard" | "gregorian" | "proleptic_gregorian"),
        };
        standard.then_some(())?;
        time_units(self.units.as_deref()?)
    }
}

/// How one variable's stored numbers become the served ones.
#[derive(Clone, Debug, PartialEq)]
pub struct CfDecode {
    /// As stored (the reader's type).
    stored: BuiltinDType,
    /// As read: `stored`, or its unsigned (signed) twin under `_Unsigned`.
    read: BuiltinDType,
    /// As served.
    served: BuiltinDType,
    /// Values that become NaN (compared after the conversion to the served type).
    fills: Vec<f64>,
    scale: Option<Num>,
    offset: Option<Num>,
    /// For times: nanoseconds per stored unit and the reference instant in ns.
    time: Option<(i64, i64)>,
}

impl CfDecode {
    /// The decoding of a variable stored as `stored` with `attrs`; `None` when it is served as
    /// stored (no attributes that apply, or a type that is not numeric).
    pub fn new(stored: &DataType, attrs: &CfAttrs) -> Option<CfDecode> {
        let DataType::Builtin(stored) = stored else {
            return None;
        };
        if !matches!(stored.kind, Kind::Int | Kind::UInt | Kind::Float) || !attrs.any() {
            return None;
        }
        let mut read = stored.clone();
        match (stored.kind, attrs.unsigned) {
            (Kind::Int, Some(true)) => read.kind = Kind::UInt,
            (Kind::UInt, Some(false)) => read.kind = Kind::Int,
            _ => {}
        }
        let unsigned_view = read.kind != stored.kind;
        // Fill values, as the type that is read holds them (a signed fill of an `_Unsigned`
        // variable is reinterpreted too); NaN fills mask nothing.
        let fills: Vec<f64> = attrs
            .fill_value
            .iter()
            .chain(&attrs.missing_value)
            .map(|&n| match (n, unsigned_view) {
                (Num::Int(v), true) if read.kind == Kind::UInt => {
                    let bits = read.itemsize as u32 * 8;
                    (v as u64 & (u64::MAX >> (64 - bits))) as f64
                }
                (n, _) => n.f64(),
            })
            .filter(|v| !v.is_nan())
            .map(|v| v + 0.0) // -0.0 as 0.0, which it equals
            .collect();
        // Sorted and distinct: a file may list many, and every value is looked up.
        let mut fills = fills;
        fills.sort_by(f64::total_cmp);
        fills.dedup();
        let packed = attrs.scale_factor.is_some() || attrs.add_offset.is_some();
        let time = attrs.time();
        let float = |size| {
            let mut b = BuiltinDType::new(Kind::Float, size);
            b.endianness = Endianness::Little;
            b
        };
        let served = if time.is_some() {
            BuiltinDType::time(Kind::DateTime, "[ns]")
        } else if packed {
            float(packed_float(&read, attrs.scale_factor, attrs.add_offset))
        } else if !fills.is_empty() {
            match read.kind {
                Kind::Float => float(read.itemsize),
                _ if read.itemsize <= 2 => float(4),
                _ => float(8),
            }
        } else {
            read.clone()
        };
        if served == *stored && fills.is_empty() {
            return None;
        }
        Some(CfDecode {
            stored: stored.clone(),
            read,
            served,
            fills,
            scale: attrs.scale_factor,
            offset: attrs.add_offset,
            time,
        })
    }

    /// Attributes of the variable that decoding consumed, besides [`ENCODING_ATTRIBUTES`].
    pub fn consumed(&self) -> &'static [&'static str] {
        match self.time {
            Some(_) => &["units", "calendar"],
            None => &[],
        }
    }

    /// The type the variable is served as.
    pub fn served(&self) -> DataType {
        DataType::Builtin(self.served.clone())
    }

    /// The type the variable is stored as.
    pub fn stored(&self) -> DataType {
        DataType::Builtin(self.stored.clone())
    }

    /// Decodes a block read as the stored type.
    pub fn apply(&self, data: ArrayData) -> Result<ArrayData, AdapterError> {
        // The stored bytes as the type that is read (an `_Unsigned` view of them, maybe).
        let values = ArrayData::new(
            DataType::Builtin(self.read.clone()),
            data.shape.clone(),
            data.bytes.clone(),
        )
        .to_f64_vec()
        .map_err(|e| AdapterError::Read(format!("decoding a NetCDF variable: {e}")))?
        .into_iter();
        let bytes: Vec<u8> = match (self.served.kind, self.served.itemsize) {
            (Kind::DateTime, _) => {
                let (per, epoch) = self.time.unwrap_or((1, 0));
                values
                    .map(|v| match self.is_fill(v) {
                        true => i64::MIN,
                        false => instant(self.unpack64(v), per, epoch),
                    })
                    .flat_map(i64::to_le_bytes)
                    .collect()
            }
            (Kind::Float, 4) => values
                .map(|v| {
                    let x = v as f32;
                    match self.is_fill(f64::from(x)) {
                        true => f32::NAN,
                        false => self.unpack32(x),
                    }
                })
                .flat_map(f32::to_le_bytes)
                .collect(),
            (Kind::Float, 8) => values
                .map(|v| match self.is_fill(v) {
                    true => f64::NAN,
                    false => self.unpack64(v),
                })
                .flat_map(f64::to_le_bytes)
                .collect(),
            // Served as read (an `_Unsigned` view only): the bytes are unchanged.
            _ => data.bytes.to_vec(),
        };
        Ok(ArrayData::new(self.served(), data.shape, bytes))
    }

    /// Whether `v` is one of the fill values (which are sorted, without NaN or -0.0).
    fn is_fill(&self, v: f64) -> bool {
        !self.fills.is_empty()
            && self
                .fills
                .binary_search_by(|f| f.total_cmp(&(v + 0.0)))
                .is_ok()
    }

    /// `x * scale + offset` in single precision, each step computed in the wider of the
    /// value's and the attribute's type and rounded back, as numpy's in-place arithmetic does.
    fn unpack32(&self, mut x: f32) -> f32 {
        for (n, add) in [(self.scale, false), (self.offset, true)] {
            x = match (n, add) {
                (None, _) => x,
                (Some(Num::F32(s)), false) => x * s,
                (Some(Num::F32(s)), true) => x + s,
                (Some(s), false) => (f64::from(x) * s.f64()) as f32,
                (Some(s), true) => (f64::from(x) + s.f64()) as f32,
            };
        }
        x
    }

    fn unpack64(&self, mut x: f64) -> f64 {
        if let Some(s) = self.scale {
            x *= s.f64();
        }
        if let Some(o) = self.offset {
            x += o.f64();
        }
        x
    }
}

/// The instant (ns since 1970, `i64::MIN` for NaT) `v` units of `per` ns after `epoch`.
fn instant(v: f64, per: i64, epoch: i64) -> i64 {
    if !v.is_finite() {
        return i64::MIN;
    }
    let ns = (v * per as f64).round();
    // Outside datetime64[ns]'s range: NaT (xarray would give cftime objects there).
    if ns.abs() >= 9.2e18 {
        return i64::MIN;
    }
    match (v.fract() == 0.0 && v.abs() < 9.0e15).then(|| (v as i64).checked_mul(per)) {
        Some(Some(exact)) => exact.checked_add(epoch).unwrap_or(i64::MIN),
        Some(None) => i64::MIN,
        None => (ns as i64).checked_add(epoch).unwrap_or(i64::MIN),
    }
}

/// `"<unit> since <date>"`: nanoseconds per unit and the date in ns since 1970 (UTC).
fn time_units(units: &str) -> Option<(i64, i64)> {
    let (unit, date) = units.split_once(" since ")?;
    let per: i64 = match unit.trim().to_ascii_lowercase().as_str() {
        "days" | "day" | "d" => 86_400_000_000_000,
        "hours" | "hour" | "hr" | "h" => 3_600_000_000_000,
        "minutes" | "minute" | "min" => 60_000_000_000,
        "seconds" | "second" | "sec" | "s" => 1_000_000_000,
        "milliseconds" | "millisecond" | "msec" | "ms" => 1_000_000,
        "microseconds" | "microsecond" | "usec" | "us" => 1_000,
        "nanoseconds" | "nanosecond" | "nsec" | "ns" => 1,
        _ => return None,
    };
    Some((per, reference_date(date.trim())?))
}

/// A CF reference date (`1996-1-1`, `1970-01-01 00:00:00`, `2000-01-01T12:00:00.5Z`,
/// `1990-1-1 0:0:0 -6:00`) in ns since 1970, UTC; the first number is the year, as xarray
/// reads an ambiguous date.
fn reference_date(s: &str) -> Option<i64> {
    use chrono::{NaiveDate, NaiveTime};
    let (date, rest) = s.split_at(s.find(['T', ' ']).unwrap_or(s.len()));
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i32>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let day = NaiveDate::from_ymd_opt(y, u32::try_from(m).ok()?, u32::try_from(d).ok()?)?;
    let rest = rest.trim_start_matches(['T', ' ']).trim();
    // The time, then an optional zone: Z, UTC, or an offset.
    let split = rest.find(['Z', 'U', '+', '-', ' ']).unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(split);
    let time = match clock {
        "" => NaiveTime::MIN,
        c => {
            let mut hms = c.splitn(3, ':');
            let h: u32 = hms.next()?.parse().ok()?;
            let m: u32 = hms.next().map_or(Some(0), |x| x.parse().ok())?;
            let sec: f64 = hms.next().map_or(Some(0.0), |x| x.parse().ok())?;
            let nanos = (sec.fract() * 1e9).round() as u32;
            NaiveTime::from_hms_nano_opt(h, m, sec.trunc() as u32, nanos)?
        }
    };
    let offset_minutes: i64 = match zone.trim() {
        "" | "Z" | "UTC" | "GMT" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let z = z.trim_start_matches(['+', '-']);
            let (h, m) = match z.split_once(':') {
                Some((h, m)) => (h.parse::<i64>().ok()?, m.parse::<i64>().ok()?),
                None if z.len() > 2 => {
                    let (h, m) = z.split_at_checked(z.len() - 2)?;
                    (h.parse().ok()?, m.parse().ok()?)
                }
                None => (z.parse().ok()?, 0),
            };
            sign * h.checked_mul(60)?.checked_add(m)?
        }
    };
    let utc = day.and_time(time).and_utc().timestamp_nanos_opt()?;
    utc.checked_sub(offset_minutes.checked_mul(60_000_000_000)?)
}

/// xarray's float type for packed data: from the attributes' types when they agree (float64
/// for 32-bit integers), float64 with any other offset, else the scale's type.
fn packed_float(read: &BuiltinDType, scale: Option<Num>, offset: Option<Num>) -> usize {
    let size = |n: Num| match n {
        Num::F32(_) => 4,
        _ => 8,
    };
    match (scale, offset) {
        (Some(s), Some(o))
            if std::mem::discriminant(&s) == std::mem::discriminant(&o)
                && !matches!(s, Num::Int(_)) =>
        {
            match read.kind != Kind::Float && read.itemsize == 4 {
                true => 8,
                false => size(s),
            }
        }
        (_, Some(_)) => 8,
        (Some(s), None) => size(s),
        (None, None) => read.itemsize,
    }
}

/// A reader of stored blocks whose blocks are served decoded.
pub struct Decoded {
    pub inner: Arc<dyn ArrayReader>,
    pub decode: CfDecode,
}

impl ArrayReader for Decoded {
    fn read_block(&self, block: &[usize]) -> Result<ArrayData, AdapterError> {
        self.decode.apply(self.inner.read_block(block)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(size: usize) -> DataType {
        DataType::Builtin(BuiltinDType::new(Kind::Int, size))
    }

    #[test]
    fn the_float_type_follows_xarrays_rules() {
        let served = |stored: DataType, attrs: CfAttrs| {
            CfDecode::new(&stored, &attrs).map(|d| d.served.numpy_str())
        };
        let fill = |v| CfAttrs {
            fill_value: vec![Num::Int(v)],
            ..Default::default()
        };
        assert_eq!(served(int(2), fill(-1)).as_deref(), Some("<f4"));
        assert_eq!(served(int(4), fill(-1)).as_deref(), Some("<f8"));
        let packed = |s, o| CfAttrs {
            scale_factor: s,
            add_offset: o,
            ..Default::default()
        };
        let (f4, f8) = (Some(Num::F32(0.5)), Some(Num::F64(0.5)));
        assert_eq!(served(int(2), packed(f4, f4)).as_deref(), Some("<f4"));
        assert_eq!(served(int(4), packed(f4, f4)).as_deref(), Some("<f8"));
        assert_eq!(served(int(2), packed(f4, f8)).as_deref(), Some("<f8"));
        assert_eq!(served(int(2), packed(f4, None)).as_deref(), Some("<f4"));
        assert_eq!(served(int(2), packed(None, f4)).as_deref(), Some("<f8"));
        assert_eq!(served(int(2), CfAttrs::default()), None);
        // An `_Unsigned` byte without fill is only reinterpreted.
        let unsigned = CfAttrs {
            unsigned: Some(true),
            ..Default::default()
        };
        assert_eq!(served(int(1), unsigned).as_deref(), Some("|u1"));
    }

    #[test]
    fn times_since_a_reference_date_are_instants() {
        assert_eq!(
            time_units("hours since 1996-1-1"),
            Some((3_600_000_000_000, 820_454_400_000_000_000))
        );
        assert_eq!(
            time_units("seconds since 1970-01-01T00:00:01.5Z"),
            Some((1_000_000_000, 1_500_000_000))
        );
        assert_eq!(
            time_units("days since 1970-01-02 00:00:00 -1:00").map(|t| t.1),
            Some(90_000_000_000_000)
        );
        assert_eq!(time_units("furlongs since 1970-01-01"), None);
        // What a file may hold instead of a date: no panic, no overflow, just no time.
        for units in [
            "days since 1970-01-01 00:00:00 +0\u{e9}5",
            "days since 1970-01-01 00:00:00 +\u{e9}\u{e9}",
            "days since 99999999999-1-1",
            "days since 1970-01-01 +99999999999999999:00",
            "days since 1970-01-01 -9223372036854775807",
            "seconds since 1970-01-01T25:61:99",
            "seconds since 1970-01-01 00:00:1e400",
            "seconds since 1970-01-01 00:00:-5",
            "days since -1-1-1",
            "days since 1970-01-01 \u{1F600}",
            "hours since 9999-12-31 23:59:59",
        ] {
            let t = time_units(units);
            assert!(
                t.is_none() || units.starts_with("hours since 9999"),
                "{units}: {t:?}"
            );
        }
        assert_eq!(time_units("days since yesterday"), None);
        let d = CfDecode::new(
            &int(2),
            &CfAttrs {
                units: Some("hours since 1996-1-1".into()),
                fill_value: vec![Num::Int(-1)],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(d.served.numpy_str(), "<M8[ns]");
        assert_eq!(d.consumed(), ["units", "calendar"]);
        let stored: Vec<u8> = [12i16, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        let out = d.apply(ArrayData::new(int(2), vec![2], stored)).unwrap();
        let v: Vec<i64> = out
            .bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            v,
            [820_454_400_000_000_000 + 12 * 3_600_000_000_000, i64::MIN]
        );
        // Other calendars are served as stored.
        let noleap = CfAttrs {
            units: Some("days since 2000-01-01".into()),
            calendar: Some("noleap".into()),
            ..Default::default()
        };
        assert_eq!(CfDecode::new(&int(4), &noleap), None);
    }

    #[test]
    fn fills_become_nan_and_packed_values_unpack() {
        let d = CfDecode::new(
            &int(2),
            &CfAttrs {
                fill_value: vec![Num::Int(-999)],
                scale_factor: Some(Num::F32(0.25)),
                add_offset: Some(Num::F32(10.0)),
                ..Default::default()
            },
        )
        .unwrap();
        let stored: Vec<u8> = [4i16, -999, -8]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let out = d.apply(ArrayData::new(int(2), vec![3], stored)).unwrap();
        assert_eq!(
            out.dtype.builtin().map(|b| b.numpy_str()).as_deref(),
            Some("<f4")
        );
        let v = out.to_f64_vec().unwrap();
        assert_eq!(v[0], 11.0);
        assert!(v[1].is_nan());
        assert_eq!(v[2], 8.0);
        // `_Unsigned` with a signed fill: 255 (-1 as stored) is the fill.
        let d = CfDecode::new(
            &int(1),
            &CfAttrs {
                fill_value: vec![Num::Int(-1)],
                unsigned: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
        let out = d
            .apply(ArrayData::new(int(1), vec![2], vec![0xFF, 0xFE]))
            .unwrap();
        let v = out.to_f64_vec().unwrap();
        assert!(v[0].is_nan());
        assert_eq!(v[1], 254.0);
        // Many fills, repeated, and -0.0 (which equals 0.0): each value looks them up.
        let f4 = DataType::Builtin(BuiltinDType::new(Kind::Float, 4));
        let mut missing: Vec<Num> = (0..10_000).map(|i| Num::F32(1000.0 + i as f32)).collect();
        missing.extend([Num::F32(-0.0), Num::F32(5.0), Num::F32(5.0)]);
        let d = CfDecode::new(
            &f4,
            &CfAttrs {
                missing_value: missing,
                ..Default::default()
            },
        )
        .unwrap();
        let stored: Vec<u8> = [0.0f32, -0.0, 5.0, 1.0, 10_999.0, 11_000.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let v = d
            .apply(ArrayData::new(f4, vec![6], stored))
            .unwrap()
            .to_f64_vec()
            .unwrap();
        let masked: Vec<bool> = v.iter().map(|x| x.is_nan()).collect();
        assert_eq!(masked, [true, true, true, false, true, false]);
    }
}
