//! The Arrow schemas of podwire's tables: the contract between capture, ingest, query and the
//! notebooks. Every column name is defined here and nowhere else.
//!
//! - [`connections`]: one row per TCP connection, UDP pseudo-connection or ICMP exchange (plus
//!   interim rows for long connections).
//! - [`dns`]: one row per DNS transaction (query and its response).
//! - [`packets`]: optional per-packet header records.
//! - [`capture_stats`]: per node and minute, what the capture read and skipped, and why.
//! - [`endpoint`]: the enrichment columns that every table carries for `src` and `dst`.
//!
//! `schemas/README.md` documents every column (type, unit, meaning, null rule).
#![deny(missing_docs)]

pub mod capture_stats;
pub mod connections;
pub mod dns;
pub mod endpoint;
pub mod packets;
pub mod partition;
mod time;
pub mod wire;

pub use endpoint::EndpointMeta;
pub use time::{TIMEZONE, timestamp_type, ts_from_ns};

/// Version of the table schemas. Stored in every schema's metadata (key [`SCHEMA_VERSION_KEY`])
/// and in every Kafka message's headers ([`wire`]). Bumped whenever a column is added.
pub const SCHEMA_VERSION: u32 = 2;

/// Schema metadata key that carries [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "podwire.schema_version";

/// Schema metadata key that names the table a schema belongs to.
pub const TABLE_KEY: &str = "podwire.table";

/// The tables of a store, each a Hive-partitioned Parquet dataset under `STORE/<name>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// [`connections`]
    Connections,
    /// [`dns`]
    Dns,
    /// [`packets`]
    Packets,
    /// [`capture_stats`]
    CaptureStats,
}

impl Table {
    /// Every table, in a stable order.
    pub const ALL: [Table; 4] =
        [Table::Connections, Table::Dns, Table::Packets, Table::CaptureStats];

    /// The table's name: its folder in the store and its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Connections => "connections",
            Table::Dns => "dns",
            Table::Packets => "packets",
            Table::CaptureStats => "capture_stats",
        }
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> arrow::datatypes::SchemaRef {
        match self {
            Table::Connections => connections::schema(),
            Table::Dns => dns::schema(),
            Table::Packets => packets::schema(),
            Table::CaptureStats => capture_stats::schema(),
        }
    }

    /// The column that holds the event time, used for partitioning and sorting.
    pub fn time_column(self) -> &'static str {
        match self {
            Table::Connections => connections::col::START_TS,
            Table::Dns => dns::col::TS,
            Table::Packets => packets::col::TS,
            Table::CaptureStats => capture_stats::col::TS,
        }
    }

    /// The order of rows in every file of the table, ascending: the time column, then `conn_id`
    /// where the table has one. It is also the order of KFL results, so the query service can
    /// merge files instead of sorting them.
    pub fn sort_columns(self) -> &'static [&'static str] {
        match self {
            Table::Connections => &[connections::col::START_TS, connections::col::CONN_ID],
            Table::Dns => &[dns::col::TS, dns::col::CONN_ID],
            Table::Packets => &[packets::col::TS, packets::col::CONN_ID],
            Table::CaptureStats => &[capture_stats::col::TS],
        }
    }

    /// Whether the store writes `field` of this table delta-encoded (Parquet
    /// `DELTA_BINARY_PACKED`) and without a codec: the timestamps. Files are sorted by time and
    /// the other times of a row are near it, so the deltas pack into few bits: smaller than
    /// ZSTD over plain values, and read with no decompression (benchmarks/README.md, session 12).
    pub fn delta_column(self, field: &arrow::datatypes::Field) -> bool {
        matches!(field.data_type(), arrow::datatypes::DataType::Timestamp(..))
    }

    /// Whether the store compresses `field` of this table with ZSTD (schemas/README.md,
    /// "Format"): the counters (written without a dictionary), booleans, and the
    /// strings whose variety can outgrow a dictionary page (addresses, DNS names). Not the
    /// dictionary-encoded columns (names, namespaces, ports, outcomes, flags), whose pages are
    /// already bit-packed ids that ZSTD shrinks by 7-40 % at a cost on every read, nor
    /// `conn_id`, a hash (ZSTD saves 4 %). Measured in benchmarks/README.md.
    pub fn zstd_column(self, field: &arrow::datatypes::Field) -> bool {
        use arrow::datatypes::DataType;
        let hash = match self {
            Table::Connections => connections::col::CONN_ID,
            Table::Dns => dns::col::CONN_ID,
            Table::Packets => packets::col::CONN_ID,
            Table::CaptureStats => "",
        };
        let name = field.name().as_str();
        match field.data_type() {
            DataType::Int64 => name != hash,
            DataType::Boolean => true,
            DataType::Utf8 | DataType::List(_) => self.varied_strings().contains(&name),
            _ => false,
        }
    }

    /// The string columns whose variety can outgrow a dictionary page: addresses, DNS names.
    fn varied_strings(self) -> &'static [&'static str] {
        match self {
            Table::Connections => &[
                connections::col::SRC_IP,
                connections::col::DST_IP,
                connections::col::DST_DNS_NAME,
            ],
            Table::Dns => &[
                dns::col::SRC_IP,
                dns::col::DST_IP,
                dns::col::QUERY_NAME,
                dns::col::ANSWERS,
                dns::col::ANSWER_IPS,
            ],
            Table::Packets => &[packets::col::SRC_IP, packets::col::DST_IP],
            Table::CaptureStats => &[],
        }
    }

    /// Whether the store's long-lived files (those compaction writes) carry a Bloom filter of
    /// `field` of this table: the string columns that name one entity whose presence comes and
    /// goes with time (each end's name, pod, workload, service and node, the capturing node,
    /// addresses, DNS names). A lookup of one such value ("which pod talks to 203.0.113.7",
    /// one pod's traffic) then skips every file that does not hold it, which min/max statistics
    /// cannot do: the names in an hour's file span the alphabet. Not the namespaces, the protocol or the outcome: their few values are
    /// in nearly every file, so a filter would never skip one. Lists (DNS answers) have none
    /// (readers do not test them). Measured in benchmarks/README.md (query family).
    pub fn bloom_filtered(self, field: &arrow::datatypes::Field) -> bool {
        use endpoint::{NAMESPACE, SUFFIXES, Side, WORKLOAD_KIND};
        if field.data_type() != &arrow::datatypes::DataType::Utf8 {
            return false;
        }
        let name = field.name().as_str();
        let node = match self {
            Table::Connections => connections::col::NODE,
            Table::Dns => dns::col::NODE,
            Table::Packets => packets::col::NODE,
            Table::CaptureStats => capture_stats::col::NODE,
        };
        let entity = [Side::Src, Side::Dst].iter().any(|side| {
            name.strip_prefix(side.prefix())
                .is_some_and(|s| SUFFIXES.contains(&s) && s != NAMESPACE && s != WORKLOAD_KIND)
        });
        entity || name == node || self.varied_strings().contains(&name)
    }

    /// Whether the store keeps min/max statistics of `field` of this table: every column but
    /// the strings that no filter prunes by. String statistics cost more than the rest of a
    /// write; they are kept for the addresses, the protocol, the outcome, DNS names, and each
    /// end's name, namespace and pod. Lists (DNS answers) keep none.
    pub fn keeps_statistics(self, field: &arrow::datatypes::Field) -> bool {
        use arrow::datatypes::DataType;
        use endpoint::{SUFFIXES, Side};
        // Besides the varied strings (addresses, DNS names), the protocol and the outcome.
        let labels: &[&str] = match self {
            Table::Connections => &[connections::col::PROTOCOL, connections::col::OUTCOME],
            Table::Dns => &[dns::col::PROTOCOL, dns::col::OUTCOME],
            Table::Packets => &[packets::col::PROTOCOL],
            Table::CaptureStats => &[],
        };
        let name = field.name().as_str();
        // `name`, `namespace` and `pod` of either end.
        let endpoint = [Side::Src, Side::Dst].iter().any(|side| {
            name.strip_prefix(side.prefix()).is_some_and(|s| SUFFIXES[..3].contains(&s))
        });
        match field.data_type() {
            DataType::Utf8 => {
                endpoint || labels.contains(&name) || self.varied_strings().contains(&name)
            }
            DataType::List(_) => false,
            _ => true,
        }
    }
}

/// Appends an address in its standard text form (RFC 5952 for IPv6). IPv4, the common case, is
/// formatted by hand: `Display` through `fmt` costs more than the rest of a row.
pub fn append_ip(b: &mut arrow::array::StringBuilder, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + (octet / 10) % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            // Only ASCII digits and dots were written.
            b.append_value(std::str::from_utf8(&buf[..n]).unwrap_or_default());
        }
        std::net::IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(b, "{v6}");
            b.append_value("");
        }
    }
}

fn metadata(table: Table) -> std::collections::HashMap<String, String> {
    [
        (SCHEMA_VERSION_KEY.to_string(), SCHEMA_VERSION.to_string()),
        (TABLE_KEY.to_string(), table.name().to_string()),
    ]
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn zstd_on_counters_addresses_names_deltas_on_times() {
        use super::Table;
        let codec = |table: Table, name: &str| {
            let schema = table.schema();
            table.zstd_column(schema.field_with_name(name).unwrap())
        };
        for name in ["src_bytes", "is_final", "src_ip", "dst_dns_name"] {
            assert!(codec(Table::Connections, name), "{name}");
        }
        for name in ["start_ts", "conn_id", "src_port", "outcome", "src_namespace", "dst_pod"] {
            assert!(!codec(Table::Connections, name), "{name}");
        }
        // Every timestamp, and nothing else, is delta-encoded (and has no codec).
        for t in [Table::Connections, Table::Dns, Table::Packets, Table::CaptureStats] {
            for f in t.schema().fields() {
                let time = matches!(f.data_type(), arrow::datatypes::DataType::Timestamp(..));
                assert_eq!(t.delta_column(f), time, "{}", f.name());
                assert!(!(time && t.zstd_column(f)), "{}", f.name());
            }
        }
        assert!(codec(Table::Dns, "answers") && codec(Table::Dns, "query_name"));
        assert!(!codec(Table::Dns, "rcode") && !codec(Table::Packets, "conn_id"));
    }

    #[test]
    fn string_statistics_only_where_filters_prune() {
        use super::Table;
        use arrow::datatypes::DataType;
        // The string columns that keep statistics, over every table: exactly these.
        let mut kept_strings = std::collections::BTreeSet::new();
        for t in [Table::Connections, Table::Dns, Table::Packets, Table::CaptureStats] {
            for f in t.schema().fields() {
                if matches!(f.data_type(), DataType::List(_)) {
                    assert!(!t.keeps_statistics(f), "{}", f.name());
                }
                if f.data_type() == &DataType::Utf8 && t.keeps_statistics(f) {
                    kept_strings.insert(f.name().clone());
                }
            }
        }
        let expected = [
            "src_ip",
            "dst_ip",
            "src_namespace",
            "dst_namespace",
            "src_name",
            "dst_name",
            "dst_dns_name",
            "query_name",
            "src_pod",
            "dst_pod",
            "outcome",
            "protocol",
        ];
        assert_eq!(kept_strings, expected.iter().map(|s| (*s).to_string()).collect());
        let kept = |table: Table, name: &str| {
            table.keeps_statistics(table.schema().field_with_name(name).unwrap())
        };
        for name in ["start_ts", "conn_id", "src_port", "src_ip", "dst_namespace", "outcome"] {
            assert!(kept(Table::Connections, name), "{name}");
        }
        for name in ["src_workload", "dst_service", "node", "src_flags", "tunnel"] {
            assert!(!kept(Table::Connections, name), "{name}");
        }
        assert!(kept(Table::Dns, "query_name") && !kept(Table::Dns, "answers"));
    }

    #[test]
    fn bloom_filters_are_for_the_entities_not_the_labels() {
        use super::Table;
        let bloom = |table: Table, name: &str| {
            table.bloom_filtered(table.schema().field_with_name(name).unwrap())
        };
        for name in [
            "src_ip",
            "dst_ip",
            "src_name",
            "dst_pod",
            "src_workload",
            "dst_service",
            "dst_node",
            "node",
            "dst_dns_name",
        ] {
            assert!(bloom(Table::Connections, name), "{name}");
        }
        for name in
            ["src_namespace", "dst_workload_kind", "protocol", "outcome", "start_ts", "dst_port"]
        {
            assert!(!bloom(Table::Connections, name), "{name}");
        }
        assert!(bloom(Table::Dns, "query_name") && bloom(Table::Dns, "src_pod"));
        assert!(!bloom(Table::Dns, "answers") && !bloom(Table::Dns, "rcode"));
    }

    #[test]
    fn ip_text_matches_display() {
        let mut b = arrow::array::StringBuilder::new();
        let ips = [
            "0.0.0.0",
            "10.0.0.1",
            "192.168.100.255",
            "1.22.133.4",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:1.2.3.4",
        ];
        for ip in ips {
            super::append_ip(&mut b, ip.parse().unwrap());
        }
        let a = b.finish();
        for (i, ip) in ips.iter().enumerate() {
            assert_eq!(a.value(i), ip.parse::<std::net::IpAddr>().unwrap().to_string());
        }
    }
}
