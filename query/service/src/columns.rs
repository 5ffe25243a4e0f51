//! Typed reads of the result batches the map, timeline, `why`, `why-not` and insights queries
//! return: a column by name, timestamps as epoch ms, integers, strings, integer lists; and the
//! two small helpers their answers share (the earlier of two times, a time for a sentence).
use crate::error::{Error, Result};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};

/// The column `name` of a result batch.
///
/// # Errors
/// [`Error::Internal`] when the query returned no such column.
pub(crate) fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    b.column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("the query returned no column `{name}`")))
}

/// A timestamp column as epoch ms.
pub(crate) fn ms_column(b: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let c = column(b, name)?;
    let per_ms = match c.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => -1000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000_000,
        other => return Err(Error::Internal(format!("`{name}` is {other}, not a timestamp"))),
    };
    let c = cast(c, &DataType::Int64)?;
    let a = c.as_primitive::<Int64Type>();
    let ms = |v: i64| if per_ms < 0 { v.saturating_mul(-per_ms) } else { v.div_euclid(per_ms) };
    Ok((0..a.len()).map(|i| (!a.is_null(i)).then(|| ms(a.value(i)))).collect())
}

/// An integer column (any integer type) as `i64`s.
pub(crate) fn ints(b: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    Ok(int_values(column(b, name)?)?)
}

fn int_values(a: &ArrayRef) -> std::result::Result<Vec<Option<i64>>, arrow::error::ArrowError> {
    let c = cast(a, &DataType::Int64)?;
    Ok(c.as_primitive::<Int64Type>().iter().collect())
}

/// A string column; NULL is empty.
pub(crate) fn strings(b: &RecordBatch, name: &str) -> Result<Vec<String>> {
    let c = cast(column(b, name)?, &DataType::Utf8)?;
    Ok(c.as_string::<i32>().iter().map(|v| v.unwrap_or_default().to_owned()).collect())
}

/// The non-null integers of row `row` of a list column (NULL list: none).
pub(crate) fn int_list(b: &RecordBatch, name: &str, row: usize) -> Result<Vec<i64>> {
    let lists = column(b, name)?.as_list::<i32>();
    if lists.is_null(row) {
        return Ok(Vec::new());
    }
    Ok(int_values(&lists.value(row))?.into_iter().flatten().collect())
}

/// The earlier of two optional times.
pub(crate) fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An epoch-ms time for a sentence: `2026-11-26 09:53:14 UTC`, `?` when unknown.
pub(crate) fn when(ms: Option<i64>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| "?".into(), |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
}
