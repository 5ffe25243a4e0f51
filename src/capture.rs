//! `podwire capture`: capture files → tracker → Arrow batches → Kafka (a node agent).
use crate::agent::hostname;
use crate::agent::{open_files, read_files, tracker_config};
use crate::cli::CaptureArgs;
use podwire_capture::kafka::{KafkaSink, KafkaSinkConfig};
use podwire_capture::pipeline::{Pipeline, PipelineConfig};
use podwire_schemas::Table;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

pub(crate) fn run(args: &CaptureArgs, quiet: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let files = if args.live.enabled() { Vec::new() } else { open_files(&args.pcap)? };
    let k = &args.kafka;
    let mut tables = vec![Table::Connections, Table::Dns, Table::CaptureStats];
    if args.tracker.packets {
        tables.push(Table::Packets);
    }
    k.ensure_topics(&tables.iter().map(|t| k.topic(*t)).collect::<Vec<_>>())?;
    let node = if args.tracker.node.is_empty() { hostname() } else { args.tracker.node.clone() };
    let config = KafkaSinkConfig {
        client: k.settings(),
        topic_prefix: k.topic_prefix.clone(),
        node: node.clone(),
        queue_bytes: args.queue_bytes,
        delivery_timeout: args.delivery_timeout,
    };
    let sink = KafkaSink::new(config)?;
    tracing::info!(brokers = %k.brokers, node = %node, producer = sink.producer_id(), "Sending batches to Kafka.");
    let mut tracker = if args.live.enabled() {
        crate::live::tracker_config(&args.tracker)
    } else {
        tracker_config(&args.tracker)
    };
    tracker.node = node;
    let mut pipeline = Pipeline::new(PipelineConfig { tracker, ..PipelineConfig::default() }, sink);
    let (capture_error, live_error) = if args.live.enabled() {
        let inventory =
            args.inventory.as_deref().map(crate::agent::InventoryFile::load).transpose()?;
        (
            None,
            crate::live::run(&args.live, &args.tracker, inventory.as_ref(), &mut pipeline, quiet)
                .err(),
        )
    } else {
        (read_files(&mut pipeline, &files, quiet), None)
    };
    let (sink, stats) = pipeline.finish()?;
    let c = sink.finish(args.flush_timeout);
    let (sent, delivered, dropped) = (
        c.sent_messages.load(Relaxed),
        c.delivered_messages.load(Relaxed),
        c.dropped_messages.load(Relaxed),
    );
    let dropped_rows = c.dropped_rows.load(Relaxed);
    tracing::info!(
        packets = stats.frames,
        connections = stats.connections(),
        dns = stats.dns_rows,
        messages = sent,
        delivered,
        dropped,
        dropped_rows,
        bytes = c.sent_bytes.load(Relaxed),
        seconds = started.elapsed().as_secs_f64(),
        "Capture sent."
    );
    if !quiet {
        eprintln!("{stats}");
        eprintln!(
            "kafka: {sent} messages ({} rows, {} bytes) sent, {delivered} delivered, {dropped} dropped ({dropped_rows} rows)",
            c.sent_rows.load(Relaxed),
            c.sent_bytes.load(Relaxed)
        );
    }
    if let Some(e) = live_error {
        return Err(e.context("live capture failed (the rows made before were sent)"));
    }
    if let Some(e) = capture_error {
        return Err(anyhow::Error::new(e)
            .context("the capture stopped early (the rows read before the error were sent)"));
    }
    if dropped > 0 {
        anyhow::bail!(
            "{dropped} messages ({dropped_rows} rows) could not be delivered to {} (broker down longer than \
             --delivery-timeout, or the queue was full: see --queue-bytes)",
            k.brokers
        );
    }
    Ok(())
}
