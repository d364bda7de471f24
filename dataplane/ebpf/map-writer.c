// ferry-map-writer: one long-running process that writes pinned BPF maps for ferry, so that no
// element costs a process (one `bpftool map update` is 22-34 ms here; a batch syscall of 100k, 0.1 s).
//
// Protocol (stdin → stdout, commands answered in the order sent; the agent may send the next before
// the answer; keys and values in lower-case hex, byte for byte the map's key and value):
//   open NAME PATH                    → ok KEY_SIZE VALUE_SIZE MAX_ENTRIES TYPE
//   write NAME N BYTES, then BYTES    → ok N: creates or replaces N entries, each key then value, raw
//   delete NAME N, then N "KEY"       → ok N         (keys that are absent are not an error)
//   dump NAME                         → ok N, then N "KEY VALUE"
//   served GROUPS SLOTS T:W[,W] ...   → ok GROUPS SLOTS, then N HEX per table T: the number of groups and
//                                       slots, and what each frontend of T serves, summed as digest.ts
//                                       sums it (murmur3 of 32-bit words, two seeds, in any order): its
//                                       key, its value with the group ids (value words W) zeroed, then
//                                       for each of those groups its entry and its slots' values in order;
//                                       no group ids, so no plan needs the kernel's
//   table NAME PATH KEY VALUE MAX     → ok KEY_SIZE VALUE_SIZE MAX_ENTRIES TYPE: NAME is the table that is
//                                       entry 0 of the array of maps at PATH (an empty hash map of those
//                                       sizes, no preallocation, put there first if the entry is empty)
//   stage NAME                        → ok: NAME.next, a fresh empty map like the table NAME
//   install NAME                      → ok: NAME.next becomes entry 0 of NAME's array (one write) and NAME
//   bind PROGRAM MAP                  → ok: the map pinned at MAP is bound to the program pinned at PROGRAM
//                                       (BPF_PROG_BIND_MAP), so it lives as long as the program does
//   in SEQUENCE COMMAND               → COMMAND's answer, or "skipped" (its records read and dropped) when
//                                       a command of the same SEQUENCE (a number) failed before: writes
//                                       sent at once stop at their first failure
// Writes to a table fail with ESTALE once its array holds another map (another process installed one).
// Any failure answers "error ERRNO MESSAGE" and leaves the process ready for the next command; a
// failed update may have written a prefix of its entries (the kernel's batch is not transactional).
//   cc -O2 -o ferry-map-writer map-writer.c -lbpf
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_MAPS 64
#define DUMP_CHUNK 4096

struct map {
	char name[64];
	int fd;
	__u32 key_size, value_size, max_entries, type, flags;
	int outer_fd; // a table's array of maps, else -1
	__u32 id;     // a table's map id, what its array must still hold
	int staged;   // a table not yet installed: its array holds another
};

static struct map maps[MAX_MAPS];
static int map_count;
static char *line;
static size_t line_capacity;
// The commands as this process reads them: stdin, drained by a thread of its own (read_input).
static FILE *in;
// Whether the command being answered failed; the last sequences that had a command fail.
static int failed;
static unsigned failed_sequences[16];
static unsigned failed_count;

static void fail(int error, const char *what)
{
	failed = 1;
	printf("error %d %s: %s\n", error, what, strerror(error));
}

// What the agent sent and the commands have not read yet. A thread takes stdin off the socket as it
// comes, so that the agent's writes never wait for a batch syscall here: what its socket buffer
// (~200 KB) cannot take waits in the agent for its event loop, which a sync's encoding keeps busy.
static struct {
	pthread_mutex_t lock;
	pthread_cond_t ready;
	unsigned char *data;
	size_t start, end, capacity;
	int closed;
} input = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0, 0 };

static void *read_input(void *unused)
{
	static unsigned char chunk[1 << 16];
	(void)unused;
	for (;;) {
		ssize_t got = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		pthread_mutex_lock(&input.lock);
		if (got > 0 && input.end + got > input.capacity) {
			memmove(input.data, input.data + input.start, input.end - input.start);
			input.end -= input.start;
			input.start = 0;
			if (input.end + got > input.capacity) {
				size_t capacity = 2 * (input.end + got);
				unsigned char *grown = realloc(input.data, capacity);
				if (!grown)
					got = -1; // out of memory: as if the input ended, so the process exits
				else {
					input.data = grown;
					input.capacity = capacity;
				}
			}
		}
		if (got <= 0)
			input.closed = 1;
		else {
			memcpy(input.data + input.end, chunk, got);
			input.end += got;
		}
		pthread_cond_signal(&input.ready);
		pthread_mutex_unlock(&input.lock);
		if (got <= 0)
			return NULL;
	}
}

// The stream `in` reads: what read_input took, waiting for more; 0 once stdin ended.
static ssize_t take_input(void *cookie, char *buffer, size_t size)
{
	(void)cookie;
	pthread_mutex_lock(&input.lock);
	while (input.start == input.end && !input.closed)
		pthread_cond_wait(&input.ready, &input.lock);
	size_t count = input.end - input.start < size ? input.end - input.start : size;
	memcpy(buffer, input.data + input.start, count);
	input.start += count;
	pthread_mutex_unlock(&input.lock);
	return (ssize_t)count;
}

static struct map *find(const char *name)
{
	for (int i = 0; i < map_count; i++)
		if (strcmp(maps[i].name, name) == 0)
			return &maps[i];
	return NULL;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

// Parses exactly `size` bytes of hex at *text and moves past them; -1 when the text is not that.
static int parse_hex(char **text, unsigned char *out, __u32 size)
{
	char *p = *text;
	for (__u32 i = 0; i < size; i++) {
		int high = hex_value(p[0]), low = high < 0 ? -1 : hex_value(p[1]);
		if (low < 0)
			return -1;
		out[i] = (unsigned char)(high << 4 | low);
		p += 2;
	}
	*text = p;
	return 0;
}

static void print_hex(const unsigned char *bytes, __u32 size)
{
	static const char digits[] = "0123456789abcdef";
	for (__u32 i = 0; i < size; i++) {
		putchar(digits[bytes[i] >> 4]);
		putchar(digits[bytes[i] & 15]);
	}
}

// Reads the N key lines of a delete into keys; all are read even when one is malformed, so the
// stream stays in step with the client.
static int read_keys(struct map *map, long count, unsigned char *keys)
{
	int bad = 0;
	for (long i = 0; i < count; i++) {
		if (getline(&line, &line_capacity, in) < 0)
			return -EIO;
		char *p = line;
		if (parse_hex(&p, keys + i * map->key_size, map->key_size) < 0)
			bad = 1;
	}
	return bad ? -EINVAL : 0;
}

// The kernel's batch operations exist for hash and array maps (5.6+); other types, and an older
// kernel, answer EINVAL or ENOTSUPP (524), and then each element gets its own syscall, still here.
static int batch_unsupported(int error)
{
	return error == EINVAL || error == 524 || error == EOPNOTSUPP;
}

static int update(struct map *map, long count, unsigned char *keys, unsigned char *values)
{
	__u32 done = (__u32)count;
	if (bpf_map_update_batch(map->fd, keys, values, &done, NULL) == 0)
		return 0;
	if (!batch_unsupported(errno))
		return -errno;
	for (long i = 0; i < count; i++)
		if (bpf_map_update_elem(map->fd, keys + i * map->key_size, values + i * map->value_size, BPF_ANY) < 0)
			return -errno;
	return 0;
}

static int delete(struct map *map, long count, unsigned char *keys)
{
	long start = 0;
	__u32 done = (__u32)count;
	if (bpf_map_delete_batch(map->fd, keys, &done, NULL) == 0)
		return 0;
	// The batch stops at the first absent key (ENOENT) having deleted `done` before it; the rest one by one.
	if (errno == ENOENT)
		start = done;
	else if (!batch_unsupported(errno))
		return -errno;
	for (long i = start; i < count; i++)
		if (bpf_map_delete_elem(map->fd, keys + i * map->key_size) < 0 && errno != ENOENT)
			return -errno;
	return 0;
}

// Keys and values of the whole map: lookup_batch in chunks, or get_next_key where batches are missing.
static long dump(struct map *map, unsigned char **keys_out, unsigned char **values_out)
{
	size_t capacity = map->max_entries ? map->max_entries : 1;
	unsigned char *keys = malloc(capacity * map->key_size), *values = malloc(capacity * map->value_size);
	unsigned char *token = malloc(map->key_size > 8 ? map->key_size : 8);
	long total = 0;
	int first = 1, error = 0;
	if (!keys || !values || !token) {
		error = -ENOMEM;
		goto out;
	}
	for (;;) {
		__u32 chunk = capacity - total < DUMP_CHUNK ? (__u32)(capacity - total) : DUMP_CHUNK;
		if (chunk == 0)
			break;
		int result = bpf_map_lookup_batch(map->fd, first ? NULL : token, token, keys + total * map->key_size,
						  values + total * map->value_size, &chunk, NULL);
		first = 0;
		total += chunk;
		if (result == 0)
			continue;
		if (errno == ENOENT)
			break;
		if (batch_unsupported(errno) && total == 0)
			goto one_by_one;
		error = -errno;
		goto out;
	}
	goto out;
one_by_one:
	// token holds the last key asked for, so a key deleted meanwhile does not restart the walk.
	for (int started = 0; total < (long)capacity; started = 1) {
		unsigned char *key = keys + total * map->key_size;
		if (bpf_map_get_next_key(map->fd, started ? token : NULL, key) < 0) {
			if (errno != ENOENT)
				error = -errno;
			break;
		}
		memcpy(token, key, map->key_size);
		if (bpf_map_lookup_elem(map->fd, key, values + total * map->value_size) == 0)
			total++;
		else if (errno != ENOENT) {
			error = -errno;
			break;
		}
	}
out:
	free(token);
	if (error) {
		free(keys);
		free(values);
		return error;
	}
	*keys_out = keys;
	*values_out = values;
	return total;
}

// The entry for `name`: the existing one (its map closed) or a new one; NULL when full.
static struct map *entry(const char *name)
{
	struct map *map = find(name);
	if (map) {
		close(map->fd);
		if (map->outer_fd >= 0)
			close(map->outer_fd);
	} else if (map_count < MAX_MAPS && strlen(name) < sizeof(map->name)) {
		map = &maps[map_count++];
	}
	return map;
}

// Holds `fd` as `name`; `outer_fd` the table's array, or -1.
static int hold(const char *name, int fd, int outer_fd)
{
	struct bpf_map_info info = { 0 };
	__u32 length = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &length) < 0)
		return -errno;
	struct map *map = entry(name);
	if (!map)
		return -ENOSPC;
	*map = (struct map){ .fd = fd, .key_size = info.key_size, .value_size = info.value_size, .max_entries = info.max_entries,
			     .type = info.type, .flags = info.map_flags, .outer_fd = outer_fd, .id = info.id };
	snprintf(map->name, sizeof(map->name), "%s", name);
	return 0;
}

static void reply_opened(const char *name)
{
	struct map *map = find(name);
	printf("ok %u %u %u %u\n", map->key_size, map->value_size, map->max_entries, map->type);
}

// A table still in use: its array's entry 0 is the map written to (not one another process installed since).
static int current(struct map *map)
{
	__u32 zero = 0, id = 0;
	if (map->outer_fd < 0 || map->staged)
		return 0;
	if (bpf_map_lookup_elem(map->outer_fd, &zero, &id) < 0)
		return -errno;
	return id == map->id ? 0 : -ESTALE;
}

// The table's map id, entry 0 of `outer`; one of the sizes given put there first if the entry is empty.
static int table_id(int outer, __u32 key_size, __u32 value_size, __u32 max_entries, __u32 *id)
{
	__u32 zero = 0;
	if (bpf_map_lookup_elem(outer, &zero, id) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = BPF_F_NO_PREALLOC);
	int fresh = bpf_map_create(BPF_MAP_TYPE_HASH, "ferry_table", key_size, value_size, max_entries, &options);
	if (fresh < 0)
		return -errno;
	// An array of maps takes only BPF_ANY: of two ferry processes doing this at once, the last one's
	// table stays, and the other's writes to its own fail as stale.
	int error = bpf_map_update_elem(outer, &zero, &fresh, BPF_ANY) < 0 ? -errno : 0;
	close(fresh);
	if (error)
		return error;
	return bpf_map_lookup_elem(outer, &zero, id) < 0 ? -errno : 0;
}

static void command_table(char *name, char *path, __u32 key_size, __u32 value_size, __u32 max_entries)
{
	__u32 id = 0;
	int outer = bpf_obj_get(path);
	if (outer < 0)
		return fail(errno, path);
	int error = table_id(outer, key_size, value_size, max_entries, &id);
	int fd = error ? -1 : bpf_map_get_fd_by_id(id);
	if (!error && fd < 0)
		error = -errno;
	if (!error)
		error = hold(name, fd, outer);
	if (error) {
		if (fd >= 0)
			close(fd);
		close(outer);
		return fail(-error, path);
	}
	reply_opened(name);
}

static void command_stage(struct map *table)
{
	char name[80];
	if (table->outer_fd < 0)
		return fail(EINVAL, "stage: not a table");
	snprintf(name, sizeof(name), "%s.next", table->name);
	LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = table->flags);
	int fd = bpf_map_create(table->type, "ferry_table", table->key_size, table->value_size, table->max_entries, &options);
	if (fd < 0)
		return fail(errno, "stage");
	int outer = dup(table->outer_fd);
	int error = outer < 0 ? errno : -hold(name, fd, outer);
	if (error)
		return fail(error, "stage");
	find(name)->staged = 1;
	printf("ok\n");
}

static void command_install(struct map *table)
{
	char name[80];
	__u32 zero = 0;
	snprintf(name, sizeof(name), "%s.next", table->name);
	struct map *next = find(name);
	if (!next || table->outer_fd < 0)
		return fail(ENOENT, "install: nothing staged");
	if (bpf_map_update_elem(table->outer_fd, &zero, &next->fd, BPF_ANY) < 0)
		return fail(errno, "install");
	// The table is the staged map now; the old one goes when the last program using it is done.
	close(table->fd);
	close(table->outer_fd);
	struct map installed = *next;
	installed.staged = 0;
	snprintf(installed.name, sizeof(installed.name), "%s", table->name);
	*table = installed;
	*next = maps[--map_count];
	printf("ok\n");
}

static void command_open(char *name, char *path)
{
	int fd = bpf_obj_get(path);
	if (fd < 0)
		return fail(errno, path);
	int error = hold(name, fd, -1);
	if (error)
		return fail(-error, path);
	reply_opened(name);
}

static void command_bind(char *program_path, char *map_path)
{
	int program = bpf_obj_get(program_path);
	if (program < 0)
		return fail(errno, program_path);
	int map = bpf_obj_get(map_path);
	if (map < 0) {
		fail(errno, map_path);
		close(program);
		return;
	}
	if (bpf_prog_bind_map(program, map, NULL) < 0)
		fail(errno, "bind");
	else
		printf("ok\n");
	close(map);
	close(program);
}

// `write`: BYTES raw bytes follow the line, N entries of key then value; all are read even when the
// command fails, so the stream stays in step with the client.
static void command_write_raw(struct map *map, long count, long bytes)
{
	unsigned char *records = malloc(bytes ? bytes : 1);
	long got = records ? (long)fread(records, 1, bytes, in) : 0;
	for (int c; !records && got < bytes && (c = getc(in)) != EOF;)
		got++;
	int error = !records ? -ENOMEM : got < bytes ? -EIO : (!map || count < 0 || bytes != count * (long)(map->key_size + map->value_size)) ? -EINVAL : 0;
	unsigned char *keys = NULL, *values = NULL;
	if (error == 0) {
		keys = malloc((count ? count : 1) * map->key_size);
		values = malloc((count ? count : 1) * map->value_size);
		error = keys && values ? current(map) : -ENOMEM;
	}
	if (error == 0) {
		__u32 size = map->key_size + map->value_size;
		for (long i = 0; i < count; i++) {
			memcpy(keys + i * map->key_size, records + i * size, map->key_size);
			memcpy(values + i * map->value_size, records + i * size + map->key_size, map->value_size);
		}
		if (count > 0)
			error = update(map, count, keys, values);
	}
	if (error)
		fail(-error, map ? "write" : "write: no such map");
	else
		printf("ok %ld\n", count);
	free(records);
	free(keys);
	free(values);
}

static void command_delete(struct map *map, long count)
{
	unsigned char *keys = malloc((count ? count : 1) * map->key_size);
	int error = keys ? read_keys(map, count, keys) : -ENOMEM;
	if (error == 0)
		error = current(map);
	if (error == 0 && count > 0)
		error = delete(map, count, keys);
	if (error)
		fail(-error, "delete");
	else
		printf("ok %ld\n", count);
	free(keys);
}

static __u32 rotate(__u32 x, int r)
{
	return x << r | x >> (32 - r);
}

// murmur3 fed one word at a time, with two seeds: the helper's and digest.ts's incremental hash.
struct hash {
	__u32 low, high, words;
};

static __u32 mix(__u32 h, __u32 k)
{
	k = rotate(k * 0xcc9e2d51u, 15) * 0x1b873593u;
	return rotate(h ^ k, 13) * 5 + 0xe6546b64u;
}

static void feed(struct hash *hash, __u32 word)
{
	hash->low = mix(hash->low, word);
	hash->high = mix(hash->high, word);
	hash->words++;
}

static __u32 finish(__u32 h, __u32 words)
{
	h ^= words * 4;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	return h ^ (h >> 16);
}

static void feed_bytes(struct hash *hash, const unsigned char *bytes, __u32 size)
{
	for (__u32 i = 0; i + 4 <= size; i += 4) {
		__u32 word;
		memcpy(&word, bytes + i, 4);
		feed(hash, word);
	}
}

// A map's entries in memory, sorted by key for lookups.
struct sorted {
	unsigned char *keys, *values;
	long count;
	__u32 key_size, value_size;
};

// Keys compared as sequences of 32-bit integers (the groups' ids).
static __u32 sort_key_size;
static int compare_words(const void *a, const void *b, __u32 key_size)
{
	for (__u32 i = 0; i + 4 <= key_size; i += 4) {
		__u32 x, y;
		memcpy(&x, (const unsigned char *)a + i, 4);
		memcpy(&y, (const unsigned char *)b + i, 4);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

static int by_key(const void *a, const void *b)
{
	return compare_words(a, b, sort_key_size);
}

// Keys and values interleaved, sorted by key (a whole number of words).
static long load_sorted(struct map *map, struct sorted *out)
{
	unsigned char *keys = NULL, *values = NULL;
	long total = dump(map, &keys, &values);
	if (total < 0)
		return total;
	__u32 size = map->key_size + map->value_size;
	unsigned char *records = malloc((total ? total : 1) * size);
	if (!records) {
		free(keys);
		free(values);
		return -ENOMEM;
	}
	for (long i = 0; i < total; i++) {
		memcpy(records + i * size, keys + i * map->key_size, map->key_size);
		memcpy(records + i * size + map->key_size, values + i * map->value_size, map->value_size);
	}
	free(keys);
	free(values);
	sort_key_size = map->key_size;
	qsort(records, total, size, by_key);
	*out = (struct sorted){ .keys = records, .count = total, .key_size = map->key_size, .value_size = map->value_size };
	return total;
}

// The position of `key` in a sorted map, or -1.
static long position(const struct sorted *map, const void *key)
{
	__u32 size = map->key_size + map->value_size;
	long low = 0, high = map->count;
	while (low < high) {
		long middle = low + (high - low) / 2;
		int order = compare_words(map->keys + middle * size, key, map->key_size);
		if (order == 0)
			return middle;
		if (order < 0)
			low = middle + 1;
		else
			high = middle;
	}
	return -1;
}

// A map's entries as dump() read them, or its error; `map` read in a thread of its own.
struct dumped {
	struct map *map;
	unsigned char *keys, *values;
	long count;
};

static void *dump_thread(void *argument)
{
	struct dumped *dumped = argument;
	dumped->count = dump(dumped->map, &dumped->keys, &dumped->values);
	return NULL;
}

// Marks where a group or a slot a frontend leads to is missing.
#define MISSING_GROUP 0xffffffffu
#define MISSING_SLOT 0xfffffffeu

// Every group's slots by the group's place among the sorted groups: slot i of the group at place p is
// values[first[p] + i] when present[first[p] + i]. Slots of no group, or beyond their group's count, are left out.
struct group_slots {
	long *first;
	unsigned char *values, *present;
	__u32 value_size;
};

static long place_slots(const struct dumped *dumped, __u32 value_size, const struct sorted *groups, struct group_slots *out)
{
	__u32 group_size = groups->key_size + groups->value_size;
	long total = 0;
	out->first = malloc((groups->count + 1) * sizeof(long));
	if (!out->first)
		return -ENOMEM;
	for (long p = 0; p < groups->count; p++) {
		__u32 count;
		memcpy(&count, groups->keys + p * group_size + groups->key_size, 4);
		out->first[p] = total;
		total += count;
	}
	out->first[groups->count] = total;
	out->value_size = value_size;
	out->values = malloc((total ? total : 1) * value_size);
	out->present = calloc(total ? total : 1, 1);
	if (!out->values || !out->present)
		return -ENOMEM;
	for (long i = 0; i < dumped->count; i++) {
		__u32 key[2];
		memcpy(key, dumped->keys + i * 8, 8);
		long p = position(groups, &key[0]);
		if (p < 0 || out->first[p] + key[1] >= out->first[p + 1])
			continue;
		memcpy(out->values + (out->first[p] + key[1]) * value_size, dumped->values + i * value_size, value_size);
		out->present[out->first[p] + key[1]] = 1;
	}
	return dumped->count;
}

static void free_group_slots(struct group_slots *slots)
{
	free(slots->first);
	free(slots->values);
	free(slots->present);
}

// The digest of what one table's frontends serve (see `served` above), over groups and slots in memory.
static int table_served(struct map *frontends, const struct dumped *dumped, const struct sorted *groups, const struct group_slots *slots, const char *offsets, long *count, __u32 *low, __u32 *high)
{
	__u32 group_words[4], group_word_count = 0, value_words = frontends->value_size / 4;
	for (const char *p = offsets; *p && group_word_count < 4;) {
		char *end;
		unsigned long word = strtoul(p, &end, 10);
		if (end == p || word >= value_words)
			return -EINVAL;
		group_words[group_word_count++] = (__u32)word;
		p = *end == ',' ? end + 1 : end;
	}
	if (frontends->key_size % 4 || frontends->value_size % 4)
		return -EINVAL;
	const unsigned char *keys = dumped->keys, *values = dumped->values;
	long total = dumped->count;
	if (total < 0)
		return (int)total;
	*low = *high = 0;
	for (long i = 0; i < total; i++) {
		struct hash hash = { 0, 0x9747b28cu, 0 };
		const unsigned char *value = values + i * frontends->value_size;
		feed_bytes(&hash, keys + i * frontends->key_size, frontends->key_size);
		for (__u32 w = 0; w < value_words; w++) {
			__u32 word;
			memcpy(&word, value + 4 * w, 4);
			for (__u32 g = 0; g < group_word_count; g++)
				if (group_words[g] == w)
					word = 0;
			feed(&hash, word);
		}
		for (__u32 g = 0; g < group_word_count; g++) {
			__u32 id, members;
			memcpy(&id, value + 4 * group_words[g], 4);
			if (id == 0)
				continue;
			long at = position(groups, &id);
			if (at < 0) {
				feed(&hash, MISSING_GROUP);
				continue;
			}
			const unsigned char *group = groups->keys + at * (groups->key_size + groups->value_size) + groups->key_size;
			feed_bytes(&hash, group, 8);
			memcpy(&members, group, 4);
			for (__u32 index = 0; index < members; index++) {
				long place = slots->first[at] + index;
				if (slots->present[place])
					feed_bytes(&hash, slots->values + place * slots->value_size, slots->value_size);
				else
					feed(&hash, MISSING_SLOT);
			}
		}
		*low += finish(hash.low, hash.words);
		*high += finish(hash.high, hash.words);
	}
	*count = total;
	return 0;
}

#define MAX_TABLES 4

// `served GROUPS SLOTS TABLE:W[,W]...`: the slots read in a thread while the groups and the tables
// are read, then placed by group once for every table.
static void command_served(char *arguments)
{
	char *groups_name = strtok(arguments, " \n"), *slots_name = strtok(NULL, " \n"), *offsets[MAX_TABLES];
	struct map *groups_map = groups_name ? find(groups_name) : NULL, *slots_map = slots_name ? find(slots_name) : NULL;
	if (!groups_map || !slots_map || groups_map->key_size != 4 || groups_map->value_size != 8 || slots_map->key_size != 8 || slots_map->value_size % 4)
		return fail(EINVAL, "served: groups and slots");
	int table_count = 0;
	struct dumped frontends[MAX_TABLES] = { 0 }, slots = { .map = slots_map };
	for (char *table; (table = strtok(NULL, " \n"));) {
		char *words = strchr(table, ':');
		if (table_count == MAX_TABLES || !words || !(frontends[table_count].map = (*words = 0, find(table))))
			return fail(EINVAL, "served: tables");
		offsets[table_count++] = words + 1;
	}
	pthread_t thread;
	int threaded = pthread_create(&thread, NULL, dump_thread, &slots) == 0;
	if (!threaded)
		dump_thread(&slots);
	struct sorted groups = { 0 };
	struct group_slots placed = { 0 };
	long error = load_sorted(groups_map, &groups);
	for (int i = 0; i < table_count; i++)
		dump_thread(&frontends[i]);
	if (threaded)
		pthread_join(thread, NULL);
	if (error >= 0)
		error = slots.count < 0 ? slots.count : place_slots(&slots, slots_map->value_size, &groups, &placed);
	char reply[1024];
	int length = snprintf(reply, sizeof(reply), "ok %ld %ld", groups.count, slots.count);
	for (int i = 0; error >= 0 && i < table_count; i++) {
		long count = 0;
		__u32 low = 0, high = 0;
		error = table_served(frontends[i].map, &frontends[i], &groups, &placed, offsets[i], &count, &low, &high);
		if (error >= 0)
			length += snprintf(reply + length, sizeof(reply) - length, " %ld %08x%08x", count, high, low);
	}
	for (int i = 0; i < table_count; i++) {
		free(frontends[i].keys);
		free(frontends[i].values);
	}
	free(slots.keys);
	free(slots.values);
	free(groups.keys);
	free_group_slots(&placed);
	if (error < 0)
		return fail((int)-error, "served");
	printf("%s\n", reply);
}

static void command_dump(struct map *map)
{
	unsigned char *keys = NULL, *values = NULL;
	long total = dump(map, &keys, &values);
	if (total < 0)
		return fail((int)-total, "dump");
	printf("ok %ld\n", total);
	for (long i = 0; i < total; i++) {
		print_hex(keys + i * map->key_size, map->key_size);
		putchar(' ');
		print_hex(values + i * map->value_size, map->value_size);
		putchar('\n');
	}
	free(keys);
	free(values);
}

// A skipped command's records, read and dropped so that the next command is read as one.
static void skip_records(const char *verb, long count, long bytes)
{
	if (strcmp(verb, "write") == 0)
		for (long i = 0; i < bytes && getc(in) != EOF; i++)
			;
	if (strcmp(verb, "delete") == 0)
		for (long i = 0; i < count && getline(&line, &line_capacity, in) >= 0; i++)
			;
}

int main(void)
{
	char verb[16], name[64], argument[4096];
	__u32 numbers[3];
	pthread_t reader;
	cookie_io_functions_t reading = { .read = take_input };
	in = fopencookie(NULL, "r", reading);
	if (!in || pthread_create(&reader, NULL, read_input, NULL) != 0) {
		perror("ferry-map-writer: reading stdin");
		return 1;
	}
	while (getline(&line, &line_capacity, in) >= 0) {
		unsigned sequence = 0;
		int prefix = 0;
		if (sscanf(line, "in %u %n", &sequence, &prefix) < 1 || prefix == 0)
			sequence = 0, prefix = 0;
		char *command = line + prefix;
		int fields = sscanf(command, "%15s %63s %4095s %u %u %u", verb, name, argument, &numbers[0], &numbers[1], &numbers[2]);
		int skip = 0;
		for (unsigned i = 0; sequence && i < failed_count && i < 16; i++)
			skip |= failed_sequences[i] == sequence;
		if (skip) {
			skip_records(verb, fields >= 3 ? strtol(argument, NULL, 10) : 0, fields >= 4 ? (long)numbers[0] : 0);
			printf("skipped\n");
			fflush(stdout);
			continue;
		}
		failed = 0;
		struct map *map = fields >= 2 ? find(name) : NULL;
		if (fields == 3 && strcmp(verb, "open") == 0) {
			command_open(name, argument);
		} else if (fields == 6 && strcmp(verb, "table") == 0) {
			command_table(name, argument, numbers[0], numbers[1], numbers[2]);
		} else if (fields == 2 && strcmp(verb, "stage") == 0 && map) {
			command_stage(map);
		} else if (fields == 2 && strcmp(verb, "install") == 0 && map) {
			command_install(map);
		} else if (fields == 4 && strcmp(verb, "write") == 0) {
			command_write_raw(map, strtol(argument, NULL, 10), (long)numbers[0]);
		} else if (fields == 3 && strcmp(verb, "delete") == 0) {
			long count = strtol(argument, NULL, 10);
			if (!map || count < 0) {
				skip_records(verb, count, 0);
				fail(map ? EINVAL : ENOENT, map ? "count" : name);
			} else {
				command_delete(map, count);
			}
		} else if (fields == 2 && strcmp(verb, "dump") == 0 && map) {
			command_dump(map);
		} else if (fields == 3 && strcmp(verb, "bind") == 0) {
			// Pin paths can be longer than a map's name: both read again at full length.
			static char program_path[4096], map_path[4096];
			if (sscanf(command, "%*s %4095s %4095s", program_path, map_path) == 2)
				command_bind(program_path, map_path);
			else
				fail(EINVAL, "bind");
		} else if (fields >= 2 && strcmp(verb, "served") == 0) {
			command_served(command + strlen("served "));
		} else {
			fail(EINVAL, "command");
		}
		if (failed && sequence)
			failed_sequences[failed_count++ % 16] = sequence;
		fflush(stdout);
	}
	return 0;
}
