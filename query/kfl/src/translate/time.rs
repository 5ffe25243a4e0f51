//! Numbers and times as KFL and SQL write them; Kubeshark's `datetime` layout. The calendar is
//! jiff's.
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

/// A number as KFL and SQL write it: integers without a fraction.
pub(super) fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

/// RFC 3339 in UTC, milliseconds only when not zero. A time beyond jiff's range (years -9999
/// to 9999) is the range's end: no entry is that far out either way.
pub(super) fn fmt_time(ms: i64) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    let dt = ts.to_zoned(TimeZone::UTC).datetime();
    let base = dt.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    match dt.subsec_nanosecond() / 1_000_000 {
        0 => format!("{base}Z"),
        frac => format!("{base}.{frac:03}Z"),
    }
}

/// Parses Kubeshark's `datetime` layout `M/D/YYYY, h:mm:ss[.SSS] AM|PM` (UTC) to epoch ms.
pub(super) fn parse_datetime(s: &str) -> Option<i64> {
    let (date, rest) = s.trim().split_once(',')?;
    let mut dp = date.trim().split('/');
    let (mo, d, y): (i8, i8, i16) =
        (dp.next()?.parse().ok()?, dp.next()?.parse().ok()?, dp.next()?.parse().ok()?);
    if dp.next().is_some() || !(1..=9999).contains(&y) {
        return None;
    }
    let (time, ampm) = rest.trim().rsplit_once(' ')?;
    let pm = match ampm {
        "AM" | "am" => false,
        "PM" | "pm" => true,
        _ => return None,
    };
    let mut tp = time.split(':');
    let h: i8 = tp.next()?.parse().ok()?;
    let mi: i8 = tp.next()?.parse().ok()?;
    let sec_part = tp.next()?;
    if tp.next().is_some() || !(1..=12).contains(&h) {
        return None;
    }
    let (sec, ms) = match sec_part.split_once('.') {
        Some((s, f)) if f.len() == 3 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (s.parse::<i8>().ok()?, f.parse::<i32>().ok()?)
        }
        Some(_) => return None,
        None => (sec_part.parse::<i8>().ok()?, 0),
    };
    let h24 = (h % 12) + if pm { 12 } else { 0 };
    // jiff rejects what the calendar does not have (February 30th, minute 60).
    let at = Date::new(y, mo, d).ok()?.to_datetime(Time::new(h24, mi, sec, ms * 1_000_000).ok()?);
    Some(at.to_zoned(TimeZone::UTC).ok()?.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(
            parse_datetime("10/19/2021, 6:29:02.000 PM").map(fmt_time).as_deref(),
            Some("2021-10-19T18:29:02Z")
        );
        assert_eq!(
            parse_datetime("10/19/2021, 6:29:02 PM"),
            parse_datetime("10/19/2021, 6:29:02.000 PM")
        );
        assert_eq!(parse_datetime("1/1/1970, 12:00:00.001 AM"), Some(1));
        assert_eq!(parse_datetime("2/30/2021, 1:00:00 AM"), None);
        assert_eq!(parse_datetime("2/29/2024, 1:00:00 AM"), Some(1_709_168_400_000));
        assert_eq!(parse_datetime("1/1/2021, 1:60:00 AM"), None);
        assert_eq!(parse_datetime("2021-10-19T18:29:02Z"), None);
        assert_eq!(fmt_time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(fmt_time(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(fmt_time(i64::MAX), "9999-12-30T22:00:00.999Z");
    }
}
