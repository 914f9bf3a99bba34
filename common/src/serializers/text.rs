//! Text renderings of single values shared by the JSON, CSV and HTML encoders: floats the way
//! orjson, Python and numpy print them, numpy datetime64/timedelta64 values, Python `bytes`
//! reprs, CSV quoting and HTML escaping. Writers append to a `Vec<u8>` so that the encoders
//! of large arrays never allocate per element.

use std::io::Write;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

/// numpy's "not a time" marker.
pub const NAT: i64 = i64::MIN;

/// Writes `s` with a `+` after the exponent marker when the exponent is positive: ryu prints
/// `1e16`, orjson (which Tiled uses) `1e+16`.
fn push_with_exponent_sign(out: &mut Vec<u8>, s: &str) {
    match s.find('e') {
        Some(p) if s.as_bytes().get(p + 1) != Some(&b'-') => {
            out.extend_from_slice(&s.as_bytes()[..=p]);
            out.push(b'+');
            out.extend_from_slice(&s.as_bytes()[p + 1..]);
        }
        _ => out.extend_from_slice(s.as_bytes()),
    }
}

/// A float64 as orjson writes it: shortest round-trip digits, `null` for NaN and infinities.
pub fn write_json_f64(out: &mut Vec<u8>, v: f64, buf: &mut ryu::Buffer) {
    if v.is_finite() {
        push_with_exponent_sign(out, buf.format_finite(v));
    } else {
        out.extend_from_slice(b"null");
    }
}

/// A float32 as orjson writes numpy float32 arrays: the shortest digits of the f32 itself.
pub fn write_json_f32(out: &mut Vec<u8>, v: f32, buf: &mut ryu::Buffer) {
    if v.is_finite() {
        push_with_exponent_sign(out, buf.format_finite(v));
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Shortest round-trip digits of a finite, nonzero float as ryu prints it, split into the
/// significant digits (no leading or trailing zeros) and the decimal exponent of the first.
fn split_shortest(s: &str) -> ([u8; 24], usize, i32) {
    let (mantissa, exp) = match s.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = [0u8; 24];
    let mut n = 0;
    let mut first_exp = None;
    for (pos, c) in int.bytes().chain(frac.bytes()).enumerate() {
        if first_exp.is_none() {
            if c == b'0' {
                continue;
            }
            // Position of the first significant digit relative to the decimal point.
            first_exp = Some(int.len() as i32 - 1 - pos as i32);
        }
        if n < digits.len() {
            digits[n] = c;
            n += 1;
        }
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    (digits, n, first_exp.unwrap_or(0) + exp)
}

/// Python-style text of a float from its ryu digits: positional when `positional(exponent)`
/// says so, else `d.ddde+XX` with at least two exponent digits.
fn write_python_style(
    out: &mut Vec<u8>,
    neg: bool,
    shortest: &str,
    positional: impl FnOnce(i32) -> bool,
) {
    let (digits, n, exp) = split_shortest(shortest);
    let digits = &digits[..n];
    if neg {
        out.push(b'-');
    }
    if positional(exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if n <= int_len {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', int_len - n));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..int_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[int_len..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits);
        }
    } else {
        out.push(digits[0]);
        if n > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let _ = write!(out, "{:02}", exp.unsigned_abs());
    }
}

fn write_special(out: &mut Vec<u8>, v: f64) -> bool {
    if v.is_nan() {
        out.extend_from_slice(b"nan");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
    } else if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
    } else {
        return false;
    }
    true
}

/// A float64 as Python's `repr` (and numpy's `str`) prints it: `0.1`, `1e-05`, `1e+16`, `nan`.
pub fn write_py_f64(out: &mut Vec<u8>, v: f64, buf: &mut ryu::Buffer) {
    if v.is_finite() && v.abs() >= 1e-4 {
        // ryu and Python agree on positional notation from 1e-4 up to (not including) 1e16,
        // the common case; only the exponent forms differ.
        let s = buf.format_finite(v);
        if !s.contains('e') {
            out.extend_from_slice(s.as_bytes());
            return;
        }
    }
    if !write_special(out, v) {
        // Python's repr decides on the exponent of the shortest digits.
        write_python_style(out, v < 0.0, buf.format_finite(v.abs()), |e| {
            (-4..16).contains(&e)
        });
    }
}

/// A float32 as numpy's `str` prints it: its own shortest digits, and scientific notation
/// from 1e6 up (numpy's cutoff for float32), e.g. `0.1`, `999999.0`, `1e+06`.
pub fn write_np_f32(out: &mut Vec<u8>, v: f32, buf: &mut ryu::Buffer) {
    if !write_special(out, f64::from(v)) {
        // numpy decides on the value itself (in double precision), so float32's 0.0001,
        // really 9.99999974e-05, prints as `1e-04`.
        let a = f64::from(v.abs());
        write_python_style(out, v < 0.0, buf.format_finite(v.abs()), |_| {
            (1e-4..1e6).contains(&a)
        });
    }
}

/// Parsed numpy time units: the base unit and its multiplier (`[10ms]` → (`"ms"`, 10)).
fn parse_units(units: &str) -> Option<(&str, i64)> {
    let inner = units.trim_start_matches('[').trim_end_matches(']');
    let split = inner
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(inner.len());
    let mult: i64 = if split == 0 {
        1
    } else {
        inner[..split].parse().ok()?
    };
    Some((&inner[split..], mult))
}

/// The moment a datetime64 count in `units` (`"[ns]"`, `"[s]"`, `"[D]"`, `"[M]"`, `"[Y]"`,
/// `"[10ms]"`...) stands for; `None` for NaT, an unknown unit or a date chrono cannot hold.
pub fn to_datetime(count: i64, units: &str) -> Option<NaiveDateTime> {
    if count == NAT {
        return None;
    }
    let (unit, mult) = parse_units(units)?;
    let n = count.checked_mul(mult)?;
    let epoch = DateTime::UNIX_EPOCH.naive_utc();
    let delta = match unit {
        // Years and months are calendar units: count them from 1970-01.
        "Y" | "M" => {
            let months = if unit == "Y" { n.checked_mul(12)? } else { n };
            let year = 1970 + months.div_euclid(12);
            let month = months.rem_euclid(12) as u32 + 1;
            return NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, 1)?
                .and_hms_opt(0, 0, 0);
        }
        "W" => Duration::try_weeks(n)?,
        "D" => Duration::try_days(n)?,
        "h" => Duration::try_hours(n)?,
        "m" => Duration::try_minutes(n)?,
        "s" => Duration::try_seconds(n)?,
        "ms" => Duration::try_milliseconds(n)?,
        "us" => Duration::microseconds(n),
        "ns" => Duration::nanoseconds(n),
        _ => return None,
    };
    epoch.checked_add_signed(delta)
}

pub(crate) fn write_ymd_hms(out: &mut Vec<u8>, dt: &NaiveDateTime, sep: char) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
}

/// ISO 8601 without a zone, as orjson prints numpy datetimes: `2014-09-06T00:00:00`, with
/// microseconds (truncated, as orjson does) only when there are any. `false` for NaT.
pub fn write_iso_datetime(out: &mut Vec<u8>, count: i64, units: &str) -> bool {
    let Some(dt) = to_datetime(count, units) else {
        return false;
    };
    write_ymd_hms(out, &dt, 'T');
    let micros = dt.nanosecond() / 1000;
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    true
}

/// ISO 8601 text of a datetime64 (see [`write_iso_datetime`]); `None` for NaT.
pub fn iso_datetime(count: i64, units: &str) -> Option<String> {
    let mut out = Vec::with_capacity(26);
    write_iso_datetime(&mut out, count, units).then(|| String::from_utf8_lossy(&out).into_owned())
}

/// numpy's `str` of a datetime64: precision follows the unit (`2014`, `2014-09`,
/// `2014-09-06`, `2014-09-06T00:00:00.000000000`...), `NaT` for missing values.
pub fn write_numpy_datetime(out: &mut Vec<u8>, count: i64, units: &str) {
    let (Some(dt), Some((unit, _))) = (to_datetime(count, units), parse_units(units)) else {
        out.extend_from_slice(b"NaT");
        return;
    };
    let _ = match unit {
        "Y" => write!(out, "{:04}", dt.year()),
        "M" => write!(out, "{:04}-{:02}", dt.year(), dt.month()),
        "W" | "D" => write!(out, "{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day()),
        "h" => write!(
            out,
            "{:04}-{:02}-{:02}T{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour()
        ),
        "m" => write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute()
        ),
        _ => {
            write_ymd_hms(out, &dt, 'T');
            let ns = dt.nanosecond();
            match unit {
                "ms" => write!(out, ".{:03}", ns / 1_000_000),
                "us" => write!(out, ".{:06}", ns / 1000),
                "ns" => write!(out, ".{ns:09}"),
                _ => Ok(()),
            }
        }
    };
}

/// numpy's `str` of a timedelta64: `3 seconds`, `1 days`, `NaT`.
pub fn write_numpy_timedelta(out: &mut Vec<u8>, count: i64, units: &str) {
    if count == NAT {
        out.extend_from_slice(b"NaT");
        return;
    }
    let (unit, mult) = parse_units(units).unwrap_or(("", 1));
    let name = match unit {
        "Y" => "years",
        "M" => "months",
        "W" => "weeks",
        "D" => "days",
        "h" => "hours",
        "m" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        other => other,
    };
    let _ = write!(out, "{} {name}", count.saturating_mul(mult));
}

/// Python's `repr` of a `bytes` value (`b'ab'`, `b'\x01'`), which numpy's CSV writes.
pub fn write_py_bytes_repr(out: &mut Vec<u8>, b: &[u8]) {
    // Python switches to double quotes when the value holds a single quote and no double one.
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push(b'b');
    out.push(quote);
    for &c in b {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c if c == quote => {
                out.push(b'\\');
                out.push(c);
            }
            0x20..=0x7e => out.push(c),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(quote);
}

/// Appends a CSV field, quoted when it holds a separator, a quote or a line break.
pub fn write_csv_field(out: &mut Vec<u8>, s: &[u8]) {
    if s.iter().any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for &c in s {
            if c == b'"' {
                out.push(b'"');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s);
    }
}

/// Appends text escaped for HTML.
pub fn write_html_escaped(out: &mut Vec<u8>, s: &[u8]) {
    for &c in s {
        match c {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            c => out.push(c),
        }
    }
}

/// Appends a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly as JSON requires; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_floats_match_orjson() {
        // Expected strings printed by orjson.dumps (tiled 0.2.20's JSON encoder).
        let mut b = ryu::Buffer::new();
        let cases = [
            (1e16, "1e+16"),
            (1e-7, "1e-7"),
            (1.2345678901234568e20, "1.2345678901234568e+20"),
            (5e-324, "5e-324"),
            (1e15, "1000000000000000.0"),
            (0.00001, "0.00001"),
            (2.5e-5, "0.000025"),
            (-1e-10, "-1e-10"),
            (f64::NAN, "null"),
            (f64::NEG_INFINITY, "null"),
        ];
        for (v, want) in cases {
            assert_eq!(text(|o| write_json_f64(o, v, &mut b)), want, "{v}");
        }
        let cases32 = [
            (0.1f32, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1e+15"),
            (12345679.0, "12345679.0"),
            (1e13, "1e+13"),
            (1.5e-6, "0.0000015"),
        ];
        for (v, want) in cases32 {
            assert_eq!(text(|o| write_json_f32(o, v, &mut b)), want, "{v}");
        }
    }

    #[test]
    fn python_and_numpy_float_text() {
        // Expected strings from Python's repr / numpy's str(np.float32(v)).
        let mut b = ryu::Buffer::new();
        let cases = [
            (0.3698032912574729, "0.3698032912574729"),
            (1e16, "1e+16"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e15, "1000000000000000.0"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (1.5e-7, "1.5e-07"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
            (-0.0, "-0.0"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (v, want) in cases {
            assert_eq!(text(|o| write_py_f64(o, v, &mut b)), want, "{v}");
        }
        let cases32 = [
            (0.1f32, "0.1"),
            (1e-7, "1e-07"),
            (999999.0, "999999.0"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (123456.7, "123456.7"),
            (0.0001, "1e-04"),
            (0.00010001, "0.00010001"),
            (-2.5e9, "-2.5e+09"),
            (3e38, "3e+38"),
        ];
        for (v, want) in cases32 {
            assert_eq!(text(|o| write_np_f32(o, v, &mut b)), want, "{v}");
        }
    }

    #[test]
    fn datetimes_print_like_orjson_numpy_and_pandas() {
        let ns = 1_409_961_600_000_000_000;
        assert_eq!(iso_datetime(ns, "[ns]").unwrap(), "2014-09-06T00:00:00");
        assert_eq!(
            iso_datetime(ns + 123_456_789, "[ns]").unwrap(),
            "2014-09-06T00:00:00.123456"
        );
        assert_eq!(iso_datetime(20_089, "[D]").unwrap(), "2025-01-01T00:00:00");
        assert_eq!(iso_datetime(44, "[Y]").unwrap(), "2014-01-01T00:00:00");
        assert_eq!(iso_datetime(530, "[M]").unwrap(), "2014-03-01T00:00:00");
        assert_eq!(iso_datetime(-1, "[M]").unwrap(), "1969-12-01T00:00:00");
        assert_eq!(iso_datetime(3, "[10s]").unwrap(), "1970-01-01T00:00:30");
        assert_eq!(iso_datetime(NAT, "[s]"), None);
        // numpy: str(np.datetime64(5, unit)) for each unit.
        let np = |v, u| text(|o| write_numpy_datetime(o, v, u));
        assert_eq!(np(5, "[Y]"), "1975");
        assert_eq!(np(5, "[M]"), "1970-06");
        assert_eq!(np(5, "[W]"), "1970-02-05");
        assert_eq!(np(5, "[h]"), "1970-01-01T05");
        assert_eq!(np(5, "[m]"), "1970-01-01T00:05");
        assert_eq!(np(5, "[ms]"), "1970-01-01T00:00:00.005");
        assert_eq!(np(5, "[ns]"), "1970-01-01T00:00:00.000000005");
        assert_eq!(np(NAT, "[ns]"), "NaT");
        assert_eq!(text(|o| write_numpy_timedelta(o, 3, "[s]")), "3 seconds");
    }

    #[test]
    fn bytes_csv_and_html_escapes() {
        assert_eq!(text(|o| write_py_bytes_repr(o, b"ab")), "b'ab'");
        assert_eq!(
            text(|o| write_py_bytes_repr(o, b"a\x01'\"\\")),
            r#"b'a\x01\'"\\'"#
        );
        assert_eq!(text(|o| write_py_bytes_repr(o, b"it's")), "b\"it's\"");
        let csv = text(|o| {
            write_csv_field(o, b"plain");
            o.push(b',');
            write_csv_field(o, b"a,\"b\"");
        });
        assert_eq!(csv, "plain,\"a,\"\"b\"\"\"");
        assert_eq!(text(|o| write_html_escaped(o, b"<a&b>")), "&lt;a&amp;b&gt;");
    }
}
