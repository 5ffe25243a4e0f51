//! The store's partitions, named once: every table is partitioned by the UTC hour of its event
//! time, as the folders `date=YYYY-MM-DD/hour=HH/` (Hive style) and, in the tables' Delta logs,
//! the string partition columns `date` and `hour` with the same values.
//!
//! An hour is counted as an *hour bucket*: hours since the Unix epoch.

/// The partition column holding the day, `YYYY-MM-DD` (UTC).
pub const DATE: &str = "date";
/// The partition column holding the hour of the day, `00`–`23` (UTC).
pub const HOUR: &str = "hour";
/// The partition columns, in order.
pub const COLUMNS: [&str; 2] = [DATE, HOUR];

/// The `date` and `hour` values of an hour bucket.
pub fn values(bucket: i64) -> (String, String) {
    let ts = jiff::Timestamp::from_second(bucket.saturating_mul(3600))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC);
    (dt.strftime("%Y-%m-%d").to_string(), format!("{:02}", dt.hour()))
}

/// The folder of an hour bucket, relative to its table: `date=YYYY-MM-DD/hour=HH`.
pub fn folder(bucket: i64) -> String {
    let (date, hour) = values(bucket);
    format!("{DATE}={date}/{HOUR}={hour}")
}

/// The hour bucket of the values `date` (`YYYY-MM-DD`) and `hour` (`HH`); `None` for values
/// that are not a partition's.
pub fn bucket(date: &str, hour: &str) -> Option<i64> {
    let date: jiff::civil::Date = date.parse().ok()?;
    let hour: i8 = hour.parse().ok().filter(|h| (0..24).contains(h))?;
    let start = date.at(hour, 0, 0, 0).to_zoned(jiff::tz::TimeZone::UTC).ok()?;
    Some(start.timestamp().as_second().div_euclid(3600))
}

/// The hour bucket of two folder names, `date=YYYY-MM-DD` and `hour=HH`.
pub fn bucket_of_folders(date_dir: &str, hour_dir: &str) -> Option<i64> {
    bucket(
        date_dir.strip_prefix(DATE)?.strip_prefix('=')?,
        hour_dir.strip_prefix(HOUR)?.strip_prefix('=')?,
    )
}

/// The `date` and `hour` values of a path `…/date=YYYY-MM-DD/hour=HH/…` (the last of each).
pub fn of_path(path: &str) -> Option<(String, String)> {
    let (mut date, mut hour) = (None, None);
    for part in path.split('/') {
        if let Some(d) = part.strip_prefix(DATE).and_then(|p| p.strip_prefix('=')) {
            date = Some(d.to_string());
        } else if let Some(h) = part.strip_prefix(HOUR).and_then(|p| p.strip_prefix('=')) {
            hour = Some(h.to_string());
        }
    }
    Some((date?, hour?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_values_and_buckets_agree() {
        assert_eq!(folder(0), "date=1970-01-01/hour=00");
        // 2026-11-26T09:00Z
        let b = 1_795_683_600 / 3600;
        assert_eq!(folder(b), "date=2026-11-26/hour=09");
        assert_eq!(bucket("2026-11-26", "09"), Some(b));
        assert_eq!(bucket_of_folders("date=2026-11-26", "hour=09"), Some(b));
        assert_eq!(of_path("connections/date=2026-11-26/hour=09/x.parquet"), Some(values(b)));
        for (d, h) in [("2026-11-26", "24"), ("2026-13-01", "00"), ("x", "00"), ("2026-11-26", "")]
        {
            assert_eq!(bucket(d, h), None, "{d} {h}");
        }
        assert_eq!(bucket_of_folders("day=2026-11-26", "hour=09"), None);
        assert_eq!(of_path("date=2026-11-26/x.parquet"), None);
        assert_eq!(bucket("1969-12-31", "23"), Some(-1));
    }
}
