// SPDX-License-Identifier: GPL-2.0
// sink.c — XDP traffic sink for `xdpswitch pktgen sink`.
//
// Counts packets and bytes per CPU, marks hash(5-tuple) % 65536 in a per-CPU bitmap (a
// distinct-flow estimate), copies the first frame it sees (tests parse it), optionally
// records the latency of frames stamped by bpf/pktgen.c into a log-linear histogram, and
// drops (or passes, cfg_pass) every frame.
//
// Also here: `redirect`, the kernel-only forwarding reference for benchmarks
// (`xdpswitch pktgen redirect --dev A --to B`): counts and XDP_REDIRECTs every frame
// through a one-entry devmap to another interface.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define STAMP_MAGIC 0x78647067 /* "xdpg", as in pktgen.c */
#define FLOW_BITS 65536
#define LAT_SUB_BITS 3
#define LAT_BUCKETS (64 << LAT_SUB_BITS)
#define CAPTURE_BYTES 256

const volatile __u32 cfg_pass = 0;
const volatile __u32 cfg_latency = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[2]); /* packets, bytes */
} sink_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[FLOW_BITS / 64]);
} sink_flows SEC(".maps");

/* Buckets, then count, sum, min, max (ns). */
struct lat_hist {
	__u64 bucket[LAT_BUCKETS];
	__u64 count;
	__u64 sum;
	__u64 min;
	__u64 max;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lat_hist);
} sink_latency SEC(".maps");

struct capture {
	__u32 len;   /* frame length */
	__u32 pad;   /* bytes copied */
	__u8 data[CAPTURE_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct capture);
} sink_capture SEC(".maps");

static __always_inline __u32 msb64(__u64 v)
{
	__u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

/* Log-linear bucket: values below 2^SUB are exact, above that 2^SUB buckets per power of 2. */
static __always_inline __u32 lat_bucket(__u64 ns)
{
	if (ns < (1 << LAT_SUB_BITS))
		return ns;
	__u32 m = msb64(ns);
	return (m << LAT_SUB_BITS) | ((ns >> (m - LAT_SUB_BITS)) & ((1 << LAT_SUB_BITS) - 1));
}

static __always_inline __u32 mix(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x9e3779b1;
	return h ^ (h >> 15);
}

static __always_inline void record_latency(__u8 *payload, void *end)
{
	if ((void *)(payload + 16) > end)
		return;
	if (*(__u32 *)payload != bpf_htonl(STAMP_MAGIC))
		return;
	__u64 sent = *(__u64 *)(payload + 8);
	__u64 now = bpf_ktime_get_ns();
	__u64 ns = now > sent ? now - sent : 0;
	__u32 key = 0;
	struct lat_hist *h = bpf_map_lookup_elem(&sink_latency, &key);
	if (!h)
		return;
	__u32 b = lat_bucket(ns);
	if (b < LAT_BUCKETS)
		h->bucket[b]++;
	h->count++;
	h->sum += ns;
	if (h->min == 0 || ns < h->min)
		h->min = ns ? ns : 1;
	if (ns > h->max)
		h->max = ns;
}

static __always_inline void capture_first(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct capture *c = bpf_map_lookup_elem(&sink_capture, &key);
	if (!c || c->len)
		return;
	__u32 len = ctx->data_end - ctx->data;
	/* Constant copy sizes keep the verifier happy. */
	int err;
	__u32 n;
	if (len >= CAPTURE_BYTES) {
		n = CAPTURE_BYTES;
		err = bpf_xdp_load_bytes(ctx, 0, c->data, CAPTURE_BYTES);
	} else if (len >= 128) {
		n = 128;
		err = bpf_xdp_load_bytes(ctx, 0, c->data, 128);
	} else if (len >= 96) {
		n = 96;
		err = bpf_xdp_load_bytes(ctx, 0, c->data, 96);
	} else if (len >= 60) {
		n = 60;
		err = bpf_xdp_load_bytes(ctx, 0, c->data, 60);
	} else {
		return;
	}
	if (err == 0) {
		c->pad = n;
		c->len = len;
	}
}

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	__u32 verdict = cfg_pass ? XDP_PASS : XDP_DROP;

	__u64 *st = bpf_map_lookup_elem(&sink_stats, &key);
	if (!st)
		return verdict;
	st[0]++;
	st[1] += ctx->data_end - ctx->data;
	capture_first(ctx);

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return verdict;
	__u32 h = 0;
	__u8 proto;
	void *l4;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip4 = (void *)(eth + 1);
		if ((void *)(ip4 + 1) > end || ip4->ihl != 5)
			return verdict;
		proto = ip4->protocol;
		h = mix(mix(h, ip4->saddr), ip4->daddr);
		l4 = ip4 + 1;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return verdict;
		proto = ip6->nexthdr;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			h = mix(h, ip6->saddr.in6_u.u6_addr32[i]);
			h = mix(h, ip6->daddr.in6_u.u6_addr32[i]);
		}
		l4 = ip6 + 1;
	} else {
		return verdict;
	}

	__u8 *payload;
	if (proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return verdict;
		h = mix(h, ((__u32)udp->source << 16) | udp->dest);
		payload = (void *)(udp + 1);
	} else if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return verdict;
		h = mix(h, ((__u32)tcp->source << 16) | tcp->dest);
		payload = (void *)(tcp + 1);
	} else {
		return verdict;
	}
	h = mix(h, proto);

	__u64 *bits = bpf_map_lookup_elem(&sink_flows, &key);
	if (bits) {
		__u32 bit = h & (FLOW_BITS - 1);
		bits[(bit >> 6) & (FLOW_BITS / 64 - 1)] |= 1ULL << (bit & 63);
	}

	if (cfg_latency)
		record_latency(payload, end);
	return verdict;
}

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} redirect_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[2]); /* packets, bytes */
} redirect_stats SEC(".maps");

SEC("xdp")
int redirect(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *st = bpf_map_lookup_elem(&redirect_stats, &key);
	if (st) {
		st[0]++;
		st[1] += ctx->data_end - ctx->data;
	}
	return bpf_redirect_map(&redirect_ports, 0, XDP_DROP);
}

char LICENSE[] SEC("license") = "GPL";
