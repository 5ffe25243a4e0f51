//! Times for `--from`/`--to` and the API's `from`/`to`, as epoch milliseconds.
//!
//! Accepted: RFC 3339 (`2026-11-26T09:00:00Z`, `2026-11-26T10:00:00+01:00`), a date
//! (`2026-11-26`, midnight UTC), `now`, or a signed duration relative to now (`-1h`, `-90m`,
//! `-2days`, `+5m`; humantime units), or epoch milliseconds (`1795686790402`, as the dashboard
//! and scripts send them).
use crate::error::{Error, Result};

/// Parses a time; `now_ms` is "now" for `now` and relative values.
///
/// # Errors
/// [`Error::Time`] naming the value and the accepted forms.
pub fn parse_time(value: &str, now_ms: i64) -> Result<i64> {
    let v = value.trim();
    let bad = |reason: String| Error::Time { value: value.to_owned(), reason };
    if v.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    // Epoch milliseconds: at least 10 digits, so a date-like `2026` is never taken for one.
    if v.len() >= 10 && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<i64>().map_err(|_| bad("out of range".into()));
    }
    if let Some((sign, rest)) =
        v.strip_prefix('-').map(|r| (-1, r)).or(v.strip_prefix('+').map(|r| (1, r)))
    {
        let d = humantime::parse_duration(rest.trim()).map_err(|e| bad(e.to_string()))?;
        let ms = i64::try_from(d.as_millis()).map_err(|_| bad("duration too long".into()))?;
        return now_ms.checked_add(sign * ms).ok_or_else(|| bad("out of range".into()));
    }
    if let Ok(ts) = v.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    if let Ok(date) = v.parse::<jiff::civil::Date>() {
        let ts =
            date.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| bad(e.to_string()))?.timestamp();
        return Ok(ts.as_millisecond());
    }
    Err(bad("expected RFC 3339 (2026-11-26T09:00:00Z), a date (2026-11-26), `now`, or a relative \
         duration (-1h, -30m, -2days), or epoch milliseconds"
        .into()))
}

/// The current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_683_600_000; // 2026-11-26T09:00:00Z

    #[test]
    fn forms() {
        assert_eq!(parse_time("2026-11-26T09:00:00Z", 0).unwrap(), NOW);
        assert_eq!(parse_time("2026-11-26T10:00:00+01:00", 0).unwrap(), NOW);
        assert_eq!(parse_time("2026-11-26", 0).unwrap(), NOW - 9 * 3_600_000);
        assert_eq!(parse_time("now", NOW).unwrap(), NOW);
        assert_eq!(parse_time("-1h", NOW).unwrap(), NOW - 3_600_000);
        assert_eq!(parse_time("+90s", NOW).unwrap(), NOW + 90_000);
        assert_eq!(parse_time("-2days", NOW).unwrap(), NOW - 2 * 86_400_000);
        assert_eq!(parse_time("1795683600000", 0).unwrap(), NOW);
        assert!(parse_time("2026", NOW).is_err(), "a year is no epoch time");
        let e = parse_time("yesterday", NOW).unwrap_err();
        assert!(e.is_user() && e.to_string().contains("RFC 3339"), "{e}");
    }
}
