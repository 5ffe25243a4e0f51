// A lossy link for the why scene (tests/python/why_scene.py): attached as a TC egress
// classifier, it drops LOSS_PER_MILLE packets in a thousand at random and passes the rest.
// (This kernel has no netem, and no u32/flower classifiers with a drop action.)
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("classifier")
int lossy(struct __sk_buff *skb)
{
	return bpf_get_prandom_u32() % 1000 < LOSS_PER_MILLE ? TC_ACT_SHOT : TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
