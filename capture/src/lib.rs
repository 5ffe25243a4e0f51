//! podwire's capture core: packets in, connection and DNS records out.
//!
//! - [`source`]: packet sources (pcap and pcapng files); `ebpf` (feature `ebpf`): live capture
//!   with TC classifiers that count in the kernel.
//! - [`decode`]: link, VLAN, IP, tunnel and transport decoding; [`frag`]: IP reassembly;
//!   [`packet`]: the segment a packet was seen on and why one was skipped (both use them).
//! - [`tracker`]: the connection tracker (TCP state, UDP/ICMP pseudo-connections, ICMP errors,
//!   timeouts, interim rows, a bounded table).
//! - [`dns`]: DNS transactions and the time-aware IP → resolved-name index.
//! - [`protocols`]: the protocol switches (which traffic becomes records).
//! - [`stats`]: what was read, made and skipped, and why; `metrics` (with `ebpf`): the live
//!   capture's Prometheus metrics from them.
//! - [`pipeline`]: source → decoder → tracker → Arrow batches → a [`pipeline::BatchSink`].
//! - [`kafka`]: the Kafka sink, batches as Arrow IPC messages, one topic per table.
//! - [`error`]: the errors of sources and the pipeline.
pub mod decode;
pub mod dns;
#[cfg(all(feature = "ebpf", target_os = "linux"))]
pub mod ebpf;
pub mod error;
pub mod frag;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(all(feature = "ebpf", target_os = "linux"))]
pub mod metrics;
pub mod packet;
pub mod pipeline;
pub mod protocols;
pub mod source;
pub mod stats;
pub mod tracker;

/// Whether this build carries the live-capture programs (`in`), or why not: the `ebpf`
/// feature left out, or clang or libbpf's headers missing when it was built (`build.rs`).
/// `podwire --version` prints it.
pub const LIVE_CAPTURE: &str = match option_env!("PODWIRE_EBPF_BUILD") {
    Some(s) => s,
    None => "left out (built without the `ebpf` feature)",
};

pub use error::{Error, Result};
