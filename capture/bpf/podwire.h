// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
//
// What podwire's TC programs (podwire.bpf.c) and user space (capture/src/ebpf.rs) share: the
// layouts of the maps' keys and values and of the ring buffer's records, the stats indexes and
// the flag bits. Little-endian, fixed-size; the sizes are checked here and, for the Rust mirror,
// in ebpf.rs. benchmarks/bpf/floor.bpf.c uses the flow key too.
#ifndef PODWIRE_H
#define PODWIRE_H

#include <linux/types.h>

enum stat {
	ST_SEEN = 0,       // packets the programs ran on (every interface, both directions)
	ST_BYTES,          // their bytes (skb->len)
	ST_COUNTED,        // packets counted in `flows` (quiet)
	ST_EVENTS,         // packets sent to user space as events
	ST_DEDUP,          // packets skipped: counted on another interface of this node
	ST_FILTERED,       // packets outside the capture filter
	ST_NOT_IP,         // not IPv4/IPv6 (ARP, LLDP, ...)
	ST_MALFORMED,      // truncated or inconsistent IP/transport headers
	ST_OTHER_PROTO,    // IP, but not TCP/UDP/ICMP
	ST_EVENT_LOST,     // TCP/UDP event packets the ring buffer had no room for: counted in
	                   // `flows` instead (flags, DNS or the handshake RTT may be missing)
	ST_LOST,           // packets not counted at all: their flow could not be added to a full
	                   // `flows`, or an ICMP/fragment event found the ring buffer full
	ST_DIRTY_LOST,     // dirty-flow notices the ring buffer had no room for
	ST_MAX,
};

struct config {
	__u32 gen;    // reporting interval, advanced by user space
	__u32 flags;  // CFG_*
};
#define CFG_ALL_EVENTS 1   // every packet is an event (the packets table is on)
#define CFG_FILTER_CIDR 2  // only packets with src or dst in `filter_cidrs`
#define CFG_FILTER_PORT 4  // only TCP/UDP packets with a port in `filter_ports`
// The protocol switches (capture/src/protocols.rs): port 53 over TCP or UDP is `dns`.
#define CFG_NO_TCP 8
#define CFG_NO_UDP 16
#define CFG_NO_DNS 32
#define CFG_NO_ICMP 64

#define ROLE_PLAIN 0  // count everything in both directions
#define ROLE_POD 1    // host side of a pod's veth: ingress = sent by the pod
#define ROLE_HOST 2   // the node's uplink: pod traffic is counted on the pod veths
#define ROLE_MASK 3
#define IF_NO_L2 0x100      // the device has no link-layer header (tun, wireguard)
#define IF_LOOPBACK 0x200   // loopback: every packet leaves and comes back; counted on egress

struct flow_key {  // 40 bytes
	__u8 lo[16];   // addresses, IPv4 as ::ffff:a.b.c.d; `lo` is the end that sorts first
	__u8 hi[16];
	__u16 lo_port; // host byte order; ICMP has no flows
	__u16 hi_port;
	__u8 proto;
	__u8 pad[3];
};

struct dir_ctr {  // 40 bytes, one direction (0 = sent by `lo`)
	__u64 packets;
	__u64 bytes;    // IP bytes
	__u64 payload;  // transport payload bytes
	__u32 retrans;
	__u32 zero_win;
	__u32 flags;    // TCP flags seen
	__u32 next_seq; // highest sequence end sent (valid when seq_valid)
};

struct flow_val {  // 104 bytes
	struct dir_ctr d[2];
	__u64 first_ns;  // bpf_ktime_get_ns()
	__u64 last_ns;
	__u32 gen;       // interval in which this flow was last announced dirty
	__u8 seq_valid[2];
	__u8 want_ack;   // 1 + the side whose next non-SYN packet ends the handshake
	__u8 pad;
};

struct ev_hdr {  // 24 bytes, then `cap_len` bytes of packet or a flow_key
	__u64 ts_ns;
	__u32 ifindex;
	__u32 wire_len;
	__u16 cap_len;
	__u8 kind;   // EV_*
	__u8 dir;    // 0 ingress, 1 egress
	__u32 gen;   // EV_DIRTY: the reporting interval it was announced in (else 0)
};
#define EV_PACKET 1
#define EV_DIRTY 2

_Static_assert(sizeof(struct config) == 8, "config is 8 bytes");
_Static_assert(sizeof(struct flow_key) == 40, "flow_key is 40 bytes");
_Static_assert(sizeof(struct dir_ctr) == 40, "dir_ctr is 40 bytes");
_Static_assert(sizeof(struct flow_val) == 104, "flow_val is 104 bytes");
_Static_assert(sizeof(struct ev_hdr) == 24, "ev_hdr is 24 bytes");

// The attached interfaces' roles, looked up on every packet: a direct-mapped table by ifindex
// (an array lookup, which the JIT inlines), and a hash for the few whose slot another attached
// interface holds.
#define IF_SLOTS 16384
struct if_slot {
	__u32 ifindex;  // 0: free
	__u32 flags;    // ROLE_* | IF_*
};
_Static_assert(sizeof(struct if_slot) == 8, "if_slot is 8 bytes");

// The order of two addresses (as four native-endian words) that decides a flow key's `lo` end.
static inline __attribute__((always_inline)) int addr_lt(const __u8 *a, const __u8 *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (x[i] != y[i])
			return x[i] < y[i];
	}
	return 0;
}

#endif
