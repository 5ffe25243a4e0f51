// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
//
// The floor for podwire's TC programs (benchmarks/kernel-bench.py): what any per-packet
// connection counter must at least pay on this machine.
//  - floor_empty: returns TC_ACT_UNSPEC, nothing else (the cost of running a program at all);
//  - floor_parse: parses Ethernet/IPv4/IPv6 and TCP/UDP, builds the direction-independent
//    flow key podwire uses (40 bytes) and adds the packet to one hash entry (an atomic add of
//    packets and bytes; the entry is created when missing).
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

#include "podwire.h"  // capture/bpf: the flow key and its order, as podwire builds them

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct val {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 131072);
	__type(key, struct flow_key);
	__type(value, struct val);
} floor_flows SEC(".maps");

SEC("classifier")
int floor_empty(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

SEC("classifier")
int floor_parse(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct flow_key k = {};
	__u8 src[16] __attribute__((aligned(4))) = {};
	__u8 dst[16] __attribute__((aligned(4))) = {};
	void *l4;
	__u8 proto;
	__u32 bytes;

	if ((void *)(eth + 1) > end)
		return TC_ACT_UNSPEC;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return TC_ACT_UNSPEC;
		src[10] = src[11] = dst[10] = dst[11] = 0xff;
		__builtin_memcpy(src + 12, &ip->saddr, 4);
		__builtin_memcpy(dst + 12, &ip->daddr, 4);
		proto = ip->protocol;
		bytes = bpf_ntohs(ip->tot_len);
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return TC_ACT_UNSPEC;
		__builtin_memcpy(src, &ip6->saddr, 16);
		__builtin_memcpy(dst, &ip6->daddr, 16);
		proto = ip6->nexthdr;
		bytes = bpf_ntohs(ip6->payload_len) + 40;
		l4 = ip6 + 1;
	} else {
		return TC_ACT_UNSPEC;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return TC_ACT_UNSPEC;
	__u16 *ports = l4;  // source and destination port lead both headers
	if ((void *)(ports + 2) > end)
		return TC_ACT_UNSPEC;
	__u16 sport = bpf_ntohs(ports[0]), dport = bpf_ntohs(ports[1]);

	k.proto = proto;
	if (addr_lt(src, dst) || (!addr_lt(dst, src) && sport <= dport)) {
		__builtin_memcpy(k.lo, src, 16);
		__builtin_memcpy(k.hi, dst, 16);
		k.lo_port = sport;
		k.hi_port = dport;
	} else {
		__builtin_memcpy(k.lo, dst, 16);
		__builtin_memcpy(k.hi, src, 16);
		k.lo_port = dport;
		k.hi_port = sport;
	}
	struct val *v = bpf_map_lookup_elem(&floor_flows, &k);
	if (!v) {
		struct val init = { .packets = 1, .bytes = bytes };
		bpf_map_update_elem(&floor_flows, &k, &init, BPF_NOEXIST);
		return TC_ACT_UNSPEC;
	}
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, bytes);
	return TC_ACT_UNSPEC;
}
