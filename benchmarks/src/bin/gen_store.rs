//! Writes a large, realistic `connections` store for query benchmarks, through the project's own
//! row builder (`podwire_schemas::connections::ConnectionsBuilder`) and the in-process bus of
//! `podwire standalone` (`podwire_ingest::writer::InProcess`, without enrichment: the rows come
//! named), so the files are exactly what `standalone` and `ingest` write: same schema, sorting,
//! partitioning, compression and statistics; one file per hour.
//!
//!     cargo run --release -p podwire-benchmarks --bin gen_store -- \
//!         --rows 10000000 --days 14 --seed 1 --out /work/bench-store
//!
//! The cluster: 39 namespaces, 72 workloads (Deployments, StatefulSets, DaemonSets) with 2–20
//! replicas each, pods replaced by rollouts and restarts (new names, new IPs from
//! 10.244.<node>.0/24), ~150 services with ClusterIPs in 10.96.0.0/12, 20 nodes. Traffic:
//! weighted service pairs (a few hot ones, a long tail), DNS to kube-dns, ~10 % to the outside
//! (a few hundred DNS names, a few thousand IPs), ingress from the internet, kubelet probes,
//! Prometheus scrapes, log shipping, API-server watches, pings; a diurnal rate; a few % failures;
//! long connections with interim rows. Deterministic for a given seed.
use anyhow::Context as _;
use arrow::record_batch::RecordBatch;
use clap::Parser;
use podwire_ingest::metrics::IngestMetrics;
use podwire_ingest::segment::RollPolicy;
use podwire_ingest::store::StoreConfig;
use podwire_ingest::writer::InProcess;
use podwire_schemas::connections::col::START_TS;
use podwire_schemas::connections::{
    ConnectionRecord, ConnectionsBuilder, DirCounters, by, flag, outcome, protocol,
};
use podwire_schemas::{EndpointMeta, Table};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The allocator `podwire` uses (the workspace Cargo.toml says why).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Writes a realistic podwire `connections` store (Hive-partitioned Parquet) for benchmarks.
///
/// The store starts at 2026-11-01T00:00:00Z and covers DAYS days, one hour folder per hour. Rows
/// follow a diurnal rate (lower at night and at weekends); the same seed gives the same files.
/// Only the `connections` table is written.
#[derive(Debug, Parser)]
#[command(name = "gen_store")]
struct Args {
    /// Rows to write, interim rows included.
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Days of history, from 2026-11-01 (UTC).
    #[arg(long, default_value_t = 14)]
    days: u32,
    /// Seed of the random generator: the same seed, rows and days give the same store.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The store folder to write (created if missing; files of the same name are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Files (and Delta commits) per hour: each hour's rows are cut by start time into this
    /// many slices, as ingest's rolls would write them (720: a roll every 5 s), without Bloom
    /// filters. 1: an hour per file, with Bloom filters, as a compacted store holds.
    #[arg(long, default_value_t = 1)]
    files_per_hour: u32,
}

/// `batch` (an hour's rows from `hour_start`, µs) cut into `n` slices of equal time by start
/// time, as rolls every `1 h / n` would write them (slices without rows left out).
fn slices(batch: &RecordBatch, hour_start: i64, n: u32) -> anyhow::Result<Vec<RecordBatch>> {
    use arrow::array::AsArray as _;
    use arrow::datatypes::Int64Type;
    if n <= 1 || batch.num_rows() == 0 {
        return Ok(vec![batch.clone()]);
    }
    let start = batch.column_by_name(START_TS).context("no start_ts column")?;
    let order = arrow::compute::sort_to_indices(start, None, None)?;
    let sorted = arrow::compute::take_record_batch(batch, &order)?;
    let ts = arrow::compute::cast(
        sorted.column_by_name(START_TS).context("start_ts")?,
        &arrow::datatypes::DataType::Int64,
    )?;
    let ts = ts.as_primitive::<Int64Type>().values();
    let step = HOUR / i64::from(n);
    let mut out = Vec::new();
    let mut from = 0;
    for k in 1..=i64::from(n) {
        // Rows that ran past the hour (started late in it) go in the last slice.
        let end = if k == i64::from(n) {
            ts.len()
        } else {
            ts.partition_point(|t| *t < hour_start + k * step)
        };
        if end > from {
            out.push(sorted.slice(from, end - from));
            from = end;
        }
    }
    Ok(out)
}

/// 2026-11-01T00:00:00Z, a Sunday, in µs.
const PERIOD_START: i64 = 1_793_491_200 * SEC;
const SEC: i64 = 1_000_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// Share of rows that does not follow the diurnal curve (probes, scrapes, logs, watches).
const FLAT_SHARE: f64 = 0.15;
/// The router that sends ICMP errors for unreachable hosts.
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// TCP maximum segment size, for packet counts.
const MSS: u64 = 1448;
/// IP + TCP header bytes per segment (with timestamps).
const TCP_HDR: u64 = 52;
/// IP + UDP header bytes per datagram.
const UDP_HDR: u64 = 28;

// ---------------------------------------------------------------------------------------------
// Random numbers: splitmix64, no dependencies.

#[derive(Debug, Clone)]
struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        Rng(mix(seed ^ mix(stream.wrapping_add(0x5eed))))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `0..n` for time spans.
    fn below_i64(&mut self, n: i64) -> i64 {
        ((u128::from(self.next_u64()) * n.max(1) as u128) >> 64) as i64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with this median.
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Exponential with this mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    fn pick<'a, T>(&mut self, s: &'a [T]) -> &'a T {
        &s[self.below(s.len())]
    }

    /// A Linux ephemeral port.
    fn ephemeral(&mut self) -> u16 {
        32_768 + self.below(28_232) as u16
    }

    /// `len` characters from Kubernetes' name-suffix alphabet.
    fn suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len).map(|_| char::from(ALPHABET[self.below(ALPHABET.len())])).collect()
    }

    /// A public IPv4 address (no private, shared, loopback, link-local or multicast ranges).
    fn public_ip(&mut self) -> Ipv4Addr {
        const FIRST: [u8; 24] = [
            3, 13, 18, 23, 34, 35, 44, 52, 54, 64, 76, 99, 104, 108, 140, 142, 146, 151, 157, 162,
            185, 199, 205, 216,
        ];
        let a = *self.pick(&FIRST);
        Ipv4Addr::new(a, self.below(256) as u8, self.below(256) as u8, 1 + self.below(254) as u8)
    }
}

/// Samples indices in proportion to their weights.
#[derive(Debug)]
struct Weighted {
    cum: Vec<f64>,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let cum = weights
            .into_iter()
            .map(|w| {
                acc += w.max(0.0);
                acc
            })
            .collect();
        Weighted { cum }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let total = self.cum.last().copied().unwrap_or(0.0);
        let x = rng.unit() * total;
        self.cum.partition_point(|&c| c <= x).min(self.cum.len().saturating_sub(1))
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
        }
    }
}

/// What a workload serves; decides the traffic to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Http,
    Grpc,
    Db,
    Cache,
    Kafka,
    Search,
    Dns,
    Agent,
    Ingress,
}

#[derive(Debug)]
struct Spec {
    ns: &'static str,
    name: &'static str,
    kind: Kind,
    /// Replicas; DaemonSets run one pod per node.
    replicas: usize,
    port: u16,
    role: Role,
}

const fn spec(
    ns: &'static str,
    name: &'static str,
    kind: Kind,
    replicas: usize,
    port: u16,
    role: Role,
) -> Spec {
    Spec { ns, name, kind, replicas, port, role }
}

use Kind::{DaemonSet as DS, Deployment as D, StatefulSet as SS};

/// Workloads: platform first, then the business (a shop).
const SPECS: &[Spec] = &[
    spec("kube-system", "coredns", D, 2, 53, Role::Dns),
    spec("kube-system", "metrics-server", D, 2, 10250, Role::Http),
    spec("ingress-nginx", "ingress-nginx-controller", D, 4, 443, Role::Ingress),
    spec("cert-manager", "cert-manager", D, 2, 9402, Role::Http),
    spec("cert-manager", "cert-manager-webhook", D, 2, 10250, Role::Http),
    spec("monitoring", "prometheus", SS, 2, 9090, Role::Http),
    spec("monitoring", "alertmanager", SS, 3, 9093, Role::Http),
    spec("monitoring", "grafana", D, 2, 3000, Role::Http),
    spec("monitoring", "node-exporter", DS, 0, 9100, Role::Agent),
    spec("monitoring", "kube-state-metrics", D, 2, 8080, Role::Http),
    spec("monitoring", "blackbox-exporter", D, 2, 9115, Role::Http),
    spec("logging", "fluent-bit", DS, 0, 2020, Role::Agent),
    spec("logging", "loki", SS, 3, 3100, Role::Http),
    spec("tracing", "otel-collector", D, 3, 4317, Role::Grpc),
    spec("tracing", "tempo", SS, 2, 3200, Role::Grpc),
    spec("argocd", "argocd-server", D, 2, 8080, Role::Http),
    spec("argocd", "argocd-repo-server", D, 2, 8081, Role::Grpc),
    spec("argocd", "argocd-application-controller", SS, 2, 8082, Role::Http),
    spec("vault", "vault", SS, 3, 8200, Role::Http),
    spec("kyverno", "kyverno", D, 3, 9443, Role::Http),
    spec("external-dns", "external-dns", D, 2, 7979, Role::Http),
    spec("frontend", "web", D, 12, 3000, Role::Http),
    spec("frontend", "bff", D, 8, 8080, Role::Http),
    spec("gateway", "api-gateway", D, 6, 8443, Role::Http),
    spec("mobile", "mobile-api", D, 6, 8080, Role::Http),
    spec("shop", "storefront", D, 10, 8080, Role::Http),
    spec("shop", "catalog", D, 8, 8080, Role::Http),
    spec("shop", "cart", D, 6, 8080, Role::Http),
    spec("shop", "checkout", D, 6, 8080, Role::Http),
    spec("shop", "redis-cart", SS, 3, 6379, Role::Cache),
    spec("shop", "mongodb-catalog", SS, 3, 27017, Role::Db),
    spec("payments", "payments-api", D, 6, 8443, Role::Http),
    spec("payments", "fraud-check", D, 4, 50051, Role::Grpc),
    spec("payments", "ledger", D, 3, 8080, Role::Http),
    spec("payments", "postgres-payments", SS, 2, 5432, Role::Db),
    spec("orders", "orders-api", D, 6, 8080, Role::Http),
    spec("orders", "order-worker", D, 4, 8080, Role::Http),
    spec("orders", "postgres-orders", SS, 2, 5432, Role::Db),
    spec("inventory", "inventory", D, 4, 50051, Role::Grpc),
    spec("pricing", "pricing", D, 4, 50051, Role::Grpc),
    spec("shipping", "shipping", D, 3, 8080, Role::Http),
    spec("users", "users-api", D, 5, 8080, Role::Http),
    spec("users", "postgres-users", SS, 2, 5432, Role::Db),
    spec("auth", "auth", D, 4, 8080, Role::Http),
    spec("auth", "keycloak", SS, 2, 8080, Role::Http),
    spec("auth", "redis-sessions", SS, 3, 6379, Role::Cache),
    spec("notifications", "notifier", D, 4, 8080, Role::Http),
    spec("notifications", "email-sender", D, 3, 8080, Role::Http),
    spec("notifications", "sms-sender", D, 2, 8080, Role::Http),
    spec("search", "search-api", D, 4, 8080, Role::Http),
    spec("search", "elasticsearch", SS, 5, 9200, Role::Search),
    spec("recommendations", "recommender", D, 4, 50051, Role::Grpc),
    spec("recommendations", "feature-store", SS, 3, 6566, Role::Grpc),
    spec("reviews", "reviews", D, 3, 8080, Role::Http),
    spec("loyalty", "loyalty", D, 2, 8080, Role::Http),
    spec("analytics", "event-collector", D, 6, 8080, Role::Http),
    spec("analytics", "clickhouse", SS, 3, 9000, Role::Db),
    spec("data", "kafka", SS, 5, 9092, Role::Kafka),
    spec("data", "zookeeper", SS, 3, 2181, Role::Db),
    spec("data", "kafka-connect", D, 3, 8083, Role::Http),
    spec("data", "schema-registry", D, 2, 8081, Role::Http),
    spec("reporting", "report-builder", D, 2, 8080, Role::Http),
    spec("media", "image-resizer", D, 4, 8080, Role::Http),
    spec("cms", "cms", D, 2, 8080, Role::Http),
    spec("admin", "admin-portal", D, 2, 8080, Role::Http),
    spec("partners", "partner-gateway", D, 3, 8443, Role::Http),
    spec("partners", "webhook-dispatcher", D, 3, 8080, Role::Http),
    spec("ml", "model-server", D, 4, 8501, Role::Grpc),
    spec("staging-shop", "storefront", D, 2, 8080, Role::Http),
    spec("staging-shop", "cart", D, 2, 8080, Role::Http),
    spec("staging-payments", "payments-api", D, 2, 8443, Role::Http),
    spec("batch", "nightly-export", D, 2, 8080, Role::Http),
    spec("feature-flags", "unleash", D, 2, 4242, Role::Http),
];

/// Index of the first business workload in [`SPECS`].
const FIRST_BUSINESS: usize = 21;

#[derive(Debug)]
struct Pod {
    ip: Ipv4Addr,
    node: usize,
    meta: EndpointMeta,
}

/// One replica's pods over time: `pods[i]` holds the slot from `starts[i]`.
#[derive(Debug, Default)]
struct Slot {
    starts: Vec<i64>,
    pods: Vec<usize>,
}

#[derive(Debug)]
struct Workload {
    slots: Vec<Slot>,
    /// Services with a ClusterIP; the main one first.
    services: Vec<usize>,
}

#[derive(Debug)]
struct Service {
    ip: Ipv4Addr,
    /// `<name>.<namespace>.svc.cluster.local`, as clients resolve it.
    fqdn: Arc<str>,
    meta: EndpointMeta,
}

#[derive(Debug)]
struct Node {
    ip: Ipv4Addr,
    name: Arc<str>,
    meta: EndpointMeta,
}

#[derive(Debug)]
struct External {
    name: Arc<str>,
    /// `dst_name` falls back to the DNS name.
    meta: EndpointMeta,
    ips: Vec<Ipv4Addr>,
}

#[derive(Debug)]
struct Cluster {
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    workloads: Vec<Workload>,
    services: Vec<Service>,
    externals: Vec<External>,
    /// External addresses reached without a DNS name seen.
    bare_ips: Vec<Ipv4Addr>,
    /// Internet clients of the ingress, Zipf-weighted.
    internet: Vec<Ipv4Addr>,
    internet_w: Weighted,
    /// The `kubernetes` service (default/kubernetes, 10.96.0.1).
    api_service: usize,
    /// The API server's own addresses (after kube-proxy's NAT), not in the inventory.
    api_ips: [Ipv4Addr; 3],
    /// The VPC resolver coredns forwards to.
    resolver: Ipv4Addr,
    empty: EndpointMeta,
}

fn workload_index(ns: &str, name: &str) -> usize {
    SPECS
        .iter()
        .position(|s| s.ns == ns && s.name == name)
        .unwrap_or_else(|| panic!("no workload {ns}/{name}"))
}

/// A service ClusterIP in 10.96.0.0/12, avoiding .0.1 and .0.10 (kubernetes, kube-dns).
fn cluster_ip(rng: &mut Rng, used: &mut std::collections::HashSet<Ipv4Addr>) -> Ipv4Addr {
    loop {
        let b = 96 + rng.below(16) as u8;
        let ip = Ipv4Addr::new(10, b, rng.below(256) as u8, 1 + rng.below(254) as u8);
        if used.insert(ip) {
            return ip;
        }
    }
}

impl Cluster {
    fn build(seed: u64, days: u32) -> Cluster {
        let mut rng = Rng::new(seed, 1);
        let end = PERIOD_START + i64::from(days) * DAY;
        let empty = EndpointMeta::default();

        // 20 nodes in three subnets (availability zones).
        let mut nodes = Vec::new();
        for i in 0..20u8 {
            let ip = Ipv4Addr::new(10, 0, 16 * (1 + i % 3), 10 + rng.below(240) as u8);
            let o = ip.octets();
            let name: Arc<str> =
                format!("ip-10-0-{}-{}.eu-west-1.compute.internal", o[2], o[3]).into();
            let meta = EndpointMeta { node: name.to_string(), ..EndpointMeta::default() };
            nodes.push(Node { ip, name, meta });
        }

        // Services with a ClusterIP: the main one per workload (kube-dns for coredns; half of
        // the DaemonSets have none), and extra ones for some (metrics, grpc, admin, canary).
        // Headless services have no ClusterIP and are never a destination: left out.
        let mut used = std::collections::HashSet::new();
        let mut services = Vec::new();
        let svc = |ns: &str, name: &str, ip: Ipv4Addr, services: &mut Vec<Service>| {
            services.push(Service {
                ip,
                fqdn: format!("{name}.{ns}.svc.cluster.local").into(),
                meta: EndpointMeta {
                    name: name.into(),
                    namespace: ns.into(),
                    service: name.into(),
                    ..EndpointMeta::default()
                },
            });
            services.len() - 1
        };
        used.insert(Ipv4Addr::new(10, 96, 0, 1));
        used.insert(Ipv4Addr::new(10, 96, 0, 10));
        let api_service = svc("default", "kubernetes", Ipv4Addr::new(10, 96, 0, 1), &mut services);
        let mut workload_services = Vec::new();
        for s in SPECS {
            let mut list = Vec::new();
            if s.role == Role::Dns {
                list.push(svc(s.ns, "kube-dns", Ipv4Addr::new(10, 96, 0, 10), &mut services));
            } else if s.role != Role::Agent || rng.chance(0.5) {
                let ip = cluster_ip(&mut rng, &mut used);
                list.push(svc(s.ns, s.name, ip, &mut services));
            }
            for extra in ["metrics", "grpc", "admin", "canary"] {
                let p = match extra {
                    "metrics" => 0.65,
                    "grpc" if s.role == Role::Grpc => 0.6,
                    "admin" => 0.25,
                    "canary" if s.ns == "shop" || s.ns == "payments" => 0.5,
                    _ => 0.0,
                };
                if rng.chance(p) {
                    let ip = cluster_ip(&mut rng, &mut used);
                    list.push(svc(s.ns, &format!("{}-{extra}", s.name), ip, &mut services));
                }
            }
            workload_services.push(list);
        }

        // Pods: each replica slot is a sequence of pods, replaced by rollouts (new
        // ReplicaSet hash) and restarts/evictions; each new pod gets a new IP on its node.
        let mut pods = Vec::new();
        let mut next_ip: Vec<u8> = (0..nodes.len()).map(|_| 2 + rng.below(250) as u8).collect();
        let mut workloads = Vec::new();
        for (w, s) in SPECS.iter().enumerate() {
            let business = w >= FIRST_BUSINESS;
            let rollout_mean = match (s.kind, business) {
                (D, true) => 2.5,
                (D, false) => 6.0,
                (SS, _) => 7.0,
                (DS, _) => 9.0,
            } * DAY as f64;
            // Rollouts, from before the period to its end.
            let mut rollouts = Vec::new();
            let mut t = PERIOD_START - rng.below_i64(10 * DAY);
            rollouts.push(t);
            loop {
                t += rng.exp(rollout_mean) as i64 + HOUR;
                if t >= end {
                    break;
                }
                rollouts.push(t);
            }
            let hashes: Vec<String> = rollouts.iter().map(|_| rng.suffix(10)).collect();
            let replicas = if s.kind == DS { nodes.len() } else { s.replicas };
            let main_service = workload_services[w]
                .iter()
                .map(|&i| services[i].meta.name.as_str())
                .min()
                .unwrap_or("")
                .to_string();
            let mut slots = Vec::new();
            for r in 0..replicas {
                let mut slot = Slot::default();
                // Restarts between rollouts: evictions, OOM kills, node drains.
                let mut changes: Vec<(i64, usize)> =
                    rollouts.iter().enumerate().map(|(i, &t)| (t, i)).collect();
                let mut t = rollouts[0];
                loop {
                    t += rng.exp(5.0 * DAY as f64) as i64 + 10 * MIN;
                    if t >= end {
                        break;
                    }
                    let generation = rollouts.partition_point(|&r| r <= t) - 1;
                    changes.push((t + rng.below_i64(MIN), generation));
                }
                changes.sort_unstable();
                let mut node = if s.kind == DS { r } else { rng.below(nodes.len()) };
                for (t, generation) in changes {
                    if s.kind != DS {
                        node = rng.below(nodes.len());
                    }
                    let name = match s.kind {
                        D => format!("{}-{}-{}", s.name, hashes[generation], rng.suffix(5)),
                        SS => format!("{}-{r}", s.name),
                        DS => format!("{}-{}", s.name, rng.suffix(5)),
                    };
                    let last = &mut next_ip[node];
                    *last = if *last >= 254 { 2 } else { *last + 1 };
                    let ip = Ipv4Addr::new(10, 244, node as u8, *last);
                    pods.push(Pod {
                        ip,
                        node,
                        meta: EndpointMeta {
                            name: name.clone(),
                            namespace: s.ns.into(),
                            pod: name,
                            workload: s.name.into(),
                            workload_kind: s.kind.name().into(),
                            service: main_service.clone(),
                            node: nodes[node].name.to_string(),
                        },
                    });
                    slot.starts.push(t);
                    slot.pods.push(pods.len() - 1);
                }
                slots.push(slot);
            }
            workloads.push(Workload { slots, services: workload_services[w].clone() });
        }

        // External names: the well-known ones, regional cloud endpoints, and partners'
        // webhook endpoints.
        let mut externals = Vec::new();
        let mut ext = |name: String, n_ips: usize, rng: &mut Rng| {
            let name: Arc<str> = name.into();
            let ips = (0..n_ips.max(1)).map(|_| rng.public_ip()).collect();
            let meta = EndpointMeta { name: name.to_string(), ..EndpointMeta::default() };
            externals.push(External { name, meta, ips });
        };
        for &(name, n) in WELL_KNOWN {
            ext(name.into(), n, &mut rng);
        }
        for region in ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"] {
            for service in ["s3", "sqs", "sns", "dynamodb", "sts", "kms", "secretsmanager", "ecr"] {
                let n = 2 + rng.below(10);
                ext(format!("{service}.{region}.amazonaws.com"), n, &mut rng);
            }
        }
        for company in PARTNERS {
            for prefix in ["api", "hooks", "webhooks", "events", "sso"] {
                if rng.chance(0.5) {
                    let tld = *rng.pick(&["com", "io", "net", "de", "co.uk"]);
                    let n = 1 + rng.below(4);
                    ext(format!("{prefix}.{company}.{tld}"), n, &mut rng);
                }
            }
        }
        let bare_ips = (0..400).map(|_| rng.public_ip()).collect();
        let internet: Vec<Ipv4Addr> = (0..5000).map(|_| rng.public_ip()).collect();
        let internet_w = Weighted::new((0..internet.len()).map(|r| 1.0 / (r as f64 + 1.0)));
        Cluster {
            nodes,
            pods,
            workloads,
            services,
            externals,
            bare_ips,
            internet,
            internet_w,
            api_service,
            api_ips: [
                Ipv4Addr::new(10, 0, 16, 5),
                Ipv4Addr::new(10, 0, 32, 5),
                Ipv4Addr::new(10, 0, 48, 5),
            ],
            resolver: Ipv4Addr::new(10, 0, 0, 2),
            empty,
        }
    }

    fn external(&self, name: &str) -> usize {
        self.externals
            .iter()
            .position(|e| &*e.name == name)
            .unwrap_or_else(|| panic!("no external name {name}"))
    }

    /// The pod of a random replica of workload `w` at time `t`.
    fn pod_at(&self, w: usize, t: i64, rng: &mut Rng) -> &Pod {
        let wl = &self.workloads[w];
        let slot = &wl.slots[rng.below(wl.slots.len())];
        let i = slot.starts.partition_point(|&s| s <= t).saturating_sub(1);
        &self.pods[slot.pods[i]]
    }
}

/// Well-known external names and how many addresses each resolves to.
const WELL_KNOWN: &[(&str, usize)] = &[
    ("api.stripe.com", 8),
    ("api.sendgrid.com", 4),
    ("smtp.sendgrid.net", 4),
    ("api.twilio.com", 6),
    ("fcm.googleapis.com", 12),
    ("api.push.apple.com", 8),
    ("s3.amazonaws.com", 64),
    ("kinesis.eu-west-1.amazonaws.com", 8),
    ("api.segment.io", 4),
    ("api.datadoghq.eu", 6),
    ("o450123.ingest.sentry.io", 3),
    ("login.microsoftonline.com", 8),
    ("accounts.google.com", 6),
    ("www.googleapis.com", 16),
    ("oauth2.googleapis.com", 8),
    ("storage.googleapis.com", 24),
    ("bigquery.googleapis.com", 8),
    ("api.ups.com", 2),
    ("api.fedex.com", 2),
    ("api.dhl.com", 2),
    ("huggingface.co", 4),
    ("github.com", 4),
    ("api.github.com", 4),
    ("acme-v02.api.letsencrypt.org", 2),
    ("route53.amazonaws.com", 4),
    ("registry-1.docker.io", 6),
    ("production.cloudflare.docker.com", 8),
    ("ghcr.io", 4),
    ("quay.io", 4),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", 8),
    ("xy12345.eu-west-1.snowflakecomputing.com", 3),
    ("api.openai.com", 4),
    ("api.pagerduty.com", 3),
    ("hooks.slack.com", 4),
    ("time.aws.com", 4),
    ("api.adyen.com", 4),
];

/// Partners whose webhook and API endpoints the shop calls (the long tail of external names).
const PARTNERS: &[&str] = &[
    "acme-logistics",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "piedpiper",
    "vandelay",
    "wonka",
    "stark",
    "wayne-enterprises",
    "cyberdyne",
    "tyrell",
    "soylent",
    "gringotts",
    "oscorp",
    "aperture",
    "blackmesa",
    "monarch",
    "nakatomi",
    "dunder-mifflin",
    "sterling-cooper",
    "prestige-worldwide",
    "gekko",
    "bluth",
    "krusty",
    "duff",
    "los-pollos",
    "sirius-cybernetics",
    "weyland",
    "massive-dynamic",
    "virtucon",
    "ollivanders",
    "cogswell",
    "spacely",
    "zorg",
    "rekall",
    "omni-consumer",
    "buy-n-large",
    "planet-express",
    "mom-corp",
    "abstergo",
    "ingen",
    "lexcorp",
    "kaiba",
    "shinra",
    "hanso",
    "veridian",
    "contoso",
    "fabrikam",
    "northwind",
    "tailspin",
    "wingtip",
    "adventure-works",
    "litware",
    "proseware",
    "lucerne",
    "margies",
    "fourth-coffee",
    "alpine-ski",
    "coho-winery",
    "trey-research",
    "woodgrove",
    "humongous",
    "blue-yonder",
    "southridge",
    "graphic-design",
    "wide-world",
    "datum",
    "relecloud",
    "munson",
    "consolidated",
    "city-power",
    "bellows",
    "proto",
    "quantum-hosting",
    "nod-publishers",
    "school-of-fine-art",
    "lamna",
    "alpine",
    "fincher",
    "eastwind",
    "westwind",
    "sunrise",
];

// ---------------------------------------------------------------------------------------------
// Traffic: edges between a source and a destination, with a weight.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Pod(usize),
    /// The node the destination pod runs on (kubelet probes).
    DstNode,
    AnyNode,
    Internet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dst {
    Workload(usize),
    External(usize),
    BareIp,
    Node,
    ApiServer,
    Resolver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Traffic {
    Http,
    Grpc,
    Db,
    Cache,
    Kafka,
    Search,
    Dns,
    Tls,
    Bulk,
    Probe,
    Scrape,
    Watch,
    Logs,
    Ntp,
    Smtp,
    Ping,
}

/// Sizes and times of one kind of traffic.
#[derive(Debug, Clone, Copy)]
struct Profile {
    /// Median initiator payload bytes and spread.
    req: (f64, f64),
    /// Median responder payload bytes and spread.
    resp: (f64, f64),
    /// Median duration of a short connection, µs.
    dur_us: f64,
    /// Share of long connections (interim rows).
    long: f64,
    /// Share that goes through a Service ClusterIP (seen before kube-proxy's NAT).
    via_service: f64,
}

fn profile(t: Traffic) -> Profile {
    let p = |req, resp, dur_ms: f64, long, via_service| Profile {
        req,
        resp,
        dur_us: dur_ms * 1000.0,
        long,
        via_service,
    };
    match t {
        Traffic::Http => p((700.0, 1.0), (3000.0, 1.5), 40.0, 0.01, 0.6),
        Traffic::Grpc => p((400.0, 1.0), (1200.0, 1.3), 15.0, 0.03, 0.6),
        Traffic::Db => p((350.0, 1.2), (5000.0, 2.0), 20.0, 0.05, 0.6),
        Traffic::Cache => p((120.0, 0.8), (500.0, 1.5), 3.0, 0.04, 0.6),
        Traffic::Kafka => p((30_000.0, 2.0), (600.0, 1.0), 100.0, 0.08, 0.3),
        Traffic::Search => p((800.0, 1.0), (12_000.0, 1.5), 60.0, 0.02, 0.6),
        Traffic::Dns => p((38.0, 0.25), (110.0, 0.5), 0.8, 0.0, 0.9),
        Traffic::Tls => p((1200.0, 1.0), (6000.0, 1.6), 250.0, 0.01, 0.0),
        Traffic::Bulk => p((2000.0, 1.5), (300_000.0, 2.0), 800.0, 0.01, 0.0),
        Traffic::Probe => p((120.0, 0.2), (200.0, 0.5), 2.0, 0.0, 0.0),
        Traffic::Scrape => p((250.0, 0.2), (40_000.0, 1.2), 30.0, 0.0, 0.0),
        Traffic::Watch => p((500.0, 1.0), (8000.0, 1.5), 30_000.0, 0.5, 0.5),
        Traffic::Logs => p((60_000.0, 1.5), (300.0, 0.5), 100.0, 0.12, 0.6),
        Traffic::Ntp => p((48.0, 0.0), (48.0, 0.0), 1.0, 0.0, 0.0),
        Traffic::Smtp => p((30_000.0, 1.5), (800.0, 0.5), 500.0, 0.0, 0.0),
        Traffic::Ping => p((56.0, 0.0), (56.0, 0.0), 1.0, 0.0, 0.0),
    }
}

fn traffic_of(role: Role) -> Traffic {
    match role {
        Role::Http | Role::Ingress | Role::Agent => Traffic::Http,
        Role::Grpc => Traffic::Grpc,
        Role::Db => Traffic::Db,
        Role::Cache => Traffic::Cache,
        Role::Kafka => Traffic::Kafka,
        Role::Search => Traffic::Search,
        Role::Dns => Traffic::Dns,
    }
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    src: Src,
    dst: Dst,
    port: u16,
    traffic: Traffic,
    weight: f64,
}

/// Hot internal pairs: (client ns/name, server ns/name, weight). The rest is a random tail.
const HOT: &[(&str, &str, f64)] = &[
    ("ingress-nginx/ingress-nginx-controller", "frontend/web", 10.0),
    ("ingress-nginx/ingress-nginx-controller", "gateway/api-gateway", 8.0),
    ("ingress-nginx/ingress-nginx-controller", "mobile/mobile-api", 5.0),
    ("frontend/web", "frontend/bff", 9.0),
    ("frontend/bff", "shop/catalog", 8.0),
    ("frontend/bff", "shop/cart", 5.0),
    ("frontend/bff", "auth/auth", 5.0),
    ("gateway/api-gateway", "shop/storefront", 6.0),
    ("mobile/mobile-api", "shop/storefront", 4.0),
    ("shop/storefront", "shop/catalog", 6.0),
    ("shop/catalog", "shop/mongodb-catalog", 6.0),
    ("shop/cart", "shop/redis-cart", 7.0),
    ("shop/checkout", "payments/payments-api", 5.0),
    ("shop/checkout", "orders/orders-api", 3.0),
    ("shop/checkout", "shop/cart", 2.0),
    ("shop/cart", "pricing/pricing", 4.0),
    ("shop/catalog", "inventory/inventory", 4.0),
    ("shop/catalog", "pricing/pricing", 3.0),
    ("shop/storefront", "recommendations/recommender", 3.0),
    ("shop/storefront", "search/search-api", 3.0),
    ("shop/storefront", "reviews/reviews", 2.0),
    ("shop/checkout", "shipping/shipping", 1.0),
    ("search/search-api", "search/elasticsearch", 4.0),
    ("payments/payments-api", "payments/fraud-check", 4.0),
    ("payments/payments-api", "payments/postgres-payments", 5.0),
    ("payments/payments-api", "payments/ledger", 3.0),
    ("payments/ledger", "payments/postgres-payments", 2.0),
    ("orders/orders-api", "orders/postgres-orders", 4.0),
    ("orders/order-worker", "data/kafka", 3.0),
    ("orders/orders-api", "data/kafka", 2.0),
    ("analytics/event-collector", "data/kafka", 4.0),
    ("data/kafka-connect", "data/kafka", 2.0),
    ("data/kafka", "data/zookeeper", 1.0),
    ("users/users-api", "users/postgres-users", 3.0),
    ("auth/auth", "auth/redis-sessions", 4.0),
    ("auth/auth", "users/users-api", 3.0),
    ("auth/auth", "auth/keycloak", 1.0),
    ("recommendations/recommender", "recommendations/feature-store", 3.0),
    ("recommendations/recommender", "ml/model-server", 2.0),
    ("orders/order-worker", "notifications/notifier", 1.5),
    ("notifications/notifier", "notifications/email-sender", 1.0),
    ("notifications/notifier", "notifications/sms-sender", 0.5),
    ("tracing/otel-collector", "tracing/tempo", 2.0),
    ("frontend/web", "analytics/event-collector", 2.0),
    ("grafana", "monitoring/prometheus", 0.5),
    ("grafana", "logging/loki", 0.3),
    ("argocd/argocd-server", "argocd/argocd-repo-server", 0.2),
    ("analytics/clickhouse", "data/kafka", 1.0),
    ("reporting/report-builder", "analytics/clickhouse", 0.5),
    ("staging-shop/storefront", "staging-shop/cart", 0.3),
    ("staging-shop/cart", "staging-payments/payments-api", 0.1),
];

/// Egress to external names: (client ns/name, name, port, traffic, weight).
const EGRESS: &[(&str, &str, u16, Traffic, f64)] = &[
    ("payments/payments-api", "api.stripe.com", 443, Traffic::Tls, 3.0),
    ("payments/fraud-check", "api.stripe.com", 443, Traffic::Tls, 1.0),
    ("payments/payments-api", "api.adyen.com", 443, Traffic::Tls, 0.8),
    ("notifications/email-sender", "api.sendgrid.com", 443, Traffic::Tls, 1.5),
    ("notifications/email-sender", "smtp.sendgrid.net", 587, Traffic::Smtp, 0.5),
    ("notifications/sms-sender", "api.twilio.com", 443, Traffic::Tls, 1.0),
    ("notifications/notifier", "fcm.googleapis.com", 443, Traffic::Tls, 2.0),
    ("notifications/notifier", "api.push.apple.com", 443, Traffic::Tls, 1.5),
    ("media/image-resizer", "s3.amazonaws.com", 443, Traffic::Bulk, 4.0),
    ("media/image-resizer", "s3.eu-west-1.amazonaws.com", 443, Traffic::Bulk, 3.0),
    ("analytics/event-collector", "api.segment.io", 443, Traffic::Tls, 1.0),
    ("analytics/event-collector", "kinesis.eu-west-1.amazonaws.com", 443, Traffic::Tls, 2.0),
    ("tracing/otel-collector", "api.datadoghq.eu", 443, Traffic::Tls, 2.0),
    ("frontend/bff", "o450123.ingest.sentry.io", 443, Traffic::Tls, 0.5),
    ("shop/storefront", "o450123.ingest.sentry.io", 443, Traffic::Tls, 0.5),
    ("auth/keycloak", "login.microsoftonline.com", 443, Traffic::Tls, 0.5),
    ("auth/keycloak", "accounts.google.com", 443, Traffic::Tls, 0.5),
    ("auth/auth", "oauth2.googleapis.com", 443, Traffic::Tls, 0.4),
    ("auth/auth", "www.googleapis.com", 443, Traffic::Tls, 0.4),
    ("shipping/shipping", "api.ups.com", 443, Traffic::Tls, 0.4),
    ("shipping/shipping", "api.fedex.com", 443, Traffic::Tls, 0.3),
    ("shipping/shipping", "api.dhl.com", 443, Traffic::Tls, 0.3),
    ("ml/model-server", "huggingface.co", 443, Traffic::Bulk, 0.1),
    ("ml/model-server", "storage.googleapis.com", 443, Traffic::Bulk, 0.4),
    ("argocd/argocd-repo-server", "github.com", 443, Traffic::Tls, 0.5),
    ("argocd/argocd-repo-server", "api.github.com", 443, Traffic::Tls, 0.3),
    ("cert-manager/cert-manager", "acme-v02.api.letsencrypt.org", 443, Traffic::Tls, 0.02),
    ("external-dns/external-dns", "route53.amazonaws.com", 443, Traffic::Tls, 0.2),
    ("vault/vault", "sts.eu-west-1.amazonaws.com", 443, Traffic::Tls, 0.2),
    ("vault/vault", "kms.eu-west-1.amazonaws.com", 443, Traffic::Tls, 0.2),
    ("data/kafka-connect", "s3.eu-west-1.amazonaws.com", 443, Traffic::Bulk, 1.0),
    ("data/kafka-connect", "xy12345.eu-west-1.snowflakecomputing.com", 443, Traffic::Bulk, 0.6),
    ("reporting/report-builder", "bigquery.googleapis.com", 443, Traffic::Tls, 0.3),
    ("recommendations/recommender", "api.openai.com", 443, Traffic::Tls, 0.3),
    ("monitoring/alertmanager", "api.pagerduty.com", 443, Traffic::Tls, 0.05),
    ("monitoring/alertmanager", "hooks.slack.com", 443, Traffic::Tls, 0.1),
    ("orders/order-worker", "sqs.eu-west-1.amazonaws.com", 443, Traffic::Tls, 1.0),
    ("orders/orders-api", "dynamodb.eu-west-1.amazonaws.com", 443, Traffic::Tls, 0.8),
    ("batch/nightly-export", "s3.amazonaws.com", 443, Traffic::Bulk, 0.3),
];

/// Names that nodes (kubelet, containerd, chrony) reach: image pulls and time.
const NODE_EGRESS: &[(&str, u16, Traffic, f64)] = &[
    ("registry-1.docker.io", 443, Traffic::Bulk, 1.0),
    ("production.cloudflare.docker.com", 443, Traffic::Bulk, 1.0),
    ("ghcr.io", 443, Traffic::Bulk, 0.5),
    ("quay.io", 443, Traffic::Bulk, 0.5),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", 443, Traffic::Bulk, 2.0),
    ("time.aws.com", 123, Traffic::Ntp, 2.0),
];

fn by_path(path: &str) -> usize {
    match path.split_once('/') {
        Some((ns, name)) => workload_index(ns, name),
        None => SPECS
            .iter()
            .position(|s| s.name == path)
            .unwrap_or_else(|| panic!("no workload {path}")),
    }
}

/// Two edge lists: diurnal (follows the day) and flat (the same every hour), each with weights
/// that add up to its share of all rows.
fn build_edges(c: &Cluster, seed: u64) -> (Vec<Edge>, Vec<Edge>) {
    let mut rng = Rng::new(seed, 2);
    let wl = |s: usize| Dst::Workload(s);
    let edge = |src, dst, port, traffic, weight| Edge { src, dst, port, traffic, weight };

    // Internal: hot pairs, then a tail of 3 random callees per business workload, plus the
    // calls every service makes to tracing, vault and feature flags.
    let mut internal = Vec::new();
    for &(from, to, w) in HOT {
        let s = by_path(to);
        let spec = &SPECS[s];
        internal.push(edge(Src::Pod(by_path(from)), wl(s), spec.port, traffic_of(spec.role), w));
    }
    let servers: Vec<usize> = (FIRST_BUSINESS..SPECS.len()).collect();
    for client in FIRST_BUSINESS..SPECS.len() {
        for _ in 0..3 {
            let s = *rng.pick(&servers);
            if s == client {
                continue;
            }
            let spec = &SPECS[s];
            let w = rng.lognormal(0.3, 1.2).min(3.0);
            internal.push(edge(Src::Pod(client), wl(s), spec.port, traffic_of(spec.role), w));
        }
        let otel = workload_index("tracing", "otel-collector");
        internal.push(edge(Src::Pod(client), wl(otel), 4317, Traffic::Grpc, 0.4));
        let vault = workload_index("vault", "vault");
        internal.push(edge(Src::Pod(client), wl(vault), 8200, Traffic::Http, 0.08));
        let unleash = workload_index("feature-flags", "unleash");
        internal.push(edge(Src::Pod(client), wl(unleash), 4242, Traffic::Http, 0.1));
    }

    // Egress by name, then a tail over partners and regional endpoints, then bare IPs.
    let mut egress = Vec::new();
    for &(from, name, port, traffic, w) in EGRESS {
        egress.push(edge(
            Src::Pod(by_path(from)),
            Dst::External(c.external(name)),
            port,
            traffic,
            w,
        ));
    }
    let tail_clients = [
        by_path("partners/webhook-dispatcher"),
        by_path("partners/webhook-dispatcher"),
        by_path("partners/partner-gateway"),
        by_path("orders/order-worker"),
        by_path("shipping/shipping"),
    ];
    let named: Vec<&str> =
        EGRESS.iter().map(|e| e.1).chain(NODE_EGRESS.iter().map(|e| e.0)).collect();
    for (i, x) in c.externals.iter().enumerate() {
        if named.contains(&&*x.name) || WELL_KNOWN.iter().any(|w| w.0 == &*x.name) {
            continue;
        }
        let client = if x.name.ends_with("amazonaws.com") {
            *rng.pick(&servers)
        } else {
            *rng.pick(&tail_clients)
        };
        let w = rng.lognormal(0.08, 1.3).min(1.0);
        egress.push(edge(Src::Pod(client), Dst::External(i), 443, Traffic::Tls, w));
    }
    for _ in 0..20 {
        let client = *rng.pick(&servers);
        egress.push(edge(Src::Pod(client), Dst::BareIp, 443, Traffic::Tls, 0.15));
    }

    // Ingress from the internet.
    let nginx = by_path("ingress-nginx/ingress-nginx-controller");
    let ingress = vec![
        edge(Src::Internet, wl(nginx), 443, Traffic::Http, 9.0),
        edge(Src::Internet, wl(nginx), 80, Traffic::Http, 1.0),
    ];

    // DNS: every workload asks kube-dns, in proportion to how much it calls.
    let coredns = workload_index("kube-system", "coredns");
    let mut activity = vec![0.02; SPECS.len()];
    for e in internal.iter().chain(&egress) {
        if let Src::Pod(w) = e.src {
            activity[w] += e.weight;
        }
    }
    let dns: Vec<Edge> = activity
        .iter()
        .enumerate()
        .map(|(w, &a)| edge(Src::Pod(w), wl(coredns), 53, Traffic::Dns, a))
        .collect();

    // Flat traffic: probes, scrapes, logs, watches, node egress, coredns upstream, pings.
    let mut probes = Vec::new();
    for (w, s) in SPECS.iter().enumerate() {
        let weight = s.replicas.max(5) as f64;
        let port = if s.role == Role::Dns { 8181 } else { s.port };
        probes.push(edge(Src::DstNode, wl(w), port, Traffic::Probe, weight));
    }
    let prometheus = by_path("monitoring/prometheus");
    let mut scrapes: Vec<Edge> = SPECS
        .iter()
        .enumerate()
        .filter(|(_, s)| s.role != Role::Dns)
        .map(|(w, s)| {
            let port = if s.role == Role::Agent { s.port } else { 9090 };
            edge(Src::Pod(prometheus), wl(w), port, Traffic::Scrape, s.replicas.max(5) as f64)
        })
        .collect();
    scrapes.push(edge(Src::Pod(prometheus), Dst::Node, 10250, Traffic::Scrape, 40.0));
    let logs = vec![edge(
        Src::Pod(by_path("logging/fluent-bit")),
        wl(by_path("logging/loki")),
        3100,
        Traffic::Logs,
        1.0,
    )];
    let watchers = [
        "argocd/argocd-application-controller",
        "cert-manager/cert-manager",
        "kyverno",
        "external-dns",
        "monitoring/kube-state-metrics",
        "monitoring/prometheus",
        "kube-system/coredns",
        "kube-system/metrics-server",
        "logging/fluent-bit",
    ];
    let watches: Vec<Edge> = watchers
        .iter()
        .map(|w| edge(Src::Pod(by_path(w)), Dst::ApiServer, 443, Traffic::Watch, 1.0))
        .collect();
    let node_egress: Vec<Edge> = NODE_EGRESS
        .iter()
        .map(|&(name, port, traffic, w)| {
            edge(Src::AnyNode, Dst::External(c.external(name)), port, traffic, w)
        })
        .collect();
    let upstream = vec![edge(Src::Pod(coredns), Dst::Resolver, 53, Traffic::Dns, 1.0)];
    let blackbox = by_path("monitoring/blackbox-exporter");
    let pings = vec![
        edge(Src::Pod(blackbox), Dst::Node, 0, Traffic::Ping, 2.0),
        edge(Src::Pod(blackbox), Dst::BareIp, 0, Traffic::Ping, 1.0),
        edge(Src::Pod(blackbox), wl(by_path("frontend/web")), 0, Traffic::Ping, 1.0),
    ];

    let mut diurnal = Vec::new();
    let mut flat = Vec::new();
    let add = |list: &mut Vec<Edge>, group: Vec<Edge>, share: f64| {
        let total: f64 = group.iter().map(|e| e.weight).sum();
        list.extend(group.into_iter().map(|mut e| {
            e.weight *= share / total;
            e
        }));
    };
    add(&mut diurnal, internal, 0.59);
    add(&mut diurnal, dns, 0.13);
    add(&mut diurnal, egress, 0.095);
    add(&mut diurnal, ingress, 0.035);
    add(&mut flat, probes, 0.058);
    add(&mut flat, scrapes, 0.045);
    add(&mut flat, logs, 0.02);
    add(&mut flat, watches, 0.006);
    add(&mut flat, node_egress, 0.01);
    add(&mut flat, upstream, 0.006);
    add(&mut flat, pings, 0.005);
    (diurnal, flat)
}

// ---------------------------------------------------------------------------------------------
// Rows.

/// One end of a connection at a moment.
#[derive(Debug, Clone, Copy)]
struct End<'c> {
    ip: Ipv4Addr,
    meta: &'c EndpointMeta,
    node: Option<usize>,
}

/// Copies `src` into `dst`, reusing `dst`'s string buffers (no allocation once warmed up).
fn set_meta(dst: &mut EndpointMeta, src: &EndpointMeta) {
    dst.name.clone_from(&src.name);
    dst.namespace.clone_from(&src.namespace);
    dst.pod.clone_from(&src.pod);
    dst.workload.clone_from(&src.workload);
    dst.workload_kind.clone_from(&src.workload_kind);
    dst.service.clone_from(&src.service);
    dst.node.clone_from(&src.node);
}

fn blank_record(node: Arc<str>) -> ConnectionRecord {
    ConnectionRecord { node, ..ConnectionRecord::default() }
}

/// Counters of a TCP exchange carrying these payloads (handshake and FINs included).
fn tcp_counters(req: u64, resp: u64, handshake: bool) -> (DirCounters, DirCounters) {
    let (sd, dd) = (req.div_ceil(MSS), resp.div_ceil(MSS));
    let ctl = if handshake { 1 } else { 0 };
    let src_packets = 2 * ctl + sd + dd.div_ceil(2) + 1;
    let dst_packets = ctl + dd + sd.div_ceil(2) + 1;
    let src = DirCounters {
        packets: src_packets,
        bytes: req + src_packets * TCP_HDR + 8 * ctl,
        payload_bytes: req,
        ..DirCounters::default()
    };
    let dst = DirCounters {
        packets: dst_packets,
        bytes: resp + dst_packets * TCP_HDR + 8 * ctl,
        payload_bytes: resp,
        ..DirCounters::default()
    };
    (src, dst)
}

/// Generates connections and hands each hour's rows to the store writer.
struct Gen {
    rng: Rng,
    seed: u64,
    rec: ConnectionRecord,
    /// Rows of the current hour, and of the next (interim rows that cross the hour).
    cur: ConnectionsBuilder,
    next: ConnectionsBuilder,
    hour_end: i64,
    period_end: i64,
    conns: u64,
}

impl Gen {
    fn emit(&mut self) {
        if self.rec.start_ns / 1000 >= self.hour_end {
            self.next.append(&self.rec);
        } else {
            self.cur.append(&self.rec);
        }
    }

    fn resolve_dst<'c>(&mut self, c: &'c Cluster, e: &Edge, t: i64) -> (End<'c>, Option<Arc<str>>) {
        let rng = &mut self.rng;
        match e.dst {
            Dst::Workload(w) => {
                let wl = &c.workloads[w];
                let p = profile(e.traffic);
                // Only pods reach a ClusterIP (the ingress is reached through its pods, probes
                // and pings go to pod IPs).
                let via_service = matches!(e.src, Src::Pod(_))
                    && !matches!(e.traffic, Traffic::Probe | Traffic::Ping);
                if !wl.services.is_empty() && via_service && rng.chance(p.via_service) {
                    let s = if wl.services.len() > 1 && rng.chance(0.15) {
                        *rng.pick(&wl.services)
                    } else {
                        wl.services[0]
                    };
                    let svc = &c.services[s];
                    // Clients resolve the service's name first (not kube-dns itself).
                    let dns =
                        (e.traffic != Traffic::Dns && rng.chance(0.95)).then(|| svc.fqdn.clone());
                    (End { ip: svc.ip, meta: &svc.meta, node: None }, dns)
                } else {
                    let pod = c.pod_at(w, t, rng);
                    (End { ip: pod.ip, meta: &pod.meta, node: Some(pod.node) }, None)
                }
            }
            Dst::External(i) => {
                let x = &c.externals[i];
                let ip = *rng.pick(&x.ips);
                if rng.chance(0.93) {
                    (End { ip, meta: &x.meta, node: None }, Some(x.name.clone()))
                } else {
                    // The DNS answer was not seen (DoH, an old cache): no name.
                    (End { ip, meta: &c.empty, node: None }, None)
                }
            }
            Dst::BareIp => (End { ip: *rng.pick(&c.bare_ips), meta: &c.empty, node: None }, None),
            Dst::Node => {
                let n = rng.below(c.nodes.len());
                (End { ip: c.nodes[n].ip, meta: &c.nodes[n].meta, node: Some(n) }, None)
            }
            Dst::ApiServer => {
                if rng.chance(0.5) {
                    let svc = &c.services[c.api_service];
                    (End { ip: svc.ip, meta: &svc.meta, node: None }, None)
                } else {
                    (End { ip: *rng.pick(&c.api_ips), meta: &c.empty, node: None }, None)
                }
            }
            Dst::Resolver => (End { ip: c.resolver, meta: &c.empty, node: None }, None),
        }
    }

    /// Writes one connection's rows (1, or up to 30 for a long connection, at most
    /// `max_rows`) starting at `t`. Returns the rows written.
    fn connection(&mut self, c: &Cluster, e: &Edge, t: i64, max_rows: u64) -> u64 {
        let (dst, dns_name) = self.resolve_dst(c, e, t);
        let rng = &mut self.rng;
        let src = match e.src {
            Src::Pod(w) => {
                let pod = c.pod_at(w, t, rng);
                End { ip: pod.ip, meta: &pod.meta, node: Some(pod.node) }
            }
            Src::DstNode | Src::AnyNode => {
                let n = match (e.src, dst.node) {
                    (Src::DstNode, Some(n)) => n,
                    _ => rng.below(c.nodes.len()),
                };
                End { ip: c.nodes[n].ip, meta: &c.nodes[n].meta, node: Some(n) }
            }
            Src::Internet => {
                let ip = c.internet[c.internet_w.sample(rng)];
                End { ip, meta: &c.empty, node: None }
            }
        };
        let dst_port = match e.dst {
            Dst::ApiServer if dst.ip != c.services[c.api_service].ip => 6443,
            _ => e.port,
        };
        let same_node = src.node.is_some() && src.node == dst.node;
        let external = matches!(e.dst, Dst::External(_) | Dst::BareIp);

        self.conns += 1;
        let r = &mut self.rec;
        r.conn_id = (mix(self.seed.wrapping_mul(0x1000_0000_01b3) ^ self.conns) >> 1) as i64;
        r.row_seq = 0;
        r.is_final = true;
        r.src_ip = IpAddr::V4(src.ip);
        r.dst_ip = IpAddr::V4(dst.ip);
        r.dst_port = dst_port;
        r.src_port = rng.ephemeral();
        r.node = c.nodes[src.node.or(dst.node).unwrap_or(0)].name.clone();
        r.dst_dns_name = dns_name;
        set_meta(&mut r.src_meta, src.meta);
        set_meta(&mut r.dst_meta, dst.meta);
        r.handshake_rtt_ns = None;
        r.src_flags = 0;
        r.dst_flags = 0;
        r.closed_by = by::NONE;
        r.reset_by = by::NONE;
        r.icmp_error = None;
        r.icmp_errors = 0;
        r.icmp_error_src = None;
        let p = profile(e.traffic);
        match e.traffic {
            Traffic::Ping => {
                self.ping(t);
                1
            }
            // DNS over TCP is rare (truncated answers); NTP is UDP only.
            Traffic::Ntp => {
                self.udp(&p, t, dst.ip);
                1
            }
            Traffic::Dns if rng.chance(0.98) => {
                self.udp(&p, t, dst.ip);
                1
            }
            _ => {
                let rtt_us = if external {
                    rng.lognormal(15_000.0, 0.7)
                } else if same_node {
                    rng.lognormal(60.0, 0.4)
                } else {
                    rng.lognormal(250.0, 0.5)
                };
                self.tcp(&p, e.traffic, t, rtt_us, external, max_rows)
            }
        }
    }

    fn ping(&mut self, t: i64) {
        let rng = &mut self.rng;
        let r = &mut self.rec;
        let n = 1 + rng.below(3) as u64;
        r.protocol = protocol::ICMP;
        r.src_port = 8;
        r.dst_port = 0;
        let sent =
            DirCounters { packets: n, bytes: 84 * n, payload_bytes: 56 * n, ..Default::default() };
        r.src = sent;
        r.start_ns = t * 1000;
        if rng.chance(0.03) {
            r.dst = DirCounters::default();
            r.outcome = outcome::NO_ANSWER;
            r.end_ns = (t + (n as i64 - 1) * SEC) * 1000;
        } else {
            r.dst = sent;
            r.outcome = outcome::ANSWERED;
            r.end_ns = (t + (n as i64 - 1) * SEC + rng.lognormal(400.0, 0.6) as i64) * 1000;
        }
        self.emit();
    }

    fn udp(&mut self, p: &Profile, t: i64, dst_ip: Ipv4Addr) {
        let rng = &mut self.rng;
        let r = &mut self.rec;
        r.protocol = protocol::UDP;
        // A and AAAA from the same socket, sometimes retries or search-path expansions.
        let x = rng.unit();
        let n: u64 = if x < 0.35 {
            1
        } else if x < 0.95 {
            2
        } else {
            3 + rng.below(2) as u64
        };
        let req = (rng.lognormal(p.req.0, p.req.1).clamp(17.0, 300.0) as u64) * n;
        let resp = (rng.lognormal(p.resp.0, p.resp.1).clamp(17.0, 1200.0) as u64) * n;
        r.src = DirCounters {
            packets: n,
            bytes: req + n * UDP_HDR,
            payload_bytes: req,
            ..Default::default()
        };
        r.start_ns = t * 1000;
        let u = rng.unit();
        if u < 0.012 {
            r.dst = DirCounters::default();
            r.outcome = outcome::NO_ANSWER;
            r.end_ns = (t + rng.below_i64(5 * SEC)) * 1000;
        } else if u < 0.015 {
            r.dst = DirCounters::default();
            r.outcome = outcome::UNREACHABLE;
            r.icmp_error = Some((3, 3));
            r.icmp_errors = n;
            r.icmp_error_src = Some(IpAddr::V4(dst_ip));
            r.end_ns = (t + rng.below_i64(MIN / 60)) * 1000;
        } else {
            r.dst = DirCounters {
                packets: n,
                bytes: resp + n * UDP_HDR,
                payload_bytes: resp,
                ..Default::default()
            };
            r.outcome = outcome::ANSWERED;
            r.end_ns = (t + rng.lognormal(p.dur_us, 0.8) as i64) * 1000;
        }
        self.emit();
    }

    fn tcp(
        &mut self,
        p: &Profile,
        traffic: Traffic,
        t: i64,
        rtt_us: f64,
        external: bool,
        max_rows: u64,
    ) -> u64 {
        let (s, a, pf, f, rst) = (flag::SYN, flag::ACK, flag::PSH, flag::FIN, flag::RST);
        let r = &mut self.rec;
        r.protocol = protocol::TCP;
        r.start_ns = t * 1000;
        let fail = if external {
            1.8
        } else if traffic == Traffic::Probe {
            1.5
        } else {
            1.0
        };
        let u = self.rng.unit() / fail;
        // Failures before any handshake.
        if u < 0.028 {
            let tries = 1 + self.rng.below(3) as u64;
            r.src = DirCounters {
                packets: tries,
                bytes: 60 * tries,
                retransmits: tries - 1,
                ..Default::default()
            };
            r.dst = DirCounters::default();
            r.src_flags = s;
            let dur: i64;
            if u < 0.010 {
                r.outcome = outcome::REFUSED;
                r.dst = DirCounters { packets: tries, bytes: 40 * tries, ..Default::default() };
                r.dst_flags = a | rst;
                r.reset_by = by::DST;
                dur = (tries as i64 - 1) * SEC + rtt_us as i64;
            } else if u < 0.022 {
                r.outcome = outcome::NO_ANSWER;
                let n = 1 + self.rng.below(6) as u64;
                r.src = DirCounters {
                    packets: n,
                    bytes: 60 * n,
                    retransmits: n - 1,
                    ..Default::default()
                };
                dur = ((1i64 << (n - 1)) - 1) * SEC;
            } else if u < 0.024 {
                r.outcome = outcome::ABORTED;
                r.src.packets += 1;
                r.src.bytes += 40;
                r.src_flags = s | rst;
                r.reset_by = by::SRC;
                dur = self.rng.below_i64(3 * SEC);
            } else {
                r.outcome = outcome::UNREACHABLE;
                r.icmp_error = Some((3, if self.rng.chance(0.5) { 1 } else { 13 }));
                r.icmp_errors = tries;
                r.icmp_error_src = Some(IpAddr::V4(ROUTER));
                dur = (tries as i64 - 1) * SEC;
            }
            r.end_ns = (t + dur) * 1000;
            self.emit();
            return 1;
        }
        r.handshake_rtt_ns = Some((rtt_us * 1000.0) as i64);
        let req = self.rng.lognormal(p.req.0, p.req.1).clamp(1.0, 2e9) as u64;
        let resp = self.rng.lognormal(p.resp.0, p.resp.1).clamp(1.0, 5e9) as u64;

        // Long connections: interim rows every minute, then a final row.
        let max_by_time = ((self.period_end - t) / MIN).max(1) as u64;
        let long_rows = if self.rng.chance(p.long) {
            (2 + self.rng.exp(4.0) as u64).min(30).min(max_rows).min(max_by_time)
        } else {
            1
        };
        if long_rows > 1 {
            let midstream = self.rng.chance(0.03);
            if midstream {
                r.handshake_rtt_ns = None;
            }
            let open_bits = if midstream { a | pf } else { s | a | pf };
            let mut row_start = t;
            for j in 0..long_rows {
                let last = j + 1 == long_rows;
                let scale = if j == 0 { 1.0 } else { self.rng.lognormal(8.0, 1.0) };
                let rq = (req as f64 * scale) as u64;
                let rs = (resp as f64 * scale) as u64;
                let (mut sc, mut dc) = tcp_counters(rq.max(1), rs.max(1), j == 0 && !midstream);
                if self.rng.chance(0.03) {
                    sc.retransmits = 1 + self.rng.below(5) as u64;
                    sc.packets += sc.retransmits;
                    sc.bytes += sc.retransmits * (MSS + TCP_HDR);
                }
                if self.rng.chance(0.002) {
                    dc.zero_windows = 1 + self.rng.below(20) as u64;
                }
                let r = &mut self.rec;
                r.row_seq = j as i32;
                r.is_final = last;
                r.src = sc;
                r.dst = dc;
                r.start_ns = row_start * 1000;
                let row_end = if last {
                    row_start + self.rng.below_i64(50 * SEC) + 1
                } else {
                    row_start + 55 * SEC + self.rng.below_i64(4 * SEC)
                };
                r.end_ns = row_end * 1000;
                r.src_flags = open_bits;
                r.dst_flags = open_bits;
                r.outcome = if midstream { outcome::MIDSTREAM } else { outcome::OPEN };
                if last {
                    let x = self.rng.unit();
                    if x < 0.55 {
                        r.src_flags |= f;
                        r.dst_flags |= f;
                        r.closed_by = if self.rng.chance(0.5) { by::SRC } else { by::DST };
                        if !midstream {
                            r.outcome = outcome::CLOSED;
                        }
                    } else if x < 0.65 {
                        let src_reset = self.rng.chance(0.4);
                        r.reset_by = if src_reset { by::SRC } else { by::DST };
                        if src_reset {
                            r.src_flags |= rst;
                        } else {
                            r.dst_flags |= rst;
                        }
                        if !midstream {
                            r.outcome = outcome::RESET;
                        }
                    }
                    // Otherwise the connection idled out: final row, still `open`.
                }
                self.emit();
                row_start += MIN + self.rng.below_i64(2 * SEC);
            }
            return long_rows;
        }

        // A short connection.
        let (mut sc, mut dc) = tcp_counters(req, resp, true);
        let retrans_p = if external { 0.05 } else { 0.015 };
        if self.rng.chance(retrans_p) {
            let n = 1 + self.rng.below(4) as u64;
            if self.rng.chance(0.5) {
                sc.retransmits = n;
                sc.packets += n;
                sc.bytes += n * (sc.bytes / sc.packets.max(1));
            } else {
                dc.retransmits = n;
                dc.packets += n;
                dc.bytes += n * (dc.bytes / dc.packets.max(1));
            }
        }
        if self.rng.chance(0.001) {
            dc.zero_windows = 1 + self.rng.below(10) as u64;
        }
        let dur = (self.rng.lognormal(p.dur_us, 1.1).min(55.0 * SEC as f64) as i64)
            .max(3 * rtt_us as i64 + 1);
        let r = &mut self.rec;
        r.src = sc;
        r.dst = dc;
        r.end_ns = (t + dur) * 1000;
        r.src_flags = s | a | pf;
        r.dst_flags = s | a | pf;
        if u < 0.040 {
            let src_reset = self.rng.chance(0.3);
            r.reset_by = if src_reset { by::SRC } else { by::DST };
            if src_reset {
                r.src_flags |= rst;
            } else {
                r.dst_flags |= rst;
            }
            r.outcome = outcome::RESET;
        } else {
            r.src_flags |= f;
            r.dst_flags |= f;
            r.closed_by = if self.rng.chance(0.7) { by::SRC } else { by::DST };
            r.outcome = outcome::CLOSED;
        }
        self.emit();
        1
    }
}

/// Relative traffic of an hour: low at 03:00 UTC, high at 15:00, lower at weekends.
fn diurnal(hour: i64) -> f64 {
    let day = hour / 24;
    let h = (hour % 24) as f64;
    let s = 0.5 - 0.5 * (std::f64::consts::TAU * (h - 3.0) / 24.0).cos();
    // 2026-11-01 is a Sunday: day 0 and day 6 of each week are the weekend.
    let weekend = matches!(day % 7, 0 | 6);
    (0.2 + 0.8 * s) * if weekend { 0.7 } else { 1.0 }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    debug_assert_eq!(SPECS[FIRST_BUSINESS].name, "web");
    anyhow::ensure!(args.days >= 1, "--days must be at least 1");
    let started = Instant::now();
    let cluster = Cluster::build(args.seed, args.days);
    let (diurnal_edges, flat_edges) = build_edges(&cluster, args.seed);
    let diurnal_w = Weighted::new(diurnal_edges.iter().map(|e| e.weight));
    let flat_w = Weighted::new(flat_edges.iter().map(|e| e.weight));
    let services = cluster.services.len();
    let ips: usize =
        cluster.externals.iter().map(|x| x.ips.len()).sum::<usize>() + cluster.bare_ips.len();
    eprintln!(
        "cluster: {} nodes, {} namespaces, {} workloads, {} pods over the period, {} services, \
         {} external names, {} external IPs; {} + {} traffic edges",
        cluster.nodes.len(),
        {
            let mut ns: Vec<&str> = SPECS.iter().map(|s| s.ns).collect();
            ns.push("default");
            ns.sort_unstable();
            ns.dedup();
            ns.len()
        },
        cluster.workloads.len(),
        cluster.pods.len(),
        services,
        cluster.externals.len(),
        ips,
        diurnal_edges.len(),
        flat_edges.len(),
    );

    // Rows per hour: a flat part plus a diurnal part, rounded so that they add up to --rows.
    let hours = i64::from(args.days) * 24;
    let d_total: f64 = (0..hours).map(diurnal).sum();
    let weights: Vec<f64> = (0..hours)
        .map(|h| FLAT_SHARE / hours as f64 + (1.0 - FLAT_SHARE) * diurnal(h) / d_total)
        .collect();
    let mut targets = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    let mut prev = 0u64;
    for w in &weights {
        acc += w;
        let cum = ((acc * args.rows as f64).round() as u64).min(args.rows);
        targets.push(cum - prev);
        prev = cum;
    }
    if let Some(last) = targets.last_mut() {
        *last += args.rows - prev;
    }
    let flat_rows_per_hour = FLAT_SHARE * args.rows as f64 / hours as f64;

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let prefix = format!("gen-{:016x}", mix(args.seed));
    let (metrics, stop) = (IngestMetrics::new(), std::sync::atomic::AtomicBool::new(false));
    let roll = RollPolicy { max_bytes: usize::MAX, max_age: std::time::Duration::MAX };
    // One file an hour is the layout compaction leaves, with its Bloom filters; more, ingest's
    // rolls, without.
    let config =
        StoreConfig { bloom_filters: args.files_per_hour == 1, ..StoreConfig::new(&args.out) };
    let mut writer = InProcess::new(&prefix, config, roll, None, &metrics, &stop);
    let mut g = Gen {
        rng: Rng::new(args.seed, 3),
        seed: args.seed,
        rec: blank_record(cluster.nodes[0].name.clone()),
        cur: ConnectionsBuilder::default(),
        next: ConnectionsBuilder::default(),
        hour_end: PERIOD_START + HOUR,
        period_end: PERIOD_START + hours * HOUR,
        conns: 0,
    };
    let mut done = 0u64;
    let mut next_report = 1;
    for (h, &target) in targets.iter().enumerate() {
        let hour_start = PERIOD_START + h as i64 * HOUR;
        g.hour_end = hour_start + HOUR;
        let flat_p = if target == 0 { 0.0 } else { flat_rows_per_hour / target as f64 };
        let mut made = 0;
        while made < target {
            let e = if g.rng.chance(flat_p) {
                &flat_edges[flat_w.sample(&mut g.rng)]
            } else {
                &diurnal_edges[diurnal_w.sample(&mut g.rng)]
            };
            let t = hour_start + g.rng.below_i64(HOUR);
            made += g.connection(&cluster, e, t, target - made);
        }
        done += made;
        let batch = g.cur.finish()?;
        for slice in slices(&batch, hour_start, args.files_per_hour)? {
            writer.send(Table::Connections, slice)?;
            writer.flush()?;
        }
        std::mem::swap(&mut g.cur, &mut g.next);
        while args.rows > 0 && done * 10 >= next_report * args.rows && next_report <= 10 {
            let secs = started.elapsed().as_secs_f64();
            eprintln!("{:3}%  {done} rows, {} connections, {secs:.1} s", next_report * 10, g.conns);
            next_report += 1;
        }
    }
    if !g.cur.is_empty() {
        let batch = g.cur.finish()?;
        writer.send(Table::Connections, batch)?;
    }
    let (_, stats) = writer.finish()?;
    let secs = started.elapsed().as_secs_f64();
    let rows = stats.rows.get("connections").copied().unwrap_or(0);
    eprintln!(
        "wrote {rows} rows ({} connections) in {} files, {:.1} MB, to {} in {secs:.1} s: {:.0} rows/s",
        g.conns,
        stats.files.get("connections").copied().unwrap_or(0),
        stats.bytes as f64 / 1e6,
        args.out.display(),
        rows as f64 / secs.max(1e-9),
    );
    Ok(())
}
