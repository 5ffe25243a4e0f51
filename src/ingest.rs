//! `podwire ingest`: Kafka → decode and check → enrich → Parquet, committing offsets after the
//! files are durable; Prometheus metrics over HTTP; SIGTERM writes what is buffered and exits.
use crate::cli::IngestArgs;
use anyhow::Context as _;
use podwire_ingest::enrich::Enricher;
use podwire_ingest::inventory::SharedInventory;
use podwire_ingest::kafka::{Ingest, KafkaIngestConfig};
use podwire_ingest::location::Location;
use podwire_ingest::metrics::IngestMetrics;
use podwire_ingest::segment::RollPolicy;
use podwire_ingest::store::StoreConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

pub(crate) fn run(args: &IngestArgs) -> anyhow::Result<()> {
    let inventory = crate::agent::load_inventory(args.inventory.as_deref())?;
    let shared = SharedInventory::new(inventory);
    let enricher = Enricher::shared(shared.clone());
    let location = Location::parse(&args.store)?;
    location.create().with_context(|| format!("cannot create the store folder `{location}`"))?;
    let k = &args.kafka;
    let tables = crate::cli::TableArg::tables(&args.tables);
    let mut topics: Vec<String> = tables.iter().map(|t| k.topic(*t)).collect();
    topics.push(podwire_schemas::wire::dead_letter_topic(&k.topic_prefix));
    k.ensure_topics(&topics)?;
    let config = KafkaIngestConfig {
        client: k.settings(),
        group: args.group.clone(),
        topic_prefix: k.topic_prefix.clone(),
        tables,
        roll: RollPolicy { max_bytes: args.roll_bytes, max_age: args.roll_age },
        store: StoreConfig::at(location.clone()),
    };
    let metrics = Arc::new(IngestMetrics::new());
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    // Metrics and health on their own port.
    if let Some(listen) = args.metrics_listen {
        let m = Arc::clone(&metrics);
        runtime.block_on(crate::serve::spawn_metrics(listen, Arc::new(move || m.encode())))?;
    }
    if args.kube {
        let client = runtime
            .block_on(kube::Client::try_default())
            .context("cannot reach the Kubernetes API (in-cluster config, or KUBECONFIG)")?;
        let (tx, synced) = tokio::sync::oneshot::channel();
        runtime.spawn(podwire_ingest::kube_watch::watch(
            client,
            shared.clone(),
            args.kube_retention,
            Some(tx),
        ));
        // Records enriched before the first full listing would go unnamed: wait for it.
        let wait = std::time::Duration::from_secs(60);
        if runtime.block_on(tokio::time::timeout(wait, synced)).is_err() {
            tracing::warn!(
                "The Kubernetes watch has not listed everything after 60 s; ingesting anyway (early rows may lack pod names)."
            );
        }
    }
    let retention = match args.retention {
        Some(keep) => {
            tracing::info!(keep = %humantime::format_duration(keep), "Retention on: older hours are deleted hourly.");
            Some(
                crate::expire::spawn_hourly(
                    location.clone(),
                    keep,
                    Arc::clone(&metrics),
                    Arc::clone(&stop),
                )
                .context("cannot start the retention thread")?,
            )
        }
        None => None,
    };
    let compaction = match args.compact_every {
        Some(every) => {
            tracing::info!(every = %humantime::format_duration(every), "Compaction on: closed hours' small files are merged.");
            Some(
                crate::expire::spawn_compaction(
                    location.clone(),
                    every,
                    Arc::clone(&metrics),
                    Arc::clone(&stop),
                )
                .context("cannot start the compaction thread")?,
            )
        }
        None => None,
    };
    let s = Arc::clone(&stop);
    runtime.spawn(async move {
        crate::serve::shutdown_signal().await;
        tracing::info!("Stopping: writing and committing what is buffered.");
        s.store(true, Relaxed);
    });
    tracing::info!(brokers = %k.brokers, group = %args.group, store = %location, "Ingesting.");
    let result = Ingest::new(&config, &enricher, &metrics, &stop).and_then(|i| i.run());
    stop.store(true, Relaxed);
    for t in [retention, compaction].into_iter().flatten() {
        let _ = t.join();
    }
    let stats = result?;
    tracing::info!(
        messages = stats.messages,
        dead_letters = stats.dead_letters,
        segments = stats.segments,
        "Ingest stopped."
    );
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
