// SPDX-License-Identifier: GPL-2.0
// Kernel XDP_REDIRECT from one interface to another through a devmap: the ceiling the
// benchmark harness measures the switches against (`xdpswitch pktgen redirect`).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} out_port SEC(".maps");

SEC("xdp")
int xdp_redirect_port(struct xdp_md *ctx)
{
	return bpf_redirect_map(&out_port, 0, XDP_DROP);
}

char _license[] SEC("license") = "GPL";
