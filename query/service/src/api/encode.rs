//! Result streams as HTTP body chunks: a JSON array, JSON lines, CSV, an Arrow IPC stream or a
//! Parquet file (one row group per batch, the footer last).
//!
//! One [`Encoder`] per response keeps the writer's state (the `[`/`,` of the JSON array, the CSV
//! header, the IPC schema message) across batches; each batch becomes one chunk. Memory stays at
//! about one encoded batch whatever the number of rows.
use crate::error::Result;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A response format of `/api/v1/query` and `/api/v1/sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    /// One JSON array of row objects (`application/json`).
    Json,
    /// One JSON object per line (`application/x-ndjson`).
    Ndjson,
    /// CSV with a header row (`text/csv`).
    Csv,
    /// An Arrow IPC stream (`application/vnd.apache.arrow.stream`), the store's own types.
    Arrow,
    /// A Parquet file (`application/vnd.apache.parquet`), ZSTD: for export to notebooks and
    /// other tools. Streamed a row group at a time; the footer comes last.
    Parquet,
}

impl ResultFormat {
    /// Every format, in the order the API documents them.
    pub const ALL: [ResultFormat; 5] = [
        ResultFormat::Json,
        ResultFormat::Ndjson,
        ResultFormat::Csv,
        ResultFormat::Arrow,
        ResultFormat::Parquet,
    ];

    /// The name a request's `format` field takes.
    pub fn name(self) -> &'static str {
        match self {
            ResultFormat::Json => "json",
            ResultFormat::Ndjson => "ndjson",
            ResultFormat::Csv => "csv",
            ResultFormat::Arrow => "arrow",
            ResultFormat::Parquet => "parquet",
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Json => "application/json",
            ResultFormat::Ndjson => "application/x-ndjson",
            ResultFormat::Csv => "text/csv; charset=utf-8",
            ResultFormat::Arrow => "application/vnd.apache.arrow.stream",
            ResultFormat::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The format named `name` (`format` field).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("jsonl") {
            return Some(ResultFormat::Ndjson);
        }
        Self::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The first format an `Accept` header asks for, if it names one (`*/*` names none).
    pub fn from_accept(accept: &str) -> Option<Self> {
        accept.split(',').find_map(|item| {
            let media = item.split(';').next().unwrap_or("").trim();
            Self::ALL
                .into_iter()
                .find(|f| f.content_type().split(';').next() == Some(media))
                .or_else(|| {
                    matches!(media, "application/jsonl" | "application/json-lines")
                        .then_some(ResultFormat::Ndjson)
                })
        })
    }
}

/// A `Write` whose bytes are taken out after each batch.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Sink {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.lock()))
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.lock().extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One per response, built once: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Writer {
    Json(arrow::json::Writer<Sink, arrow::json::writer::JsonArray>),
    Ndjson(arrow::json::Writer<Sink, arrow::json::writer::LineDelimited>),
    /// The header is written at the start; rows by [`crate::csv::write_rows`].
    Csv,
    Arrow(arrow::ipc::writer::StreamWriter<Sink>),
    Parquet(parquet::arrow::ArrowWriter<Sink>),
}

/// Encodes the batches of one result.
pub struct Encoder {
    sink: Sink,
    writer: Writer,
    rows: u64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl Encoder {
    /// Starts a result of `schema`; [`Encoder::take`] then gives what comes before the first row
    /// (the CSV header, the IPC schema).
    ///
    /// # Errors
    /// Encoding errors.
    pub fn new(format: ResultFormat, schema: &SchemaRef) -> Result<Self> {
        let sink = Sink::default();
        let writer = match format {
            ResultFormat::Json => Writer::Json(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(sink.clone()),
            ),
            ResultFormat::Ndjson => Writer::Ndjson(
                arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(sink.clone()),
            ),
            ResultFormat::Csv => {
                // The header, even when no row comes.
                crate::csv::write_header(schema, &mut sink.lock());
                Writer::Csv
            }
            ResultFormat::Arrow => {
                Writer::Arrow(arrow::ipc::writer::StreamWriter::try_new(sink.clone(), schema)?)
            }
            ResultFormat::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(
                        parquet::basic::ZstdLevel::try_new(3)?,
                    ))
                    .build();
                Writer::Parquet(parquet::arrow::ArrowWriter::try_new(
                    sink.clone(),
                    schema.clone(),
                    Some(props),
                )?)
            }
        };
        Ok(Self { sink, writer, rows: 0 })
    }

    /// Rows encoded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The bytes encoded since the last call.
    pub fn take(&self) -> Bytes {
        self.sink.take()
    }

    /// Encodes one batch and returns its bytes.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Bytes> {
        match &mut self.writer {
            Writer::Json(w) => w.write(batch)?,
            Writer::Ndjson(w) => w.write(batch)?,
            Writer::Csv => crate::csv::write_rows(batch, &mut self.sink.lock())?,
            Writer::Arrow(w) => w.write(batch)?,
            Writer::Parquet(w) => {
                w.write(batch)?;
                // A row group per batch, so its bytes leave now instead of piling up here.
                w.flush()?;
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(self.take())
    }

    /// Ends the result (`]`, the IPC end marker) and returns the last bytes.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn finish(&mut self) -> Result<Bytes> {
        match &mut self.writer {
            Writer::Json(w) => w.finish()?,
            Writer::Ndjson(w) => w.finish()?,
            Writer::Csv => {}
            Writer::Arrow(w) => w.finish()?,
            Writer::Parquet(w) => {
                w.finish()?;
            }
        }
        Ok(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(schema: &SchemaRef, from: i64, n: i64) -> RecordBatch {
        let ids: Vec<i64> = (from..from + n).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("pod-{i}")).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(names))],
        )
        .unwrap()
    }

    fn encode(format: ResultFormat, batches: &[RecordBatch], schema: &SchemaRef) -> Vec<u8> {
        let mut e = Encoder::new(format, schema).unwrap();
        let mut out = e.take().to_vec();
        for b in batches {
            out.extend_from_slice(&e.batch(b).unwrap());
        }
        out.extend_from_slice(&e.finish().unwrap());
        out
    }

    #[test]
    fn every_format_spans_batches() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let batches = [batch(&schema, 0, 2), batch(&schema, 2, 1)];
        let json = encode(ResultFormat::Json, &batches, &schema);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(v[2]["name"], "pod-2");
        assert_eq!(encode(ResultFormat::Json, &[], &schema), b"[]");
        let nd = String::from_utf8(encode(ResultFormat::Ndjson, &batches, &schema)).unwrap();
        assert_eq!(nd.lines().count(), 3);
        let csv = String::from_utf8(encode(ResultFormat::Csv, &batches, &schema)).unwrap();
        assert_eq!(csv, "id,name\n0,pod-0\n1,pod-1\n2,pod-2\n");
        assert_eq!(encode(ResultFormat::Csv, &[], &schema), b"id,name\n");
        let ipc = encode(ResultFormat::Arrow, &batches, &schema);
        let reader = arrow::ipc::reader::StreamReader::try_new(&ipc[..], None).unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 3);
        let file = bytes::Bytes::from(encode(ResultFormat::Parquet, &batches, &schema));
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
        let read: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(read.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
        assert_eq!(arrow::compute::concat_batches(&schema, &read).unwrap().num_rows(), 3);
    }

    #[test]
    fn formats_from_names_and_accept() {
        assert_eq!(ResultFormat::from_name("CSV"), Some(ResultFormat::Csv));
        assert_eq!(ResultFormat::from_name("xml"), None);
        assert_eq!(ResultFormat::from_name("jsonl"), Some(ResultFormat::Ndjson));
        assert_eq!(
            ResultFormat::from_accept("text/html, application/x-ndjson;q=0.9"),
            Some(ResultFormat::Ndjson)
        );
        assert_eq!(
            ResultFormat::from_accept("application/vnd.apache.arrow.stream"),
            Some(ResultFormat::Arrow)
        );
        assert_eq!(ResultFormat::from_accept("*/*"), None);
    }
}
