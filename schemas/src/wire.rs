//! The Kafka message format: how a batch of one table travels from a capture agent to ingest.
//!
//! - **Value**: one Arrow IPC *stream* (schema message, record batches, end-of-stream marker),
//!   buffers ZSTD-compressed by Arrow itself, so a message is self-describing and readable by any
//!   Arrow implementation (`pyarrow.ipc.open_stream`).
//! - **Key**: the capturing node's name, so one node's batches of a table stay in order in one
//!   partition.
//! - **Headers** ([`header`]): schema version, table, node, the producing process (`producer`, a
//!   random id per start) and its per-table batch sequence, and the producer's loss counters
//!   (cumulative since it started: batches and rows it could not deliver). A consumer sees a gap
//!   in `seq` for any batch that never arrived, whatever the reason.
//!
//! [`decode`] checks everything a consumer relies on and says what is wrong; ingest routes a
//! message that fails to its dead-letter topic with that reason.
use crate::{SCHEMA_VERSION, Table};
use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::error::ArrowError;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};

/// The prefix of the topics when none is configured.
pub const DEFAULT_TOPIC_PREFIX: &str = "podwire.";

/// The topic of `table` under `prefix` (`podwire.connections`).
pub fn topic(prefix: &str, table: Table) -> String {
    format!("{prefix}{}", table.name())
}

/// The dead-letter topic under `prefix`, where ingest puts the messages it cannot decode.
pub fn dead_letter_topic(prefix: &str) -> String {
    format!("{prefix}dead-letter")
}

/// What every Kafka limit allows beyond a message's configured maximum size (headers, record
/// framing): the producer's `message.max.bytes`, the consumer's fetch sizes and the topics'
/// `max.message.bytes` all add the same margin, so what a producer may send a topic accepts and
/// a consumer can fetch.
pub const MESSAGE_MARGIN_BYTES: usize = 1 << 20;

/// Header names.
pub mod header {
    /// [`crate::SCHEMA_VERSION`] of the producer, decimal.
    pub const SCHEMA_VERSION: &str = "podwire.schema_version";
    /// Table name (`connections`, `dns`, `packets`, `capture_stats`).
    pub const TABLE: &str = "podwire.table";
    /// Capturing node.
    pub const NODE: &str = "podwire.node";
    /// Producing process: a random id per start of the agent.
    pub const PRODUCER: &str = "podwire.producer";
    /// The producer's batch sequence for this table, from 0, decimal.
    pub const SEQ: &str = "podwire.seq";
    /// Rows in the message, decimal.
    pub const ROWS: &str = "podwire.rows";
    /// Batches the producer dropped so far (all tables), decimal.
    pub const DROPPED_BATCHES: &str = "podwire.dropped_batches";
    /// Rows the producer dropped so far (all tables), decimal.
    pub const DROPPED_ROWS: &str = "podwire.dropped_rows";
}

/// What the headers of a message say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The table of the batch.
    pub table: Table,
    /// Capturing node.
    pub node: String,
    /// Producing process id.
    pub producer: String,
    /// Batch sequence of `producer` for `table`.
    pub seq: u64,
    /// Rows in the message.
    pub rows: u64,
    /// Batches the producer could not deliver before this one (cumulative).
    pub dropped_batches: u64,
    /// Rows the producer could not deliver before this one (cumulative).
    pub dropped_rows: u64,
}

impl Envelope {
    /// The headers of a message, in a stable order.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (header::SCHEMA_VERSION, SCHEMA_VERSION.to_string()),
            (header::TABLE, self.table.name().to_string()),
            (header::NODE, self.node.clone()),
            (header::PRODUCER, self.producer.clone()),
            (header::SEQ, self.seq.to_string()),
            (header::ROWS, self.rows.to_string()),
            (header::DROPPED_BATCHES, self.dropped_batches.to_string()),
            (header::DROPPED_ROWS, self.dropped_rows.to_string()),
        ]
    }
}

/// Why a message cannot be used. The text is the reason recorded with a dead letter.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A required header is absent.
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    /// A header's value does not parse.
    #[error("header {name} is not valid: {value:?}")]
    BadHeader {
        /// Header name.
        name: &'static str,
        /// Its value, lossily decoded.
        value: String,
    },
    /// Produced with another schema version.
    #[error(
        "schema version {found} is not supported (this podwire reads version {expected}); \
         run capture and ingest from the same release"
    )]
    Version {
        /// The message's version.
        found: u32,
        /// This build's version.
        expected: u32,
    },
    /// The value is not an Arrow IPC stream.
    #[error("the value is not a readable Arrow IPC stream: {0}")]
    Ipc(String),
    /// The stream's schema is not the table's.
    #[error("the stream's schema does not match table {table}: {detail}")]
    Schema {
        /// The table named in the headers.
        table: &'static str,
        /// The first difference.
        detail: String,
    },
    /// The row count differs from the `rows` header.
    #[error("the stream has {found} rows, the headers say {expected}")]
    Rows {
        /// Rows in the stream.
        found: u64,
        /// The `rows` header.
        expected: u64,
    },
}

/// Encodes `batch` as an Arrow IPC stream with ZSTD-compressed buffers.
///
/// # Errors
/// Arrow's, when the batch cannot be written.
pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let options = IpcWriteOptions::default().try_with_compression(Some(CompressionType::ZSTD))?;
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4 + 1024);
    let mut w = StreamWriter::try_new_with_options(&mut out, batch.schema_ref(), options)?;
    w.write(batch)?;
    w.finish()?;
    drop(w);
    Ok(out)
}

/// Encodes `batch` into messages of at most `max_bytes` each, splitting it by rows (halves, then
/// halves of those) where one message would be too large. A single row larger than the bound is
/// sent alone; the broker then decides.
///
/// # Errors
/// Arrow's, when a batch cannot be written.
pub fn encode_bounded(
    batch: &RecordBatch,
    max_bytes: usize,
) -> Result<Vec<(RecordBatch, Vec<u8>)>, ArrowError> {
    let mut out = Vec::new();
    let mut todo = vec![batch.clone()];
    while let Some(b) = todo.pop() {
        let bytes = encode(&b)?;
        if bytes.len() <= max_bytes || b.num_rows() <= 1 {
            out.push((b, bytes));
        } else {
            let half = b.num_rows() / 2;
            // Pushed in reverse so the rows keep their order.
            todo.push(b.slice(half, b.num_rows() - half));
            todo.push(b.slice(0, half));
        }
    }
    Ok(out)
}

fn get<'a>(headers: &'a [(&str, &[u8])], name: &'static str) -> Result<&'a str, WireError> {
    let (_, v) = headers.iter().find(|(k, _)| *k == name).ok_or(WireError::MissingHeader(name))?;
    std::str::from_utf8(v)
        .map_err(|_| WireError::BadHeader { name, value: String::from_utf8_lossy(v).into_owned() })
}

fn get_u64(headers: &[(&str, &[u8])], name: &'static str) -> Result<u64, WireError> {
    let v = get(headers, name)?;
    v.parse().map_err(|_| WireError::BadHeader { name, value: v.to_string() })
}

/// Reads the headers of a message.
///
/// # Errors
/// A missing or unreadable header, an unknown table, another schema version.
pub fn envelope(headers: &[(&str, &[u8])]) -> Result<Envelope, WireError> {
    let version = get(headers, header::SCHEMA_VERSION)?;
    let version: u32 = version.parse().map_err(|_| WireError::BadHeader {
        name: header::SCHEMA_VERSION,
        value: version.into(),
    })?;
    if version != SCHEMA_VERSION {
        return Err(WireError::Version { found: version, expected: SCHEMA_VERSION });
    }
    let table = get(headers, header::TABLE)?;
    let table = Table::ALL
        .into_iter()
        .find(|t| t.name() == table)
        .ok_or_else(|| WireError::BadHeader { name: header::TABLE, value: table.into() })?;
    Ok(Envelope {
        table,
        node: get(headers, header::NODE)?.to_string(),
        producer: get(headers, header::PRODUCER)?.to_string(),
        seq: get_u64(headers, header::SEQ)?,
        rows: get_u64(headers, header::ROWS)?,
        dropped_batches: get_u64(headers, header::DROPPED_BATCHES)?,
        dropped_rows: get_u64(headers, header::DROPPED_ROWS)?,
    })
}

/// The first difference between a stream's schema and the table's, ignoring metadata.
fn schema_difference(found: &Schema, expected: &Schema) -> Option<String> {
    if found.fields().len() != expected.fields().len() {
        return Some(format!(
            "{} columns, expected {}",
            found.fields().len(),
            expected.fields().len()
        ));
    }
    for (f, e) in found.fields().iter().zip(expected.fields()) {
        if f.name() != e.name() {
            return Some(format!("column {:?} where {:?} was expected", f.name(), e.name()));
        }
        if f.data_type() != e.data_type() {
            return Some(format!(
                "column {} is {}, expected {}",
                f.name(),
                f.data_type(),
                e.data_type()
            ));
        }
        if f.is_nullable() && !e.is_nullable() {
            return Some(format!("column {} is nullable, the table's is not", f.name()));
        }
    }
    None
}

/// Decodes and checks one message: its headers, then its value against the table's schema and
/// the announced row count. The batches come back with the table's schema (and its metadata).
///
/// # Errors
/// See [`WireError`]; nothing in the input can make this panic.
pub fn decode(
    headers: &[(&str, &[u8])],
    value: &[u8],
) -> Result<(Envelope, Vec<RecordBatch>), WireError> {
    let env = envelope(headers)?;
    let expected = env.table.schema();
    let reader = StreamReader::try_new(value, None).map_err(|e| WireError::Ipc(e.to_string()))?;
    if let Some(detail) = schema_difference(&reader.schema(), &expected) {
        return Err(WireError::Schema { table: env.table.name(), detail });
    }
    let mut batches = Vec::new();
    let mut rows = 0u64;
    for b in reader {
        let b = b.map_err(|e| WireError::Ipc(e.to_string()))?;
        rows += b.num_rows() as u64;
        // Same fields, so only the schema-level metadata changes.
        let b = b
            .with_schema(expected.clone())
            .map_err(|e| WireError::Schema { table: env.table.name(), detail: e.to_string() })?;
        batches.push(b);
    }
    if rows != env.rows {
        return Err(WireError::Rows { found: rows, expected: env.rows });
    }
    Ok((env, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{DnsBuilder, DnsRecord};

    fn sample() -> RecordBatch {
        sample_rows(100)
    }

    fn sample_rows(n: u16) -> RecordBatch {
        let mut b = DnsBuilder::new();
        for i in 0..n {
            b.append(&DnsRecord {
                ts_ns: 1_700_000_000_000_000_000 + i64::from(i) * 1000,
                response_ns: Some(1_700_000_000_000_000_000 + i64::from(i) * 1000 + 500),
                conn_id: i64::from(i),
                protocol: "udp",
                src_ip: [10, 0, 0, 1].into(),
                src_port: 40_000 + i,
                dst_ip: [10, 96, 0, 10].into(),
                dst_port: 53,
                dns_id: i,
                query_name: format!("host-{i}.example.com"),
                query_type: "A".into(),
                rcode: "NoError".into(),
                answers: vec![format!("A 192.0.2.{}", i % 250)],
                answer_ips: vec![[192, 0, 2, (i % 250) as u8].into()],
                ttl_min: Some(30),
                outcome: "answered",
                node: "node-a".into(),
                src_meta: Default::default(),
                dst_meta: Default::default(),
            });
        }
        b.finish().unwrap()
    }

    fn env(rows: u64) -> Envelope {
        Envelope {
            table: Table::Dns,
            node: "node-a".into(),
            producer: "p1".into(),
            seq: 7,
            rows,
            dropped_batches: 1,
            dropped_rows: 20,
        }
    }

    fn hdrs(e: &Envelope) -> Vec<(&'static str, String)> {
        e.headers()
    }

    fn as_refs<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a [u8])> {
        h.iter().map(|(k, v)| (*k, v.as_bytes())).collect()
    }

    #[test]
    fn round_trip() {
        let batch = sample();
        let bytes = encode(&batch).unwrap();
        let h = hdrs(&env(100));
        let (e, batches) = decode(&as_refs(&h), &bytes).unwrap();
        assert_eq!(e, env(100));
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0], batch);
    }

    #[test]
    fn bounded_messages_keep_every_row_in_order() {
        let batch = sample_rows(5000);
        let whole = encode(&batch).unwrap().len();
        let parts = encode_bounded(&batch, whole / 3).unwrap();
        assert!(parts.len() >= 3, "{} parts", parts.len());
        assert!(parts.iter().all(|(_, b)| b.len() <= whole / 3));
        let back: Vec<RecordBatch> = parts.into_iter().map(|(b, _)| b).collect();
        let back = arrow::compute::concat_batches(&batch.schema(), &back).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let bytes = encode(&sample()).unwrap();
        let good = hdrs(&env(100));
        // Wrong row count.
        let h = hdrs(&env(99));
        assert_eq!(
            decode(&as_refs(&h), &bytes).unwrap_err(),
            WireError::Rows { found: 100, expected: 99 }
        );
        // Missing header.
        let h: Vec<_> = good.iter().filter(|(k, _)| *k != header::NODE).cloned().collect();
        assert_eq!(
            decode(&as_refs(&h), &bytes).unwrap_err(),
            WireError::MissingHeader(header::NODE)
        );
        // Other version.
        let mut h = good.clone();
        h[0].1 = "999".into();
        assert!(matches!(
            decode(&as_refs(&h), &bytes).unwrap_err(),
            WireError::Version { found: 999, .. }
        ));
        // Truncated value.
        assert!(matches!(
            decode(&as_refs(&good), &bytes[..bytes.len() / 2]).unwrap_err(),
            WireError::Ipc(_)
        ));
        // Garbage value.
        assert!(matches!(decode(&as_refs(&good), b"hello").unwrap_err(), WireError::Ipc(_)));
        // The batch of another table.
        let mut h = good.clone();
        h[1].1 = "connections".into();
        let err = decode(&as_refs(&h), &bytes).unwrap_err();
        assert!(matches!(err, WireError::Schema { table: "connections", .. }), "{err}");
    }

    #[test]
    fn every_truncation_is_an_error_or_the_whole_batch() {
        // Only the 8-byte end-of-stream marker may go missing without an error: every row is
        // there then. Any other cut is an error, never a panic and never part of the rows.
        let batch = sample();
        let bytes = encode(&batch).unwrap();
        let h = hdrs(&env(100));
        for n in 0..bytes.len() {
            match decode(&as_refs(&h), &bytes[..n]) {
                Err(_) => {}
                Ok((_, got)) => {
                    assert!(n >= bytes.len() - 8, "{n} of {} bytes decoded", bytes.len());
                    assert_eq!(got, vec![batch.clone()]);
                }
            }
        }
    }
}
