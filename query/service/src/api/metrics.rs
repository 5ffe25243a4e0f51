//! The API's Prometheus metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `podwire_http_requests_total` | counter | `endpoint`, `status` | requests answered |
//! | `podwire_http_request_duration_seconds` | histogram | `endpoint` | time to the response head (a streamed body goes on after it) |
//! | `podwire_query_rows_total` | counter | `endpoint` | rows sent in query results |
//! | `podwire_query_errors_total` | counter | `endpoint`, `class` | failed queries by error class (`SEM_UNKNOWN_FIELD`, `SQL_REJECTED`, `QUERY_FAILED`, …) |
//! | `podwire_queries_in_flight` | gauge | | queries planning or streaming now |
//! | `podwire_queries_rejected_busy_total` | counter | | queries refused because `--max-concurrent-queries` were running |
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    endpoint: String,
    class: String,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

/// The registry and the handles the handlers update.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    rows: Family<EndpointLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    in_flight: Gauge,
    busy: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("podwire");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let durations: HistogramFamily = Family::new_with_constructor(|| {
            // 1 ms … 33 s.
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time from the request to the response head (a streamed body goes on after it)",
            durations.clone(),
        );
        let rows = Family::<EndpointLabels, Counter>::default();
        registry.register("query_rows", "Rows sent in query results", rows.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("query_errors", "Failed queries by error class", errors.clone());
        let in_flight = Gauge::default();
        registry.register(
            "queries_in_flight",
            "Queries planning or streaming now",
            in_flight.clone(),
        );
        let busy = Counter::default();
        registry.register(
            "queries_rejected_busy",
            "Queries refused because the maximum number of concurrent queries were running",
            busy.clone(),
        );
        Self { registry, requests, durations, rows, errors, in_flight, busy }
    }

    /// Counts an answered request and the time to its response head.
    pub fn request(&self, endpoint: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { endpoint: endpoint.to_owned(), status }).inc();
        self.durations
            .get_or_create(&EndpointLabels { endpoint: endpoint.to_owned() })
            .observe(seconds);
    }

    /// Counts rows sent.
    pub fn rows(&self, endpoint: &str, rows: u64) {
        self.rows.get_or_create(&EndpointLabels { endpoint: endpoint.to_owned() }).inc_by(rows);
    }

    /// Counts a failed query.
    pub fn error(&self, endpoint: &str, class: &str) {
        self.errors
            .get_or_create(&ErrorLabels { endpoint: endpoint.to_owned(), class: class.to_owned() })
            .inc();
    }

    /// The in-flight queries gauge.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// Counts a query refused for lack of a free slot.
    pub fn busy(&self) {
        self.busy.inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
