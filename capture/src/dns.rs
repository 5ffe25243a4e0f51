//! DNS: messages parsed with `hickory-proto`, queries matched to responses into
//! [`DnsRecord`]s, and a time-aware index from answered addresses to the names clients resolved,
//! which names the `dst` of later connections (`dst_dns_name`).
use hashbrown::HashMap;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{Name, RData};
use podwire_schemas::EndpointMeta;
use podwire_schemas::dns::{DnsRecord, RCODE_NAMES, RCODE_PREFIX, outcome};
use std::net::IpAddr;

const NS: i64 = 1_000_000_000;

/// Timeouts and bounds of DNS tracking.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// A query without a response after this long becomes a `no_response` row.
    pub response_timeout_ns: i64,
    /// An answered address keeps its name for `ttl * ttl_factor + ttl_grace_ns`: clients cache
    /// answers longer than the TTL says (the JVM, connection pools), so the index is generous.
    pub ttl_factor: i64,
    /// See `ttl_factor`.
    pub ttl_grace_ns: i64,
    /// Most queries awaiting a response; beyond it the oldest become `no_response` rows.
    pub max_pending: usize,
    /// Most addresses in the name index; beyond it expired and then oldest entries go.
    pub max_names: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            response_timeout_ns: 10 * NS,
            ttl_factor: 2,
            ttl_grace_ns: 15 * 60 * NS,
            max_pending: 100_000,
            max_names: 500_000,
        }
    }
}

/// Who asked what, seen from the packet that carried the message.
#[derive(Debug, Clone, Copy)]
pub struct Carrier {
    /// Capture time, ns.
    pub ts_ns: i64,
    /// Connection that carried it.
    pub conn_id: i64,
    /// `udp` or `tcp`.
    pub protocol: &'static str,
    /// Sender.
    pub src: IpAddr,
    /// Sender port.
    pub sport: u16,
    /// Receiver.
    pub dst: IpAddr,
    /// Receiver port.
    pub dport: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TxKey {
    client: IpAddr,
    cport: u16,
    server: IpAddr,
    sport: u16,
    id: u16,
}

#[derive(Debug)]
struct Pending {
    carrier: Carrier,
    query_name: String,
    query_type: String,
}

#[derive(Debug, Clone)]
struct NameEntry {
    /// First answer of this name to this client (the name is known from then on).
    first_ns: i64,
    /// Latest such answer.
    answered_ns: i64,
    expires_ns: i64,
    client: IpAddr,
    name: std::sync::Arc<str>,
}

/// Tracks DNS transactions and the resolved-name index.
#[derive(Debug, Default)]
pub struct DnsTracker {
    config: DnsConfig,
    pending: HashMap<TxKey, Pending>,
    names: HashMap<IpAddr, Vec<NameEntry>>,
    /// Finished transactions, drained by the pipeline.
    pub out: Vec<DnsRecord>,
    /// Messages that did not parse as DNS.
    pub parse_errors: u64,
    node: std::sync::Arc<str>,
    /// The name index is scanned for expired entries at most once a minute (packet time).
    next_names_sweep_ns: i64,
}

/// Renders a response code the way dig and Kubeshark do (`NOERROR`, `NXDOMAIN`, ...).
pub fn rcode_name(code: u16) -> String {
    match RCODE_NAMES.get(usize::from(code)) {
        Some(name) => (*name).to_string(),
        None => format!("{RCODE_PREFIX}{code}"),
    }
}

/// A name as text, as `hickory-proto` writes it (`Name::to_utf8`) without the root's trailing
/// dot. Plain labels (letters, digits, `_`, inner `-`) are copied as they are; a name with any
/// other label (IDNA `xn--`, bytes to escape) goes through `to_utf8`. (`to_utf8` formats every
/// label through `fmt`: 3 % of the packet path on a capture with 6,660 DNS messages.)
fn name_text(name: &Name) -> String {
    let mut text = String::with_capacity(name.len());
    for label in name.iter() {
        let plain = !label.starts_with(b"xn--")
            && label
                .iter()
                .enumerate()
                .all(|(i, &b)| b.is_ascii_alphanumeric() || b == b'_' || (b == b'-' && i > 0));
        let Some(label) = std::str::from_utf8(label).ok().filter(|_| plain) else {
            return trim_dot(name.to_utf8());
        };
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(label);
    }
    if text.is_empty() && name.is_fqdn() {
        text.push('.');
    }
    text
}

fn trim_dot(mut s: String) -> String {
    if s.len() > 1 && s.ends_with('.') {
        s.pop();
    }
    s
}

impl DnsTracker {
    /// A tracker; `node` fills the records' `node` column.
    pub fn new(config: DnsConfig, node: &str) -> Self {
        DnsTracker { config, node: node.into(), ..Default::default() }
    }

    /// Handles the payload of a UDP datagram or TCP segment to or from port 53. TCP payloads
    /// carry length-prefixed messages; every complete one is handled.
    pub fn on_payload(&mut self, c: Carrier, payload: &[u8], tcp: bool) {
        if !tcp {
            self.on_message(c, payload);
            return;
        }
        let mut rest = payload;
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let Some(msg) = rest.get(2..2 + len) else {
                // A message continued in the next segment: not reassembled (rare for DNS).
                return;
            };
            self.on_message(c, msg);
            rest = &rest[2 + len..];
        }
    }

    fn on_message(&mut self, c: Carrier, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let Ok(msg) = Message::from_vec(bytes) else {
            self.parse_errors += 1;
            return;
        };
        // Text of the first question; computed once per transaction (the query's, or the
        // response's when the query was not seen).
        let question = |msg: &Message| match msg.queries.first() {
            Some(q) => (name_text(q.name()), <&str>::from(q.query_type()).to_string()),
            None => (String::new(), String::new()),
        };
        let id = msg.metadata.id;
        match msg.metadata.message_type {
            MessageType::Query => {
                if self.pending.len() >= self.config.max_pending {
                    self.expire_oldest_pending();
                }
                let key =
                    TxKey { client: c.src, cport: c.sport, server: c.dst, sport: c.dport, id };
                // A retransmitted query keeps the first one's time.
                if let hashbrown::hash_map::Entry::Vacant(v) = self.pending.entry(key) {
                    let (query_name, query_type) = question(&msg);
                    v.insert(Pending { carrier: c, query_name, query_type });
                }
            }
            MessageType::Response => {
                let key =
                    TxKey { client: c.dst, cport: c.dport, server: c.src, sport: c.sport, id };
                let (ts_ns, query_name, query_type, outcome, conn_id) =
                    match self.pending.remove(&key) {
                        Some(p) => (
                            p.carrier.ts_ns,
                            p.query_name,
                            p.query_type,
                            outcome::ANSWERED,
                            p.carrier.conn_id,
                        ),
                        None => {
                            let (name, typ) = question(&msg);
                            (c.ts_ns, name, typ, outcome::RESPONSE_ONLY, c.conn_id)
                        }
                    };
                let rcode = rcode_name(u16::from(msg.metadata.response_code));
                let mut answers = Vec::with_capacity(msg.answers.len());
                let mut answer_ips = Vec::new();
                let mut ttl_min: Option<u32> = None;
                for r in &msg.answers {
                    ttl_min = Some(ttl_min.map_or(r.ttl, |t| t.min(r.ttl)));
                    let ip = match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    };
                    answers.push(match ip {
                        Some(ip) => format!("{} {ip}", r.record_type()),
                        None => format!("{} {}", r.record_type(), trim_dot(r.data.to_string())),
                    });
                    if let Some(ip) = ip {
                        answer_ips.push(ip);
                        self.remember(ip, c.ts_ns, r.ttl, c.dst, &query_name);
                    }
                }
                self.out.push(DnsRecord {
                    ts_ns,
                    response_ns: Some(c.ts_ns),
                    conn_id,
                    protocol: c.protocol,
                    src_ip: c.dst,
                    src_port: c.dport,
                    dst_ip: c.src,
                    dst_port: c.sport,
                    dns_id: id,
                    query_name,
                    query_type,
                    rcode,
                    answers,
                    answer_ips,
                    ttl_min,
                    outcome,
                    node: self.node.clone(),
                    src_meta: EndpointMeta::default(),
                    dst_meta: EndpointMeta::default(),
                });
            }
        }
    }

    fn remember(&mut self, ip: IpAddr, ts_ns: i64, ttl: u32, client: IpAddr, name: &str) {
        if name.is_empty() {
            return;
        }
        if self.names.len() >= self.config.max_names && !self.names.contains_key(&ip) {
            self.expire_names(ts_ns);
            if self.names.len() >= self.config.max_names {
                // Still full of live entries: forget the address answered longest ago.
                let oldest = self
                    .names
                    .iter()
                    .map(|(ip, v)| (v.iter().map(|e| e.answered_ns).max().unwrap_or(0), *ip))
                    .min();
                if let Some((_, ip)) = oldest {
                    self.names.remove(&ip);
                }
            }
        }
        let expires_ns = ts_ns
            .saturating_add(
                i64::from(ttl).saturating_mul(NS).saturating_mul(self.config.ttl_factor),
            )
            .saturating_add(self.config.ttl_grace_ns);
        let entries = self.names.entry(ip).or_default();
        if let Some(e) = entries.iter_mut().find(|e| e.client == client && &*e.name == name) {
            if ts_ns > e.expires_ns {
                // The old answer lapsed before this one: the name is known again from now.
                e.first_ns = ts_ns;
            }
            e.first_ns = e.first_ns.min(ts_ns);
            e.answered_ns = e.answered_ns.max(ts_ns);
            e.expires_ns = e.expires_ns.max(expires_ns);
            return;
        }
        if entries.len() >= 8 {
            // Keep the newest answers per address.
            if let Some(i) =
                entries.iter().enumerate().min_by_key(|(_, e)| e.answered_ns).map(|(i, _)| i)
            {
                entries.swap_remove(i);
            }
        }
        entries.push(NameEntry {
            first_ns: ts_ns,
            answered_ns: ts_ns,
            expires_ns,
            client,
            name: name.into(),
        });
    }

    /// The name `client` most recently resolved to `ip` and that was still valid at `ts_ns`;
    /// any client's answer when this client's own is not known.
    pub fn name_for(&self, ip: IpAddr, ts_ns: i64, client: IpAddr) -> Option<&std::sync::Arc<str>> {
        let entries = self.names.get(&ip)?;
        let valid = |e: &&NameEntry| e.first_ns <= ts_ns && ts_ns <= e.expires_ns;
        // The most recent answer at or before `ts_ns`.
        let recency =
            |e: &&NameEntry| if e.answered_ns <= ts_ns { e.answered_ns } else { e.first_ns };
        entries
            .iter()
            .filter(valid)
            .filter(|e| e.client == client)
            .max_by_key(recency)
            .or_else(|| entries.iter().filter(valid).max_by_key(recency))
            .map(|e| &e.name)
    }

    /// Turns queries older than the response timeout into `no_response` rows and forgets
    /// expired names. `all` flushes every pending query (end of input).
    pub fn expire(&mut self, now_ns: i64, all: bool) {
        self.expire_pending(now_ns, all);
        if all || now_ns >= self.next_names_sweep_ns {
            self.expire_names(now_ns);
            self.next_names_sweep_ns = now_ns.saturating_add(60 * NS);
        }
    }

    fn expire_names(&mut self, now_ns: i64) {
        self.names.retain(|_, v| {
            v.retain(|e| e.expires_ns >= now_ns);
            !v.is_empty()
        });
    }

    fn expire_oldest_pending(&mut self) {
        let oldest = self.pending.values().map(|p| p.carrier.ts_ns).min();
        if let Some(t) = oldest {
            // Everything as old as the oldest query becomes `no_response`.
            let timeout = self.config.response_timeout_ns;
            self.expire_pending(t.saturating_add(timeout).saturating_add(1), false);
        }
    }

    fn expire_pending(&mut self, now_ns: i64, all: bool) {
        let timeout = self.config.response_timeout_ns;
        let node = &self.node;
        let out = &mut self.out;
        self.pending.retain(|k, p| {
            let keep = !all && now_ns - p.carrier.ts_ns <= timeout;
            if !keep {
                out.push(DnsRecord {
                    ts_ns: p.carrier.ts_ns,
                    response_ns: None,
                    conn_id: p.carrier.conn_id,
                    protocol: p.carrier.protocol,
                    src_ip: k.client,
                    src_port: k.cport,
                    dst_ip: k.server,
                    dst_port: k.sport,
                    dns_id: k.id,
                    query_name: std::mem::take(&mut p.query_name),
                    query_type: std::mem::take(&mut p.query_type),
                    rcode: String::new(),
                    answers: Vec::new(),
                    answer_ips: Vec::new(),
                    ttl_min: None,
                    outcome: outcome::NO_RESPONSE,
                    node: node.clone(),
                    src_meta: EndpointMeta::default(),
                    dst_meta: EndpointMeta::default(),
                });
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_text_writes_what_hickory_writes() {
        let labels: &[&[&[u8]]] = &[
            &[b"api", b"stripe", b"com"],
            &[b"Kube-DNS", b"kube-system", b"svc", b"cluster", b"local"],
            &[b"_http", b"_tcp", b"example", b"org"],
            &[b"xn--bcher-kva", b"example"],
            &[b"-lead", b"example"],
            &[b"with space", b"example"],
            &[b"dot.inside", b"example"],
            &[b"*", b"example"],
            &[b"caf\xc3\xa9", b"example"],
            &[b"ctl\x01", b"example"],
            &[],
        ];
        for l in labels {
            for fqdn in [true, false] {
                let mut name = Name::from_labels(l.iter().copied()).expect("valid labels");
                name.set_fqdn(fqdn);
                assert_eq!(name_text(&name), trim_dot(name.to_utf8()), "{l:?} fqdn={fqdn}");
            }
        }
    }
}
