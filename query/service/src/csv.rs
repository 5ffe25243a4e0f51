//! CSV rows, written straight from the Arrow columns.
//!
//! The same bytes as `arrow::csv::Writer` with its defaults (comma, `"` doubled inside quoted
//! fields, `\n`, nulls empty, a field quoted only when it holds a comma, a quote or a line
//! break) and the display text of `arrow::util::display` for every value, but without its cost
//! per cell: that writer formats each cell through a `dyn` formatter into a `String`, copies it
//! into a `csv::ByteRecord`, then copies the record again while checking it for quotes. On a
//! 1.2 M-row result that was a third of the query's CPU (benchmarks/README.md). Here strings,
//! integers and booleans, nearly every column of the tables, are appended to the output in one
//! step; other types (times, floats, lists) still go through Arrow's display formatter.
//! `tests::same_bytes_as_arrow_csv` holds the two writers to the same output.
use crate::error::Result;
use arrow::array::{
    Array, AsArray, BooleanArray, GenericStringArray, OffsetSizeTrait, PrimitiveArray, RecordBatch,
    StringViewArray,
};
use arrow::datatypes::{
    DataType, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::fmt::Write as _;

/// One column, resolved to the way its cells are written.
enum Column<'a> {
    View(&'a StringViewArray),
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    I8(&'a PrimitiveArray<Int8Type>),
    I16(&'a PrimitiveArray<Int16Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    U8(&'a PrimitiveArray<UInt8Type>),
    U16(&'a PrimitiveArray<UInt16Type>),
    U32(&'a PrimitiveArray<UInt32Type>),
    U64(&'a PrimitiveArray<UInt64Type>),
    Bool(&'a BooleanArray),
    /// Arrow's display text, as the `arrow::csv` writer gives it.
    Display(&'a dyn Array, ArrayFormatter<'a>),
}

impl<'a> Column<'a> {
    fn new(array: &'a dyn Array, options: &FormatOptions<'a>) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Utf8View => Column::View(array.as_string_view()),
            DataType::Utf8 => Column::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Column::LargeUtf8(array.as_string::<i64>()),
            DataType::Int8 => Column::I8(array.as_primitive()),
            DataType::Int16 => Column::I16(array.as_primitive()),
            DataType::Int32 => Column::I32(array.as_primitive()),
            DataType::Int64 => Column::I64(array.as_primitive()),
            DataType::UInt8 => Column::U8(array.as_primitive()),
            DataType::UInt16 => Column::U16(array.as_primitive()),
            DataType::UInt32 => Column::U32(array.as_primitive()),
            DataType::UInt64 => Column::U64(array.as_primitive()),
            DataType::Boolean => Column::Bool(array.as_boolean()),
            _ => Column::Display(array, ArrayFormatter::try_new(array, options)?),
        })
    }

    /// Appends the field of `row` (without its delimiter).
    fn write(&self, row: usize, out: &mut Vec<u8>, scratch: &mut String) -> Result<()> {
        fn int(out: &mut Vec<u8>, v: impl itoa::Integer) {
            out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        }
        fn strings<O: OffsetSizeTrait>(a: &GenericStringArray<O>, row: usize, out: &mut Vec<u8>) {
            if a.is_valid(row) {
                field(a.value(row).as_bytes(), out);
            }
        }
        fn ints<T: arrow::datatypes::ArrowPrimitiveType>(
            a: &PrimitiveArray<T>,
            row: usize,
            out: &mut Vec<u8>,
        ) where
            T::Native: itoa::Integer,
        {
            if a.is_valid(row) {
                int(out, a.value(row));
            }
        }
        match self {
            Column::View(a) => {
                if a.is_valid(row) {
                    field(a.value(row).as_bytes(), out);
                }
            }
            Column::Utf8(a) => strings(a, row, out),
            Column::LargeUtf8(a) => strings(a, row, out),
            Column::I8(a) => ints(a, row, out),
            Column::I16(a) => ints(a, row, out),
            Column::I32(a) => ints(a, row, out),
            Column::I64(a) => ints(a, row, out),
            Column::U8(a) => ints(a, row, out),
            Column::U16(a) => ints(a, row, out),
            Column::U32(a) => ints(a, row, out),
            Column::U64(a) => ints(a, row, out),
            Column::Bool(a) => {
                if a.is_valid(row) {
                    out.extend_from_slice(if a.value(row) { b"true" } else { b"false" });
                }
            }
            Column::Display(array, f) => {
                // Nulls are written as the formatter's null text, "" by default: as arrow::csv.
                scratch.clear();
                if let Err(e) = write!(scratch, "{}", f.value(row)) {
                    return Err(arrow::error::ArrowError::CsvError(format!(
                        "cannot format row {row} of a {} column: {e}",
                        array.data_type()
                    ))
                    .into());
                }
                field(scratch.as_bytes(), out);
            }
        }
        Ok(())
    }
}

/// Whether a field must be quoted: it holds the delimiter, the quote or a line break.
fn needs_quotes(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

/// Appends one field's text, quoted when needed (quotes inside doubled).
fn field(bytes: &[u8], out: &mut Vec<u8>) {
    if !needs_quotes(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    out.push(b'"');
    for part in bytes.split_inclusive(|&b| b == b'"') {
        out.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// The header row of `schema` (its column names), appended to `out`.
pub fn write_header(schema: &arrow::datatypes::Schema, out: &mut Vec<u8>) {
    for (i, f) in schema.fields().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        field(f.name().as_bytes(), out);
    }
    if let [only] = &schema.fields()[..]
        && only.name().is_empty()
    {
        out.extend_from_slice(b"\"\"");
    }
    if !schema.fields().is_empty() {
        out.push(b'\n');
    }
}

/// The rows of `batch` as CSV (no header), appended to `out`.
///
/// # Errors
/// A column whose type Arrow cannot display, or a value it fails to format.
pub fn write_rows(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let options = FormatOptions::default();
    let columns = batch
        .columns()
        .iter()
        .map(|c| Column::new(c.as_ref(), &options))
        .collect::<Result<Vec<_>>>()?;
    let Some((first, rest)) = columns.split_first() else { return Ok(()) };
    let mut scratch = String::new();
    out.reserve(batch.num_rows() * (columns.len() * 8 + 1));
    for row in 0..batch.num_rows() {
        let start = out.len();
        first.write(row, out, &mut scratch)?;
        if rest.is_empty() && out.len() == start {
            // A record of one empty field would be an empty line, which readers skip: the csv
            // crate writes it as `""`, and so does this.
            out.extend_from_slice(b"\"\"");
        }
        for c in rest {
            out.push(b',');
            c.write(row, out, &mut scratch)?;
        }
        out.push(b'\n');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, BooleanArray, Float64Array, Int8Array, Int32Array, Int64Array, LargeStringArray,
        ListBuilder, StringArray, StringBuilder, StringViewArray, TimestampNanosecondArray,
        UInt16Array, UInt64Array,
    };
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    /// `batch` with its list columns as their display text, which `arrow::csv` needs.
    fn lists_as_text(batch: &RecordBatch) -> RecordBatch {
        let options = FormatOptions::default();
        let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, c)| {
                if !f.data_type().is_nested() {
                    return (f.as_ref().clone(), c.clone());
                }
                let text = ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter");
                let values: StringArray = (0..c.len())
                    .map(|i| c.is_valid(i).then(|| text.value(i).to_string()))
                    .collect();
                (Field::new(f.name(), DataType::Utf8, true), Arc::new(values) as ArrayRef)
            })
            .unzip();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
    }

    fn arrow_csv(batch: &RecordBatch, header: bool) -> Vec<u8> {
        let mut w = arrow::csv::WriterBuilder::new().with_header(header).build(Vec::new());
        w.write(&lists_as_text(batch)).expect("arrow csv");
        w.into_inner()
    }

    fn ours(batch: &RecordBatch) -> Vec<u8> {
        let mut out = Vec::new();
        write_rows(batch, &mut out).expect("csv");
        out
    }

    /// Strings that need quoting, or look as if they might.
    const TEXTS: [&str; 12] = [
        "",
        "plain",
        "a,b",
        "say \"hi\"",
        "\"",
        "line\nbreak",
        "cr\rhere",
        " spaced ",
        "ünïcødé, too",
        "#comment",
        "ends with quote\"",
        "api.stripe.com",
    ];

    fn batch(rows: usize, seed: u64) -> RecordBatch {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut text = Vec::new();
        let mut ints = Vec::new();
        let mut flags = Vec::new();
        for _ in 0..rows {
            let r = next();
            text.push((r % 5 != 0).then(|| TEXTS[(r >> 8) as usize % TEXTS.len()].to_string()));
            ints.push((r % 7 != 0).then_some(r as i64));
            flags.push((r % 3 != 0).then_some(r & 16 == 0));
        }
        let mut list = ListBuilder::new(StringBuilder::new());
        for (i, t) in text.iter().enumerate() {
            if i % 4 == 0 {
                list.append_null();
            } else {
                list.values().append_option(t.clone());
                list.values().append_value("x");
                list.append(true);
            }
        }
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("view", Arc::new(StringViewArray::from_iter(text.clone()))),
            ("utf8", Arc::new(StringArray::from_iter(text.clone()))),
            ("large", Arc::new(LargeStringArray::from_iter(text.iter().rev().cloned()))),
            ("i64", Arc::new(Int64Array::from(ints.clone()))),
            ("i32", Arc::new(Int32Array::from_iter(ints.iter().map(|v| v.map(|v| v as i32))))),
            ("i8", Arc::new(Int8Array::from_iter(ints.iter().map(|v| v.map(|v| v as i8))))),
            ("u16", Arc::new(UInt16Array::from_iter(ints.iter().map(|v| v.map(|v| v as u16))))),
            ("u64", Arc::new(UInt64Array::from_iter(ints.iter().map(|v| v.map(|v| v as u64))))),
            ("bool", Arc::new(BooleanArray::from(flags))),
            (
                "f64",
                Arc::new(Float64Array::from_iter(ints.iter().map(|v| v.map(|v| v as f64 / 7.0)))),
            ),
            (
                "ts",
                Arc::new(
                    TimestampNanosecondArray::from_iter(
                        ints.iter().map(|v| v.map(|v| v.rem_euclid(4_000_000_000_000_000_000))),
                    )
                    .with_timezone("UTC"),
                ),
            ),
            ("list", Arc::new(list.finish())),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(Arc::new(schema), columns.into_iter().map(|(_, a)| a).collect())
            .expect("batch")
    }

    #[test]
    fn same_bytes_as_arrow_csv() {
        for seed in 0..20 {
            let b = batch(500, seed);
            assert_eq!(
                String::from_utf8(ours(&b)),
                String::from_utf8(arrow_csv(&b, false)),
                "seed {seed}"
            );
            // Every column alone too: one-column records of an empty or null field.
            for i in 0..b.num_columns() {
                let one = b.project(&[i]).expect("project");
                assert_eq!(ours(&one), arrow_csv(&one, false), "column {i}, seed {seed}");
            }
        }
        assert!(
            String::from_utf8(ours(&batch(500, 1))).expect("utf8").contains("\"say \"\"hi\"\"\"")
        );
    }

    #[test]
    fn header_as_arrow_csv_writes_it() {
        let b = batch(0, 2);
        let mut names: Vec<Field> =
            b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        names.push(Field::new("odd, \"name\"", DataType::Int64, true));
        for schema in [Schema::new(names), Schema::new(vec![Field::new("", DataType::Int64, true)])]
        {
            let empty = RecordBatch::new_empty(Arc::new(schema.clone()));
            let mut out = Vec::new();
            write_header(&schema, &mut out);
            assert_eq!(String::from_utf8(out), String::from_utf8(arrow_csv(&empty, true)));
        }
    }

    #[test]
    fn no_columns_and_no_rows_write_nothing() {
        let b = batch(0, 3);
        assert!(ours(&b).is_empty());
        let none = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(3)),
        )
        .expect("batch");
        assert!(ours(&none).is_empty());
    }
}
