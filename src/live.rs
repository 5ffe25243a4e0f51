//! Live capture for `podwire standalone` and `podwire capture`: the eBPF programs attached to
//! this machine's interfaces feed the same pipeline as capture files, until SIGTERM, Ctrl-C or
//! `--duration`.
//!
//! Prometheus metrics (`--metrics-listen`), all counters since the start:
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `podwire_capture_packets_total` | | packets accounted for (counted on a connection, or skipped) |
//! | `podwire_capture_packets_tracked_total` | | packets counted on a connection |
//! | `podwire_capture_packets_skipped_total` | `reason` | packets not turned into records (not_ip, bad_ip_header, ...) |
//! | `podwire_capture_connections_total` | `outcome` | connections finished |
//! | `podwire_capture_connections_evicted_total` | | finished early: the tracker's table was full |
//! | `podwire_capture_dns_transactions_total` | | DNS transactions |
//! | `podwire_capture_kernel_packets_seen_total` | | packets the eBPF programs ran on (all interfaces, both directions) |
//! | `podwire_capture_kernel_packets_deduplicated_total` | | seen on a second interface, counted once |
//! | `podwire_capture_kernel_packets_filtered_total` | | outside the capture filter |
//! | `podwire_capture_kernel_events_lost_total` | | counted without details: ring buffer full |
//! | `podwire_capture_kernel_packets_lost_total` | | not counted: flow table full, or ICMP/fragment with the ring buffer full |
//! | `podwire_capture_kernel_flows_evicted_total` | | flows the kernel table dropped before they were read |
//! | `podwire_capture_interfaces` | | interfaces attached now (gauge) |
use crate::agent::InventoryFile;
use crate::cli::LiveArgs;
use podwire_capture::ebpf::{Filter, InterfaceSpec, LiveCapture, LiveConfig, Role};
use podwire_capture::metrics::CaptureMetrics;
use podwire_capture::pipeline::{BatchSink, Pipeline};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The tracker settings of a live capture: `node` defaults to the hostname, and a closed TCP
/// connection lingers 2 s (not the 10 s of files), so its row is written sooner.
pub(crate) fn tracker_config(
    t: &crate::cli::TrackerArgs,
) -> podwire_capture::tracker::TrackerConfig {
    use podwire_capture::tracker::TrackerConfig;
    crate::agent::tracker_settings(t, TrackerConfig::for_live(&crate::agent::hostname()))
}

fn config(
    args: &LiveArgs,
    tracker: &crate::cli::TrackerArgs,
    inventory: Option<&InventoryFile>,
) -> LiveConfig {
    let mut interfaces = Vec::new();
    let specs = [
        (&args.interface, Role::Plain),
        (&args.pod_interface, Role::Pod),
        (&args.host_interface, Role::Host),
    ];
    for (names, role) in specs {
        interfaces.extend(names.iter().map(|n| InterfaceSpec { pattern: n.clone(), role }));
    }
    LiveConfig {
        interfaces,
        pod_cidrs: args.pod_cidr.clone(),
        filter: Filter {
            cidrs: args.only_cidr.clone(),
            ports: args.only_port.clone(),
            pods: args
                .only_namespace
                .iter()
                .map(|n| ("namespace".to_string(), n.clone()))
                .chain(args.only_workload.iter().map(|w| ("workload".to_string(), w.clone())))
                .chain(args.only_label.iter().map(|l| ("label".to_string(), l.clone())))
                .chain(args.only_pod_regex.iter().map(|r| ("pod-regex".to_string(), r.clone())))
                .collect(),
            exclude: args
                .exclude_namespace
                .iter()
                .map(|n| ("namespace".to_string(), n.clone()))
                .collect(),
        },
        filter_file: args.filter_file.clone(),
        kernel_flows: args.kernel_flows,
        ring_bytes: u32::try_from(args.ring_bytes).unwrap_or(1 << 30),
        read_interval: args.read_interval.max(Duration::from_millis(50)),
        flush_interval: args.flush_interval.max(Duration::from_millis(100)),
        all_events: tracker.packets,
        protocols: tracker.protocols(),
        resolver: inventory.map(InventoryFile::resolver),
    }
}

/// Sets the returned flag on SIGTERM or Ctrl-C; serves the metrics meanwhile when asked.
fn stop_on_signal(
    metrics: Option<(std::net::SocketAddr, Arc<CaptureMetrics>)>,
) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let Some((listen, m)) = metrics {
        rt.block_on(crate::serve::spawn_metrics(listen, Arc::new(move || m.encode())))?;
    }
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        rt.block_on(crate::serve::shutdown_signal());
        flag.store(true, Ordering::Relaxed);
    })?;
    Ok(stop)
}

/// Captures on the interfaces of `args` into `pipeline` until stopped; the caller finishes the
/// pipeline.
pub(crate) fn run<S: BatchSink>(
    args: &LiveArgs,
    tracker: &crate::cli::TrackerArgs,
    inventory: Option<&InventoryFile>,
    pipeline: &mut Pipeline<S>,
    quiet: bool,
) -> anyhow::Result<()> {
    let metrics = Arc::new(CaptureMetrics::new());
    let stop = stop_on_signal(args.metrics_listen.map(|a| (a, Arc::clone(&metrics))))?;
    let cfg = config(args, tracker, inventory);
    cfg.filter.validate().map_err(|e| anyhow::anyhow!("--only-pod-regex: {e}"))?;
    let mut live = LiveCapture::start(cfg)?;
    let names = live.interface_names();
    pipeline.set_source(&format!("ebpf:{}", names.join(",")));
    tracing::info!(interfaces = ?names, "Capturing; stop with Ctrl-C or SIGTERM.");
    // A line tests and scripts can wait for.
    if !quiet {
        eprintln!("capturing on {}", names.join(", "));
    }
    let until = args.duration.map(|d| Instant::now() + d);
    let mut last_log = Instant::now();
    live.run(pipeline, &stop, until, |stats, attached| {
        metrics.update(stats, attached);
        if last_log.elapsed() >= Duration::from_secs(30) {
            last_log = Instant::now();
            let k = &stats.kernel;
            tracing::info!(
                packets = stats.frames,
                connections = stats.connections(),
                kernel_seen = k.seen,
                deduplicated = k.deduplicated,
                lost = k.packets_lost,
                events_lost = k.events_lost,
                "Capturing."
            );
        }
    });
    drop(live);
    tracing::info!("Programs detached.");
    if let Some(e) = pipeline.sink_error() {
        anyhow::bail!("output failed: {e}");
    }
    Ok(())
}
