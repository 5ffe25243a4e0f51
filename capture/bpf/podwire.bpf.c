// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
//
// podwire's in-kernel connection counting: TC classifiers (ingress and egress) that parse
// IPv4/IPv6 TCP/UDP/ICMP and count every packet once per connection.
//
// Work split with user space (capture/src/ebpf.rs):
//  - "Quiet" packets (TCP/UDP with nothing a connection record needs besides its counters) are
//    only counted, per connection and direction, in the LRU hash `flows`.
//  - "Event" packets go whole (headers, and DNS payloads) through the ring buffer `events` to
//    user space, which runs them through the same tracker as the pcap path and does NOT find
//    them in `flows`' counters: the first packet of a flow, TCP SYN/FIN/RST, the handshake's
//    final ACK (for the RTT), IP fragments, ICMP, DNS (port 53), and every packet when the
//    packets table is on. When the ring buffer is full an event packet is counted in `flows`
//    instead (and counted as lost in `stats`), so no packet goes uncounted.
//  - A flow touched during a reporting interval (`config.gen`) puts its key once into the ring
//    buffer ("dirty", with the interval's number); user space then reads just those entries.
//    Idle flows cost nothing.
//
// Each packet is counted once per node although it may cross several attached interfaces
// (see `seen_elsewhere`). Counters in `stats` say what was not turned into records and why.
//
// The path of a quiet packet of a known flow is kept short (benchmarks/kernel-bench.py times it
// by stage against a parse-and-count floor): the interface's role from a direct-mapped array,
// no map write besides the flow's counters, and the kernel tick's clock for its last-seen time
// (events read the exact clock).
//
// The layouts user space reads are in podwire.h.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "podwire.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Observe only: TCX_NEXT / "unspecified", so the next program or the default action decides.
#define PASS TC_ACT_UNSPEC

// A test build for benchmarks/kernel-bench.py --stages returns after stage N (-DBENCH_STOP_AFTER=N),
// to time each part of the path of a quiet packet; in the real build STAGE is nothing.
#ifdef BENCH_STOP_AFTER
#define STAGE(n) if (BENCH_STOP_AFTER == (n)) return PASS
#else
#define STAGE(n)
#endif

#define SNAP_SMALL 128  // bytes of an event packet: headers
#define SNAP_LARGE 640  // ... of a DNS packet: headers and a UDP-sized DNS message

struct ev_small { struct ev_hdr h; __u8 data[SNAP_SMALL]; };
struct ev_large { struct ev_hdr h; __u8 data[SNAP_LARGE]; };
struct ev_dirty { struct ev_hdr h; struct flow_key key; };

struct lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);  // user space sets the size
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

struct stats_v {
	__u64 v[ST_MAX];
};

// One entry per CPU: all counters in one lookup per packet.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stats_v);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IF_SLOTS);
	__type(key, __u32);  // ifindex % IF_SLOTS
	__type(value, struct if_slot);
} if_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);    // ifindex
	__type(value, __u32);  // ROLE_* | IF_*
} ifaces SEC(".maps");

// Pod addresses of this node learned from pod veths (sources of packets a pod sent).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u8[16]);
	__type(value, __u8);
} local_pods SEC(".maps");

// Pod CIDRs of this node (given by user space), for host interfaces.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, __u8);
} pod_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, __u8);
} filter_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);  // host byte order
	__type(value, __u8);
} filter_ports SEC(".maps");

struct pkt {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport, dport;
	__u8 proto;      // 6, 17, 1 or 58
	__u8 tcp_flags;
	__u8 fragment;   // an IP fragment: user space reassembles
	__u16 window;
	__u32 seq;
	__u64 ip_bytes;
	__u64 payload;
};

static __always_inline void v4_mapped(__u8 *out, __u32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

// Parses the packet; returns the ST_* reason when it is not one podwire counts, else -1.
static __always_inline int parse(struct __sk_buff *skb, __u32 ifflags, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	void *cur = data;
	__u16 proto;

	if (ifflags & IF_NO_L2) {
		proto = skb->protocol;
	} else {
		struct ethhdr *eth = cur;
		if ((void *)(eth + 1) > end)
			return ST_MALFORMED;
		proto = eth->h_proto;
		cur = eth + 1;
#pragma unroll
		for (int i = 0; i < 2; i++) {
			if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
				break;
			if (cur + 4 > end)
				return ST_MALFORMED;
			proto = *(__u16 *)(cur + 2);
			cur += 4;
		}
	}

	__u8 l4;
	__u64 l4_len;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;
		if ((void *)(ip + 1) > end)
			return ST_MALFORMED;
		__u32 ihl = ip->ihl * 4;
		__u32 tot = bpf_ntohs(ip->tot_len);
		if (ihl < 20 || tot < ihl)
			return ST_MALFORMED;
		v4_mapped(p->src, ip->saddr);
		v4_mapped(p->dst, ip->daddr);
		p->ip_bytes = tot;
		l4 = ip->protocol;
		l4_len = tot - ihl;
		if (ip->frag_off & bpf_htons(0x3fff)) {
			p->fragment = 1;
			p->proto = l4;
			return -1;
		}
		cur += ihl;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;
		if ((void *)(ip6 + 1) > end)
			return ST_MALFORMED;
		__builtin_memcpy(p->src, &ip6->saddr, 16);
		__builtin_memcpy(p->dst, &ip6->daddr, 16);
		__u32 plen = bpf_ntohs(ip6->payload_len);
		p->ip_bytes = plen + 40;
		l4 = ip6->nexthdr;
		l4_len = plen;
		cur = ip6 + 1;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if (l4 == 44) {  // fragment header
				p->fragment = 1;
				p->proto = l4;
				return -1;
			}
			if (l4 != 0 && l4 != 43 && l4 != 60 && l4 != 51)
				break;
			__u8 *ext = cur;
			if ((void *)(ext + 2) > end)
				return ST_MALFORMED;
			__u32 len = l4 == 51 ? (ext[1] + 2) * 4 : (ext[1] + 1) * 8;
			if (len > l4_len)
				return ST_MALFORMED;
			l4 = ext[0];
			l4_len -= len;
			cur += len;
		}
	} else {
		return ST_NOT_IP;
	}

	p->proto = l4;
	if (l4 == IPPROTO_TCP) {
		struct tcphdr *th = cur;
		if ((void *)(th + 1) > end)
			return ST_MALFORMED;
		__u32 doff = th->doff * 4;
		if (doff < 20 || doff > l4_len)
			return ST_MALFORMED;
		p->sport = bpf_ntohs(th->source);
		p->dport = bpf_ntohs(th->dest);
		p->tcp_flags = ((__u8 *)th)[13];
		p->seq = bpf_ntohl(th->seq);
		p->window = bpf_ntohs(th->window);
		p->payload = l4_len - doff;
	} else if (l4 == IPPROTO_UDP) {
		struct udphdr *uh = cur;
		if ((void *)(uh + 1) > end)
			return ST_MALFORMED;
		if (l4_len < 8)
			return ST_MALFORMED;
		p->sport = bpf_ntohs(uh->source);
		p->dport = bpf_ntohs(uh->dest);
		p->payload = l4_len - 8;
	} else if (l4 == IPPROTO_ICMP || l4 == 58) {
		// always an event
	} else {
		return ST_OTHER_PROTO;
	}
	return -1;
}

static __always_inline int in_lpm(void *map, const __u8 *addr)
{
	struct lpm_key k = { .prefixlen = 128 };
	__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(map, &k) != 0;
}

static __always_inline int is_local_pod(const __u8 *addr)
{
	return bpf_map_lookup_elem(&local_pods, addr) != 0 || in_lpm(&pod_cidrs, addr);
}

// Whether this packet is counted on another attached interface of this node. Pod traffic is
// counted where it enters the node's pod network: on a pod veth as it leaves its pod, or on
// the way into a pod when its source is not a pod of this node. Host interfaces count only
// traffic that no pod veth sees (host-network traffic).
static __always_inline int seen_elsewhere(__u32 role, int egress, struct pkt *p)
{
	if (role == ROLE_POD) {
		if (!egress) {
			// A lookup keeps a known pod in the LRU; only a new one costs an update.
			if (!bpf_map_lookup_elem(&local_pods, p->src)) {
				__u8 one = 1;
				bpf_map_update_elem(&local_pods, p->src, &one, BPF_ANY);
			}
			return 0;
		}
		return bpf_map_lookup_elem(&local_pods, p->src) != 0;
	}
	if (role == ROLE_HOST)
		return is_local_pod(p->src) || is_local_pod(p->dst);
	return 0;
}

// Whether the protocol switches drop this packet. A fragment's ports are not read here: it is
// dropped only when neither its protocol nor DNS is on (user space, after reassembly, counts
// the rest as filtered); an IPv6 fragment's protocol is not read either (44), so it is kept.
static __always_inline int switched_off(__u32 cfg, struct pkt *p)
{
	int tcp = p->proto == IPPROTO_TCP, udp = p->proto == IPPROTO_UDP;
	if (p->proto == IPPROTO_ICMP || p->proto == 58)
		return (cfg & CFG_NO_ICMP) != 0;
	if (!tcp && !udp)
		return 0;
	__u32 own = tcp ? CFG_NO_TCP : CFG_NO_UDP;
	if (p->fragment)
		return (cfg & own) && (cfg & CFG_NO_DNS);
	if (p->sport == 53 || p->dport == 53)
		return (cfg & CFG_NO_DNS) != 0;
	return (cfg & own) != 0;
}

static __always_inline int filtered_out(__u32 cfg, struct pkt *p)
{
	if (switched_off(cfg, p))
		return 1;
	if ((cfg & CFG_FILTER_CIDR) && !in_lpm(&filter_cidrs, p->src) && !in_lpm(&filter_cidrs, p->dst))
		return 1;
	if ((cfg & CFG_FILTER_PORT) && (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) &&
	    !bpf_map_lookup_elem(&filter_ports, &p->sport) && !bpf_map_lookup_elem(&filter_ports, &p->dport))
		return 1;
	return 0;
}

// Copies the first bytes of the packet into a ring-buffer record of type TYPE (a constant
// size, as the verifier wants) and submits it; evaluates to 1 when sent.
#define SEND_PACKET(TYPE, SNAP, skb, egress, now)                                              \
	({                                                                                     \
		int sent_ = 0;                                                                 \
		__u32 len_ = (skb)->len;                                                       \
		TYPE *e_ = bpf_ringbuf_reserve(&events, sizeof(TYPE), 0);                      \
		if (e_) {                                                                      \
			__u32 n_ = len_ < (SNAP) ? len_ : (SNAP);                              \
			if (n_ == 0 || bpf_skb_load_bytes((skb), 0, e_->data, n_) < 0) {       \
				bpf_ringbuf_discard(e_, 0);                                    \
			} else {                                                               \
				e_->h = (struct ev_hdr){ .ts_ns = (now), .ifindex = (skb)->ifindex, \
							 .wire_len = len_, .cap_len = n_,      \
							 .kind = EV_PACKET, .dir = (egress) }; \
				bpf_ringbuf_submit(e_, 0);                                     \
				sent_ = 1;                                                     \
			}                                                                      \
		}                                                                              \
		sent_;                                                                         \
	})

static __always_inline int send_packet(struct __sk_buff *skb, int egress, int large, __u64 now)
{
	if (large)
		return SEND_PACKET(struct ev_large, SNAP_LARGE, skb, egress, now);
	return SEND_PACKET(struct ev_small, SNAP_SMALL, skb, egress, now);
}

static __always_inline int seq_le(__u32 a, __u32 b)
{
	return (__s32)(a - b) <= 0;
}

static __always_inline int handle(struct __sk_buff *skb, int egress)
{
	__u32 zero = 0;
	struct stats_v *st = bpf_map_lookup_elem(&stats, &zero);
	if (!st)
		return PASS;
	st->v[ST_SEEN]++;
	st->v[ST_BYTES] += skb->len;
	STAGE(1);

	__u32 ifindex = skb->ifindex;
	__u32 slot = ifindex % IF_SLOTS;
	struct if_slot *ifs = bpf_map_lookup_elem(&if_slots, &slot);
	__u32 ifflags = 0;
	if (ifs && ifs->ifindex == ifindex) {
		ifflags = ifs->flags;
	} else {
		__u32 *ifv = bpf_map_lookup_elem(&ifaces, &ifindex);
		ifflags = ifv ? *ifv : 0;
	}
	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return PASS;
	STAGE(2);

	struct pkt p = {};
	int why = parse(skb, ifflags, &p);
	if (why < 0 && (void *)(long)skb->data_end - (void *)(long)skb->data < SNAP_SMALL &&
	    skb->len > (__u32)((long)skb->data_end - (long)skb->data)) {
		// Headers beyond the linear part: make them direct-accessible and parse again.
		bpf_skb_pull_data(skb, skb->len < SNAP_SMALL ? skb->len : SNAP_SMALL);
		__builtin_memset(&p, 0, sizeof(p));
		why = parse(skb, ifflags, &p);
	} else if (why == ST_MALFORMED && skb->len > (__u32)((long)skb->data_end - (long)skb->data)) {
		bpf_skb_pull_data(skb, skb->len < SNAP_SMALL ? skb->len : SNAP_SMALL);
		__builtin_memset(&p, 0, sizeof(p));
		why = parse(skb, ifflags, &p);
	}
	if (why >= 0) {
		if (why < ST_MAX)
			st->v[why]++;
		return PASS;
	}
	STAGE(3);
	if (((ifflags & IF_LOOPBACK) && !egress) || seen_elsewhere(ifflags & ROLE_MASK, egress, &p)) {
		st->v[ST_DEDUP]++;
		return PASS;
	}
	if (filtered_out(cfg->flags, &p)) {
		st->v[ST_FILTERED]++;
		return PASS;
	}
	STAGE(4);

	int dns = (p.sport == 53 || p.dport == 53) && !(cfg->flags & CFG_NO_DNS);
	if (p.fragment || p.proto == IPPROTO_ICMP || p.proto == 58) {
		if (send_packet(skb, egress, 1, bpf_ktime_get_ns()))
			st->v[ST_EVENTS]++;
		else
			st->v[ST_LOST]++;  // no flow to count it on
		return PASS;
	}

	struct flow_key k = { .proto = p.proto };
	int side;
	if (addr_lt(p.src, p.dst) || (!addr_lt(p.dst, p.src) && p.sport <= p.dport)) {
		__builtin_memcpy(k.lo, p.src, 16);
		__builtin_memcpy(k.hi, p.dst, 16);
		k.lo_port = p.sport;
		k.hi_port = p.dport;
		side = 0;
	} else {
		__builtin_memcpy(k.lo, p.dst, 16);
		__builtin_memcpy(k.hi, p.src, 16);
		k.lo_port = p.dport;
		k.hi_port = p.sport;
		side = 1;
	}

	int event = (cfg->flags & CFG_ALL_EVENTS) || dns;
	__u64 now = 0;  // the exact clock, once read
	struct flow_val *v = bpf_map_lookup_elem(&flows, &k);
	if (!v) {
		now = bpf_ktime_get_ns();
		struct flow_val init = { .first_ns = now, .last_ns = now, .gen = cfg->gen - 1 };
		long err = bpf_map_update_elem(&flows, &k, &init, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&flows, &k);
		if (!v) {
			(void)err;
			st->v[ST_LOST]++;
			return PASS;
		}
		event = 1;
	}
	STAGE(5);

	struct dir_ctr *d = side ? &v->d[1] : &v->d[0];
	int retrans = 0, zero_win = 0;
	if (p.proto == IPPROTO_TCP) {
		__u8 f = p.tcp_flags;
		int syn = f & 0x02, fin = f & 0x01, rst = f & 0x04, ack = f & 0x10;
		if (syn || fin || rst)
			event = 1;
		if (syn && ack)
			v->want_ack = 2 - side;  // 1 + the other side
		else if (!syn && v->want_ack == 1 + side) {
			v->want_ack = 0;
			event = 1;
		}
		__u64 seg = p.payload + (syn ? 1 : 0) + (fin ? 1 : 0);
		if (seg > 0 && !rst) {
			__u32 e = p.seq + (__u32)seg;
			__u8 valid = side ? v->seq_valid[1] : v->seq_valid[0];
			if (valid && seq_le(e, d->next_seq)) {
				int keepalive = p.payload <= 1 && !syn && !fin && p.seq + 1 == d->next_seq;
				retrans = !keepalive;
			} else {
				d->next_seq = e;
				if (side)
					v->seq_valid[1] = 1;
				else
					v->seq_valid[0] = 1;
			}
		}
		zero_win = p.window == 0 && !syn && !rst;
		// Flags only accumulate: most packets add none (an ACK after the first), so skip the
		// locked OR then.
		if (!event && (d->flags & f) != f)
			__sync_fetch_and_or(&d->flags, (__u32)f);
	}

	// The clock: an event's time is read exactly (the tracker's timestamps, the handshake RTT);
	// a quiet packet only moves the flow's last-seen time, which takes the kernel tick's clock
	// (1-4 ms resolution, a fraction of the cost) and never goes back.
	if (event) {
		if (!now)
			now = bpf_ktime_get_ns();
		v->last_ns = now;
	} else {
		now = bpf_ktime_get_coarse_ns();
		if (now > v->last_ns)
			v->last_ns = now;
	}
	STAGE(6);

	if (event) {
		if (send_packet(skb, egress, dns, now)) {
			st->v[ST_EVENTS]++;
			return PASS;
		}
		st->v[ST_EVENT_LOST]++;
		if (p.proto == IPPROTO_TCP)
			__sync_fetch_and_or(&d->flags, (__u32)p.tcp_flags);
	}

	// Counted here: a quiet packet, or an event the ring buffer could not take.
	__sync_fetch_and_add(&d->packets, 1);
	__sync_fetch_and_add(&d->bytes, p.ip_bytes);
	__sync_fetch_and_add(&d->payload, p.payload);
	if (retrans)
		__sync_fetch_and_add(&d->retrans, 1);
	if (zero_win)
		__sync_fetch_and_add(&d->zero_win, 1);
	st->v[ST_COUNTED]++;
	STAGE(7);

	__u32 gen = cfg->gen;
	if (v->gen != gen) {
		struct ev_dirty *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			// The flow's next packet tries again.
			st->v[ST_DIRTY_LOST]++;
			return PASS;
		}
		v->gen = gen;
		e->h = (struct ev_hdr){ .ts_ns = now, .ifindex = ifindex, .wire_len = 0,
				       .cap_len = sizeof(struct flow_key), .kind = EV_DIRTY, .dir = egress,
				       .gen = gen };
		__builtin_memcpy(&e->key, &k, sizeof(k));
		bpf_ringbuf_submit(e, 0);
	}
	return PASS;
}

SEC("classifier")
int podwire_ingress(struct __sk_buff *skb)
{
	return handle(skb, 0);
}

SEC("classifier")
int podwire_egress(struct __sk_buff *skb)
{
	return handle(skb, 1);
}
