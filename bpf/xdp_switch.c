// SPDX-License-Identifier: GPL-2.0
/* The hybrid fast path: runs the megaflows the switch offloaded (hot ones whose actions it can
 * do: output to one port, drop, Ethernet address rewrite, VLAN pop/push/rewrite) in the
 * kernel, and steers every other frame to the AF_XDP socket of its port and queue, as
 * xsk_redirect.c does. Loaded once per datapath and attached to every AF_XDP port by
 * src/netdev/afxdp/offload.rs, which also fills the maps; the key and action layouts below
 * are mirrored there (`XKey`, `XFlowKey`, `XAction`), and src/datapath/offload.rs decides
 * what goes in them.
 *
 * Matching is the megaflow classifier's tuple-space search over the masks in use: for each
 * mask, the frame's key ANDed with it is looked up in `flows`. Megaflows do not overlap, so
 * the first hit is the only one. The parser claims only what it checked the same way
 * src/datapath/extract.rs does: a frame it does not fully understand (IPv6, a malformed IPv4
 * header, a cut L4 header, an 802.3 length frame) never matches and goes to user space, which
 * parses, drops or forwards it as always. ARP frames match only masks with nothing beyond
 * the L2 fields (the ARP fields are not parsed here). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_MASKS 16
#define MAX_FLOWS 16384
#define MAX_XSKS 4096
#define MAX_PORTS 256

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_RARP 0x8035
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8
#define ETH_TYPE_MIN 0x0600
#define VLAN_PRESENT 0x1000

#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_SCTP 132

#define FRAG_ANY 1
#define FRAG_LATER 2

/* The first four words of the switch's FlowKey (same layout, host byte order for numbers,
 * network order for addresses) plus the IPv4 addresses. */
struct xkey {
	__u32 in_port;
	__u16 dl_type;
	__u16 vlan_tci;
	__u8 dl_dst[6];
	__u8 nw_proto;
	__u8 nw_tos;
	__u8 dl_src[6];
	__u8 nw_ttl;
	__u8 nw_frag;
	__u16 tp_src;
	__u16 tp_dst;
	__u16 tcp_flags;
	__u16 pad0;
	__u32 nw_src;
	__u32 nw_dst;
} __attribute__((aligned(8)));

#define XKEY_WORDS (sizeof(struct xkey) / 8)

struct xmask {
	struct xkey mask;
	/* MASK_NEEDS_L3: the mask selects bits beyond the L2 fields (ARP frames skip it);
	 * MASK_UNUSED: a free slot below n_masks (skipped). */
	__u32 flags;
	__u32 pad;
};

#define MASK_NEEDS_L3 1
#define MASK_UNUSED 2

struct xflow_key {
	__u32 mask_idx;
	__u32 pad;
	struct xkey key;
};

#define OP_POP_VLAN 1
#define OP_PUSH_VLAN 2
#define OP_SET_VLAN 4
#define OP_SET_ETH_SRC 8
#define OP_SET_ETH_DST 16
#define OP_NORMAL 32 /* the L2 switch (the only op when set): see normal() */
#define OUT_NONE 0xffffffff

/* What a hit does, in this order: pop the outer tag (if any), push a tag, rewrite the outer
 * tag's TCI (if any), rewrite the Ethernet addresses, then redirect to `out_port` (a datapath
 * port number, the key of `tx_ports`) or drop. */
struct xaction {
	__u32 slot;
	__u32 out_port;
	__u16 ops;
	__u16 vlan_tpid; /* network order */
	__u16 vlan_tci;	 /* network order, as written on the wire */
	__u8 eth_src[6];
	__u8 eth_dst[6];
	__u16 pad;
};

struct xport {
	__u32 dp_port;
	__u32 xsk_base;
	__u32 offload; /* nonzero: look frames up in `flows` */
	__u32 pad;
};

struct xconfig {
	__u32 n_masks;
	__u32 pad;
};

struct xstat {
	__u64 packets;
	__u64 bytes;
};

enum {
	ST_HIT,	     /* executed in the kernel */
	ST_MISS,     /* looked up, no offloaded megaflow: to user space */
	ST_UNPARSED, /* not a frame the parser claims (IPv6, malformed, ...): to user space */
	ST_NO_TX,    /* hit, but its output port cannot take redirected frames now: to user space */
	ST_DROP,     /* hit with no output: dropped */
	ST_ERROR,    /* hit, but a header could not be pushed or popped: to user space */
	ST_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_XSKS);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32); /* ifindex */
	__type(value, struct xport);
} ports SEC(".maps");

/* Ports frames may be redirected to, by datapath port number: only those whose driver takes
 * redirected frames now (for veth: its peer runs XDP or has GRO on); ifindex 0 = none. A hit
 * calls bpf_redirect_map first (it only records the target; the frame leaves after the
 * program returns), so a port not in the map sends the frame, unchanged, to user space. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} tx_ports SEC(".maps");

/* NORMAL's MAC table, mirrored from user space (every learn, move, age-out and flush);
 * `seen` is written here, see normal(). */
struct xfdb_key {
	__u32 bridge;
	__u16 vlan;
	__u8 mac[6];
};

struct xfdb_val {
	__u32 port;
	__u32 seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct xfdb_key);
	__type(value, struct xfdb_val);
} fdb SEC(".maps");

#define VLAN_ACCESS 0
#define VLAN_TRUNK 1

/* NORMAL's view of a port: its bridge (+1; 0: not a NORMAL port here) and VLAN mode (access
 * or trunk; the native modes are left to user space). */
struct xvlan {
	__u32 bridge1;
	__u16 mode;
	__u16 tag;
	__u64 trunks[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, struct xvlan);
} vlan_ports SEC(".maps");

/* Per datapath port: what the kernel forwarded, so port counters stay whole. */
struct xport_stat {
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 tx_packets;
	__u64 tx_bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u32);
	__type(value, struct xport_stat);
} port_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xconfig);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_MASKS);
	__type(key, __u32);
	__type(value, struct xmask);
} masks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FLOWS);
	__type(key, struct xflow_key);
	__type(value, struct xaction);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_FLOWS);
	__type(key, __u32);
	__type(value, struct xstat);
} flow_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, struct xstat);
} stats SEC(".maps");

static __always_inline void count(__u32 what, __u64 bytes)
{
	struct xstat *s = bpf_map_lookup_elem(&stats, &what);
	if (s) {
		s->packets++;
		s->bytes += bytes;
	}
}

enum { PARSE_NONE, PARSE_L2, PARSE_FULL };

static __always_inline int is_vlan(__u16 t)
{
	return t == ETH_P_8021Q || t == ETH_P_8021AD;
}

/* Fills `k` as extract.rs would and says how much of it is valid; PARSE_NONE: hand the frame
 * to user space. */
static __always_inline int parse(void *data, void *end, struct xkey *k)
{
	__u8 *p = data;
	if ((void *)(p + 14) > end)
		return PARSE_NONE;
	__builtin_memcpy(k->dl_dst, p, 6);
	__builtin_memcpy(k->dl_src, p + 6, 6);
	__u16 type = bpf_ntohs(*(__u16 *)(p + 12));
	p += 14;
	if (is_vlan(type)) {
		if ((void *)(p + 4) > end)
			return PARSE_NONE;
		k->vlan_tci = bpf_ntohs(*(__u16 *)p) | VLAN_PRESENT;
		type = bpf_ntohs(*(__u16 *)(p + 2));
		p += 4;
		if (is_vlan(type)) {
			k->dl_type = type;
			return PARSE_FULL;
		}
	}
	if (type < ETH_TYPE_MIN)
		return PARSE_NONE;
	k->dl_type = type;
	if (type == ETH_P_ARP || type == ETH_P_RARP)
		return PARSE_L2;
	if (type != ETH_P_IP)
		/* IPv6 has extension headers and its own checks: user space. Other EtherTypes
		 * have nothing beyond L2 in the key. */
		return type == 0x86dd ? PARSE_NONE : PARSE_FULL;

	/* IPv4, checked as extract_ipv4 checks it. */
	if ((void *)(p + 20) > end)
		return PARSE_NONE;
	__u8 vihl = p[0];
	__u32 hl = (vihl & 0x0f) * 4;
	if ((vihl >> 4) != 4 || hl < 20 || (void *)(p + hl) > end)
		return PARSE_NONE;
	__u32 total = bpf_ntohs(*(__u16 *)(p + 2));
	if (total < hl || (void *)(p + total) > end)
		return PARSE_NONE;
	k->nw_tos = p[1];
	k->nw_ttl = p[8];
	k->nw_proto = p[9];
	__builtin_memcpy(&k->nw_src, p + 12, 4);
	__builtin_memcpy(&k->nw_dst, p + 16, 4);
	__u16 frag = bpf_ntohs(*(__u16 *)(p + 6));
	if (frag & 0x3fff) { /* MF or an offset */
		k->nw_frag = FRAG_ANY;
		if (frag & 0x1fff) {
			k->nw_frag |= FRAG_LATER;
			return PARSE_FULL;
		}
	}
	/* L4 lies in [hl, total) of the IP packet. */
	__u32 l4len = total - hl;
	__u8 *l4 = p + (hl & 0x3c);
	switch (k->nw_proto) {
	case IPPROTO_TCP:
		if (l4len < 20 || (void *)(l4 + 20) > end)
			return PARSE_NONE;
		k->tp_src = bpf_ntohs(*(__u16 *)l4);
		k->tp_dst = bpf_ntohs(*(__u16 *)(l4 + 2));
		k->tcp_flags = bpf_ntohs(*(__u16 *)(l4 + 12)) & 0x0fff;
		break;
	case IPPROTO_UDP:
		if (l4len < 8 || (void *)(l4 + 8) > end)
			return PARSE_NONE;
		k->tp_src = bpf_ntohs(*(__u16 *)l4);
		k->tp_dst = bpf_ntohs(*(__u16 *)(l4 + 2));
		break;
	case IPPROTO_SCTP:
		if (l4len < 12 || (void *)(l4 + 12) > end)
			return PARSE_NONE;
		k->tp_src = bpf_ntohs(*(__u16 *)l4);
		k->tp_dst = bpf_ntohs(*(__u16 *)(l4 + 2));
		break;
	case IPPROTO_ICMP:
		if (l4len < 8 || (void *)(l4 + 8) > end)
			return PARSE_NONE;
		k->tp_src = l4[0];
		k->tp_dst = l4[1];
		break;
	default:
		break;
	}
	return PARSE_FULL;
}

/* Removes the outer tag (the caller checked there is one); nonzero: the frame is unchanged. */
static __always_inline int pop_tag(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 macs[12];
	if (data + 18 > end)
		return -1;
	__builtin_memcpy(macs, data, 12);
	if (bpf_xdp_adjust_head(ctx, 4))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + 12 > end)
		return -1; /* cannot happen: the frame had 18 bytes */
	__builtin_memcpy(data, macs, 12);
	return 0;
}

/* Inserts a tag (network-order TPID and TCI) after the addresses; nonzero: the frame is
 * unchanged. */
static __always_inline int push_tag(struct xdp_md *ctx, __u16 tpid, __u16 tci)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 macs[12];
	if (data + 14 > end)
		return -1;
	__builtin_memcpy(macs, data, 12);
	if (bpf_xdp_adjust_head(ctx, -4))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + 16 > end)
		return -1; /* cannot happen: 4 bytes were just pushed */
	__builtin_memcpy(data, macs, 12);
	*(__u16 *)(data + 12) = tpid;
	*(__u16 *)(data + 14) = tci;
	return 0;
}

/* Runs `a` on the frame; returns the XDP verdict, or -1 to hand the (unchanged) frame to
 * user space. */
static __always_inline void count_port(__u32 port, __u64 bytes, int tx)
{
	struct xport_stat *s = bpf_map_lookup_elem(&port_stats, &port);
	if (!s)
		return;
	if (tx) {
		s->tx_packets++;
		s->tx_bytes += bytes;
	} else {
		s->rx_packets++;
		s->rx_bytes += bytes;
	}
}

static __always_inline int execute(struct xdp_md *ctx, struct xaction *a, __u32 in_port, __u64 len)
{
	if (a->out_port != OUT_NONE && bpf_redirect_map(&tx_ports, a->out_port, 0) != XDP_REDIRECT) {
		count(ST_NO_TX, len);
		return -1;
	}
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 ops = a->ops;

	if (ops & (OP_POP_VLAN | OP_PUSH_VLAN)) {
		if (data + 18 > end)
			goto error;
		int tagged = is_vlan(bpf_ntohs(*(__u16 *)(data + 12)));
		/* Pop then push is a rewrite of the tag in place. */
		if ((ops & OP_POP_VLAN) && (ops & OP_PUSH_VLAN) && tagged) {
			*(__u16 *)(data + 12) = a->vlan_tpid;
			*(__u16 *)(data + 14) = a->vlan_tci;
		} else if ((ops & OP_POP_VLAN) && tagged) {
			if (pop_tag(ctx))
				goto error;
		} else if (ops & OP_PUSH_VLAN) {
			if (push_tag(ctx, a->vlan_tpid, a->vlan_tci))
				goto error;
		}
		data = (void *)(long)ctx->data;
		end = (void *)(long)ctx->data_end;
	}
	if (data + 14 > end)
		goto error;
	if ((ops & OP_SET_VLAN) && data + 16 <= end && is_vlan(bpf_ntohs(*(__u16 *)(data + 12))))
		*(__u16 *)(data + 14) = a->vlan_tci;
	if (ops & OP_SET_ETH_DST)
		__builtin_memcpy(data, a->eth_dst, 6);
	if (ops & OP_SET_ETH_SRC)
		__builtin_memcpy(data + 6, a->eth_src, 6);

	count_port(in_port, len, 0);
	if (a->out_port == OUT_NONE) {
		count(ST_DROP, len);
		return XDP_DROP;
	}
	count(ST_HIT, len);
	count_port(a->out_port, end - data, 1);
	return XDP_REDIRECT;
error:
	/* Only reachable before the frame was changed, or after a failed adjust_head, which
	 * leaves it unchanged. */
	count(ST_ERROR, len);
	return -1;
}


static __always_inline int carries(struct xvlan *v, __u16 vlan)
{
	if (v->mode == VLAN_ACCESS)
		return vlan == v->tag;
	return (v->trunks[(vlan >> 6) & 63] >> (vlan & 63)) & 1;
}

/* NORMAL for the one case worth doing here: a unicast frame from a source already learned on
 * this port to a destination learned on another port that carries its VLAN. Everything else
 * (learning, moves, floods, VLAN drops, native VLAN modes, double tags) returns -1 and goes to
 * user space, which runs the full switch and keeps the MAC table. Once a second per source
 * address a frame also goes to user space, so the table sees the host and does not age it
 * out while the kernel forwards its traffic. */
static __always_inline int normal(struct xdp_md *ctx, __u32 in_port, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + 18 > end)
		return -1;
	__u8 *p = data;
	if ((p[0] & 1) || (p[6] & 1))
		return -1;
	struct xvlan *vin = bpf_map_lookup_elem(&vlan_ports, &in_port);
	if (!vin || !vin->bridge1 || vin->mode > VLAN_TRUNK)
		return -1;
	int tagged = is_vlan(bpf_ntohs(*(__u16 *)(p + 12)));
	__u16 tci = tagged ? bpf_ntohs(*(__u16 *)(p + 14)) : 0;
	if (tagged && is_vlan(bpf_ntohs(*(__u16 *)(p + 16))))
		return -1;
	__u16 vid = tci & 0x0fff, vlan;
	if (vin->mode == VLAN_ACCESS) {
		if (vid)
			return -1;
		vlan = vin->tag;
	} else {
		if (!carries(vin, vid))
			return -1;
		vlan = vid;
	}
	struct xfdb_key k = { .bridge = vin->bridge1 - 1, .vlan = vlan };
	__builtin_memcpy(k.mac, p + 6, 6);
	struct xfdb_val *src = bpf_map_lookup_elem(&fdb, &k);
	if (!src || src->port != in_port)
		return -1;
	__u32 now = bpf_ktime_get_coarse_ns() >> 30;
	if (src->seen != now) {
		src->seen = now;
		return -1;
	}
	__builtin_memcpy(k.mac, p, 6);
	struct xfdb_val *dst = bpf_map_lookup_elem(&fdb, &k);
	if (!dst || dst->port == in_port)
		return -1;
	__u32 out = dst->port;
	struct xvlan *vout = bpf_map_lookup_elem(&vlan_ports, &out);
	if (!vout || vout->bridge1 != vin->bridge1 || vout->mode > VLAN_TRUNK || !carries(vout, vlan))
		return -1;
	if (bpf_redirect_map(&tx_ports, out, 0) != XDP_REDIRECT) {
		count(ST_NO_TX, len);
		return -1;
	}
	int want_tag = vout->mode == VLAN_TRUNK && vlan != 0;
	__u16 out_tci = bpf_htons((tci & 0xe000) | vlan);
	if (tagged && want_tag) {
		*(__u16 *)(p + 14) = out_tci;
	} else if (tagged) {
		if (pop_tag(ctx))
			return -1;
	} else if (want_tag) {
		if (push_tag(ctx, bpf_htons(ETH_P_8021Q), out_tci))
			return -1;
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	count_port(in_port, len, 0);
	count(ST_HIT, len);
	count_port(out, end - data, 1);
	return XDP_REDIRECT;
}

SEC("xdp")
int xdp_switch(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct xport *port = bpf_map_lookup_elem(&ports, &ifindex);
	if (!port)
		return XDP_PASS;
	__u32 xsk = port->xsk_base + ctx->rx_queue_index;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 len = end - data;
	__u32 zero = 0;
	struct xconfig *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!port->offload || !cfg || cfg->n_masks == 0)
		goto to_user;

	struct xkey key = {};
	int level = parse(data, end, &key);
	if (level == PARSE_NONE) {
		count(ST_UNPARSED, len);
		goto to_user;
	}
	key.in_port = port->dp_port;

	struct xflow_key fk = {};
	struct xaction *a = 0;
	__u32 n = cfg->n_masks;
	for (__u32 i = 0; i < MAX_MASKS; i++) {
		if (i >= n)
			break;
		struct xmask *m = bpf_map_lookup_elem(&masks, &i);
		if (!m)
			break;
		if ((m->flags & MASK_UNUSED) || (level == PARSE_L2 && (m->flags & MASK_NEEDS_L3)))
			continue;
		fk.mask_idx = i;
		__u64 *kw = (__u64 *)&key, *mw = (__u64 *)&m->mask, *fw = (__u64 *)&fk.key;
#pragma clang loop unroll(full)
		for (int w = 0; w < XKEY_WORDS; w++)
			fw[w] = kw[w] & mw[w];
		a = bpf_map_lookup_elem(&flows, &fk);
		if (a)
			break;
	}
	if (a) {
		__u32 slot = a->slot;
		struct xstat *fs = bpf_map_lookup_elem(&flow_stats, &slot);
		int verdict = (a->ops & OP_NORMAL) ? normal(ctx, port->dp_port, len)
						   : execute(ctx, a, port->dp_port, len);
		if (verdict < 0)
			goto to_user;
		if (fs) {
			fs->packets++;
			fs->bytes += len;
		}
		return verdict;
	}
	count(ST_MISS, len);
to_user:
	return bpf_redirect_map(&xsks_map, xsk, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
