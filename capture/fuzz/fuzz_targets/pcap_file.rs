//! Any bytes as a capture file through the whole pipeline: an error or rows, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use podwire_capture::pipeline::{MemorySink, Pipeline, PipelineConfig};
use podwire_capture::source::PcapFile;

fuzz_target!(|data: &[u8]| {
    let file = PcapFile::named(std::path::Path::new("fuzz.pcap"), data.len() as u64);
    let mut p = Pipeline::new(PipelineConfig::default(), MemorySink::default());
    let _ = file.read_from(data, |f| p.on_frame(f));
    let _ = p.finish();
});
