//! Text renderings of single values shared by the JSON, CSV and HTML encoders: numpy
//! datetime64 values as ISO strings and CSV field quoting.

use chrono::{DateTime, Duration, NaiveDateTime};

/// Seconds and nanoseconds since the epoch of a datetime64 count in `units` (`"[ns]"`,
/// `"[s]"`, `"[D]"`, `"[10ms]"`...); `None` for NaT or an unknown unit.
fn to_datetime(count: i64, units: &str) -> Option<NaiveDateTime> {
    if count == i64::MIN {
        return None;
    }
    let inner = units.trim_start_matches('[').trim_end_matches(']');
    let split = inner
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(inner.len());
    let mult: i64 = if split == 0 {
        1
    } else {
        inner[..split].parse().ok()?
    };
    let n = count.checked_mul(mult)?;
    let epoch = DateTime::UNIX_EPOCH.naive_utc();
    let delta = match &inner[split..] {
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

/// ISO 8601 without a zone, as orjson prints numpy datetimes (`2014-09-06T00:00:00`,
/// fractional seconds only when present); `None` for NaT.
pub fn iso_datetime(count: i64, units: &str) -> Option<String> {
    let dt = to_datetime(count, units)?;
    let base = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = dt.and_utc().timestamp_subsec_nanos();
    Some(if nanos == 0 {
        base
    } else if nanos % 1000 == 0 {
        format!("{base}.{:06}", nanos / 1000)
    } else {
        format!("{base}.{nanos:09}")
    })
}

/// pandas' CSV/HTML rendering: the date alone when every value of the column is at
/// midnight (`date_only`), else `YYYY-MM-DD HH:MM:SS`.
pub fn pandas_datetime(count: i64, units: &str, date_only: bool) -> String {
    match to_datetime(count, units) {
        None => String::new(),
        Some(dt) if date_only => dt.format("%Y-%m-%d").to_string(),
        Some(dt) => {
            let nanos = dt.and_utc().timestamp_subsec_nanos();
            let base = dt.format("%Y-%m-%d %H:%M:%S").to_string();
            if nanos == 0 {
                base
            } else {
                format!("{base}.{:06}", nanos / 1000)
            }
        }
    }
}

/// Whether a datetime64 value falls on midnight (pandas then prints dates only).
pub fn is_midnight(count: i64, units: &str) -> bool {
    to_datetime(count, units).is_none_or(|dt| dt.time() == chrono::NaiveTime::MIN)
}

/// Quotes a CSV field when it holds a separator, a quote or a line break.
pub fn csv_field(s: &str, out: &mut String) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_print_like_orjson_and_pandas() {
        let ns = 1_409_961_600_000_000_000;
        assert_eq!(iso_datetime(ns, "[ns]").unwrap(), "2014-09-06T00:00:00");
        assert_eq!(iso_datetime(20_089, "[D]").unwrap(), "2025-01-01T00:00:00");
        assert_eq!(
            iso_datetime(1500, "[ms]").unwrap(),
            "1970-01-01T00:00:01.500000"
        );
        assert_eq!(iso_datetime(3, "[10s]").unwrap(), "1970-01-01T00:00:30");
        assert_eq!(iso_datetime(i64::MIN, "[s]"), None);
        assert_eq!(pandas_datetime(1_735_689_600, "[s]", true), "2025-01-01");
        assert_eq!(pandas_datetime(90, "[s]", false), "1970-01-01 00:01:30");
        assert!(is_midnight(86_400, "[s]") && !is_midnight(5, "[s]"));
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut s = String::new();
        csv_field("plain", &mut s);
        s.push(',');
        csv_field("a,\"b\"", &mut s);
        assert_eq!(s, "plain,\"a,\"\"b\"\"\"");
    }
}
