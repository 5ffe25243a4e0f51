//! A finished job's result partitions, read from the executors that wrote them.
//!
//! Each partition is fetched with Ballista's block transport (the `IO_BLOCK_TRANSPORT` action of
//! the executor's Flight service): the executor sends its shuffle file's bytes as written, an
//! Arrow IPC stream (or, for a sort shuffle, several streams one after another), LZ4-compressed
//! by default. [`IpcBlocks`] decodes those bytes as they arrive. Ballista's own client decodes
//! them with arrow-ipc's `StreamDecoder`, which in arrow-ipc 59.3 checks every string of every
//! record batch for UTF-8 again even when asked not to (it passes the flag to dictionary batches
//! only): a fifth of the query process's CPU on a large result. arrow-ipc's `FileDecoder` honours
//! the flag, so the messages are framed here and handed to it.
use arrow::buffer::{Buffer, MutableBuffer};
use arrow::error::ArrowError;
use arrow::ipc::reader::FileDecoder;
use arrow::ipc::{Block, MessageHeader, MetadataVersion, root_as_message};
use arrow::record_batch::RecordBatch;
use arrow_flight::flight_service_client::FlightServiceClient;
use ballista_core::serde::protobuf::PartitionLocation;
use ballista_core::serde::scheduler::{Action, ShuffleFileKind};
use ballista_core::utils::create_grpc_client_endpoint;
use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::StreamExt as _;
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;

/// One partition of a finished job's last stage, fetched from its executor when the query
/// process's plan asks for it, and decoded on a task of its own.
#[derive(Debug, Clone)]
pub(super) struct FetchedPartition {
    pub(super) schema: SchemaRef,
    pub(super) location: PartitionLocation,
    pub(super) max_message_size: usize,
    pub(super) retries: u8,
    pub(super) retry_wait_ms: u64,
}

/// What a fetch says in its errors: which executor, which partition of which job.
struct Source {
    executor: String,
    address: String,
    partition: String,
}

impl Source {
    fn error(&self, what: &dyn std::fmt::Display) -> DataFusionError {
        DataFusionError::Execution(format!(
            "the cluster's executor {} at {} could not send {}: {what}",
            self.executor, self.address, self.partition
        ))
    }
}

impl FetchedPartition {
    /// Asks the executor for the partition's bytes: the response is a stream of blocks of its
    /// shuffle file. Transport errors that gRPC reports as `Unknown` (a reset connection) are
    /// retried as Ballista's client retries them.
    async fn request(
        &self,
        source: &Source,
    ) -> datafusion::error::Result<tonic::Streaming<arrow_flight::Result>> {
        let (Some(executor), Some(partition)) =
            (self.location.executor_meta.as_ref(), self.location.partition_id.as_ref())
        else {
            return Err(DataFusionError::Execution(
                "the cluster named a result partition without its executor".into(),
            ));
        };
        let port = u16::try_from(executor.port).unwrap_or_default();
        let action: ballista_core::serde::protobuf::Action = Action::FetchPartition {
            job_id: partition.job_id.clone().into(),
            stage_id: partition.stage_id as usize,
            partition_id: partition.partition_id as usize,
            host: executor.host.clone(),
            port,
            file_id: self.location.file_id,
            layout: self.location.layout(),
            file_kind: ShuffleFileKind::Data,
            byte_ranges: vec![],
        }
        .try_into()
        .map_err(|e| source.error(&e))?;
        let body = Bytes::from(action.encode_to_vec());
        let endpoint = create_grpc_client_endpoint(format!("http://{}", source.address), None)
            .map_err(|e| source.error(&e))?
            .connect_timeout(super::CONNECT_TIMEOUT);
        let channel = endpoint.connect().await.map_err(|e| source.error(&e))?;
        let mut client = FlightServiceClient::new(channel)
            .max_decoding_message_size(self.max_message_size)
            .max_encoding_message_size(self.max_message_size);
        let mut attempt = 0;
        loop {
            let request = tonic::Request::new(arrow_flight::Action {
                r#type: "IO_BLOCK_TRANSPORT".into(),
                body: body.clone(),
            });
            match client.do_action(request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if status.code() == tonic::Code::Unknown && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!(%status, attempt, executor = %source.executor, partition = %source.partition,
                        "fetching a result partition failed; retrying");
                    tokio::time::sleep(Duration::from_millis(self.retry_wait_ms)).await;
                }
                Err(status) => return Err(source.error(&status)),
            }
        }
    }

    fn source(&self) -> Source {
        let (executor, address) = match &self.location.executor_meta {
            Some(e) => (e.id.clone(), format!("{}:{}", e.host, e.port)),
            None => ("(unnamed)".into(), "(no address)".into()),
        };
        let partition = match &self.location.partition_id {
            Some(p) => {
                format!("partition {} of stage {} of job {}", p.partition_id, p.stage_id, p.job_id)
            }
            None => "an unnamed partition".into(),
        };
        Source { executor, address, partition }
    }
}

impl PartitionStream for FetchedPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _task: Arc<TaskContext>) -> SendableRecordBatchStream {
        let source = self.source();
        let partition = self.clone();
        // Decoded on a task of its own: the merge that reads the partitions polls them all
        // from one task, which then only merges and writes while the other cores decode.
        let mut decoded = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let tx = decoded.tx();
        let fetch = async move {
            let mut blocks = partition.request(&source).await?;
            // The executors are podwire processes of the same deployment, which wrote these
            // files from arrays Arrow had checked (the trust Ballista's own executors extend
            // to each other's shuffle files).
            let mut messages =
                IpcBlocks::new(Arc::clone(&partition.schema), Trust::WrittenByOurExecutor);
            while let Some(block) = blocks.next().await {
                messages.push(block.map_err(|e| source.error(&e))?.body);
                while let Some(batch) = messages.next_batch().map_err(|e| source.error(&e))? {
                    if tx.send(Ok(batch)).await.is_err() {
                        return Ok(()); // the query was dropped
                    }
                }
            }
            messages.finish().map_err(|e| source.error(&e))
        };
        decoded.spawn(fetch);
        decoded.build()
    }
}

/// Whether the bytes' arrays are checked as they are decoded (strings are UTF-8, offsets lie
/// inside their buffers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Checked: for bytes from anywhere else (and in the tests that feed corrupt bytes).
    #[cfg_attr(not(test), allow(dead_code))]
    Nothing,
    /// Not checked: a shuffle file that a podwire executor wrote from arrays Arrow had
    /// already checked.
    WrittenByOurExecutor,
}

/// An incremental decoder of Arrow IPC stream bytes: push blocks as they arrive, take record
/// batches as they complete. Several streams one after another are read as one (a sort shuffle
/// sends a schema-only stream, then the partition's): each schema message starts a new decoder
/// (dictionaries are per stream),
/// and end-of-stream markers are passed over.
///
/// A block that holds whole messages is decoded without copying. A message cut across blocks
/// is copied once, when all of it has arrived.
pub(crate) struct IpcBlocks {
    /// Bytes not yet decoded, contiguous.
    ready: Buffer,
    /// Blocks that arrived after `ready`, joined to it once the message they complete is whole.
    waiting: Vec<Bytes>,
    waiting_len: usize,
    /// The schema the plan expects. The stream's own schema messages are only checked to have
    /// its number of columns: arrow-ipc's conversion of a schema message panics on some corrupt
    /// ones, and the plan's schema is what the rows must have anyway.
    schema: SchemaRef,
    decoder: Option<FileDecoder>,
    trust: Trust,
    /// Bytes decoded so far, for error messages.
    offset: u64,
}

/// The next message in a byte slice: whole, an end-of-stream marker, or how many bytes it needs.
enum Frame {
    Message { metadata_len: usize, body_len: usize, header: Header, version: MetadataVersion },
    EndOfStream(usize),
    Needs(usize),
}

const CONTINUATION: u32 = 0xFFFF_FFFF;

fn frame(bytes: &[u8]) -> Result<Frame, String> {
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if bytes.len() < 4 {
        return Ok(Frame::Needs(4));
    }
    let (prefix, length) = if word(0) == CONTINUATION {
        if bytes.len() < 8 {
            return Ok(Frame::Needs(8));
        }
        (8, word(4))
    } else {
        (4, word(0)) // the format before 0.15, without the continuation marker
    };
    if length == 0 {
        return Ok(Frame::EndOfStream(prefix));
    }
    let length =
        i32::try_from(length).map_err(|_| format!("a message length of {length} bytes"))?;
    let metadata_len = prefix + length as usize;
    if bytes.len() < metadata_len {
        return Ok(Frame::Needs(metadata_len));
    }
    let message = root_as_message(&bytes[prefix..metadata_len])
        .map_err(|e| format!("a message header that is not an Arrow IPC message ({e})"))?;
    let body_len = usize::try_from(message.bodyLength())
        .map_err(|_| format!("a message body of {} bytes", message.bodyLength()))?;
    let total = metadata_len
        .checked_add(body_len)
        .ok_or_else(|| format!("a message body of {body_len} bytes"))?;
    if bytes.len() < total {
        return Ok(Frame::Needs(total));
    }
    let header = match message.header_type() {
        MessageHeader::Schema => Header::Schema(
            message.header_as_schema().and_then(|s| s.fields()).map_or(0, |f| f.len()),
        ),
        MessageHeader::DictionaryBatch => Header::Dictionary,
        MessageHeader::RecordBatch => Header::Batch,
        MessageHeader::NONE => Header::Nothing,
        other => return Err(format!("a message of type {other:?}, which a stream does not hold")),
    };
    Ok(Frame::Message { metadata_len, body_len, header, version: message.version() })
}

impl IpcBlocks {
    pub(crate) fn new(schema: SchemaRef, trust: Trust) -> Self {
        Self {
            schema,
            ready: Buffer::from(MutableBuffer::new(0)),
            waiting: Vec::new(),
            waiting_len: 0,
            decoder: None,
            trust,
            offset: 0,
        }
    }

    /// Adds the next block of the stream.
    pub(crate) fn push(&mut self, block: Bytes) {
        if self.ready.is_empty() && self.waiting.is_empty() {
            self.ready = Buffer::from(block);
        } else if !block.is_empty() {
            self.waiting_len += block.len();
            self.waiting.push(block);
        }
    }

    /// Joins the waiting blocks to the ready bytes.
    fn join(&mut self) {
        let mut joined = MutableBuffer::new(self.ready.len() + self.waiting_len);
        joined.extend_from_slice(self.ready.as_slice());
        for block in self.waiting.drain(..) {
            joined.extend_from_slice(&block);
        }
        self.waiting_len = 0;
        self.ready = joined.into();
    }

    fn advance(&mut self, len: usize) {
        self.ready = self.ready.slice(len);
        self.offset += len as u64;
    }

    /// The next record batch whose bytes have all arrived, if there is one.
    ///
    /// # Errors
    /// When the bytes are not an Arrow IPC stream: the message says what was found and at
    /// which byte of the stream.
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>, String> {
        loop {
            let at = self.offset;
            let found = frame(self.ready.as_slice()).map_err(|e| format!("{e} at byte {at}"))?;
            let (metadata_len, body_len, header, version) = match found {
                Frame::Needs(len) if self.ready.len() + self.waiting_len >= len => {
                    self.join();
                    continue;
                }
                Frame::Needs(_) => return Ok(None),
                Frame::EndOfStream(len) => {
                    self.advance(len);
                    continue;
                }
                Frame::Message { metadata_len, body_len, header, version } => {
                    (metadata_len, body_len, header, version)
                }
            };
            let message = self.ready.slice_with_length(0, metadata_len + body_len);
            self.advance(metadata_len + body_len);
            let failed = |e: &dyn std::fmt::Display| format!("{e} in the message at byte {at}");
            let block = Block::new(
                0,
                i32::try_from(metadata_len).map_err(|e| failed(&e))?,
                body_len as i64,
            );
            match header {
                Header::Schema(columns) if columns == self.schema.fields().len() => {
                    let decoder = FileDecoder::new(Arc::clone(&self.schema), version);
                    self.decoder = Some(self.trusted(decoder));
                }
                Header::Schema(columns) => {
                    return Err(failed(&format!(
                        "a schema of {columns} columns where the plan's result has {}",
                        self.schema.fields().len()
                    )));
                }
                Header::Dictionary => {
                    let decoder = self
                        .decoder
                        .as_mut()
                        .ok_or_else(|| failed(&"a dictionary before the schema"))?;
                    unpanicked(|| decoder.read_dictionary(&block, &message))
                        .map_err(|e| failed(&e))?;
                }
                Header::Batch => {
                    let decoder = self
                        .decoder
                        .as_ref()
                        .ok_or_else(|| failed(&"a record batch before the schema"))?;
                    if let Some(batch) = unpanicked(|| decoder.read_record_batch(&block, &message))
                        .map_err(|e| failed(&e))?
                    {
                        return Ok(Some(batch));
                    }
                }
                Header::Nothing => {}
            }
        }
    }

    #[allow(unsafe_code)]
    fn trusted(&self, decoder: FileDecoder) -> FileDecoder {
        match self.trust {
            Trust::Nothing => decoder,
            // SAFETY: the bytes are a shuffle file written by a podwire executor with Arrow's
            // IPC writer from arrays Arrow had validated when they were built (see `Trust`).
            Trust::WrittenByOurExecutor => unsafe { decoder.with_skip_validation(true) },
        }
    }

    /// Says whether the stream ended where a message ends.
    ///
    /// # Errors
    /// When it ended inside a message: the stream was cut short.
    pub(crate) fn finish(&self) -> Result<(), String> {
        let left = self.ready.len() + self.waiting_len;
        if left == 0 {
            return Ok(());
        }
        let needs = match frame(self.ready.as_slice()) {
            Ok(Frame::Needs(len)) => format!(" of the {len} its message needs"),
            _ => String::new(),
        };
        Err(format!(
            "the stream ended inside a message: {left} bytes{needs} arrived after byte {}",
            self.offset
        ))
    }
}

/// Runs arrow-ipc's decoding of one message, turning a panic into an error. Checked decoding
/// still panics on some corrupt bodies (a validity bitmap shorter than its column, in arrow-ipc
/// 59.3); the stream ends with the error and the decoder is not used again.
fn unpanicked<T>(decode: impl FnOnce() -> Result<T, ArrowError>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(decoded) => decoded.map_err(|e| e.to_string()),
        Err(panic) => Err(format!(
            "arrow-ipc could not decode it ({})",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic")
        )),
    }
}

/// What a whole message holds (read from its header once, while framing it).
enum Header {
    /// A schema, with its number of columns.
    Schema(usize),
    Dictionary,
    Batch,
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, DictionaryArray, Int64Array, StringArray, StringViewArray};
    use arrow::datatypes::Int32Type;
    use arrow::ipc::CompressionType;
    use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};

    fn batches() -> Vec<RecordBatch> {
        (0..4)
            .map(|b| {
                let n = 100 + b * 37;
                let ids: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * b)));
                let names: ArrayRef =
                    Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("pod-{b}-{i}"))));
                let views: ArrayRef = Arc::new(StringViewArray::from_iter_values(
                    (0..n).map(|i| format!("a longer namespace name {}", i % 7)),
                ));
                let kinds: ArrayRef = Arc::new(
                    (0..n)
                        .map(|i| ["tcp", "udp"][(i % 2) as usize])
                        .collect::<DictionaryArray<Int32Type>>(),
                );
                RecordBatch::try_from_iter([
                    ("id", ids),
                    ("pod", names),
                    ("namespace", views),
                    ("protocol", kinds),
                ])
                .expect("batch")
            })
            .collect()
    }

    fn stream(batches: &[RecordBatch], compression: Option<CompressionType>) -> Vec<u8> {
        let options =
            IpcWriteOptions::default().try_with_compression(compression).expect("options");
        let mut writer =
            StreamWriter::try_new_with_options(Vec::new(), &batches[0].schema(), options)
                .expect("writer");
        for batch in batches {
            writer.write(batch).expect("write");
        }
        writer.into_inner().expect("finish")
    }

    /// Feeds `bytes` in blocks of `block` bytes and collects every batch.
    fn decode(bytes: &[u8], block: usize, trust: Trust) -> Result<Vec<RecordBatch>, String> {
        let mut blocks = IpcBlocks::new(batches()[0].schema(), trust);
        let mut out = Vec::new();
        for chunk in bytes.chunks(block) {
            blocks.push(Bytes::copy_from_slice(chunk));
            while let Some(batch) = blocks.next_batch()? {
                out.push(batch);
            }
        }
        blocks.finish()?;
        Ok(out)
    }

    #[test]
    fn batches_come_back_whole_whatever_the_block_size_and_compression() {
        let written = batches();
        for compression in [None, Some(CompressionType::LZ4_FRAME), Some(CompressionType::ZSTD)] {
            let bytes = stream(&written, compression);
            for block in [1, 3, 8, 13, 64, 1000, bytes.len() / 2 + 1, bytes.len()] {
                for trust in [Trust::Nothing, Trust::WrittenByOurExecutor] {
                    let read = decode(&bytes, block, trust).expect("decodes");
                    assert_eq!(read, written, "{compression:?}, blocks of {block}, {trust:?}");
                }
            }
        }
    }

    #[test]
    fn streams_one_after_another_are_read_as_one() {
        // A sort shuffle sends a schema-only stream ahead of the partition's stream.
        let written = batches();
        let mut bytes = stream(&written[..1], None);
        let schema_only = {
            let writer = StreamWriter::try_new(Vec::new(), &written[0].schema()).expect("writer");
            writer.into_inner().expect("finish")
        };
        bytes.splice(0..0, schema_only);
        bytes.extend(stream(&written[1..], Some(CompressionType::LZ4_FRAME)));
        for block in [5, 100, bytes.len()] {
            assert_eq!(decode(&bytes, block, Trust::Nothing).expect("decodes"), written);
        }
    }

    #[test]
    fn a_stream_cut_short_anywhere_is_an_error_never_a_short_result() {
        let written = batches();
        let bytes = stream(&written, Some(CompressionType::LZ4_FRAME));
        // Every cut except at a message boundary must fail; a cut at a boundary returns the
        // batches before it (the transport reports a broken connection itself).
        let mut boundaries = 0;
        for cut in 1..bytes.len() {
            match decode(&bytes[..cut], 97, Trust::Nothing) {
                Err(e) => assert!(e.contains("ended inside a message"), "cut at {cut}: {e}"),
                Ok(read) => {
                    boundaries += 1;
                    assert!(read.len() < written.len() || cut >= bytes.len() - 8, "cut at {cut}");
                    assert_eq!(read[..], written[..read.len()], "cut at {cut}");
                }
            }
        }
        // schema, four batches, and the end-of-stream marker's first half
        assert!(boundaries <= 6, "{boundaries} cuts decoded without an error");
    }

    #[test]
    fn corrupt_bytes_are_an_error_that_names_the_byte() {
        let written = batches();
        let clean = stream(&written, None);
        let mut errors = 0;
        for at in (0..clean.len()).step_by(7) {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x5A;
            // Checked decoding: a flipped byte is either harmless (padding, a value) or an error
            // that names where; it never panics.
            if let Err(e) = decode(&bytes, 64, Trust::Nothing) {
                errors += 1;
                assert!(e.contains("byte"), "{e}");
            }
        }
        assert!(errors > 0, "no flipped byte was noticed");
        let e = decode(b"not an arrow stream at all", 4, Trust::Nothing).expect_err("garbage");
        assert!(e.contains("byte 0"), "{e}");
    }
}
