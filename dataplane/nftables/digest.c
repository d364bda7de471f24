// nft-digest FAMILY TABLE [FAMILY TABLE...]: one SHA-256 digest per object of each nftables table (the
// table itself, each chain with its rules, each named set or map with its elements, objects,
// flowtables), read straight from netlink, one line each: "FAMILY<TAB>KIND<TAB>DIGEST<TAB>NAME" (KIND
// table, chain, set, map, object or flowtable). Nothing is printed for a table that does not exist.
//
// Why not `nft list table`: the kernel's rule dump resumes every netlink message by walking the table
// from its first rule again, so a listing of one table costs time growing with the square of its rules
// (seconds at 10,000 Services, minutes at 50,000). Asking for one chain's rules at a time makes the
// kernel look the chain up by name and walk only it: the whole table in time linear in its rules.
// `nft list chain` cannot be used for that, nft fetches every set and element for each one.
//
// What a digest covers is what a listing shows: attributes the kernel reports about its own state
// are left out (handles, positions, reference counts, counters' packets and bytes, element
// expirations, the elements of sets that rules fill at run time), and an anonymous set a rule uses
// (`ip saddr { a, b }`) is named by its content, as nft allocates its `__set%d` names per transaction.
//
// Build: cc -O2 -o nft-digest nft-digest.c -lmnl -lcrypto
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <openssl/evp.h>

#define DIGEST_LEN 32

struct buffer {
  unsigned char *data;
  size_t len, cap;
};

static void fail(const char *what) {
  fprintf(stderr, "nft-digest: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void append(struct buffer *b, const void *data, size_t len) {
  if (b->len + len > b->cap) {
    b->cap = (b->len + len) * 2 + 256;
    b->data = realloc(b->data, b->cap);
    if (!b->data) fail("out of memory");
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
}

// Room for one more item in an array that grows by doubling.
static void *grow(void *items, size_t *cap, size_t count, size_t size) {
  if (count < *cap) return items;
  *cap = *cap * 2 + 16;
  items = realloc(items, *cap * size);
  if (!items) fail("out of memory");
  return items;
}

// One attribute in a stable form: its type, its length, its payload.
static void append_attr(struct buffer *b, uint16_t type, const void *payload, uint32_t len) {
  append(b, &type, sizeof type);
  append(b, &len, sizeof len);
  append(b, payload, len);
}

static void sha256(const void *data, size_t len, unsigned char digest[DIGEST_LEN]) {
  if (!EVP_Digest(data, len, digest, NULL, EVP_sha256(), NULL)) fail("sha256");
}

static void hex(const unsigned char *digest, char text[2 * DIGEST_LEN + 1]) {
  for (int i = 0; i < DIGEST_LEN; i++) sprintf(text + 2 * i, "%02x", digest[i]);
}

struct target {
  uint8_t family;
  const char *family_name;
  const char *table;
};


// The table being read, and where the lines of one attempt go: printed only once the attempt read a
// ruleset that did not change.
static const struct target *current;
static FILE *out;

// Names print as they are, but a byte below 0x21, a backslash or DEL as \xNN: one object, one line.
static void print_object(const char *kind, const unsigned char *digest, const char *name) {
  char text[2 * DIGEST_LEN + 1];
  hex(digest, text);
  fprintf(out, "%s\t%s\t%s\t", current->family_name, kind, text);
  for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
    if (*c < 0x21 || *c == '\\' || *c == 0x7f) fprintf(out, "\\x%02x", *c);
    else fputc(*c, out);
  }
  fputc('\n', out);
}

// --- netlink ---------------------------------------------------------------------------------------

static struct mnl_socket *nl;
static unsigned int portid, seq;
static char receive[1 << 16];

static struct nlmsghdr *request(char *buf, uint16_t type, uint16_t flags, uint8_t family) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = ++seq;
  struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof *nfg);
  nfg->nfgen_family = family;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  return nlh;
}

// Sends the request and runs `cb` on every answer; 0, or -1 with errno (ENOENT: no such object,
// EINTR: the ruleset changed during the dump).
static int talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data) {
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) fail("sending to netlink");
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl, receive, sizeof receive);
    if (n < 0) return -1;
    int ret = mnl_cb_run(receive, n, nlh->nlmsg_seq, portid, cb, data);
    if (ret <= MNL_CB_STOP) return ret;
  }
}

// The top-level attributes of a message, by type (netlink gives each at most once).
struct attrs {
  const struct nlattr *at[64];
};

static int collect(const struct nlattr *attr, void *data) {
  struct attrs *attrs = data;
  uint16_t type = mnl_attr_get_type(attr);
  if (type < 64) attrs->at[type] = attr;
  return MNL_CB_OK;
}

static void parse(const struct nlmsghdr *nlh, struct attrs *attrs) {
  memset(attrs, 0, sizeof *attrs);
  mnl_attr_parse(nlh, sizeof(struct nfgenmsg), collect, attrs);
}

static void parse_nested(const struct nlattr *nest, struct attrs *attrs) {
  memset(attrs, 0, sizeof *attrs);
  mnl_attr_parse_nested(nest, collect, attrs);
}

static const char *string_of(const struct attrs *attrs, int type) {
  return attrs->at[type] ? mnl_attr_get_str(attrs->at[type]) : "";
}

// Appends the listed attributes of `attrs` in type order: only what describes the object.
static void append_kept(struct buffer *b, const struct attrs *attrs, const int *kept) {
  for (; *kept; kept++) {
    const struct nlattr *attr = attrs->at[*kept];
    if (attr) append_attr(b, *kept, mnl_attr_get_payload(attr), mnl_attr_get_payload_len(attr));
  }
}

// --- anonymous sets: name → digest of their content --------------------------------------------------

struct anonymous {
  char name[NFT_SET_MAXNAMELEN];
  unsigned char digest[DIGEST_LEN];
};
static struct anonymous *anonymous;
static size_t anonymous_count;

static const unsigned char *anonymous_digest(const char *name) {
  for (size_t i = 0; i < anonymous_count; i++) if (strcmp(anonymous[i].name, name) == 0) return anonymous[i].digest;
  return NULL;
}

// --- expressions -------------------------------------------------------------------------------------

// The attribute of an expression's data that names a set, per expression: an anonymous one is
// replaced by its content's digest.
static int set_name_attr(const char *expr) {
  if (strcmp(expr, "lookup") == 0) return NFTA_LOOKUP_SET;
  if (strcmp(expr, "dynset") == 0) return NFTA_DYNSET_SET_NAME;
  if (strcmp(expr, "objref") == 0) return NFTA_OBJREF_SET_NAME;
  return 0;
}

struct expr_data {
  struct buffer *out;
  int set_attr;
};

static int append_expr_attr(const struct nlattr *attr, void *data) {
  struct expr_data *d = data;
  uint16_t type = mnl_attr_get_type(attr);
  const unsigned char *anon = type == d->set_attr ? anonymous_digest(mnl_attr_get_str(attr)) : NULL;
  if (anon) append_attr(d->out, type, anon, DIGEST_LEN);
  else append_attr(d->out, type, mnl_attr_get_payload(attr), mnl_attr_get_payload_len(attr));
  return MNL_CB_OK;
}

// One expression (NFTA_EXPR_NAME, NFTA_EXPR_DATA): a counter by its name alone (its numbers are state).
static void append_expression(struct buffer *b, const struct nlattr *nest) {
  struct attrs expr;
  parse_nested(nest, &expr);
  const char *name = string_of(&expr, NFTA_EXPR_NAME);
  append_attr(b, NFTA_EXPR_NAME, name, strlen(name));
  if (!expr.at[NFTA_EXPR_DATA] || strcmp(name, "counter") == 0) return;
  struct expr_data d = { b, set_name_attr(name) };
  mnl_attr_parse_nested(expr.at[NFTA_EXPR_DATA], append_expr_attr, &d);
}

static int append_list_expression(const struct nlattr *attr, void *data) {
  append_expression(data, attr);
  return MNL_CB_OK;
}

static void append_expressions(struct buffer *b, const struct nlattr *list) {
  if (list) mnl_attr_parse_nested(list, append_list_expression, b);
}

// --- the table -------------------------------------------------------------------------------------

struct found_table {
  const struct target *target;
  int found;
  unsigned char digest[DIGEST_LEN];
};

static int table_cb(const struct nlmsghdr *nlh, void *data) {
  struct found_table *t = data;
  struct attrs a;
  parse(nlh, &a);
  if (strcmp(string_of(&a, NFTA_TABLE_NAME), t->target->table) != 0) return MNL_CB_OK;
  static const int kept[] = { NFTA_TABLE_FLAGS, NFTA_TABLE_USERDATA, 0 };
  struct buffer b = { 0 };
  append_kept(&b, &a, kept);
  sha256(b.data, b.len, t->digest);
  free(b.data);
  t->found = 1;
  return MNL_CB_OK;
}

// --- sets and their elements ---------------------------------------------------------------------------

struct digests {
  unsigned char (*items)[DIGEST_LEN];
  size_t count, cap;
};

static int element_cb(const struct nlattr *attr, void *data) {
  struct digests *d = data;
  struct attrs e;
  parse_nested(attr, &e);
  static const int kept[] = { NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_TIMEOUT,
    NFTA_SET_ELEM_USERDATA, NFTA_SET_ELEM_OBJREF, NFTA_SET_ELEM_KEY_END, 0 };
  struct buffer b = { 0 };
  append_kept(&b, &e, kept);
  if (e.at[NFTA_SET_ELEM_EXPR]) append_expression(&b, e.at[NFTA_SET_ELEM_EXPR]);
  append_expressions(&b, e.at[NFTA_SET_ELEM_EXPRESSIONS]);
  d->items = grow(d->items, &d->cap, d->count, DIGEST_LEN);
  sha256(b.data, b.len, d->items[d->count++]);
  free(b.data);
  return MNL_CB_OK;
}

static int elements_cb(const struct nlmsghdr *nlh, void *data) {
  struct attrs a;
  parse(nlh, &a);
  if (a.at[NFTA_SET_ELEM_LIST_ELEMENTS]) mnl_attr_parse_nested(a.at[NFTA_SET_ELEM_LIST_ELEMENTS], element_cb, data);
  return MNL_CB_OK;
}

static int compare_digests(const void *a, const void *b) {
  return memcmp(a, b, DIGEST_LEN);
}

struct set_info {
  char name[NFT_SET_MAXNAMELEN];
  uint32_t flags;
  struct buffer declaration;
};

struct sets {
  struct set_info *items;
  size_t count, cap;
  const char *table;
};

static int set_cb(const struct nlmsghdr *nlh, void *data) {
  struct sets *s = data;
  struct attrs a;
  parse(nlh, &a);
  if (strcmp(string_of(&a, NFTA_SET_TABLE), s->table) != 0) return MNL_CB_OK;
  s->items = grow(s->items, &s->cap, s->count, sizeof *s->items);
  struct set_info *set = &s->items[s->count++];
  memset(set, 0, sizeof *set);
  snprintf(set->name, sizeof set->name, "%s", string_of(&a, NFTA_SET_NAME));
  set->flags = a.at[NFTA_SET_FLAGS] ? ntohl(mnl_attr_get_u32(a.at[NFTA_SET_FLAGS])) : 0;
  static const int kept[] = { NFTA_SET_FLAGS, NFTA_SET_KEY_TYPE, NFTA_SET_KEY_LEN, NFTA_SET_DATA_TYPE, NFTA_SET_DATA_LEN,
    NFTA_SET_POLICY, NFTA_SET_DESC, NFTA_SET_TIMEOUT, NFTA_SET_GC_INTERVAL, NFTA_SET_USERDATA, NFTA_SET_OBJ_TYPE, 0 };
  append_kept(&set->declaration, &a, kept);
  if (a.at[NFTA_SET_EXPR]) append_expression(&set->declaration, a.at[NFTA_SET_EXPR]);
  append_expressions(&set->declaration, a.at[NFTA_SET_EXPRESSIONS]);
  return MNL_CB_OK;
}

// A set's digest: its declaration, then its elements' digests in sorted order (the kernel returns
// them in hash order); a set that rules fill at run time by its declaration alone.
static int set_digest(const struct target *target, struct set_info *set, unsigned char out[DIGEST_LEN]) {
  struct digests elements = { 0 };
  if (!(set->flags & NFT_SET_EVAL)) {
    char buf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh = request(buf, NFT_MSG_GETSETELEM, NLM_F_DUMP, target->family);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, target->table);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set->name);
    if (talk(nlh, elements_cb, &elements) < 0) {
      free(elements.items);
      return -1;
    }
    qsort(elements.items, elements.count, DIGEST_LEN, compare_digests);
  }
  struct buffer b = { 0 };
  append(&b, set->declaration.data, set->declaration.len);
  append(&b, elements.items, elements.count * DIGEST_LEN);
  sha256(b.data, b.len, out);
  free(b.data);
  free(elements.items);
  return 0;
}

// --- chains and their rules ----------------------------------------------------------------------------

struct chain_info {
  char name[NFT_CHAIN_MAXNAMELEN];
  struct buffer declaration;
};

struct chains {
  struct chain_info *items;
  size_t count, cap;
  const char *table;
};

static int chain_cb(const struct nlmsghdr *nlh, void *data) {
  struct chains *c = data;
  struct attrs a;
  parse(nlh, &a);
  if (strcmp(string_of(&a, NFTA_CHAIN_TABLE), c->table) != 0) return MNL_CB_OK;
  c->items = grow(c->items, &c->cap, c->count, sizeof *c->items);
  struct chain_info *chain = &c->items[c->count++];
  memset(chain, 0, sizeof *chain);
  snprintf(chain->name, sizeof chain->name, "%s", string_of(&a, NFTA_CHAIN_NAME));
  static const int kept[] = { NFTA_CHAIN_HOOK, NFTA_CHAIN_POLICY, NFTA_CHAIN_TYPE, NFTA_CHAIN_FLAGS, NFTA_CHAIN_USERDATA, 0 };
  append_kept(&chain->declaration, &a, kept);
  return MNL_CB_OK;
}

// Each rule as its expressions (anonymous sets by content, counters without numbers), its comment
// and its compat attribute, length-prefixed, in the chain's order.
static int rule_cb(const struct nlmsghdr *nlh, void *data) {
  struct buffer *chain = data;
  struct attrs a;
  parse(nlh, &a);
  struct buffer b = { 0 };
  append_expressions(&b, a.at[NFTA_RULE_EXPRESSIONS]);
  static const int kept[] = { NFTA_RULE_COMPAT, NFTA_RULE_USERDATA, 0 };
  append_kept(&b, &a, kept);
  uint32_t len = b.len;
  append(chain, &len, sizeof len);
  append(chain, b.data, b.len);
  free(b.data);
  return MNL_CB_OK;
}

static int chain_digest(const struct target *target, struct chain_info *chain, unsigned char out[DIGEST_LEN]) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = request(buf, NFT_MSG_GETRULE, NLM_F_DUMP, target->family);
  mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, target->table);
  mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, chain->name);
  struct buffer b = { 0 };
  append(&b, chain->declaration.data, chain->declaration.len);
  int ret = talk(nlh, rule_cb, &b);
  if (ret == 0) sha256(b.data, b.len, out);
  free(b.data);
  return ret < 0 ? -1 : 0;
}

// --- objects and flowtables: declaration only ------------------------------------------------------------

struct named {
  const char *table;
  const char *kind;
  int table_attr, name_attr;
  const int *kept;
};

static int named_cb(const struct nlmsghdr *nlh, void *data) {
  const struct named *n = data;
  struct attrs a;
  parse(nlh, &a);
  if (strcmp(string_of(&a, n->table_attr), n->table) != 0) return MNL_CB_OK;
  struct buffer b = { 0 };
  append_kept(&b, &a, n->kept);
  // A counter or quota object's data is its numbers: state, not configuration.
  uint32_t type = a.at[NFTA_OBJ_TYPE] && strcmp(n->kind, "object") == 0 ? ntohl(mnl_attr_get_u32(a.at[NFTA_OBJ_TYPE])) : 0;
  if (strcmp(n->kind, "object") == 0 && type != NFT_OBJECT_COUNTER && type != NFT_OBJECT_QUOTA && a.at[NFTA_OBJ_DATA])
    append_attr(&b, NFTA_OBJ_DATA, mnl_attr_get_payload(a.at[NFTA_OBJ_DATA]), mnl_attr_get_payload_len(a.at[NFTA_OBJ_DATA]));
  unsigned char digest[DIGEST_LEN];
  sha256(b.data, b.len, digest);
  free(b.data);
  print_object(n->kind, digest, string_of(&a, n->name_attr));
  return MNL_CB_OK;
}

// --- one consistent read -------------------------------------------------------------------------------

static int generation_cb(const struct nlmsghdr *nlh, void *data) {
  struct attrs a;
  parse(nlh, &a);
  if (a.at[NFTA_GEN_ID]) *(uint32_t *)data = ntohl(mnl_attr_get_u32(a.at[NFTA_GEN_ID]));
  return MNL_CB_OK;
}

static uint32_t generation(uint8_t family) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  uint32_t id = 0;
  if (talk(request(buf, NFT_MSG_GETGEN, NLM_F_ACK, family), generation_cb, &id) < 0) fail("reading the ruleset generation");
  return id;
}

// After a failed dump: 1 (read again) when the ruleset changed under it (EINTR: changed during the
// dump; ENOENT: the table or a set went away between two dumps), else it exits.
static int changed_or_fail(const char *what) {
  if (errno == EINTR || errno == ENOENT) return 1;
  fail(what);
  return 0;
}

static int read_sets(const struct target *target) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct sets sets = { .table = target->table };
  struct nlmsghdr *nlh = request(buf, NFT_MSG_GETSET, NLM_F_DUMP, target->family);
  mnl_attr_put_strz(nlh, NFTA_SET_TABLE, target->table);
  int retry = talk(nlh, set_cb, &sets) < 0 ? changed_or_fail("listing sets") : 0;
  anonymous_count = 0;
  anonymous = realloc(anonymous, (sets.count + 1) * sizeof *anonymous);
  // Anonymous sets first: rules name them, and are digested with their content instead.
  for (int pass = 0; pass < 2 && !retry; pass++) {
    for (size_t i = 0; i < sets.count && !retry; i++) {
      struct set_info *set = &sets.items[i];
      if ((pass == 0) != !!(set->flags & NFT_SET_ANONYMOUS)) continue;
      unsigned char digest[DIGEST_LEN];
      if (set_digest(target, set, digest) < 0) {
        retry = changed_or_fail("listing set elements");
      } else if (pass == 0) {
        snprintf(anonymous[anonymous_count].name, NFT_SET_MAXNAMELEN, "%s", set->name);
        memcpy(anonymous[anonymous_count++].digest, digest, DIGEST_LEN);
      } else {
        print_object(set->flags & NFT_SET_MAP ? "map" : "set", digest, set->name);
      }
    }
  }
  for (size_t i = 0; i < sets.count; i++) free(sets.items[i].declaration.data);
  free(sets.items);
  return retry;
}

static int read_chains(const struct target *target) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct chains chains = { .table = target->table };
  int retry = talk(request(buf, NFT_MSG_GETCHAIN, NLM_F_DUMP, target->family), chain_cb, &chains) < 0 ? changed_or_fail("listing chains") : 0;
  for (size_t i = 0; i < chains.count && !retry; i++) {
    unsigned char digest[DIGEST_LEN];
    if (chain_digest(target, &chains.items[i], digest) < 0) retry = changed_or_fail("listing rules");
    else print_object("chain", digest, chains.items[i].name);
  }
  for (size_t i = 0; i < chains.count; i++) free(chains.items[i].declaration.data);
  free(chains.items);
  return retry;
}

static int read_named(const struct target *target, uint16_t message, int table_attr, struct named *named) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = request(buf, message, NLM_F_DUMP, target->family);
  mnl_attr_put_strz(nlh, table_attr, target->table);
  return talk(nlh, named_cb, named) < 0 ? changed_or_fail(named->kind) : 0;
}

// Prints every object's digest; 1 when the ruleset changed meanwhile (read again), 0 when done.
static int read_table(const struct target *target) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  current = target;
  struct found_table table = { target, 0, { 0 } };
  if (talk(request(buf, NFT_MSG_GETTABLE, NLM_F_DUMP, target->family), table_cb, &table) < 0) return changed_or_fail("listing tables");
  if (!table.found) return 0;
  print_object("table", table.digest, target->table);
  if (read_sets(target) || read_chains(target)) return 1;
  static const int object_kept[] = { NFTA_OBJ_TYPE, NFTA_OBJ_USERDATA, 0 };
  struct named objects = { target->table, "object", NFTA_OBJ_TABLE, NFTA_OBJ_NAME, object_kept };
  static const int flowtable_kept[] = { NFTA_FLOWTABLE_HOOK, NFTA_FLOWTABLE_FLAGS, 0 };
  struct named flowtables = { target->table, "flowtable", NFTA_FLOWTABLE_TABLE, NFTA_FLOWTABLE_NAME, flowtable_kept };
  return read_named(target, NFT_MSG_GETOBJ, NFTA_OBJ_TABLE, &objects) || read_named(target, NFT_MSG_GETFLOWTABLE, NFTA_FLOWTABLE_TABLE, &flowtables);
}

static const struct { const char *name; uint8_t family; } FAMILIES[] = {
  { "ip", NFPROTO_IPV4 }, { "ip6", NFPROTO_IPV6 }, { "inet", NFPROTO_INET }, { "arp", NFPROTO_ARP },
  { "bridge", NFPROTO_BRIDGE }, { "netdev", NFPROTO_NETDEV },
};
#define FAMILY_COUNT (sizeof FAMILIES / sizeof FAMILIES[0])

int main(int argc, char **argv) {
  if (argc < 3 || argc % 2 == 0) {
    fprintf(stderr, "usage: nft-digest FAMILY TABLE [FAMILY TABLE...] (FAMILY: ip, ip6, inet, arp, bridge or netdev)\n");
    return 2;
  }
  size_t count = (argc - 1) / 2;
  struct target *targets = calloc(count, sizeof *targets);
  if (!targets) fail("out of memory");
  for (size_t t = 0; t < count; t++) {
    size_t i;
    for (i = 0; i < FAMILY_COUNT && strcmp(FAMILIES[i].name, argv[1 + 2 * t]) != 0; i++) {}
    if (i == FAMILY_COUNT) {
      fprintf(stderr, "nft-digest: unknown family %s\n", argv[1 + 2 * t]);
      return 2;
    }
    targets[t] = (struct target){ FAMILIES[i].family, FAMILIES[i].name, argv[2 + 2 * t] };
  }

  nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl) fail("opening a netfilter netlink socket");
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) fail("binding the netlink socket");
  portid = mnl_socket_get_portid(nl);
  seq = time(NULL);

  // The lines go to a memory stream and out only when the generation was the same before and after:
  // a digest of a ruleset that changed halfway would compare as a difference that is not there.
  for (int attempt = 0; attempt < 10; attempt++) {
    char *text = NULL;
    size_t size = 0;
    out = open_memstream(&text, &size);
    if (!out) fail("open_memstream");
    uint32_t before = generation(NFPROTO_UNSPEC);
    int retry = 0;
    for (size_t t = 0; t < count && !retry; t++) retry = read_table(&targets[t]);
    uint32_t after = generation(NFPROTO_UNSPEC);
    fclose(out);
    if (!retry && before == after) {
      fwrite(text, 1, size, stdout);
      free(text);
      return fflush(stdout) == 0 ? 0 : 1;
    }
    free(text);
  }
  fprintf(stderr, "nft-digest: the ruleset kept changing while it was read\n");
  return 75;
}
