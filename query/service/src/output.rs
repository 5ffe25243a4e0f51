//! Writing a result stream: a text table, CSV, JSON lines or Parquet.
//!
//! CSV, JSON and Parquet are written batch by batch as the stream yields them, so memory stays
//! bounded by the batch size whatever the number of rows; the text table needs every row first.
use crate::error::{Error, Result};
use arrow::array::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::io::Write;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table for a terminal.
    Table,
    /// CSV with a header row; lists are written as `[a, b]`.
    Csv,
    /// One JSON object per row and line (JSON lines), nulls explicit.
    Json,
    /// Parquet (ZSTD), the same types as the store.
    Parquet,
}

impl Format {
    /// The format's name, as `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Parquet => "parquet",
        }
    }
}

/// Writes every batch of `stream` to `out` in `format`; returns the number of rows.
///
/// # Errors
/// Execution errors of the stream, and I/O or encoding errors of the output.
pub async fn write_stream<W: Write + Send>(
    mut stream: SendableRecordBatchStream,
    format: Format,
    out: W,
) -> Result<u64> {
    let schema = stream.schema();
    let mut rows = 0u64;
    match format {
        Format::Table => {
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                batches.push(batch);
            }
            let mut out = out;
            if batches.is_empty() {
                batches.push(RecordBatch::new_empty(schema));
            }
            let table = arrow::util::pretty::pretty_format_batches(&batches)?;
            writeln!(out, "{table}")?;
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
            out.flush()?;
        }
        Format::Csv => {
            let mut out = out;
            // The header, even when no row comes.
            let mut header = Vec::new();
            crate::csv::write_header(&schema, &mut header);
            out.write_all(&header)?;
            rows = write_formatted(stream, &mut out, |batch| {
                let mut text = Vec::new();
                crate::csv::write_rows(batch, &mut text)?;
                Ok(text)
            })
            .await?;
            out.flush()?;
        }
        Format::Json => {
            let mut out = out;
            rows = write_formatted(stream, &mut out, |batch| {
                let mut w = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(Vec::new());
                w.write(batch)?;
                w.finish()?;
                Ok(w.into_inner())
            })
            .await?;
            out.flush()?;
        }
        Format::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
                .build();
            let mut writer = ArrowWriter::try_new(out, schema, Some(props))?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                writer.write(&batch)?;
            }
            writer.close()?;
        }
    }
    Ok(rows)
}

/// Batches being formatted at once, on the runtime's blocking threads, while the query goes on:
/// turning a large result into text is otherwise one core's work after the query's (a 1.2 M-row
/// CSV took as long as the query itself; benchmarks/README.md).
const FORMAT_AHEAD: usize = 4;

/// Writes the batches of `stream` formatted by `format`, in order; returns the number of rows.
/// At most [`FORMAT_AHEAD`] batches (and their text) are held at once.
async fn write_formatted<W: Write>(
    mut stream: SendableRecordBatchStream,
    out: &mut W,
    format: fn(&RecordBatch) -> Result<Vec<u8>>,
) -> Result<u64> {
    let mut rows = 0u64;
    let mut pending = std::collections::VecDeque::new();
    let mut done = false;
    loop {
        while !done && pending.len() < FORMAT_AHEAD {
            match stream.next().await {
                Some(batch) => {
                    let batch = batch?;
                    rows += batch.num_rows() as u64;
                    pending.push_back(tokio::task::spawn_blocking(move || format(&batch)));
                }
                None => done = true,
            }
        }
        let Some(next) = pending.pop_front() else { break };
        let text = next
            .await
            .map_err(|e| Error::Io(std::io::Error::other(format!("formatting failed: {e}"))))??;
        out.write_all(&text)?;
    }
    Ok(rows)
}
