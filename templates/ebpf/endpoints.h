// SPDX-License-Identifier: GPL-2.0
// What the socket programs (sockets.bpf.c) and the packet program (packets.bpf.c) share: the frontend
// key, the endpoint groups and their weighted slots, and the choice among them. The includer brings the
// kernel types (linux/bpf.h or vmlinux.h) and bpf_helpers.h first. Mirrored in dataplane/ebpf/layout.ts.
#ifndef FERRY_ENDPOINTS_H
#define FERRY_ENDPOINTS_H

// What a frontend does with a new connection.
#define VERDICT_SERVE 0
#define VERDICT_REJECT 1
#define VERDICT_DROP 2

// Frontends per table (the inner maps of `frontends` and `packet_frontends`; layout.ts FRONTEND_TABLE).
#define FRONTEND_TABLE_ENTRIES 262144

// An array of maps whose one entry is a table of frontends (struct frontend_key → `value`): a full
// replace fills a fresh table and swaps it in with one write (node-plan.ts), so a program sees the old
// table or the new one. Sizes, not types, inside: clang 14 emits only a forward declaration of a type
// named inside __array, and libbpf cannot size it.
#define FRONTEND_TABLE(name, value)                                      \
	struct {                                                         \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                \
		__uint(max_entries, 1);                                  \
		__type(key, __u32);                                      \
		__array(values, struct {                                 \
			__uint(type, BPF_MAP_TYPE_HASH);                 \
			__uint(max_entries, FRONTEND_TABLE_ENTRIES);     \
			__uint(map_flags, BPF_F_NO_PREALLOC);            \
			__uint(key_size, sizeof(struct frontend_key));   \
			__uint(value_size, sizeof(value));               \
		});                                                      \
	} name SEC(".maps")

// The entry for `key` in the table that is entry 0 of the array of maps `outer`.
static __always_inline void *in_table(void *outer, const void *key)
{
	__u32 zero = 0;
	void *table = bpf_map_lookup_elem(outer, &zero);
	return table ? bpf_map_lookup_elem(table, key) : 0;
}

// 2^16 slots per group at most: the binary search below has 16 rounds.
#define SEARCH_ROUNDS 16

struct frontend_key {
	__u32 addr[4]; // network order
	__u16 port;    // network order
	__u8 proto;    // IPPROTO_TCP, IPPROTO_UDP
	__u8 pad;
};

struct group {
	__u32 count; // slots 0..count-1 exist
	__u32 total; // cumulative weight of the last slot
};

struct slot_key {
	__u32 group;
	__u32 index;
};

struct slot {
	__u32 addr[4];
	__u16 port;
	__u16 pad;
	__u32 cumulative; // weights of slots 0..index summed: strictly increasing
};

// The groups and their slots, written by ferry (dataplane/ebpf/groups.ts); the packet program reuses the
// socket programs' pinned maps. Sized for 50,000 Services of 10 endpoints and more, allocated as used
// (BPF_F_NO_PREALLOC): a preallocated 2M-slot map would hold ~100 MB from the start.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct group);
} groups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2097152);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct slot_key);
	__type(value, struct slot);
} slots SEC(".maps");

// Weighted choice: a random number below the group's total weight, then the first slot whose
// cumulative weight exceeds it (binary search), so integer weights are honoured exactly.
static __always_inline struct slot *weighted_slot(__u32 group_id, const struct group *group, __u32 *chosen)
{
	__u32 pick = bpf_get_prandom_u32() % group->total;
	__u32 low = 0, high = group->count - 1;
	for (int round = 0; round < SEARCH_ROUNDS && low < high; round++) {
		__u32 middle = low + (high - low) / 2;
		struct slot_key key = { .group = group_id, .index = middle };
		struct slot *slot = bpf_map_lookup_elem(&slots, &key);
		if (!slot)
			return 0;
		if (pick < slot->cumulative)
			high = middle;
		else
			low = middle + 1;
	}
	struct slot_key key = { .group = group_id, .index = low };
	*chosen = low;
	return bpf_map_lookup_elem(&slots, &key);
}

// A remembered choice (session affinity; a UDP socket's flow), keyed as each program needs.
struct affinity {
	__u64 last_ns;
	__u32 index;
	__u32 pad;
	__u32 addr[4];
	__u16 port;
	__u16 pad2;
	__u32 pad3;
};

static __always_inline int same_endpoint(const struct slot *slot, const struct affinity *remembered)
{
	return slot->port == remembered->port && slot->addr[0] == remembered->addr[0] && slot->addr[1] == remembered->addr[1] &&
	       slot->addr[2] == remembered->addr[2] && slot->addr[3] == remembered->addr[3];
}

// A remembered endpoint, if it is still in the group at the same place (else the caller chooses anew).
static __always_inline struct slot *still_there(struct affinity *remembered, __u32 group_id, const struct group *group)
{
	if (!remembered || remembered->index >= group->count)
		return 0;
	struct slot_key key = { .group = group_id, .index = remembered->index };
	struct slot *slot = bpf_map_lookup_elem(&slots, &key);
	return slot && same_endpoint(slot, remembered) ? slot : 0;
}

// Remembers `slot` (index `index` of its group) under `key` in `map`.
static __always_inline void remember(void *map, const void *key, __u64 now, __u32 index, const struct slot *slot)
{
	struct affinity value = { .last_ns = now, .index = index, .port = slot->port };
	__builtin_memcpy(value.addr, slot->addr, sizeof(value.addr));
	bpf_map_update_elem(map, key, &value, BPF_ANY);
}

#endif
