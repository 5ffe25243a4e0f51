//! The field catalog: every KFL selector podwire understands, the column (or expression) it reads
//! in each table of the stream, its type and unit. `podwire fields` prints this list.
//!
//! Column names come from the `schemas` crate and are never spelled here. Several selectors may
//! read the same column (`src.pod.name` and `src.pod.metadata.name`, the v38–41 and v52 spellings).
//! A field that a table does not have is FALSE on that table's rows (see [`mod@crate::translate`]).
use podwire_schemas::Table;
use podwire_schemas::connections::col as c;
use podwire_schemas::dns::col as d;
use podwire_schemas::endpoint::{
    NAME, NAMESPACE, NODE, POD, SERVICE, Side, WORKLOAD, WORKLOAD_KIND,
};

/// The tables one KFL query reads: the stream of entries, as in Kubeshark.
pub const STREAM_TABLES: [Table; 2] = [Table::Connections, Table::Dns];

/// The type a field has in KFL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    Str,
    /// An integer (ports, counters, durations).
    Int,
    /// A boolean.
    Bool,
    /// A point in time; KFL numbers compared with it are epoch milliseconds.
    Time,
    /// A list of text values; `==` means "contains".
    StrList,
}

impl FieldType {
    /// How the type is named in messages and in `podwire fields`.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::Int => "integer",
            FieldType::Bool => "boolean",
            FieldType::Time => "time",
            FieldType::StrList => "list of strings",
        }
    }
}

/// Where a field's value comes from in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A column of the table.
    Column(&'static str),
    /// An enrichment column, `src_<suffix>` or `dst_<suffix>`.
    Endpoint(Side, &'static str),
    /// The sum of two integer columns (both directions of a counter).
    Sum(&'static str, &'static str),
    /// The same text on every row (`protocol.name` is `dns` on the `dns` table).
    ConstStr(&'static str),
    /// The same boolean on every row (`tls` is false: podwire does not decrypt).
    ConstBool(bool),
    /// A text column in upper case (KFL2's `protocol`: `TCP`, `DNS`).
    Upper(&'static str),
    /// The endpoint's pod, else its service (KFL2's `dst.pod.name`: pod fields fall back to the
    /// service).
    PodOrService(Side),
    /// An endpoint column where another one is set, else `''` (KFL2's `dst.service.namespace`
    /// is the namespace when there is a service).
    IfSet {
        /// The side.
        side: Side,
        /// The suffix that must be non-empty.
        test: &'static str,
        /// The suffix read.
        value: &'static str,
    },
    /// `column <> 'value'`, a boolean (KFL2's `dns_response`).
    NotEqual(&'static str, &'static str),
    /// A one-element list of a text column (KFL2's `dns_questions`: podwire stores the first
    /// question).
    ListOf(&'static str),
    /// KFL2's `conn_state` from the connection row: `open` on interim rows and open
    /// connections, else `closed`.
    ConnState,
    /// The DNS response code as its number (KFL2's `status_code`); 0 without a response.
    RcodeNumber,
}

/// One KFL selector.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The selector as users type it (`.*` written `[*]`).
    pub name: &'static str,
    /// Its type.
    pub ty: FieldType,
    /// True when the column can be NULL (a comparison with NULL is false).
    pub nullable: bool,
    /// Column units per KFL unit: `elapsedTime` is milliseconds in KFL, microseconds in the
    /// store, so 1000. 1 for everything else.
    pub scale: i64,
    /// What it means, with its unit.
    pub doc: &'static str,
    /// Where it comes from in `connections`.
    pub connections: Option<Source>,
    /// Where it comes from in `dns`.
    pub dns: Option<Source>,
    /// Kubeshark's values translated to the stored ones (`"No Error"` is `NOERROR`).
    pub values: &'static [(&'static str, &'static str)],
}

impl Field {
    /// Where the field comes from in `table`, if the table has it.
    pub fn source(&self, table: Table) -> Option<Source> {
        match table {
            Table::Connections => self.connections,
            Table::Dns => self.dns,
            _ => None,
        }
    }

    /// The tables of the stream that have the field.
    pub fn tables(&self) -> Vec<Table> {
        STREAM_TABLES.into_iter().filter(|t| self.source(*t).is_some()).collect()
    }
}

/// Kubeshark's DNS response codes (hickory/miekg display names) and the stored `rcode`s.
const RCODES: &[(&str, &str)] = &[
    ("No Error", "NOERROR"),
    ("Format Error", "FORMERR"),
    ("Server Failure", "SERVFAIL"),
    ("Non-Existent Domain", "NXDOMAIN"),
    ("Not Implemented", "NOTIMP"),
    ("Query Refused", "REFUSED"),
];

pub(crate) const fn f(
    name: &'static str,
    ty: FieldType,
    doc: &'static str,
    connections: Option<Source>,
    dns: Option<Source>,
) -> Field {
    Field { name, ty, nullable: false, scale: 1, doc, connections, dns, values: &[] }
}

const fn both(name: &'static str, ty: FieldType, doc: &'static str, col: &'static str) -> Field {
    f(name, ty, doc, Some(Source::Column(col)), Some(Source::Column(col)))
}

const fn conn(name: &'static str, ty: FieldType, doc: &'static str, col: &'static str) -> Field {
    f(name, ty, doc, Some(Source::Column(col)), None)
}

const fn conn_sum(
    name: &'static str,
    doc: &'static str,
    a: &'static str,
    b: &'static str,
) -> Field {
    f(name, FieldType::Int, doc, Some(Source::Sum(a, b)), None)
}

const fn dns(name: &'static str, ty: FieldType, doc: &'static str, col: &'static str) -> Field {
    f(name, ty, doc, None, Some(Source::Column(col)))
}

const fn nullable(mut field: Field) -> Field {
    field.nullable = true;
    field
}

const fn ep(name: &'static str, side: Side, suffix: &'static str, doc: &'static str) -> Field {
    let s = Some(Source::Endpoint(side, suffix));
    f(name, FieldType::Str, doc, s, s)
}

macro_rules! endpoint_fields {
    ($p:literal, $side:expr, $who:literal) => {
        [
            ep(
                concat!($p, ".name"),
                $side,
                NAME,
                concat!($who, ": pod name, else service name, else (dst) the DNS name the client resolved, else ''"),
            ),
            ep(
                concat!($p, ".namespace"),
                $side,
                NAMESPACE,
                concat!($who, ": namespace, '' outside the cluster"),
            ),
            ep(
                concat!($p, ".pod.name"),
                $side,
                POD,
                concat!($who, ": pod name (KFL2, Kubeshark v38-41)"),
            ),
            ep(
                concat!($p, ".pod.metadata.name"),
                $side,
                POD,
                concat!($who, ": pod name (Kubeshark v52)"),
            ),
            ep(concat!($p, ".pod"), $side, POD, concat!($who, ": pod name; `== nil` means no pod")),
            ep(
                concat!($p, ".pod.namespace"),
                $side,
                NAMESPACE,
                concat!($who, ": namespace (KFL2)"),
            ),
            ep(
                concat!($p, ".pod.metadata.namespace"),
                $side,
                NAMESPACE,
                concat!($who, ": namespace (v52)"),
            ),
            ep(
                concat!($p, ".pod.spec.nodeName"),
                $side,
                NODE,
                concat!($who, ": node it runs on (v52)"),
            ),
            ep(
                concat!($p, ".workload.name"),
                $side,
                WORKLOAD,
                concat!($who, ": workload (Deployment, StatefulSet, ...)"),
            ),
            ep(concat!($p, ".workload"), $side, WORKLOAD, concat!($who, ": workload")),
            ep(
                concat!($p, ".workload.kind"),
                $side,
                WORKLOAD_KIND,
                concat!($who, ": workload kind"),
            ),
            ep(concat!($p, ".service.name"), $side, SERVICE, concat!($who, ": service (KFL2)")),
            ep(
                concat!($p, ".service.metadata.name"),
                $side,
                SERVICE,
                concat!($who, ": service (v52)"),
            ),
            ep(
                concat!($p, ".service"),
                $side,
                SERVICE,
                concat!($who, ": service; `== nil` means none"),
            ),
            ep(
                concat!($p, ".node.name"),
                $side,
                NODE,
                concat!($who, ": node it runs on, or whose address it is"),
            ),
            ep(concat!($p, ".node"), $side, NODE, concat!($who, ": node it runs on")),
        ]
    };
}

const SRC: [Field; 16] = endpoint_fields!("src", Side::Src, "initiator/client");
const DST: [Field; 16] = endpoint_fields!("dst", Side::Dst, "responder/server");

use FieldType::{Bool, Int, Str, StrList, Time};

const OWN: &[Field] = &[
    f(
        "timestamp",
        Time,
        "start of the entry (connections: first packet of the row; dns: query time); epoch ms in comparisons",
        Some(Source::Column(c::START_TS)),
        Some(Source::Column(d::TS)),
    ),
    conn("endTimestamp", Time, "last packet of the row; epoch ms in comparisons", c::END_TS),
    nullable(dns(
        "responseTimestamp",
        Time,
        "DNS response time; epoch ms in comparisons",
        d::RESPONSE_TS,
    )),
    nullable(Field {
        scale: 1000,
        ..f(
            "elapsedTime",
            Int,
            "milliseconds: TCP handshake RTT (connections), response latency (dns)",
            Some(Source::Column(c::HANDSHAKE_RTT_US)),
            Some(Source::Column(d::LATENCY_US)),
        )
    }),
    both("connId", Int, "connection id (the join key between tables)", c::CONN_ID),
    f(
        "protocol.name",
        Str,
        "`tcp`, `udp`, `icmp` (connections) or `dns`",
        Some(Source::Column(c::PROTOCOL)),
        Some(Source::ConstStr("dns")),
    ),
    both("protocol.layer4", Str, "transport: `tcp`, `udp` or `icmp`", c::PROTOCOL),
    both("src.ip", Str, "initiator/client address", c::SRC_IP),
    both("src.port", Int, "initiator/client port (ICMP: message type)", c::SRC_PORT),
    both("dst.ip", Str, "responder/server address", c::DST_IP),
    both("dst.port", Int, "responder/server port (ICMP: message code)", c::DST_PORT),
    both("node.name", Str, "the capturing node", c::NODE),
    both(
        "outcome",
        Str,
        "connections: closed, open, reset, refused, no_answer, aborted, unreachable, midstream, answered; dns: answered, no_response, response_only",
        c::OUTCOME,
    ),
    f(
        "tls",
        Bool,
        "always false: podwire does not decrypt TLS",
        Some(Source::ConstBool(false)),
        Some(Source::ConstBool(false)),
    ),
    // connections
    conn("isFinal", Bool, "true on a connection's last row", c::IS_FINAL),
    conn("rowSeq", Int, "0 on a connection's first row, then 1, 2, ...", c::ROW_SEQ),
    conn("src.packets", Int, "packets sent by the initiator during the row", c::SRC_PACKETS),
    conn("dst.packets", Int, "packets sent by the responder during the row", c::DST_PACKETS),
    conn_sum("packets", "packets both ways during the row", c::SRC_PACKETS, c::DST_PACKETS),
    conn("src.bytes", Int, "IP bytes sent by the initiator during the row", c::SRC_BYTES),
    conn("dst.bytes", Int, "IP bytes sent by the responder during the row", c::DST_BYTES),
    conn_sum("bytes", "IP bytes both ways during the row", c::SRC_BYTES, c::DST_BYTES),
    conn(
        "src.payloadBytes",
        Int,
        "payload bytes sent by the initiator during the row",
        c::SRC_PAYLOAD_BYTES,
    ),
    conn(
        "dst.payloadBytes",
        Int,
        "payload bytes sent by the responder during the row",
        c::DST_PAYLOAD_BYTES,
    ),
    conn(
        "requestSize",
        Int,
        "payload bytes sent by the initiator during the row",
        c::SRC_PAYLOAD_BYTES,
    ),
    conn(
        "responseSize",
        Int,
        "payload bytes sent by the responder during the row",
        c::DST_PAYLOAD_BYTES,
    ),
    conn_sum(
        "size",
        "payload bytes both ways during the row",
        c::SRC_PAYLOAD_BYTES,
        c::DST_PAYLOAD_BYTES,
    ),
    conn("src.flags", Str, "TCP flags the initiator sent (letters SAPFRUEC)", c::SRC_FLAGS),
    conn("dst.flags", Str, "TCP flags the responder sent", c::DST_FLAGS),
    nullable(conn("rtt", Int, "TCP handshake RTT, microseconds", c::HANDSHAKE_RTT_US)),
    conn(
        "src.retransmits",
        Int,
        "initiator's retransmitted segments during the row",
        c::SRC_RETRANSMITS,
    ),
    conn(
        "dst.retransmits",
        Int,
        "responder's retransmitted segments during the row",
        c::DST_RETRANSMITS,
    ),
    conn_sum(
        "retransmits",
        "retransmitted segments both ways during the row",
        c::SRC_RETRANSMITS,
        c::DST_RETRANSMITS,
    ),
    conn(
        "src.zeroWindows",
        Int,
        "initiator's zero-window segments during the row",
        c::SRC_ZERO_WINDOWS,
    ),
    conn(
        "dst.zeroWindows",
        Int,
        "responder's zero-window segments during the row",
        c::DST_ZERO_WINDOWS,
    ),
    conn_sum(
        "zeroWindows",
        "zero-window segments both ways during the row",
        c::SRC_ZERO_WINDOWS,
        c::DST_ZERO_WINDOWS,
    ),
    conn("closedBy", Str, "who sent the first FIN: `src`, `dst` or ''", c::CLOSED_BY),
    conn("resetBy", Str, "who sent the first RST: `src`, `dst` or ''", c::RESET_BY),
    nullable(conn(
        "icmp.type",
        Int,
        "type of the last ICMP error quoting the connection",
        c::ICMP_TYPE,
    )),
    nullable(conn("icmp.code", Int, "code of that ICMP error", c::ICMP_CODE)),
    conn("icmp.errors", Int, "ICMP errors quoting the connection during the row", c::ICMP_ERRORS),
    conn("icmp.errorSrc", Str, "who sent the last ICMP error", c::ICMP_ERROR_SRC),
    conn("vlan", Str, "VLAN ids, outer first, joined by `.`", c::VLAN),
    conn("tunnel", Str, "innermost tunnel, e.g. `vxlan:42`", c::TUNNEL),
    conn(
        "dst.dns",
        Str,
        "DNS name the initiator resolved for dst.ip (KFL2 `dst.dns`)",
        c::DST_DNS_NAME,
    ),
    // dns
    dns(
        "request.questions[0].name",
        Str,
        "the question's name, without the trailing dot",
        d::QUERY_NAME,
    ),
    dns(
        "request.questions[*].name",
        Str,
        "the question's name (only the first question is stored)",
        d::QUERY_NAME,
    ),
    dns("request.questions[0].type", Str, "the question's type (`A`, `AAAA`, ...)", d::QUERY_TYPE),
    dns(
        "request.questions[*].type",
        Str,
        "the question's type (only the first question is stored)",
        d::QUERY_TYPE,
    ),
    dns("request.id", Int, "DNS transaction id", d::DNS_ID),
    Field {
        values: RCODES,
        ..dns(
            "response.code",
            Str,
            "response code (`NOERROR`, `NXDOMAIN`, ...; Kubeshark's `No Error` etc. are accepted); '' without a response",
            d::RCODE,
        )
    },
    dns("response.answers", StrList, "answer records as `TYPE value`", d::ANSWERS),
    dns("response.answers[*].ip", StrList, "addresses of the A and AAAA answers", d::ANSWER_IPS),
    nullable(dns("response.ttl", Int, "smallest TTL among the answers, seconds", d::TTL_MIN)),
];

/// Every field, in a stable order (the order of `podwire fields`).
pub fn catalog() -> impl Iterator<Item = &'static Field> {
    OWN.iter().chain(SRC.iter()).chain(DST.iter())
}

/// The field spelled `name` (canonical form, see [`crate::ast::Path::key`]).
pub fn lookup(name: &str) -> Option<&'static Field> {
    catalog().find(|f| f.name == name)
}

/// Up to three known names closest to `name` by edit distance (case-insensitive), best first,
/// at most one edit worse than the best.
pub fn suggest<'a>(name: &str, extra: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    closest(name, catalog().map(|f| f.name).chain(extra))
}

/// Up to three of `candidates` closest to `name` by Levenshtein distance (case-insensitive),
/// best first, at most one edit worse than the best and at most a third of `name`'s length
/// away (two edits for short names); `name` itself is not a suggestion.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let target = name.to_lowercase();
    let limit = (target.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, String)> = candidates
        .into_iter()
        .filter(|cand| *cand != name)
        .filter_map(|cand| {
            let d = strsim::levenshtein(&target, &cand.to_lowercase());
            (d <= limit).then(|| (d, cand.to_string()))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    let best = scored.first().map_or(0, |s| s.0);
    scored.into_iter().take_while(|s| s.0 <= best + 1).take(3).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_columns_exist() {
        let mut names: Vec<_> = catalog().map(|f| f.name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate field name");
        for field in catalog() {
            assert!(!field.tables().is_empty(), "{} is in no table", field.name);
            for t in STREAM_TABLES {
                let schema = t.schema();
                let cols: Vec<String> = match field.source(t) {
                    Some(Source::Column(c)) => vec![c.to_string()],
                    Some(Source::Endpoint(side, s)) => vec![side.column(s)],
                    Some(Source::Sum(a, b)) => vec![a.to_string(), b.to_string()],
                    _ => vec![],
                };
                for col in cols {
                    let f = schema.field_with_name(&col).unwrap_or_else(|_| panic!("{col}"));
                    assert_eq!(f.is_nullable(), field.nullable, "{} on {}", field.name, t.name());
                }
            }
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("dst.nam", []), ["dst.name"]);
        assert_eq!(suggest("src.namespce", []), ["src.namespace"]);
        assert_eq!(suggest("TCP", ["tcp"]), ["tcp"]);
        assert!(suggest("zzzzzzzzzz", []).is_empty());
    }
}
