//! TCP: sequence space, which end looks like the client when a flow is picked up mid-stream, and
//! the state a segment moves a connection to.
use super::conn::Conn;
use podwire_schemas::connections::flag;

/// `a <= b` in TCP sequence space.
pub(super) fn seq_le(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) >= 0
}

pub(super) fn is_ephemeral(p: u16) -> bool {
    (32768..=60999).contains(&p)
}

/// For a TCP flow picked up mid-stream: true when the packet's sender looks like the client.
pub(super) fn sender_looks_like_client(sport: u16, dport: u16) -> bool {
    if (sport < 1024) != (dport < 1024) {
        return dport < 1024;
    }
    if is_ephemeral(sport) != is_ephemeral(dport) {
        return is_ephemeral(sport);
    }
    if sport != dport {
        return dport < sport;
    }
    true
}

pub(super) fn tcp_update(
    c: &mut Conn,
    side: usize,
    ts_ns: i64,
    flags: u8,
    seq: u32,
    window: u16,
    len: u64,
) {
    c.flags[side] |= flags;
    let syn = flags & flag::SYN != 0;
    let ack = flags & flag::ACK != 0;
    let fin = flags & flag::FIN != 0;
    let rst = flags & flag::RST != 0;
    if syn && !ack {
        c.sent_syn[side] = true;
        c.isn.get_or_insert(seq);
        if !c.synack_seen {
            c.last_syn_ns = Some(ts_ns);
        }
    }
    if syn && ack {
        c.sent_synack[side] = true;
        c.synack_seen = true;
    }
    if ack
        && !syn
        && side == 0
        && c.synack_seen
        && c.rtt_ns.is_none()
        && let Some(t) = c.last_syn_ns
    {
        c.rtt_ns = Some((ts_ns - t).max(0));
    }
    if fin {
        c.fin[side] = true;
        c.fin_first.get_or_insert(side);
    }
    if rst {
        c.rst[side] = true;
        c.rst_first.get_or_insert(side);
    }
    if c.closed_ns.is_none() && ((c.fin[0] && c.fin[1]) || rst) {
        c.closed_ns = Some(ts_ns);
    }
    // Retransmission: a segment that occupies sequence space and ends at or before the highest
    // sequence number this side has sent. Keep-alives (one byte or none, just below it) are not.
    let seg_len = len + u64::from(syn) + u64::from(fin);
    if seg_len > 0 && !rst {
        let end = seq.wrapping_add(u32::try_from(seg_len).unwrap_or(u32::MAX));
        match c.next_seq[side] {
            Some(max) if seq_le(end, max) => {
                let keepalive = len <= 1 && !syn && !fin && seq.wrapping_add(1) == max;
                if !keepalive {
                    c.row[side].retransmits += 1;
                }
            }
            _ => c.next_seq[side] = Some(end),
        }
    }
    if window == 0 && !syn && !rst {
        c.row[side].zero_windows += 1;
    }
}
