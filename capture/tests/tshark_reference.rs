//! podwire against tshark on every shared capture (`../shared/data/pcaps/`, main and `edge/`).
//!
//! The reference is `reference/tshark_flows.py`, run live: tshark's own connection identity
//! (`tcp.stream`/`udp.stream`) with exact per-direction packets and payload bytes and a Zeek-like
//! state. For every tshark connection, the podwire connections with the same endpoints that
//! started within it are summed and must have the same packets and payload bytes per
//! direction, and an outcome that corresponds to tshark's state.
//!
//! Deliberate differences, each named and asserted below:
//! - VLAN- and VNI-aware keys: the same 5-tuple on another VLAN or VXLAN/Geneve VNI is another
//!   podwire connection; tshark merges them.
//! - Idle timeouts: tshark never splits a UDP 5-tuple; podwire starts a new pseudo-connection after
//!   a gap longer than the idle timeout (and a TCP connection after its idle timeout). Every split
//!   must be explained by such a gap.
//! - IP fragments: tshark counts only the frame that completes reassembly; podwire counts every
//!   fragment as a packet (payload bytes agree).
//! - Tunnels: podwire keys on the inner flow (as tshark does), so tshark's outer UDP flows of a
//!   tunnel whose inner packets are not TCP/UDP (ICMP in Geneve) have no podwire counterpart.
//! - Teredo (UDP 3544): tshark_flows.py pairs the inner IPv6 addresses with the outer UDP ports;
//!   podwire does not decapsulate Teredo and reports the outer IPv4 UDP flow. Both sides' port-3544
//!   flows are left out of the comparison, and podwire must have one for each tshark one.
//! - ICMP: not in the reference (tshark_flows.py skips it); ICMP errors live on the connection
//!   they quote.
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use podwire_capture::pipeline::{MemorySink, Pipeline, PipelineConfig};
use podwire_capture::source::PcapFile;
use podwire_capture::stats::CaptureStats;
use podwire_schemas::Table;
use podwire_schemas::connections::col;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

fn pcaps_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/pcaps");
    assert!(
        d.is_dir(),
        "the shared captures are missing at {}: the repo must sit beside `shared/`",
        d.display()
    );
    d
}

#[derive(Debug, Clone)]
struct Ref {
    proto: String,
    a: (String, u16),
    b: (String, u16),
    first_us: i64,
    a2b_pkts: i64,
    b2a_pkts: i64,
    a2b_payload: i64,
    b2a_payload: i64,
    state: String,
}

fn tshark_flows(pcap: &Path) -> Vec<Ref> {
    let script = pcaps_dir().join("reference/tshark_flows.py");
    let out = Command::new("python3").arg(&script).arg(pcap).output().unwrap_or_else(|e| {
        panic!(
            "cannot run python3 {}: {e}; install python3 and tshark (apt-get install tshark)",
            script.display()
        )
    });
    assert!(
        out.status.success(),
        "tshark_flows.py failed on {} (is tshark installed? apt-get install tshark): {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let idx = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let ts = |s: &str| (s.parse::<f64>().unwrap() * 1e6).round() as i64;
    lines
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            Ref {
                proto: c[idx("proto")].into(),
                a: (c[idx("a_addr")].into(), c[idx("a_port")].parse().unwrap()),
                b: (c[idx("b_addr")].into(), c[idx("b_port")].parse().unwrap()),
                first_us: ts(c[idx("first_ts")]),
                a2b_pkts: c[idx("a2b_pkts")].parse().unwrap(),
                b2a_pkts: c[idx("b2a_pkts")].parse().unwrap(),
                a2b_payload: c[idx("a2b_payload")].parse().unwrap(),
                b2a_payload: c[idx("b2a_payload")].parse().unwrap(),
                state: c[idx("state")].into(),
            }
        })
        .collect()
}

/// One podwire connection: its rows summed.
#[derive(Debug, Clone, Default)]
struct Conn {
    proto: String,
    src: (String, u16),
    dst: (String, u16),
    start_us: i64,
    end_us: i64,
    src_pkts: i64,
    dst_pkts: i64,
    src_payload: i64,
    dst_payload: i64,
    outcome: String,
    segment: String,
    finals: usize,
}

fn run_podwire(pcap: &Path) -> (Vec<Conn>, CaptureStats) {
    let file = PcapFile::new(pcap).unwrap();
    let mut p = Pipeline::new(PipelineConfig::default(), MemorySink::default());
    file.for_each(|f| p.on_frame(f)).unwrap_or_else(|e| panic!("{e}"));
    let (sink, stats) = p.finish().unwrap();
    let mut conns: BTreeMap<i64, Conn> = BTreeMap::new();
    for b in sink.table(Table::Connections) {
        add_rows(b, &mut conns);
    }
    for c in conns.values() {
        assert_eq!(
            c.finals,
            1,
            "{}: every connection has exactly one final row: {c:?}",
            pcap.display()
        );
    }
    (conns.into_values().collect(), stats)
}

fn add_rows(b: &RecordBatch, conns: &mut BTreeMap<i64, Conn>) {
    let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
    let i64c = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Int64Type>().clone();
    let i32c = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Int32Type>().clone();
    let tsc =
        |n: &str| b.column_by_name(n).unwrap().as_primitive::<TimestampMicrosecondType>().clone();
    let (proto, sip, dip, outcome, vlan, tunnel) = (
        s(col::PROTOCOL),
        s(col::SRC_IP),
        s(col::DST_IP),
        s(col::OUTCOME),
        s(col::VLAN),
        s(col::TUNNEL),
    );
    let (sport, dport) = (i32c(col::SRC_PORT), i32c(col::DST_PORT));
    let (id, sp, dp, spl, dpl) = (
        i64c(col::CONN_ID),
        i64c(col::SRC_PACKETS),
        i64c(col::DST_PACKETS),
        i64c(col::SRC_PAYLOAD_BYTES),
        i64c(col::DST_PAYLOAD_BYTES),
    );
    let (start, end) = (tsc(col::START_TS), tsc(col::END_TS));
    let fin = b.column_by_name(col::IS_FINAL).unwrap().as_boolean().clone();
    for r in 0..b.num_rows() {
        let c = conns.entry(id.value(r)).or_insert_with(|| Conn {
            proto: proto.value(r).into(),
            src: (sip.value(r).into(), sport.value(r) as u16),
            dst: (dip.value(r).into(), dport.value(r) as u16),
            start_us: i64::MAX,
            end_us: i64::MIN,
            segment: format!("{}|{}", vlan.value(r), tunnel.value(r)),
            ..Conn::default()
        });
        if sp.value(r) + dp.value(r) > 0 {
            c.start_us = c.start_us.min(start.value(r));
            c.end_us = c.end_us.max(end.value(r));
        }
        c.src_pkts += sp.value(r);
        c.dst_pkts += dp.value(r);
        c.src_payload += spl.value(r);
        c.dst_payload += dpl.value(r);
        if fin.value(r) {
            c.finals += 1;
            c.outcome = outcome.value(r).into();
        }
        assert!(!start.is_null(r) && start.value(r) <= end.value(r));
    }
}

fn outcome_matches(proto: &str, state: &str, outcome: &str) -> bool {
    let ok: &[&str] = match (proto, state) {
        ("tcp", "SF") => &["closed"],
        ("tcp", "S0") => &["no_answer", "unreachable"],
        ("tcp", "REJ") => &["refused"],
        ("tcp", "RSTOS0") => &["aborted"],
        ("tcp", "RST") => &["reset"],
        ("tcp", "EST") => &["open"],
        ("tcp", "MID" | "SYNACK_ONLY") => &["midstream"],
        ("udp", "BIDIR") => &["answered"],
        ("udp", "UNI") => &["no_answer", "unreachable"],
        _ => &[],
    };
    ok.contains(&outcome)
}

/// What a capture is allowed to differ in.
#[derive(Debug, Default, Clone, Copy)]
struct Expect {
    /// podwire counts every fragment; tshark the reassembling frame only.
    fragments: bool,
    /// Extra podwire connections from VLAN/VNI-aware keys.
    segment_splits: usize,
    /// tshark flows that are a tunnel's outer UDP flow (no podwire counterpart).
    outer_tunnel_flows: usize,
}

fn check(name: &str, expect: Expect) {
    let pcap = pcaps_dir().join(name);
    let teredo = |p: u16| p == 3544;
    let (refs, ref_teredo): (Vec<Ref>, Vec<Ref>) =
        tshark_flows(&pcap).into_iter().partition(|r| !teredo(r.a.1) && !teredo(r.b.1));
    let (conns, stats) = run_podwire(&pcap);
    let (conns, pw_teredo): (Vec<Conn>, Vec<Conn>) =
        conns.into_iter().partition(|c| !teredo(c.src.1) && !teredo(c.dst.1));
    assert!(
        pw_teredo.len() >= ref_teredo.len(),
        "{name}: Teredo flows {pw_teredo:?} vs {ref_teredo:?}"
    );
    assert_eq!(
        stats.frames,
        stats.frames_tracked + stats.skipped_total(),
        "{name}: every frame is either tracked or skipped with a reason: {stats}"
    );

    // Group podwire connections under tshark's: same protocol and endpoints, started within the
    // tshark connection's lifetime (the one that started last before it, for port reuse).
    let key = |p: &str, x: &(String, u16), y: &(String, u16)| {
        let (lo, hi) = if x <= y { (x.clone(), y.clone()) } else { (y.clone(), x.clone()) };
        (p.to_string(), lo, hi)
    };
    let mut by_tuple: HashMap<_, Vec<usize>> = HashMap::new();
    for (i, r) in refs.iter().enumerate() {
        by_tuple.entry(key(&r.proto, &r.a, &r.b)).or_default().push(i);
    }
    let mut groups: Vec<Vec<&Conn>> = vec![Vec::new(); refs.len()];
    let mut unmatched = Vec::new();
    for c in &conns {
        let Some(cands) = by_tuple.get(&key(&c.proto, &c.src, &c.dst)) else {
            unmatched.push(c);
            continue;
        };
        let pick = cands
            .iter()
            .filter(|&&i| refs[i].first_us <= c.start_us + 1)
            .max_by_key(|&&i| refs[i].first_us)
            .or_else(|| cands.first());
        groups[*pick.unwrap()].push(c);
    }
    for c in &unmatched {
        let zero = c.src_pkts + c.dst_pkts == 0;
        assert!(
            c.proto == "icmp" || zero,
            "{name}: podwire connection with no tshark counterpart: {c:?}"
        );
    }

    let mut splits = 0usize;
    let mut outer = 0usize;
    for (r, g) in refs.iter().zip(&groups) {
        if g.is_empty() {
            let tunnel_port =
                [4789u16, 6081, 8472].contains(&r.b.1) || [4789u16, 6081, 8472].contains(&r.a.1);
            assert!(tunnel_port, "{name}: tshark connection missing in podwire: {r:?}");
            outer += 1;
            continue;
        }
        let (mut a2b, mut b2a, mut a2b_pl, mut b2a_pl) = (0, 0, 0, 0);
        for c in g {
            if c.src == r.a {
                a2b += c.src_pkts;
                b2a += c.dst_pkts;
                a2b_pl += c.src_payload;
                b2a_pl += c.dst_payload;
            } else {
                a2b += c.dst_pkts;
                b2a += c.src_pkts;
                a2b_pl += c.dst_payload;
                b2a_pl += c.src_payload;
            }
        }
        if expect.fragments {
            assert!(
                a2b >= r.a2b_pkts && b2a >= r.b2a_pkts,
                "{name}: fragments counted: {r:?} vs {g:?}"
            );
        } else {
            assert_eq!(
                (a2b, b2a),
                (r.a2b_pkts, r.b2a_pkts),
                "{name}: packets per direction of {r:?}: {g:#?}"
            );
        }
        assert_eq!(
            (a2b_pl, b2a_pl),
            (r.a2b_payload, r.b2a_payload),
            "{name}: payload bytes of {r:?}: {g:#?}"
        );

        if g.len() == 1 {
            let c = g[0];
            assert!(
                outcome_matches(&r.proto, &r.state, &c.outcome),
                "{name}: tshark state {} but podwire outcome {} for {r:?}",
                r.state,
                c.outcome
            );
        } else {
            // Several podwire connections for one tshark connection: by segment (VLAN/VNI), or
            // split by an idle gap longer than the timeout.
            let mut segs: Vec<&str> = g.iter().map(|c| c.segment.as_str()).collect();
            segs.sort_unstable();
            segs.dedup();
            splits += segs.len() - 1;
            for seg in &segs {
                let mut same: Vec<&&Conn> = g.iter().filter(|c| c.segment == *seg).collect();
                same.sort_by_key(|c| c.start_us);
                for w in same.windows(2) {
                    let gap = w[1].start_us - w[0].end_us;
                    // UDP: the default idle timeout (2 min). TCP: port reuse or an idle timeout
                    // (handshake 2 min, established 15 min), both at least 2 min apart or a
                    // new SYN.
                    let timeout_us = 120_000_000;
                    let reuse = r.proto == "tcp";
                    assert!(
                        gap > timeout_us || reuse,
                        "{name}: split without an idle gap ({gap} µs) in {r:?}: {w:#?}"
                    );
                }
            }
        }
    }
    assert_eq!(splits, expect.segment_splits, "{name}: connections split by VLAN/VNI");
    assert_eq!(outer, expect.outer_tunnel_flows, "{name}: tunnel outer flows");
}

macro_rules! capture_tests {
    ($($fn_name:ident: $file:expr => $expect:expr;)*) => {
        $(
            #[test]
            fn $fn_name() {
                check($file, $expect);
            }
        )*
    };
}

const PLAIN: Expect = Expect { fragments: false, segment_splits: 0, outer_tunnel_flows: 0 };

capture_tests! {
    gnutella: "gnutella.pcap" => PLAIN;
    synscan: "synscan.pcapng" => PLAIN;
    echo_connections: "echo-connections.pcap" => PLAIN;
    kxun: "1kxun.pcap" => PLAIN;
    alexa_app: "alexa-app.pcapng" => PLAIN;
    reddit_ipv6: "reddit.pcap" => PLAIN;
    wireshark_samples_ns: "wireshark_samples-test.pcapng" => PLAIN;
    erspan: "decapsulate_erspan1.pcap" => PLAIN;
    vlan_collisions: "vlan-collisions.pcap" => Expect { segment_splits: 2, ..PLAIN };
    edge_client_syn_try_lack: "edge/deepflow-client-syn-try-lack.pcap" => PLAIN;
    edge_handshake_retrans: "edge/deepflow-handshake-retrans.pcap" => PLAIN;
    edge_ip_fragment: "edge/deepflow-ip-fragment.pcap" => Expect { fragments: true, ..PLAIN };
    edge_ip6_vxlan: "edge/deepflow-ip6-vxlan.pcap" => PLAIN;
    edge_ipip: "edge/deepflow-ipip.pcap" => PLAIN;
    edge_nxdomain: "edge/deepflow-nxdomain.pcap" => PLAIN;
    edge_syn_retrans: "edge/deepflow-syn-retrans.pcap" => PLAIN;
    edge_syn_syn_ack_retrans: "edge/deepflow-syn-syn-ack-retrans.pcap" => PLAIN;
    edge_tcp_n_syn_ack: "edge/deepflow-tcp-n-syn-ack.pcap" => PLAIN;
    edge_tcp_one_syn: "edge/deepflow-tcp-one-syn.pcap" => PLAIN;
    edge_udp_1_packet: "edge/deepflow-udp_1_packet.pcap" => PLAIN;
    edge_udp_normal: "edge/deepflow-udp_normal.pcap" => PLAIN;
    edge_vmware_gre_teb: "edge/deepflow-vmware-gre-teb.pcap" => PLAIN;
    edge_fin_retransmission: "edge/zeek-fin_retransmission.pcap" => PLAIN;
    edge_geneve: "edge/zeek-geneve.pcap" => Expect { outer_tunnel_flows: 2, ..PLAIN };
    edge_handshake_reorder: "edge/zeek-handshake-reorder.pcap" => PLAIN;
    edge_icmp_destunreach_udp: "edge/zeek-icmp-destunreach-udp.pcap" => PLAIN;
    edge_icmp6_destunreach: "edge/zeek-icmp6-destunreach-ip6ext-udp.pcap" => PLAIN;
    edge_ipv6_fragmented_dns: "edge/zeek-ipv6-fragmented-dns.pcap" => Expect { fragments: true, ..PLAIN };
    edge_linux_sll2: "edge/zeek-linux_dlt_sll2.pcap" => PLAIN;
    edge_missing_syn: "edge/zeek-missing-syn.pcap" => PLAIN;
    edge_mixed_vlan_mpls: "edge/zeek-mixed-vlan-mpls.pcap" => PLAIN;
    edge_no_handshake: "edge/zeek-no-handshake.pcap" => PLAIN;
    edge_q_in_q: "edge/zeek-q-in-q.pcap" => PLAIN;
    edge_retransmit_fast009: "edge/zeek-retransmit-fast009.pcap" => PLAIN;
    edge_single_rst: "edge/zeek-single-rst.pcap" => PLAIN;
    edge_syn_synack: "edge/zeek-syn-synack.pcap" => PLAIN;
    edge_syn_then_ack_then_rst: "edge/zeek-syn-then-ack-then-rst.pcap" => PLAIN;
    edge_syn_then_rst: "edge/zeek-syn-then-rst.pcap" => PLAIN;
    edge_syn: "edge/zeek-syn.pcap" => PLAIN;
    edge_tcp_fast_open: "edge/zeek-tcp-fast-open.pcap" => PLAIN;
    edge_vxlan_http: "edge/zeek-vxlan-encapsulated-http.pcap" => PLAIN;
    edge_vxlan_overlapping: "edge/zeek-vxlan-overlapping-http-get.pcap" => Expect { segment_splits: 2, ..PLAIN };
}
