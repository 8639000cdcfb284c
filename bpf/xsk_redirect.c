// SPDX-License-Identifier: GPL-2.0
/* Steers every frame received on queue N to the AF_XDP socket in xsks_map[N]; queues with no
 * socket fall back to the kernel stack (XDP_PASS). Loaded by src/netdev/afxdp/xdp.rs. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

SEC("xdp")
int xsk_redirect(struct xdp_md *ctx)
{
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
