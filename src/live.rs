//! Live capture for `podwire standalone` and `podwire capture`: the eBPF programs attached to
//! this machine's interfaces feed the same pipeline as capture files, until SIGTERM, Ctrl-C or
//! `--duration`.
use crate::cli::LiveArgs;
use podwire_capture::ebpf::{Filter, InterfaceSpec, LiveCapture, LiveConfig, Role};
use podwire_capture::pipeline::{BatchSink, Pipeline};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn config(args: &LiveArgs, packets_table: bool) -> LiveConfig {
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
        filter: Filter { cidrs: args.only_cidr.clone(), ports: args.only_port.clone() },
        filter_file: args.filter_file.clone(),
        kernel_flows: args.kernel_flows,
        ring_bytes: u32::try_from(args.ring_bytes).unwrap_or(1 << 30),
        read_interval: args.read_interval.max(Duration::from_millis(50)),
        flush_interval: args.flush_interval.max(Duration::from_millis(100)),
        all_events: packets_table,
    }
}

/// Sets the returned flag on SIGTERM or Ctrl-C.
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
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
    packets_table: bool,
    pipeline: &mut Pipeline<S>,
) -> anyhow::Result<()> {
    let stop = stop_on_signal()?;
    let mut live = LiveCapture::start(config(args, packets_table))?;
    let names = live.interface_names();
    pipeline.set_source(&format!("ebpf:{}", names.join(",")));
    tracing::info!(interfaces = ?names, "Capturing; stop with Ctrl-C or SIGTERM.");
    // A line tests and scripts can wait for.
    if !crate::standalone::quiet_logs() {
        eprintln!("capturing on {}", names.join(", "));
    }
    let until = args.duration.map(|d| Instant::now() + d);
    let mut last_log = Instant::now();
    live.run(pipeline, &stop, until, |stats| {
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
