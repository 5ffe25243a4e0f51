//! What the node-agent commands share (`capture`, live capture, `standalone`): the machine's
//! name, the tracker's settings from the command line, the inventory, and reading capture files.
//! Each of those commands uses this; none of them uses another's module.
use crate::cli::TrackerArgs;
use indicatif::{ProgressBar, ProgressStyle};
use podwire_capture::ebpf::{EVERY_POD, Resolver};
use podwire_capture::pipeline::{BatchSink, Pipeline};
use podwire_capture::source::PcapFile;
use podwire_capture::tracker::TrackerConfig;
use podwire_ingest::inventory::{Inventory, SharedInventory};
use podwire_ingest::selector::PodSelector;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// This machine's name, for `node` when --node is not given.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The tracker settings of the command line over `base` ([`TrackerConfig::for_files`] or
/// [`TrackerConfig::for_live`]): what a flag gives wins, the rest is the base's.
pub(crate) fn tracker_settings(t: &TrackerArgs, base: TrackerConfig) -> TrackerConfig {
    let ns = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    TrackerConfig {
        node: if t.node.is_empty() { base.node.clone() } else { t.node.clone() },
        active_timeout_ns: ns(t.active_timeout),
        udp_idle_timeout_ns: ns(t.udp_timeout),
        tcp_idle_timeout_ns: ns(t.tcp_timeout),
        tcp_close_linger_ns: t.tcp_close_linger.map_or(base.tcp_close_linger_ns, ns),
        max_connections: t.max_connections.max(16),
        packets_table: t.packets,
        protocols: t.protocols(),
        ..base
    }
}

/// The tracker settings for reading capture files.
pub(crate) fn tracker_config(t: &TrackerArgs) -> TrackerConfig {
    tracker_settings(t, TrackerConfig::for_files())
}

pub(crate) fn load_inventory(inventory: Option<&Path>) -> anyhow::Result<Inventory> {
    // Without an inventory, enrichment still names external ends by their DNS name.
    Ok(match inventory {
        Some(path) => {
            let inv = Inventory::from_file(path)?;
            tracing::info!(path = %path.display(), addresses = inv.len(), objects = ?inv.counts, "Inventory loaded.");
            inv
        }
        None => Inventory::default(),
    })
}

/// Opens the capture files; `-` is standard input (`tcpdump -w - | podwire … --pcap -`).
pub(crate) fn open_files(pcaps: &[PathBuf]) -> anyhow::Result<Vec<PcapFile>> {
    let is_stdin = |p: &Path| p.as_os_str() == "-";
    Ok(pcaps
        .iter()
        .map(|p| {
            if is_stdin(p) { Ok(PcapFile::named(Path::new("stdin"), 0)) } else { PcapFile::new(p) }
        })
        .collect::<Result<Vec<_>, _>>()?)
}

/// Reads every file through `pipeline`, with a progress bar on a terminal. Returns the capture
/// error that stopped the reading early, if any (what was read before it is in the pipeline).
/// A sink that failed stops the reading too; [`Pipeline::finish`] returns its error.
pub(crate) fn read_files<S: BatchSink>(
    pipeline: &mut Pipeline<S>,
    files: &[PcapFile],
    quiet: bool,
) -> Option<podwire_capture::Error> {
    let total: u64 = files.iter().map(|f| f.len).sum();
    let bar = if std::io::stderr().is_terminal() && !quiet {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bar:30} {percent}% {msg} ({eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut done_bytes = 0u64;
    let mut capture_error = None;
    for file in files {
        bar.set_message(file.path().display().to_string());
        let name =
            file.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        pipeline.set_source(&format!("pcap:{name}"));
        let on_frame = |frame: podwire_capture::source::Frame<'_>| {
            pipeline.on_frame(frame);
            if pipeline.stats().frames.is_multiple_of(8192) {
                bar.set_position(done_bytes + frame.offset);
            }
        };
        let result = if file.len == 0 && file.path() == Path::new("stdin") {
            file.read_from(std::io::stdin(), on_frame)
        } else {
            file.for_each(on_frame)
        };
        done_bytes += file.len;
        if let Err(e) = result {
            capture_error = Some(e);
            break;
        }
        if pipeline.sink_error().is_some() {
            break;
        }
    }
    bar.finish_and_clear();
    capture_error
}

/// An inventory file shared by enrichment and the capture filter's pod selectors, re-read when it
/// changes (checked when the selectors are resolved, every 5 s).
#[derive(Debug, Clone)]
pub(crate) struct InventoryFile {
    path: PathBuf,
    pub(crate) shared: SharedInventory,
    mtime: Arc<std::sync::Mutex<Option<std::time::SystemTime>>>,
}

impl InventoryFile {
    pub(crate) fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let inv = crate::agent::load_inventory(Some(path))?;
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(InventoryFile {
            path: path.to_path_buf(),
            shared: SharedInventory::new(inv),
            mtime: Arc::new(std::sync::Mutex::new(mtime)),
        })
    }

    /// Re-reads the file if it changed; a file that does not parse leaves the old inventory.
    fn refresh(&self) {
        let now = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let Ok(mut seen) = self.mtime.lock() else { return };
        if now == *seen {
            return;
        }
        *seen = now;
        match Inventory::from_file(&self.path) {
            Ok(inv) => {
                tracing::info!(path = %self.path.display(), addresses = inv.len(), "Inventory reloaded.");
                self.shared.set(inv);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Inventory file not reloaded; the previous one stays.")
            }
        }
    }

    /// Pod selectors → addresses, with the inventory as of now.
    pub(crate) fn resolver(&self) -> Resolver {
        let me = self.clone();
        Arc::new(move |kind: &str, value: &str| {
            me.refresh();
            let selector = if kind == EVERY_POD {
                Ok(PodSelector::EveryPod)
            } else {
                PodSelector::parse(kind, value)
            };
            // Checked when the filter was set (`Filter::validate`): a bad one matches nothing.
            let Ok(selector) = selector else { return Vec::new() };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            me.shared.get().addresses_where(now, |id| selector.matches(id))
        })
    }
}
