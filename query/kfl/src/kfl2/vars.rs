//! KFL2's variables (`../shared/KFL.md` §2.5) and what each reads in podwire's tables.
//!
//! KFL2 evaluates flat typed variables over one entry; a variable an entry does not have takes
//! its type's default (`""`, `0`, `false`, `[]`). Here a variable is one of:
//! - a [`Field`] of the shared catalog's kind (a column, or an expression over columns, per
//!   table); where a table has no source, or the value is NULL, the checker applies the default;
//! - a protocol flag (`tcp`, `dns`, `conn`, …), a condition on the entry's table and protocol;
//! - an aggregate (`namespaces`, `pods`, `services`): the non-empty values of both ends;
//! - a variable KFL2 defines that podwire does not record (labels, processes, payloads, L7):
//!   using it is an error that says so, never a silent default.
use crate::fields::{Field, FieldType, Source, f};
use podwire_schemas::connections::col as c;
use podwire_schemas::dns::{col as d, outcome};
use podwire_schemas::endpoint::{NAME, NAMESPACE, POD, SERVICE, Side};

/// One KFL2 variable.
#[derive(Debug, Clone, Copy)]
pub enum Var {
    /// A value read from the tables.
    Field(Field),
    /// A boolean flag over the entry's kind.
    Flag {
        /// The variable.
        name: &'static str,
        /// What it selects.
        doc: &'static str,
        /// What it is.
        flag: Flag,
    },
    /// A list of the non-empty values of an endpoint column at both ends.
    Aggregate {
        /// The variable.
        name: &'static str,
        /// What it lists.
        doc: &'static str,
        /// The endpoint column suffix.
        suffix: &'static str,
    },
    /// KFL2 has it; podwire does not record it.
    NotRecorded {
        /// The variable.
        name: &'static str,
        /// Its KFL2 type.
        ty: &'static str,
        /// Why podwire has no value for it.
        why: &'static str,
    },
}

/// The meaning of a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// The KFL1 alias of the same name (`tcp`, `udp`, `icmp`, `dns`).
    Alias(&'static str),
    /// TCP or UDP connection rows (`conn`, `flow`).
    Transport,
    /// Always false on podwire's entries (`tls`: podwire does not decrypt).
    Never,
}

impl Var {
    /// The name users type.
    pub fn name(&self) -> &'static str {
        match self {
            Var::Field(f) => f.name,
            Var::Flag { name, .. }
            | Var::Aggregate { name, .. }
            | Var::NotRecorded { name, .. } => name,
        }
    }

    /// The CEL type, as `podwire fields --kfl2` shows it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Var::Field(f) => type_name(f.ty),
            Var::Flag { .. } => "bool",
            Var::Aggregate { .. } => "list(string)",
            Var::NotRecorded { ty, .. } => ty,
        }
    }

    /// What it means in podwire.
    pub fn doc(&self) -> &'static str {
        match self {
            Var::Field(f) => f.doc,
            Var::Flag { doc, .. } | Var::Aggregate { doc, .. } => doc,
            Var::NotRecorded { why, .. } => why,
        }
    }
}

/// CEL's name of a field type.
pub fn type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::Str => "string",
        FieldType::Int => "int",
        FieldType::Bool => "bool",
        FieldType::Time => "timestamp",
        FieldType::StrList => "list(string)",
    }
}

use FieldType::{Bool, Int, Str, StrList, Time};

const fn both(name: &'static str, ty: FieldType, doc: &'static str, src: Source) -> Var {
    Var::Field(f(name, ty, doc, Some(src), Some(src)))
}

const fn conn(name: &'static str, ty: FieldType, doc: &'static str, src: Source) -> Var {
    Var::Field(f(name, ty, doc, Some(src), None))
}

const fn dns(name: &'static str, ty: FieldType, doc: &'static str, src: Source) -> Var {
    Var::Field(f(name, ty, doc, None, Some(src)))
}

/// An enrichment column of one end, in both tables.
const fn end(name: &'static str, doc: &'static str, side: Side, suffix: &'static str) -> Var {
    both(name, Str, doc, Source::Endpoint(side, suffix))
}

const fn col(name: &'static str) -> Source {
    Source::Column(name)
}

const fn flag(name: &'static str, doc: &'static str, flag: Flag) -> Var {
    Var::Flag { name, doc, flag }
}

const fn not(name: &'static str, ty: &'static str, why: &'static str) -> Var {
    Var::NotRecorded { name, ty, why }
}

const L7: &str = "podwire records L4 connections and DNS, not this protocol's messages";
const LABELS: &str =
    "podwire does not store labels or annotations; filter on namespace, workload or pod";
const PROCESS: &str = "podwire captures on the network, without process names";
const PAYLOAD: &str = "podwire does not store payloads";
const META: &str =
    "Kubeshark's own entry bookkeeping; podwire's rows have `conn_id` and `timestamp`";

/// Every KFL2 variable, in the order of `podwire fields --kfl2`.
pub static VARS: &[Var] = &[
    // network
    both("src.ip", Str, "initiator/client address", col(c::SRC_IP)),
    both("dst.ip", Str, "responder/server address", col(c::DST_IP)),
    both("src.port", Int, "initiator/client port (ICMP: message type)", col(c::SRC_PORT)),
    both("dst.port", Int, "responder/server port (ICMP: message code)", col(c::DST_PORT)),
    Var::Field(f(
        "protocol",
        Str,
        "`TCP`, `UDP`, `ICMP` (connections) or `DNS`",
        Some(Source::Upper(c::PROTOCOL)),
        Some(Source::ConstStr("DNS")),
    )),
    // identity
    end("src.name", "initiator: pod, else service, else ''", Side::Src, NAME),
    end(
        "dst.name",
        "responder: pod, else service, else the DNS name the client resolved, else ''",
        Side::Dst,
        NAME,
    ),
    end("src.namespace", "initiator's namespace (pod's, else service's)", Side::Src, NAMESPACE),
    end(
        "dst.namespace",
        "responder's namespace (pod's, else service's); '' outside the cluster",
        Side::Dst,
        NAMESPACE,
    ),
    both("src.pod.name", Str, "initiator's pod, else its service", Source::PodOrService(Side::Src)),
    both("dst.pod.name", Str, "responder's pod, else its service", Source::PodOrService(Side::Dst)),
    end("src.pod.namespace", "initiator's namespace (pod's, else service's)", Side::Src, NAMESPACE),
    end("dst.pod.namespace", "responder's namespace (pod's, else service's)", Side::Dst, NAMESPACE),
    both("src.service.name", Str, "initiator's service", Source::Endpoint(Side::Src, SERVICE)),
    end("dst.service.name", "responder's service (ClusterIP or selector)", Side::Dst, SERVICE),
    both(
        "src.service.namespace",
        Str,
        "initiator's service's namespace, '' without a service",
        Source::IfSet { side: Side::Src, test: SERVICE, value: NAMESPACE },
    ),
    both(
        "dst.service.namespace",
        Str,
        "responder's service's namespace, '' without a service",
        Source::IfSet { side: Side::Dst, test: SERVICE, value: NAMESPACE },
    ),
    Var::Aggregate {
        name: "namespaces",
        doc: "the non-empty namespaces of both ends",
        suffix: NAMESPACE,
    },
    Var::Aggregate { name: "pods", doc: "the non-empty pod names of both ends", suffix: POD },
    Var::Aggregate {
        name: "services",
        doc: "the non-empty service names of both ends",
        suffix: SERVICE,
    },
    // node
    both("node_name", Str, "the capturing node", col(c::NODE)),
    not(
        "node_ip",
        "string",
        "podwire records the capturing node's name (`node_name`), not its address",
    ),
    not("node", "map", "podwire records the capturing node's name (`node_name`) only"),
    not(
        "local_node_name",
        "string",
        "podwire has no local/remote view; KFL1's `src.node.name` and `dst.node.name` are the ends' nodes",
    ),
    not(
        "remote_node_name",
        "string",
        "podwire has no local/remote view; KFL1's `src.node.name` and `dst.node.name` are the ends' nodes",
    ),
    not("local_process_name", "string", PROCESS),
    not("remote_process_name", "string", PROCESS),
    not("local_labels", "map", LABELS),
    not("remote_labels", "map", LABELS),
    not("local_annotations", "map", LABELS),
    not("remote_annotations", "map", LABELS),
    // DNS resolution
    conn(
        "dst.dns",
        Str,
        "the DNS name the client resolved for dst.ip before connecting",
        col(c::DST_DNS_NAME),
    ),
    not(
        "src.dns",
        "string",
        "podwire names the destination from the client's lookups, not the source",
    ),
    not("dns_resolutions", "list(string)", "podwire keeps one name per destination (`dst.dns`)"),
    not("local_resolution_status", "string", "podwire does not record how a name was resolved"),
    not("remote_resolution_status", "string", "podwire does not record how a name was resolved"),
    // meta
    Var::Field(f(
        "timestamp",
        Time,
        "start of the entry (connections: first packet of the row; dns: query time)",
        Some(col(c::START_TS)),
        Some(col(d::TS)),
    )),
    Var::Field(Field {
        nullable: true,
        ..f(
            "elapsed_time",
            Int,
            "microseconds: TCP handshake RTT (connections), response latency (dns); 0 when unknown",
            Some(col(c::HANDSHAKE_RTT_US)),
            Some(col(d::LATENCY_US)),
        )
    }),
    both("conn_id", Int, "connection id (the join key between tables)", col(c::CONN_ID)),
    not("id", "string", META),
    not("node_id", "string", META),
    not("index", "int", META),
    not("stream", "string", META),
    not("worker", "string", META),
    not("flow_id", "string", META),
    not("has_pcap", "bool", META),
    not("capture_source", "string", "podwire does not record which capture path saw an entry"),
    not("capture_backend", "string", "podwire does not record which capture path saw an entry"),
    not("capture_source_code", "int", "podwire does not record which capture path saw an entry"),
    // protocol flags
    flag("tcp", "TCP connection rows", Flag::Alias("tcp")),
    flag("udp", "UDP flow rows", Flag::Alias("udp")),
    flag("icmp", "ICMP rows", Flag::Alias("icmp")),
    flag("dns", "DNS transactions", Flag::Alias("dns")),
    flag("conn", "TCP and UDP connection rows", Flag::Transport),
    flag("flow", "TCP and UDP connection rows (podwire's rows are both)", Flag::Transport),
    flag("tcp_conn", "TCP connection rows", Flag::Alias("tcp")),
    flag("udp_conn", "UDP flow rows", Flag::Alias("udp")),
    flag("tcp_flow", "TCP connection rows", Flag::Alias("tcp")),
    flag("udp_flow", "UDP flow rows", Flag::Alias("udp")),
    flag("tls", "always false: podwire does not decrypt TLS", Flag::Never),
    not("http", "bool", L7),
    not("grpc", "bool", L7),
    not("redis", "bool", L7),
    not("kafka", "bool", L7),
    not("amqp", "bool", L7),
    not("ldap", "bool", L7),
    not("ws", "bool", L7),
    not("gql", "bool", L7),
    not("gqlv1", "bool", L7),
    not("gqlv2", "bool", L7),
    not("radius", "bool", L7),
    not("diameter", "bool", L7),
    not("mongodb", "bool", L7),
    not("mysql", "bool", L7),
    not("postgresql", "bool", L7),
    not("sctp", "bool", "podwire decodes TCP, UDP and ICMP"),
    // TCP, UDP, ICMP details
    not("tcp_method", "string", PAYLOAD),
    not("tcp_payload", "bytes", PAYLOAD),
    not("tcp_error_type", "string", "podwire records how a connection ended as KFL1's `outcome`"),
    not(
        "tcp_error_message",
        "string",
        "podwire records how a connection ended as KFL1's `outcome`",
    ),
    not(
        "udp_length",
        "int",
        "podwire records bytes per flow (`conn_local_bytes`), not per datagram",
    ),
    not("udp_checksum", "int", PAYLOAD),
    not("udp_payload", "bytes", PAYLOAD),
    not(
        "icmp_type",
        "string",
        "podwire keeps ICMP as flows: KFL1's `src.port` is the type, `dst.port` the code",
    ),
    not(
        "icmp_version",
        "int",
        "podwire keeps ICMP as flows: KFL1's `src.port` is the type, `dst.port` the code",
    ),
    not("icmp_length", "int", "podwire records bytes per flow, not per message"),
    // DNS
    dns(
        "dns_questions",
        StrList,
        "the question's name (podwire stores the first question)",
        Source::ListOf(d::QUERY_NAME),
    ),
    dns(
        "dns_question_types",
        StrList,
        "the question's type (`A`, `AAAA`, …)",
        Source::ListOf(d::QUERY_TYPE),
    ),
    dns("dns_answers", StrList, "answer records as `TYPE value`", col(d::ANSWERS)),
    dns(
        "dns_request",
        Bool,
        "the query was seen",
        Source::NotEqual(d::OUTCOME, outcome::RESPONSE_ONLY),
    ),
    dns(
        "dns_response",
        Bool,
        "a response was seen",
        Source::NotEqual(d::OUTCOME, outcome::NO_RESPONSE),
    ),
    dns(
        "status_code",
        Int,
        "DNS response code (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, …); 0 without a response",
        Source::RcodeNumber,
    ),
    not("dns_request_length", "int", "podwire does not record DNS message sizes"),
    not("dns_response_length", "int", "podwire does not record DNS message sizes"),
    not("dns_total_size", "int", "podwire does not record DNS message sizes"),
    // L4 connection and flow
    conn(
        "conn_state",
        Str,
        "`open` on interim rows and open connections, else `closed` (podwire has no `in_progress`)",
        Source::ConnState,
    ),
    conn("conn_local_pkts", Int, "packets the initiator sent during the row", col(c::SRC_PACKETS)),
    conn("conn_local_bytes", Int, "IP bytes the initiator sent during the row", col(c::SRC_BYTES)),
    conn("conn_remote_pkts", Int, "packets the responder sent during the row", col(c::DST_PACKETS)),
    conn("conn_remote_bytes", Int, "IP bytes the responder sent during the row", col(c::DST_BYTES)),
    conn("flow_state", Str, "as `conn_state`", Source::ConnState),
    conn("flow_local_pkts", Int, "as `conn_local_pkts`", col(c::SRC_PACKETS)),
    conn("flow_local_bytes", Int, "as `conn_local_bytes`", col(c::SRC_BYTES)),
    conn("flow_remote_pkts", Int, "as `conn_remote_pkts`", col(c::DST_PACKETS)),
    conn("flow_remote_bytes", Int, "as `conn_remote_bytes`", col(c::DST_BYTES)),
    not("conn_l7_detected", "list(string)", L7),
    not("conn_group_id", "string", META),
    not("flow_l7_detected", "list(string)", L7),
    not("flow_group_id", "string", META),
    not("flow_local_pps", "int", "podwire records counts per row, not rates"),
    not("flow_local_bps", "int", "podwire records counts per row, not rates"),
    not("flow_remote_pps", "int", "podwire records counts per row, not rates"),
    not("flow_remote_bps", "int", "podwire records counts per row, not rates"),
];

/// The variable spelled `name`.
pub fn lookup(name: &str) -> Option<&'static Var> {
    VARS.iter().find(|v| v.name() == name)
}
