// SPDX-License-Identifier: GPL-2.0
// Socket-level Service balancing: cgroup sock_addr programs rewrite the destination of a connect() or an
// unconnected sendmsg() to a Service frontend into one of its endpoints, and rewrite the endpoint back
// into the Service address where the application reads a peer (recvmsg, getpeername). No packet is
// ever NATed: the socket talks to the endpoint from the start, so conntrack never sees the Service.
//
// Addresses are 16 bytes everywhere (IPv4 as ::ffff:a.b.c.d): one set of maps and one encoder for both
// families, and an AF_INET6 socket connecting to ::ffff:<cluster IP> finds the IPv4 Service unchanged.
// The layouts below are mirrored in dataplane/ebpf/layout.ts; change both together.
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "endpoints.h"

// asm-generic/errno.h: not included, because its value is all this file needs.
#define ECONNREFUSED 111

struct frontend {
	__u32 group;
	__u8 verdict; // VERDICT_*
	__u8 pad[3];
	__u32 affinity_seconds; // 0: no session affinity
};

// What a socket was really aimed at: found by the socket and the endpoint it talks to, so that an
// unconnected UDP socket talking to several Services gets each reply's source right.
struct reverse_key {
	__u64 cookie; // bpf_get_socket_cookie
	__u32 addr[4];
	__u16 port;
	__u16 pad;
	__u32 pad2;
};

struct reverse {
	__u32 addr[4];
	__u16 port;
	__u16 pad;
};

// Remembered choices. ClientIP affinity: `owner` is the network namespace (a pod, or the node's own
// processes), because connect() runs before the socket has a source address. Unconnected UDP: `owner`
// is the socket, so its datagrams to one Service stay with one endpoint, as a conntrack flow would.
struct affinity_key {
	__u64 owner;
	struct frontend_key frontend;
	__u32 pad;
};

FRONTEND_TABLE(frontends, struct frontend);

// LRU: no hook runs when a socket closes, so old entries are evicted instead of deleted.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct reverse_key);
	__type(value, struct reverse);
} reverse SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct affinity_key);
	__type(value, struct affinity);
} affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct affinity_key);
	__type(value, struct affinity);
} udp_flows SEC(".maps");

enum choice { NOT_A_SERVICE, CHOSEN, REJECT, DROP };

// `flow` is the socket's cookie for an unconnected sendmsg, 0 for connect (one choice per connect).
static __always_inline enum choice choose(void *ctx, struct frontend_key *key, __u64 flow, struct slot **out)
{
	struct frontend *frontend = in_table(&frontends, key);
	if (!frontend)
		return NOT_A_SERVICE;
	if (frontend->verdict == VERDICT_DROP)
		return DROP;
	if (frontend->verdict != VERDICT_SERVE)
		return REJECT;
	__u32 group_id = frontend->group;
	struct group *group = bpf_map_lookup_elem(&groups, &group_id);
	if (!group || group->count == 0 || group->total == 0)
		return REJECT;

	struct affinity_key flow_key = { .owner = flow, .frontend = *key };
	struct slot *slot = 0;
	if (flow) {
		slot = still_there(bpf_map_lookup_elem(&udp_flows, &flow_key), group_id, group);
		if (slot) {
			*out = slot;
			return CHOSEN;
		}
	}
	struct affinity_key sticky = { .frontend = *key };
	__u64 now = bpf_ktime_get_ns();
	__u32 index = 0;
	if (frontend->affinity_seconds) {
		sticky.owner = bpf_get_netns_cookie(ctx);
		struct affinity *remembered = bpf_map_lookup_elem(&affinity, &sticky);
		if (remembered && now - remembered->last_ns < (__u64)frontend->affinity_seconds * 1000000000ULL) {
			slot = still_there(remembered, group_id, group);
			if (slot) {
				remembered->last_ns = now;
				index = remembered->index;
			}
		}
	}
	if (!slot) {
		slot = weighted_slot(group_id, group, &index);
		if (!slot)
			return REJECT;
		if (frontend->affinity_seconds)
			remember(&affinity, &sticky, now, index, slot);
	}
	if (flow)
		remember(&udp_flows, &flow_key, now, index, slot);
	*out = slot;
	return CHOSEN;
}

static __always_inline void remember_service(void *ctx, const struct slot *endpoint, const struct frontend_key *service)
{
	struct reverse_key key = { .cookie = bpf_get_socket_cookie(ctx), .port = endpoint->port };
	__builtin_memcpy(key.addr, endpoint->addr, sizeof(key.addr));
	struct reverse value = { .port = service->port };
	__builtin_memcpy(value.addr, service->addr, sizeof(value.addr));
	bpf_map_update_elem(&reverse, &key, &value, BPF_ANY);
}

static __always_inline int is_v4_mapped(const __u32 *addr)
{
	return addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xffff);
}

// The verdict of a connect or sendmsg hook: 1 lets the call go on, 0 fails it with EPERM, or with
// the errno set by bpf_set_retval (kernel >= 5.18): a reject is ECONNREFUSED.
static __always_inline int refuse(enum choice choice)
{
	if (choice == REJECT)
		bpf_set_retval(-ECONNREFUSED);
	return 0;
}

static __always_inline int balance4(struct bpf_sock_addr *ctx, int unconnected)
{
	struct frontend_key key = { .addr = { 0, 0, bpf_htonl(0xffff), ctx->user_ip4 }, .port = (__u16)ctx->user_port, .proto = (__u8)ctx->protocol };
	struct slot *endpoint = 0;
	enum choice choice = choose(ctx, &key, unconnected ? bpf_get_socket_cookie(ctx) : 0, &endpoint);
	// A drop goes on untranslated: the companion table drops it on its way out, as kube-proxy's drop.
	if (choice == NOT_A_SERVICE || choice == DROP)
		return 1;
	// An IPv6 endpoint cannot serve an AF_INET socket; compute never mixes families in a group.
	if (choice != CHOSEN || !endpoint || !is_v4_mapped(endpoint->addr))
		return refuse(choice == CHOSEN ? REJECT : choice);
	ctx->user_ip4 = endpoint->addr[3];
	ctx->user_port = endpoint->port;
	remember_service(ctx, endpoint, &key);
	return 1;
}

static __always_inline int balance6(struct bpf_sock_addr *ctx, int unconnected)
{
	struct frontend_key key = { .addr = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] },
				    .port = (__u16)ctx->user_port, .proto = (__u8)ctx->protocol };
	struct slot *endpoint = 0;
	enum choice choice = choose(ctx, &key, unconnected ? bpf_get_socket_cookie(ctx) : 0, &endpoint);
	// A drop goes on untranslated: the companion table drops it on its way out, as kube-proxy's drop.
	if (choice == NOT_A_SERVICE || choice == DROP)
		return 1;
	if (choice != CHOSEN || !endpoint)
		return refuse(choice);
	ctx->user_ip6[0] = endpoint->addr[0];
	ctx->user_ip6[1] = endpoint->addr[1];
	ctx->user_ip6[2] = endpoint->addr[2];
	ctx->user_ip6[3] = endpoint->addr[3];
	ctx->user_port = endpoint->port;
	remember_service(ctx, endpoint, &key);
	return 1;
}

// The peer the application is shown: the Service it aimed at, when this socket was balanced to it.
static __always_inline int restore4(struct bpf_sock_addr *ctx)
{
	struct reverse_key key = { .cookie = bpf_get_socket_cookie(ctx), .addr = { 0, 0, bpf_htonl(0xffff), ctx->user_ip4 }, .port = (__u16)ctx->user_port };
	struct reverse *service = bpf_map_lookup_elem(&reverse, &key);
	if (service) {
		ctx->user_ip4 = service->addr[3];
		ctx->user_port = service->port;
	}
	return 1;
}

static __always_inline int restore6(struct bpf_sock_addr *ctx)
{
	struct reverse_key key = { .cookie = bpf_get_socket_cookie(ctx),
				   .addr = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] },
				   .port = (__u16)ctx->user_port };
	struct reverse *service = bpf_map_lookup_elem(&reverse, &key);
	if (service) {
		ctx->user_ip6[0] = service->addr[0];
		ctx->user_ip6[1] = service->addr[1];
		ctx->user_ip6[2] = service->addr[2];
		ctx->user_ip6[3] = service->addr[3];
		ctx->user_port = service->port;
	}
	return 1;
}

// Live TCP connections per endpoint that a connect() of the cgroup was sent to, for the load-aware
// balancer (dataplane/ebpf/backend.ts sampleConnections): up when a balanced connection is established,
// down when it closes. Keyed as a frontend {addr, port, TCP}.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct frontend_key);
	__type(value, __s64);
} endpoint_connections SEC(".maps");

static __always_inline void remote_of(const struct bpf_sock_ops *skops, struct frontend_key *key)
{
	// Every field read first, each by its own load: the verifier refuses a context pointer the
	// compiler would otherwise compute to share one load between the branches.
	__u32 family = skops->family, port = skops->remote_port, ip4 = skops->remote_ip4;
	__u32 ip6_0 = skops->remote_ip6[0], ip6_1 = skops->remote_ip6[1], ip6_2 = skops->remote_ip6[2], ip6_3 = skops->remote_ip6[3];
	// remote_port holds the port in network order in its upper 16 bits.
	key->port = (__u16)(port >> 16);
	key->proto = IPPROTO_TCP;
	if (family == 2 /* AF_INET */) {
		key->addr[2] = bpf_htonl(0xffff);
		key->addr[3] = ip4;
	} else {
		key->addr[0] = ip6_0;
		key->addr[1] = ip6_1;
		key->addr[2] = ip6_2;
		key->addr[3] = ip6_3;
	}
}

SEC("sockops")
int ferry_sock_ops(struct bpf_sock_ops *skops)
{
	struct frontend_key key = {};
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		remote_of(skops, &key);
		// Only a connection whose endpoint connect() chose: remember_service left its socket there.
		struct reverse_key chosen = { .cookie = bpf_get_socket_cookie(skops), .port = key.port };
		__builtin_memcpy(chosen.addr, key.addr, sizeof(chosen.addr));
		if (!bpf_map_lookup_elem(&reverse, &chosen))
			return 1;
		__s64 *count = bpf_map_lookup_elem(&endpoint_connections, &key);
		if (count)
			__sync_fetch_and_add(count, 1);
		else {
			__s64 one = 1;
			bpf_map_update_elem(&endpoint_connections, &key, &one, BPF_NOEXIST);
		}
		// Tell this socket's state changes, to count it down when it closes.
		bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
	} else if (skops->op == BPF_SOCK_OPS_STATE_CB && skops->args[1] == BPF_TCP_CLOSE) {
		remote_of(skops, &key);
		__s64 *count = bpf_map_lookup_elem(&endpoint_connections, &key);
		if (count)
			__sync_fetch_and_add(count, -1);
	}
	return 1;
}

SEC("cgroup/connect4")
int ferry_connect4(struct bpf_sock_addr *ctx) { return balance4(ctx, 0); }

SEC("cgroup/connect6")
int ferry_connect6(struct bpf_sock_addr *ctx) { return balance6(ctx, 0); }

// Unconnected UDP: every datagram with an address goes through sendmsg (a connected socket's do not);
// the socket's first choice per Service is kept in udp_flows.
SEC("cgroup/sendmsg4")
int ferry_sendmsg4(struct bpf_sock_addr *ctx) { return balance4(ctx, 1); }

SEC("cgroup/sendmsg6")
int ferry_sendmsg6(struct bpf_sock_addr *ctx) { return balance6(ctx, 1); }

// recvmsg and getpeername programs must return 1 (the kernel refuses to load anything else).
SEC("cgroup/recvmsg4")
int ferry_recvmsg4(struct bpf_sock_addr *ctx) { return restore4(ctx); }

SEC("cgroup/recvmsg6")
int ferry_recvmsg6(struct bpf_sock_addr *ctx) { return restore6(ctx); }

SEC("cgroup/getpeername4")
int ferry_getpeername4(struct bpf_sock_addr *ctx) { return restore4(ctx); }

SEC("cgroup/getpeername6")
int ferry_getpeername6(struct bpf_sock_addr *ctx) { return restore6(ctx); }

char LICENSE[] SEC("license") = "GPL";
