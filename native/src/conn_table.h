/*
 * max_connections_per_ip for the whole host with `herald serve --workers N`
 * (src/core/connection-limit.ts): one table of open connections per address, in memory every
 * worker maps, so that an address whose connections the kernel spreads over the workers'
 * SO_REUSEPORT sockets still holds at most the cap over all of them.
 *
 * The memory is a memfd the primary creates (connTableCreate) and hands each worker as an
 * inherited descriptor (connTableOpen). Layout: a 128-byte header (magic, workers, slots, a
 * random hash seed, entries in use, then a process-shared robust mutex), then `slots` entries of
 * open addressing with linear probing:
 *   u64 key (IPv4: the address; IPv6: its first 64 bits), u32 tag (0 empty, 4, 6), u32 total,
 *   u16 per worker (the connections each worker holds), rounded up to 8 bytes.
 * One lock for the whole table: a connection costs one uncontended lock and a probe or two (see
 * docs/design-notes.md for the measured cost), and the critical sections are a few dozen
 * instructions. The mutex is robust: a worker killed while it holds the lock leaves it to the
 * next one (EOWNERDEAD), which repairs the table (ct_repair: a full pass that puts every address
 * back once, on an unbroken probe chain, with its total recomputed) and marks it consistent.
 *
 * Per-worker counts make a worker's death recoverable: its connections died with it, and the
 * process that replaces it (connTableOpen with the same index) takes its counts out of every
 * entry before it accepts anything. Until then (about a second) they still count.
 *
 * The key's hash is seeded at random (crafted /64s cannot build long probe chains). An entry
 * whose total falls to 0 is deleted with backward shift, so the table holds only addresses with
 * open connections. When it is 7/8 full, connAcquire answers -1 (not counted): JavaScript then
 * falls back to the worker's own count, so a flood of addresses cannot refuse everyone.
 */
#ifndef HERALD_CONN_TABLE_H
#define HERALD_CONN_TABLE_H

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "shm_common.h"

#define CT_MAGIC 0x48434e54u /* "HCNT" */
#define CT_HEADER 128
#define CT_MUTEX_AT 64

typedef struct {
  uint32_t magic;
  uint32_t workers;
  uint32_t slots; /* a power of two */
  uint32_t used;
  uint64_t seed;
} ct_header;

typedef struct {
  uint8_t *base;
  size_t size;
  uint32_t index;
  uint32_t workers;
  uint32_t mask;
  uint32_t esize;
  uint64_t seed;
} ct_table;

static size_t ct_esize(uint32_t workers) { return (16 + 2 * (size_t)workers + 7) & ~(size_t)7; }

static inline ct_header *ct_head(ct_table *t) { return (ct_header *)t->base; }
static inline pthread_mutex_t *ct_mutex(ct_table *t) { return (pthread_mutex_t *)(t->base + CT_MUTEX_AT); }
static inline uint8_t *ct_entry(ct_table *t, uint32_t i) { return t->base + CT_HEADER + (size_t)i * t->esize; }
static inline uint64_t *ct_key(uint8_t *e) { return (uint64_t *)e; }
static inline uint32_t *ct_tag(uint8_t *e) { return (uint32_t *)(e + 8); }
static inline uint32_t *ct_total(uint8_t *e) { return (uint32_t *)(e + 12); }
static inline uint16_t *ct_counts(uint8_t *e) { return (uint16_t *)(e + 16); }

static inline uint32_t ct_hash(ct_table *t, uint64_t key, uint32_t tag) {
  uint64_t z = key ^ t->seed ^ ((uint64_t)tag << 56);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (uint32_t)(z ^ (z >> 31)) & t->mask;
}

static void ct_repair(ct_table *t);

static void ct_lock(ct_table *t) {
  int rc = pthread_mutex_lock(ct_mutex(t));
  /* Its holder died inside a critical section (SIGKILL, OOM killer): the table may hold an entry
   * twice, a hole in a probe chain (a backward-shift delete cut short), an entry with no
   * connections or a total that is not its counts' sum. Rebuild it before anyone reads it. */
  if (rc == EOWNERDEAD) {
    ct_repair(t);
    pthread_mutex_consistent(ct_mutex(t));
  }
}

static void ct_unlock(ct_table *t) { pthread_mutex_unlock(ct_mutex(t)); }

/* Stores to the table are ordered so that a writer killed at any instruction leaves every slot
 * whose tag is non-zero complete: a slot is emptied by zeroing its tag first, and filled by
 * writing its tag last (the compiler may not reorder the stores across this fence; the mutex
 * hand-over after a death orders them for the next holder). ct_repair relies on it. */
#define CT_FENCE() __atomic_signal_fence(__ATOMIC_SEQ_CST)

/* Test hook (HERALD_TEST_HOOKS=1 exports connReleaseDying): the number of points inside a delete
 * to pass before the process kills itself holding the lock, counted down; NULL (every production
 * call: the constant is inlined away) never. */
static inline __attribute__((always_inline)) void ct_point(int *die_after) {
  if (die_after != NULL && (*die_after)-- == 0) raise(SIGKILL);
}

/* The slot of the key, or of the empty slot that ends its probe chain (*found says which). */
static uint32_t ct_find(ct_table *t, uint64_t key, uint32_t tag, int *found) {
  uint32_t i = ct_hash(t, key, tag);
  for (;;) {
    uint8_t *e = ct_entry(t, i);
    uint32_t et = *ct_tag(e);
    if (et == 0) {
      *found = 0;
      return i;
    }
    if (et == tag && *ct_key(e) == key) {
      *found = 1;
      return i;
    }
    i = (i + 1) & t->mask;
  }
}

/* Empties slot i and shifts back the entries after it that probed past it. Each move empties
 * slot i (tag first), copies the entry and writes its tag last (CT_FENCE above), so a death
 * between two points leaves a hole at i or the moved entry twice, both repaired by ct_repair. */
static inline __attribute__((always_inline)) void ct_delete_dying(ct_table *t, uint32_t i, int *die_after) {
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & t->mask;
    uint8_t *ej = ct_entry(t, j);
    if (*ct_tag(ej) == 0) break;
    uint32_t home = ct_hash(t, *ct_key(ej), *ct_tag(ej));
    /* Move j into i unless its home lies cyclically in (i, j]. */
    int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    uint8_t *ei = ct_entry(t, i);
    *ct_tag(ei) = 0;
    CT_FENCE();
    ct_point(die_after); /* a hole at i */
    memcpy(ei + 16, ej + 16, t->esize - 16);
    *ct_key(ei) = *ct_key(ej);
    *ct_total(ei) = *ct_total(ej);
    CT_FENCE();
    ct_point(die_after); /* still a hole at i, the copy written but not tagged */
    *ct_tag(ei) = *ct_tag(ej);
    CT_FENCE();
    ct_point(die_after); /* the moved entry twice */
    i = j;
  }
  uint8_t *ei = ct_entry(t, i);
  *ct_tag(ei) = 0;
  CT_FENCE();
  ct_point(die_after); /* emptied, not yet counted out of `used` */
  memset(ei, 0, t->esize);
  ct_head(t)->used--;
}

static void ct_delete(ct_table *t, uint32_t i) { ct_delete_dying(t, i, NULL); }

/* 1 counted, 0 refused (the address holds `max` over every worker), -1 not counted (table full). */
static int ct_acquire(ct_table *t, uint64_t key, uint32_t tag, uint32_t max) {
  int found;
  int out = 1;
  ct_lock(t);
  uint32_t i = ct_find(t, key, tag, &found);
  uint8_t *e = ct_entry(t, i);
  if (!found) {
    if (ct_head(t)->used >= (t->mask + 1) - ((t->mask + 1) >> 3)) {
      out = -1;
      goto done;
    }
    *ct_key(e) = key;
    CT_FENCE();
    *ct_tag(e) = tag;
    ct_head(t)->used++;
  }
  if (*ct_total(e) >= max || ct_counts(e)[t->index] == UINT16_MAX) {
    out = 0;
    goto done;
  }
  (*ct_total(e))++;
  ct_counts(e)[t->index]++;
done:
  ct_unlock(t);
  return out;
}

static inline __attribute__((always_inline)) void ct_release_dying(ct_table *t, uint64_t key, uint32_t tag,
                                                                   int *die_after) {
  int found;
  ct_lock(t);
  uint32_t i = ct_find(t, key, tag, &found);
  uint8_t *e = ct_entry(t, i);
  if (found && ct_counts(e)[t->index] > 0) {
    ct_counts(e)[t->index]--;
    if (--(*ct_total(e)) == 0) ct_delete_dying(t, i, die_after);
  }
  ct_unlock(t);
}

static void ct_release(ct_table *t, uint64_t key, uint32_t tag) { ct_release_dying(t, key, tag, NULL); }

/* After a holder's death (ct_lock): every tagged slot is a complete entry (CT_FENCE), but one
 * may be there twice, a probe chain may be broken by a hole, `used` and an entry's total may be
 * one off, an entry may hold no connection. A full pass, rare: copy the tagged entries out, clear
 * the table, put back each address once (the copies of one address are identical: only the dead
 * holder wrote, and it wrote whole entries) with its total recomputed from the per-worker counts,
 * leaving out those with none. A dead worker's own counts stay until its successor opens the
 * table (ct_forget_worker), as after any death. Without memory for the copy, the table is left as
 * it is (as before repairs existed: an address may count one connection too many or too few). */
static void ct_repair(ct_table *t) {
  uint32_t slots = t->mask + 1;
  uint8_t *copy = malloc((size_t)slots * t->esize);
  if (copy == NULL) return;
  uint32_t n = 0;
  for (uint32_t i = 0; i < slots; i++) {
    uint8_t *e = ct_entry(t, i);
    if (*ct_tag(e) != 0) memcpy(copy + (size_t)n++ * t->esize, e, t->esize);
  }
  memset(ct_entry(t, 0), 0, (size_t)slots * t->esize);
  uint32_t used = 0;
  for (uint32_t k = 0; k < n; k++) {
    uint8_t *c = copy + (size_t)k * t->esize;
    uint32_t total = 0;
    for (uint32_t w = 0; w < t->workers; w++) total += ct_counts(c)[w];
    if (total == 0) continue;
    int found;
    uint32_t i = ct_find(t, *ct_key(c), *ct_tag(c), &found);
    if (found) continue;
    memcpy(ct_entry(t, i), c, t->esize);
    *ct_total(ct_entry(t, i)) = total;
    used++;
  }
  ct_head(t)->used = used;
  free(copy);
}

static uint32_t ct_count(ct_table *t, uint64_t key, uint32_t tag) {
  int found;
  ct_lock(t);
  uint32_t i = ct_find(t, key, tag, &found);
  uint32_t n = found ? *ct_total(ct_entry(t, i)) : 0;
  ct_unlock(t);
  return n;
}

/* A new process for this worker: what its predecessor held is gone with it. */
static void ct_forget_worker(ct_table *t) {
  ct_lock(t);
  for (uint32_t i = 0; i <= t->mask;) {
    uint8_t *e = ct_entry(t, i);
    uint16_t mine = *ct_tag(e) == 0 ? 0 : ct_counts(e)[t->index];
    if (mine == 0) {
      i++;
      continue;
    }
    ct_counts(e)[t->index] = 0;
    *ct_total(e) -= mine;
    /* A deleted slot may receive a later entry: look at it again. */
    if (*ct_total(e) == 0) ct_delete(t, i);
    else i++;
  }
  ct_unlock(t);
}

static void ct_finalize(napi_env env, void *data, void *hint) {
  ct_table *t = (ct_table *)data;
  munmap(t->base, t->size);
  free(t);
}

/* connTableCreate(workers, slots): a new table in a memfd; returns its descriptor (the caller
 * hands it to the workers and closes it when they are all gone). */
static napi_value js_conn_table_create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t workers = 0, slots = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_uint32(env, argv[0], &workers) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &slots) != napi_ok || workers == 0 || workers > 1024 || slots < 64 ||
      (slots & (slots - 1)) != 0) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": connTableCreate(workers, slots: a power of two)");
    return NULL;
  }
  size_t size = CT_HEADER + (size_t)slots * ct_esize(workers);
  uint8_t *base;
  int fd = shm_create(env, "herald-connections", size, &base);
  if (fd < 0) return NULL;
  ct_header *h = (ct_header *)base;
  h->workers = workers;
  h->slots = slots;
  h->used = 0;
  h->seed = shm_seed();
  int rc = shm_mutex_init((pthread_mutex_t *)(base + CT_MUTEX_AT));
  h->magic = rc == 0 ? CT_MAGIC : 0;
  return shm_created(env, fd, base, size, rc);
}

/* connTableOpen(fd, index): worker `index`'s view of the table (what its predecessor held is
 * taken out first). */
static napi_value js_conn_table_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1;
  uint32_t index = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &index) != napi_ok) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": connTableOpen(fd, index)");
    return NULL;
  }
  ct_header h;
  ssize_t got = pread(fd, &h, sizeof h, 0);
  if (got < 0) return throw_errno(env, "connTableOpen: reading the table's header");
  /* A short read sets no errno (strerror(0) would say "Success"): say what was read. */
  if (got != (ssize_t)sizeof h) {
    char msg[160];
    snprintf(msg, sizeof msg, ADDON_NAME ": connTableOpen: not a connection table (descriptor %d: %zd of its %zu header bytes)",
             fd, got, sizeof h);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  if (h.magic != CT_MAGIC || index >= h.workers || h.slots < 64 || (h.slots & (h.slots - 1)) != 0) {
    napi_throw_error(env, NULL, ADDON_NAME ": connTableOpen: not a connection table");
    return NULL;
  }
  size_t size = CT_HEADER + (size_t)h.slots * ct_esize(h.workers);
  uint8_t *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return throw_errno(env, "connTableOpen: mmap");
  ct_table *t = malloc(sizeof *t);
  if (t == NULL) {
    munmap(base, size);
    napi_throw_error(env, NULL, ADDON_NAME ": out of memory");
    return NULL;
  }
  *t = (ct_table){base, size, index, h.workers, h.slots - 1, (uint32_t)ct_esize(h.workers), h.seed};
  ct_forget_worker(t);
  return shm_external(env, t, ct_finalize);
}

/* The table and the key of (table, family, hi, lo[, max]) arguments; 0 when they are wrong. */
static int ct_args(napi_env env, napi_callback_info info, ct_table **t, uint64_t *key, uint32_t *tag,
                   uint32_t *max) {
  size_t argc = 5;
  napi_value argv[5];
  uint32_t hi = 0, lo = 0;
  void *p = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < (max ? 5u : 4u) ||
      napi_get_value_external(env, argv[0], &p) != napi_ok || napi_get_value_uint32(env, argv[1], tag) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &hi) != napi_ok || napi_get_value_uint32(env, argv[3], &lo) != napi_ok ||
      (max != NULL && napi_get_value_uint32(env, argv[4], max) != napi_ok) || (*tag != 4 && *tag != 6)) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": (table, family, hi, lo[, max])");
    return 0;
  }
  *t = (ct_table *)p;
  *key = ((uint64_t)hi << 32) | lo;
  return 1;
}

/* connAcquire(table, family, hi, lo, max): 1 counted, 0 refused, -1 not counted (table full). */
static napi_value js_conn_acquire(napi_env env, napi_callback_info info) {
  ct_table *t;
  uint64_t key;
  uint32_t tag, max;
  if (!ct_args(env, info, &t, &key, &tag, &max)) return NULL;
  napi_value out;
  CHECK(napi_create_int32(env, ct_acquire(t, key, tag, max), &out));
  return out;
}

/* connRelease(table, family, hi, lo) (count 0): one of this worker's connections of the address
 * closed. connCount(table, family, hi, lo) (count 1): the address's connections over every worker. */
static napi_value ct_keyed(napi_env env, napi_callback_info info, int count) {
  ct_table *t;
  uint64_t key;
  uint32_t tag;
  if (!ct_args(env, info, &t, &key, &tag, NULL)) return NULL;
  if (!count) {
    ct_release(t, key, tag);
    return NULL;
  }
  napi_value out;
  CHECK(napi_create_uint32(env, ct_count(t, key, tag), &out));
  return out;
}

static napi_value js_conn_release(napi_env env, napi_callback_info info) { return ct_keyed(env, info, 0); }

/* Test hooks, exported only when HERALD_TEST_HOOKS=1 (src/cluster/connection-table.test.ts).
 * connReleaseDying(table, family, hi, lo, dieAfter): connRelease, except that the process kills
 * itself (SIGKILL, holding the lock) after `dieAfter` points inside the delete it makes (see
 * ct_delete_dying); returns the points it passed without dying. */
static napi_value js_conn_release_dying(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t die_after = -1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5 || napi_get_value_int32(env, argv[4], &die_after) != napi_ok) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": connReleaseDying(table, family, hi, lo, dieAfter)");
    return NULL;
  }
  ct_table *t;
  uint64_t key;
  uint32_t tag;
  if (!ct_args(env, info, &t, &key, &tag, NULL)) return NULL;
  /* Large enough never to die: count the points a whole delete passes. */
  int budget = die_after < 0 ? 1 << 30 : die_after;
  ct_release_dying(t, key, tag, &budget);
  napi_value out;
  CHECK(napi_create_int32(env, die_after < 0 ? (1 << 30) - budget : die_after - budget, &out));
  return out;
}

/* connTableDump(table): [used, then per tagged slot: slot, home slot, family, hi, lo, total,
 * count of worker 0, 1, ...] flattened (the raw table, not repaired: it takes no lock, so call it
 * only while no process of the table is inside a call). */
static napi_value js_conn_table_dump(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p = NULL;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": connTableDump(table)");
    return NULL;
  }
  ct_table *t = (ct_table *)p;
  napi_value out, v;
  uint32_t k = 0;
  CHECK(napi_create_array(env, &out));
#define CT_PUSH(x)                                       \
  do {                                                   \
    CHECK(napi_create_uint32(env, (uint32_t)(x), &v));   \
    CHECK(napi_set_element(env, out, k++, v));           \
  } while (0)
  CT_PUSH(ct_head(t)->used);
  for (uint32_t i = 0; i <= t->mask; i++) {
    uint8_t *e = ct_entry(t, i);
    if (*ct_tag(e) == 0) continue;
    CT_PUSH(i);
    CT_PUSH(ct_hash(t, *ct_key(e), *ct_tag(e)));
    CT_PUSH(*ct_tag(e));
    CT_PUSH(*ct_key(e) >> 32);
    CT_PUSH(*ct_key(e) & 0xffffffffu);
    CT_PUSH(*ct_total(e));
    for (uint32_t w = 0; w < t->workers; w++) CT_PUSH(ct_counts(e)[w]);
  }
#undef CT_PUSH
  return out;
}

/* Adds the test hooks to the exports when HERALD_TEST_HOOKS=1. */
static void ct_define_test_hooks(napi_env env, napi_value exports) {
  const char *on = getenv("HERALD_TEST_HOOKS");
  if (on == NULL || strcmp(on, "1") != 0) return;
  napi_property_descriptor props[] = {
    {"connReleaseDying", NULL, js_conn_release_dying, NULL, NULL, NULL, napi_default, NULL},
    {"connTableDump", NULL, js_conn_table_dump, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
static napi_value js_conn_count(napi_env env, napi_callback_info info) { return ct_keyed(env, info, 1); }

#endif
