// SPDX-License-Identifier: GPL-2.0
// Service balancing for packets that arrive on an interface (tc ingress): traffic from outside to a
// node port, an external or load-balancer IP, or a cluster IP routed through the node. The program
// only chooses: for the first packet of a new flow to a frontend it picks an endpoint (the weighted
// slots of endpoints.h) and inserts a kernel conntrack entry with DNAT to it, and SNAT to the node's
// address where the frontend masquerades, through the conntrack kfuncs. From then on the kernel's own
// conntrack and NAT translate both directions, keep TCP state and timeouts, and `conntrack -L/-D` see
// the flow as any other. The kernel runs its NAT only in a namespace where conntrack is on and a nat
// chain exists: the companion nftables table provides both (a nat chain with a `ct` rule).
//
// Handled: IPv4, and IPv6 without extension headers; TCP (a flow starts with a SYN) and UDP (with any
// datagram). A frontend with no endpoints passes the packet on unchanged (the companion table rejects
// it, as kube-proxy does); one whose traffic policy leaves it nowhere drops it. The layouts are
// mirrored in dataplane/ebpf/layout.ts; change both together.
// UAPI headers only, no vmlinux.h: the object compiles anywhere (the image is built without the node's
// kernel), and the kfuncs are matched to the running kernel by name when the program loads.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/netfilter.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "endpoints.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PROTO_TCP 6
#define PROTO_UDP 17
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define CURRENT_NETNS (-1)
// A new entry's first timeout; the kernel's own conntrack sets the real one with the packet.
#define NEW_FLOW_TIMEOUT_MS 30000

// When a new flow is masqueraded (SNAT to masquerade_sources[family]).
#define MASQUERADE_NEVER 0
#define MASQUERADE_ALWAYS 1
#define MASQUERADE_OFF_CLUSTER 2 // unless the source is in local_sources

struct packet_frontend {
	__u32 group;
	__u8 verdict;    // VERDICT_*
	__u8 masquerade; // MASQUERADE_*
	__u8 ranged;     // 1: only sources in source_ranges for this frontend get through (loadBalancerSourceRanges)
	__u8 pad;
	// 0, or the group that sources in local_sources use instead, whatever the verdict: under a Local
	// traffic policy pods still reach every endpoint.
	__u32 local_source_group;
	__u32 affinity_seconds; // 0: no session affinity
};

// ClientIP session affinity: by the client's address and the frontend it reached.
struct packet_affinity_key {
	__u32 client[4];
	struct frontend_key frontend;
};

// The cluster's own sources (kube-proxy's detect-local: the pod CIDR), longest prefix match.
struct source_key {
	__u32 prefixlen; // of the 16-byte address: IPv4 prefixes count 96 more
	__u32 addr[4];
};

// Where node ports apply: a frontend with the family's zero address (0.0.0.0, as ::ffff:0.0.0.0, or
// ::) and a node port matches a packet to any of these addresses of its family.
struct node_address {
	__u32 addr[4];
};

FRONTEND_TABLE(packet_frontends, struct packet_frontend);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct node_address);
	__type(value, __u8);
} node_addresses SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct source_key);
	__type(value, __u8);
} local_sources SEC(".maps");

// Who may reach a ranged frontend: the frontend's key, then the source prefix; prefixlen counts the
// frontend's 160 bits too, so a lookup matches one frontend's ranges only.
struct range_key {
	__u32 prefixlen;
	struct frontend_key frontend;
	__u32 source[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct range_key);
	__type(value, __u8);
} source_ranges SEC(".maps");

// LRU: an entry ages out on its own; a choice older than the frontend's timeout is made anew.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct packet_affinity_key);
	__type(value, struct affinity);
} packet_affinity SEC(".maps");

// The SNAT source per family: index 0 IPv4, 1 IPv6.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct node_address);
} masquerade_sources SEC(".maps");

// The kernel's struct bpf_ct_opts (NF_BPF_CT_OPTS_SZ, 16 bytes).
struct ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u16 ct_zone_id;
	__u8 ct_zone_dir;
	__u8 reserved[3];
};

// Only ever pointed at: the kfuncs take and return them, the program never looks inside. Defined, not
// just declared: libbpf matches a kfunc's pointer arguments to the kernel's only when both sides point
// at a struct (a declaration alone is a different kind), whatever its members.
struct nf_conn { int opaque; };
struct nf_conn___init { int opaque; };
// The kernel's enum nf_nat_manip_type (include/net/netfilter/nf_nat.h, not UAPI).
enum nf_nat_manip_type { NF_NAT_MANIP_SRC, NF_NAT_MANIP_DST };

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *, struct bpf_sock_tuple *, __u32, struct ct_opts *, __u32) __ksym;
extern struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *, struct bpf_sock_tuple *, __u32, struct ct_opts *, __u32) __ksym;
extern struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *) __ksym;
extern void bpf_ct_release(struct nf_conn *) __ksym;
extern void bpf_ct_set_timeout(struct nf_conn___init *, __u32) __ksym;
extern int bpf_ct_set_nat_info(struct nf_conn___init *, union nf_inet_addr *, int port, enum nf_nat_manip_type) __ksym;

struct flow {
	struct bpf_sock_tuple tuple;
	struct frontend_key key;
	__u32 source[4]; // 16 bytes, IPv4 as ::ffff:a.b.c.d
	int ipv6;
	int starts; // a packet that may start a flow: a TCP SYN without ACK, or any UDP datagram
};

static __always_inline int ports(void *l4, void *end, __u8 proto, struct flow *flow, __be16 *sport, __be16 *dport)
{
	if (proto == PROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return -1;
		*sport = tcp->source;
		*dport = tcp->dest;
		flow->starts = tcp->syn && !tcp->ack;
		return 0;
	}
	if (proto == PROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return -1;
		*sport = udp->source;
		*dport = udp->dest;
		flow->starts = 1;
		return 0;
	}
	return -1;
}

// The flow of a packet; -1 for anything but IPv4/IPv6 TCP/UDP (fragments included: no ports).
static __always_inline int parse(struct __sk_buff *skb, struct flow *flow)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	__be16 sport, dport;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return -1;
		if (ports((void *)ip + ip->ihl * 4, end, ip->protocol, flow, &sport, &dport))
			return -1;
		flow->tuple.ipv4.saddr = ip->saddr;
		flow->tuple.ipv4.daddr = ip->daddr;
		flow->tuple.ipv4.sport = sport;
		flow->tuple.ipv4.dport = dport;
		flow->key.addr[2] = bpf_htonl(0xffff);
		flow->key.addr[3] = ip->daddr;
		flow->source[2] = bpf_htonl(0xffff);
		flow->source[3] = ip->saddr;
		flow->key.proto = ip->protocol;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return -1;
		if (ports(ip6 + 1, end, ip6->nexthdr, flow, &sport, &dport))
			return -1;
		__builtin_memcpy(flow->tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(flow->tuple.ipv6.daddr, &ip6->daddr, 16);
		flow->tuple.ipv6.sport = sport;
		flow->tuple.ipv6.dport = dport;
		__builtin_memcpy(flow->key.addr, &ip6->daddr, 16);
		__builtin_memcpy(flow->source, &ip6->saddr, 16);
		flow->key.proto = ip6->nexthdr;
		flow->ipv6 = 1;
	} else {
		return -1;
	}
	flow->key.port = dport;
	return 0;
}

// The frontend for the destination, or for a node port when the destination is a node address.
static __always_inline struct packet_frontend *frontend_of(struct flow *flow)
{
	struct packet_frontend *frontend = in_table(&packet_frontends, &flow->key);
	if (frontend)
		return frontend;
	struct node_address destination;
	__builtin_memcpy(destination.addr, flow->key.addr, 16);
	if (!bpf_map_lookup_elem(&node_addresses, &destination))
		return 0;
	struct frontend_key any = { .port = flow->key.port, .proto = flow->key.proto };
	if (!flow->ipv6)
		any.addr[2] = bpf_htonl(0xffff);
	return in_table(&packet_frontends, &any);
}

// The kfuncs take the tuple's size, which the verifier must see as a constant: one call per family.
static __always_inline struct nf_conn *lookup(struct __sk_buff *skb, struct flow *flow, struct ct_opts *opts)
{
	if (flow->ipv6)
		return bpf_skb_ct_lookup(skb, &flow->tuple, sizeof(flow->tuple.ipv6), opts, sizeof(*opts));
	return bpf_skb_ct_lookup(skb, &flow->tuple, sizeof(flow->tuple.ipv4), opts, sizeof(*opts));
}

static __always_inline struct nf_conn___init *allocate(struct __sk_buff *skb, struct flow *flow, struct ct_opts *opts)
{
	if (flow->ipv6)
		return bpf_skb_ct_alloc(skb, &flow->tuple, sizeof(flow->tuple.ipv6), opts, sizeof(*opts));
	return bpf_skb_ct_alloc(skb, &flow->tuple, sizeof(flow->tuple.ipv4), opts, sizeof(*opts));
}

static __always_inline void set_address(union nf_inet_addr *address, const __u32 addr[4], int ipv6)
{
	if (ipv6)
		__builtin_memcpy(address->all, addr, 16);
	else
		address->ip = addr[3];
}

SEC("tc")
int ferry_ingress(struct __sk_buff *skb)
{
	struct flow flow = {};
	if (parse(skb, &flow))
		return TC_ACT_OK;
	struct packet_frontend *frontend = frontend_of(&flow);
	if (!frontend)
		return TC_ACT_OK;
	if (frontend->ranged) {
		// Outside the ranges, or a family with no usable range: dropped, as kube-proxy's firewall chain does.
		struct range_key range = { .prefixlen = 8 * sizeof(struct frontend_key) + 128, .frontend = flow.key };
		__builtin_memcpy(range.source, flow.source, 16);
		if (!bpf_map_lookup_elem(&source_ranges, &range))
			return TC_ACT_SHOT;
	}
	struct source_key source = { .prefixlen = 128 };
	__builtin_memcpy(source.addr, flow.source, 16);
	int local = bpf_map_lookup_elem(&local_sources, &source) != 0;
	__u32 group_id = frontend->group;
	__u8 verdict = frontend->verdict;
	if (local && frontend->local_source_group) {
		group_id = frontend->local_source_group;
		verdict = VERDICT_SERVE;
	}
	if (verdict == VERDICT_DROP)
		return TC_ACT_SHOT;

	struct ct_opts opts = { .netns_id = CURRENT_NETNS, .l4proto = flow.key.proto };
	struct nf_conn *existing = lookup(skb, &flow, &opts);
	if (existing) {
		// A flow the kernel knows (ours, NATed by its entry, or anyone's): the kernel handles it.
		bpf_ct_release(existing);
		return TC_ACT_OK;
	}
	if (!flow.starts || verdict != VERDICT_SERVE)
		return TC_ACT_OK;
	struct group *group = bpf_map_lookup_elem(&groups, &group_id);
	if (!group || group->count == 0 || group->total == 0)
		return TC_ACT_OK;
	__u32 index = 0;
	struct slot *endpoint = 0;
	__u64 now = bpf_ktime_get_ns();
	__u32 affinity_seconds = frontend->affinity_seconds;
	struct packet_affinity_key sticky = { .frontend = flow.key };
	__builtin_memcpy(sticky.client, flow.source, 16);
	if (affinity_seconds) {
		struct affinity *remembered = bpf_map_lookup_elem(&packet_affinity, &sticky);
		if (remembered && now - remembered->last_ns < (__u64)affinity_seconds * 1000000000ULL) {
			endpoint = still_there(remembered, group_id, group);
			if (endpoint)
				remembered->last_ns = now;
		}
	}
	if (!endpoint) {
		endpoint = weighted_slot(group_id, group, &index);
		if (!endpoint)
			return TC_ACT_OK;
		if (affinity_seconds)
			remember(&packet_affinity, &sticky, now, index, endpoint);
	}

	struct ct_opts alloc_opts = { .netns_id = CURRENT_NETNS, .l4proto = flow.key.proto };
	struct nf_conn___init *entry = allocate(skb, &flow, &alloc_opts);
	if (!entry)
		return TC_ACT_OK;
	union nf_inet_addr address = {};
	set_address(&address, endpoint->addr, flow.ipv6);
	int failed = bpf_ct_set_nat_info(entry, &address, bpf_ntohs(endpoint->port), NF_NAT_MANIP_DST);
	int masquerade = frontend->masquerade == MASQUERADE_ALWAYS || (frontend->masquerade == MASQUERADE_OFF_CLUSTER && !local);
	if (!failed && masquerade) {
		__u32 family = flow.ipv6;
		struct node_address *source = bpf_map_lookup_elem(&masquerade_sources, &family);
		union nf_inet_addr snat = {};
		if (source)
			set_address(&snat, source->addr, flow.ipv6);
		failed = source ? bpf_ct_set_nat_info(entry, &snat, -1, NF_NAT_MANIP_SRC) : -1;
	}
	// An allocated entry can only leave through bpf_ct_insert_entry (the verifier allows no release):
	// one that could not be set up lives a millisecond.
	bpf_ct_set_timeout(entry, failed ? 1 : NEW_FLOW_TIMEOUT_MS);
	struct nf_conn *inserted = bpf_ct_insert_entry(entry);
	if (inserted)
		bpf_ct_release(inserted);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
