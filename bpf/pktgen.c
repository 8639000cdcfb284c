// SPDX-License-Identifier: GPL-2.0
// pktgen.c — XDP "live frames" traffic generator for `xdpswitch pktgen send`.
//
// Userspace runs this program with BPF_PROG_RUN + BPF_F_TEST_XDP_LIVE_FRAMES: the kernel
// builds frames from one template (data_in) and runs the program once per frame. Each
// run rewrites the fields that vary (source port and source address for flow spreading,
// lengths for IMIX, an optional timestamp) and returns XDP_TX, which transmits the frame
// out of the device named by ctx_in.ingress_ifindex (or bpf_redirect to cfg_egress).
// With cfg_gap it paces itself: userspace runs it with a huge repeat count and the
// iterations that come too early are dropped (one BPF_PROG_RUN call costs tens of ms of
// teardown here, so pacing by many short calls does not work).
//
// The frame pages are recycled without being re-initialised, so every field that varies
// is written with an absolute value and every checksum is computed from a base sum that
// userspace prepared with those fields zeroed (see src/pktgen/template.rs).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define STAMP_MAGIC 0x78647067 /* "xdpg" */

// Configuration, set by the loader before load (frozen .rodata: the verifier prunes
// the branches that a configuration does not take).
const volatile __u32 cfg_flows = 1;
const volatile __u32 cfg_port_span = 1;
const volatile __u32 cfg_ipv6 = 0;
const volatile __u32 cfg_tcp = 0;
const volatile __u32 cfg_sport = 1024;
const volatile __u32 cfg_saddr_lo = 0;
const volatile __u32 cfg_ip_sum = 0;
const volatile __u32 cfg_l4_sum = 0;
const volatile __u32 cfg_l4_csum = 0;
const volatile __u32 cfg_stamp = 0;
const volatile __u32 cfg_imix = 0;
const volatile __u32 cfg_size = 64;
const volatile __u32 cfg_imix_small = 64;
const volatile __u32 cfg_imix_medium = 594;
const volatile __u32 cfg_imix_large = 1518;
const volatile __u32 cfg_egress = 0;
// Ethernet address variation (see MacPlan in src/pktgen/template.rs): frame i carries
// source MAC low 32 bits cfg_src_mac_lo + i % cfg_src_macs (likewise the destination), or
// with cfg_random_src a xorshift64 unicast, locally administered source MAC.
const volatile __u32 cfg_src_macs = 1;
const volatile __u32 cfg_dst_macs = 1;
const volatile __u32 cfg_src_mac_lo = 0;
const volatile __u32 cfg_dst_mac_lo = 0;
const volatile __u32 cfg_random_src = 0;
// GRE: cfg_outer bytes of outer Ethernet + IPv4 + GRE headers come before the inner frame
// (0: none). Only the outer total length and IPv4 checksum vary (with the frame size); the
// checksum starts from cfg_outer_ip_sum, the header's sum with both zeroed.
const volatile __u32 cfg_outer = 0;
const volatile __u32 cfg_outer_ip_sum = 0;
// Pacing: gap between frames on one CPU in ns << 8 (0: as fast as possible), and how far
// (ns << 8) a CPU may fall behind its pace, e.g. while descheduled, and still catch up.
const volatile __u64 cfg_gap = 0;
const volatile __u64 cfg_catch_up = 0;

// Per-CPU generator state; also the "sent" counters userspace reports. Userspace sets
// `limit` (0: none) before a run; iterations past the limit or ahead of the pace are
// dropped (XDP_DROP recycles the frame at once) and not counted.
struct pg_state {
	__u64 packets;
	__u64 bytes;
	__u64 limit;
	__u64 next;
	__u32 flow;
	__u32 port;
	__u32 ip;
	__u32 imix;
	__u32 src_mac;
	__u32 dst_mac;
	__u64 rng;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pg_state);
} pg_stats SEC(".maps");

// IMIX 7:4:1 over a 12-frame cycle, interleaved: S M S M S S M S S M S L.
// Two bits per slot, slot 0 in the low bits (0 small, 1 medium, 2 large).
#define IMIX_CYCLE 12
#define IMIX_PATTERN                                                                   \
	((0u << 0) | (1u << 2) | (0u << 4) | (1u << 6) | (0u << 8) | (0u << 10) |       \
	 (1u << 12) | (0u << 14) | (0u << 16) | (1u << 18) | (0u << 20) | (2u << 22))

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int pktgen(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct pg_state *st = bpf_map_lookup_elem(&pg_stats, &key);
	if (!st)
		return XDP_ABORTED;
	if (st->limit && st->packets >= st->limit)
		return XDP_DROP;
	if (cfg_gap) {
		__u64 now = bpf_ktime_get_ns() << 8;
		if (now < st->next)
			return XDP_DROP;
		st->next = st->next + cfg_catch_up < now ? now + cfg_gap : st->next + cfg_gap;
	}

	__u32 len = cfg_size;
	if (cfg_imix) {
		__u32 slot = st->imix;
		__u32 code = (IMIX_PATTERN >> (2 * slot)) & 3;
		st->imix = slot + 1 >= IMIX_CYCLE ? 0 : slot + 1;
		len = code == 0 ? cfg_imix_small : code == 1 ? cfg_imix_medium : cfg_imix_large;
		int delta = (int)len - (int)(ctx->data_end - ctx->data);
		if (delta && bpf_xdp_adjust_tail(ctx, delta))
			return XDP_ABORTED;
	}

	// Next flow: flow = ip * port_span + port.
	__u32 port = st->port, ip = st->ip;
	if (++st->flow >= cfg_flows) {
		st->flow = 0;
		st->port = 0;
		st->ip = 0;
	} else if (++st->port >= cfg_port_span) {
		st->port = 0;
		st->ip++;
	}

	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (cfg_outer) {
		struct iphdr *outer = data + ETH_HLEN;
		if ((void *)(outer + 1) > end)
			return XDP_ABORTED;
		outer->tot_len = bpf_htons(len - ETH_HLEN);
		outer->check = csum_fold(cfg_outer_ip_sum + outer->tot_len);
		// From here on, everything is the inner frame.
		data += cfg_outer;
		len -= cfg_outer;
	}

	if (cfg_src_macs > 1 || cfg_dst_macs > 1 || cfg_random_src) {
		// Big-endian 16-bit words of the Ethernet header: dst 0-2, src 3-5.
		__u16 *w = data;
		if ((void *)(w + 6) > end)
			return XDP_ABORTED;
		if (cfg_dst_macs > 1) {
			__u32 i = st->dst_mac;
			st->dst_mac = i + 1 >= cfg_dst_macs ? 0 : i + 1;
			__u32 lo = cfg_dst_mac_lo + i;
			w[1] = bpf_htons(lo >> 16);
			w[2] = bpf_htons(lo & 0xffff);
		}
		if (cfg_random_src) {
			__u64 x = st->rng;
			if (!x)
				x = ((__u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32() | 1;
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			st->rng = x;
			w[3] = bpf_htons(((x >> 48) & 0xfcff) | 0x0200);
			w[4] = bpf_htons((x >> 32) & 0xffff);
			w[5] = bpf_htons((x >> 16) & 0xffff);
		} else if (cfg_src_macs > 1) {
			__u32 i = st->src_mac;
			st->src_mac = i + 1 >= cfg_src_macs ? 0 : i + 1;
			__u32 lo = cfg_src_mac_lo + i;
			w[4] = bpf_htons(lo >> 16);
			w[5] = bpf_htons(lo & 0xffff);
		}
	}
	__u32 l3_len = len - ETH_HLEN;
	__u32 sum_ip, sum_l4 = cfg_l4_sum;
	__u16 *saddr_lo;
	void *l4;
	__u32 l4_len;

	if (cfg_ipv6) {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		if ((void *)(ip6 + 1) > end)
			return XDP_ABORTED;
		l4_len = l3_len - sizeof(*ip6);
		ip6->payload_len = bpf_htons(l4_len);
		saddr_lo = &ip6->saddr.in6_u.u6_addr16[7];
		*saddr_lo = bpf_htons(cfg_saddr_lo + ip);
		l4 = ip6 + 1;
	} else {
		struct iphdr *ip4 = data + ETH_HLEN;
		if ((void *)(ip4 + 1) > end)
			return XDP_ABORTED;
		l4_len = l3_len - sizeof(*ip4);
		ip4->tot_len = bpf_htons(l3_len);
		saddr_lo = (__u16 *)&ip4->saddr + 1;
		*saddr_lo = bpf_htons(cfg_saddr_lo + ip);
		sum_ip = cfg_ip_sum + ip4->tot_len + *saddr_lo;
		ip4->check = csum_fold(sum_ip);
		l4 = ip4 + 1;
	}
	sum_l4 += *saddr_lo;

	__u8 *payload;
	__u16 *l4_check;
	if (cfg_tcp) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return XDP_ABORTED;
		tcp->source = bpf_htons(cfg_sport + port);
		sum_l4 += tcp->source + bpf_htons(l4_len);
		l4_check = &tcp->check;
		payload = (void *)(tcp + 1);
	} else {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return XDP_ABORTED;
		udp->source = bpf_htons(cfg_sport + port);
		udp->len = bpf_htons(l4_len);
		sum_l4 += udp->source + udp->len + udp->len;
		l4_check = &udp->check;
		payload = (void *)(udp + 1);
	}

	if (cfg_stamp) {
		if ((void *)(payload + 16) > end)
			return XDP_ABORTED;
		*(__u32 *)payload = bpf_htonl(STAMP_MAGIC);
		*(__u32 *)(payload + 4) = (__u32)st->packets;
		*(__u64 *)(payload + 8) = bpf_ktime_get_ns();
		__u16 *w = (__u16 *)payload;
#pragma unroll
		for (int i = 0; i < 8; i++)
			sum_l4 += w[i];
	}

	if (cfg_l4_csum) {
		__u16 check = csum_fold(sum_l4);
		if (!cfg_tcp && check == 0)
			check = 0xffff;
		*l4_check = check;
	}

	st->packets++;
	st->bytes += len + cfg_outer;
	if (cfg_egress)
		return bpf_redirect(cfg_egress, 0);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
