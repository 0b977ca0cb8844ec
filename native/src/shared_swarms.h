/*
 * A swarm store in shared memory (issue #13, docs/design-notes.md "Swarms in shared memory"): the
 * swarms of every worker in one memfd mapped MAP_SHARED, so that each worker answers every
 * announce itself, with no hand-over to an owner. Not wired into workers yet
 * (src/store/shared/shared-memory-store.ts, docs/shmstore-progress.md).
 *
 * Layout of the memfd (sized sparse: only touched pages cost memory):
 *   header (SS_HEADER bytes): magic, geometry, limits, a random hash seed, the global counts
 *     (atomics), the allocator (bump top, a free list per block order, its own mutex);
 *   stripes (64 bytes each): a process-shared robust mutex and the region's swarms in use;
 *   swarm table: `stripes` regions of `per` records (64 bytes). A swarm lives in the region of
 *     its stripe (a hash of the info hash), found by linear probing within the region, so that
 *     the stripe's lock covers every record its probes touch; deletion is by backward shift;
 *   arena: peer blocks. A (swarm, family) table is one block of 2^order bytes holding `cap`
 *     slots (a power of two): records (the compact peer, stride 6 or 18), lastSeen words, flag
 *     bytes, an endpoint hash index of 2 * cap words (slot + 1, 0 empty: no linear scan per
 *     announce in big swarms), and, in a swarm that served compact=0, 20-byte peer ids. Freed
 *     blocks go to the free list of their order (no coalescing).
 * Slots are partitioned as in src/swarm/peer-pool.ts: leechers in [0, leechers), seeders in
 * [leechers, count); a seeder is sent leechers only. Removal moves the partition's last slot
 * into the hole.
 *
 * Locking: the stripe's mutex for everything in a swarm (its record and blocks), then the
 * allocator's mutex inside it (always that order). Counts are atomics in the header. A robust
 * mutex whose holder died (EOWNERDEAD) is marked consistent; re-validating that stripe's swarms
 * is not done yet (docs/shmstore-progress.md).
 */
#ifndef HERALD_SHARED_SWARMS_H
#define HERALD_SHARED_SWARMS_H

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "shm_common.h"

#define SS_MAGIC 0x48535753u /* "HSWS" */
#define SS_HEADER 4096
#define SS_ALLOC_MUTEX_AT 1024
#define SS_STRIPE 64
#define SS_REC 64
#define SS_ORDERS 48
#define SS_MIN_ORDER 6
#define SS_UNIT 64 /* block offsets are stored in these units */
#define SS_MAX_WANT 1024
/* Tables of at most this many slots have no endpoint index: a scan of their records is cheaper
 * (fewer cache lines) than a probe. */
#define SS_SCAN_CAP 16

/* Flags of a slot. */
#define SS_SEEDER 1
#define SS_COUNTED 2
#define SS_ID_KNOWN 4

/* The io buffer JavaScript shares with a handle (src/store/shared/shared-memory-store.ts). */
#define IO_HASH 0
#define IO_PEER_ID 20
#define IO_IP 40
#define IO_PORT 56 /* 2 bytes, big-endian (wire form) */
#define IO_FAMILY 58
#define IO_SEEDER 59
#define IO_EVENT 60
#define IO_WANT_IDS 61
#define IO_NUMWANT 64 /* u32 */
#define IO_NOW 68     /* u32 */
#define IO_OUT 128    /* u32 words: status, complete, incomplete, downloaded, peerCount */
#define IO_PEERS 256
#define IO_IDS (IO_PEERS + 18 * SS_MAX_WANT)
#define IO_KNOWN (IO_IDS + 20 * SS_MAX_WANT)
#define IO_SIZE (IO_KNOWN + SS_MAX_WANT)

#define EV_COMPLETED 1
#define EV_STOPPED 3

typedef struct {
  uint32_t magic;
  uint32_t stripes; /* a power of two */
  uint32_t per;     /* records per region, a power of two */
  uint32_t max_peers;    /* 0: unlimited */
  uint32_t max_torrents; /* 0: unlimited */
  uint32_t pad;
  uint64_t seed;
  uint64_t size;
  uint64_t arena_at;
  uint64_t arena_size;
  /* Own cache line: the counts. */
  int64_t peers4 __attribute__((aligned(64)));
  int64_t peers6;
  int64_t seeders;
  int64_t torrents;
  /* Own cache line: the allocator (under the mutex at SS_ALLOC_MUTEX_AT). */
  uint64_t top __attribute__((aligned(64)));
  uint64_t free_head[SS_ORDERS];
} ss_header;

typedef struct {
  uint32_t block; /* arena offset / SS_UNIT; 0: no table */
  uint32_t count;
  uint32_t leechers;
  uint8_t capbits; /* cap = 1 << capbits */
  uint8_t ids;     /* the block holds peer ids */
  uint16_t pad;
} ss_fam;

typedef struct {
  uint8_t hash[20];
  uint32_t downloaded;
  uint32_t used;
  uint32_t want_ids; /* served a compact=0 request: peer ids are recorded from then on */
  ss_fam fam[2];
} ss_swarm;

typedef struct {
  pthread_mutex_t mutex;
  uint32_t used; /* swarms in the region */
  /* The region's share of the global counts (under the lock): what a re-validation corrects the
   * atomics by (ss_validate). */
  uint32_t peers[2];
  uint32_t seeders;
} ss_stripe;

_Static_assert(sizeof(ss_header) <= SS_ALLOC_MUTEX_AT, "header");
_Static_assert(sizeof(ss_swarm) == SS_REC, "swarm record");
_Static_assert(sizeof(ss_stripe) <= SS_STRIPE, "stripe");

typedef struct {
  uint8_t *base;
  size_t size;
  uint8_t *io;
  napi_ref io_ref;
  uint64_t rng;
  uint32_t sweep_at; /* next stripe the sweep visits (this process's cursor) */
} ss_store;

/* A table's arrays (process-local view of a block). */
typedef struct {
  ss_fam *f;
  uint32_t stride, cap;
  uint8_t *rec;
  uint32_t *ls;
  uint8_t *fl;
  uint32_t *idx;
  uint8_t *ids;
} ss_view;

static inline ss_header *ss_head(ss_store *s) { return (ss_header *)s->base; }
static inline ss_stripe *ss_stripe_at(ss_store *s, uint32_t st) {
  return (ss_stripe *)(s->base + SS_HEADER + (size_t)st * SS_STRIPE);
}
static inline ss_swarm *ss_rec(ss_store *s, uint32_t st, uint32_t i) {
  ss_header *h = ss_head(s);
  return (ss_swarm *)(s->base + SS_HEADER + (size_t)h->stripes * SS_STRIPE + ((size_t)st * h->per + i) * SS_REC);
}
static inline uint8_t *ss_arena(ss_store *s) { return s->base + ss_head(s)->arena_at; }

static inline uint64_t ss_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline uint64_t ss_hash_bytes(uint64_t seed, const uint8_t *p, uint32_t n) {
  uint64_t z = seed ^ n;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    z = ss_mix(z ^ w);
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, p, n);
  return ss_mix(z ^ w ^ 0x9e3779b97f4a7c15ull);
}

/* Equality of endpoints (6 or 18 bytes) and info hashes (20), inline: a memcmp call per probe
 * was a tenth of an announce's CPU (docs/shmstore-progress.md). */
static inline int ss_eq(const uint8_t *a, const uint8_t *b, uint32_t n) {
  uint64_t x = 0, y = 0, x2 = 0, y2 = 0;
  uint32_t u = 0, w = 0;
  uint16_t p = 0, q = 0;
  if (n == 6) {
    memcpy(&u, a, 4);
    memcpy(&w, b, 4);
    memcpy(&p, a + 4, 2);
    memcpy(&q, b + 4, 2);
    return u == w && p == q;
  }
  memcpy(&x, a, 8);
  memcpy(&y, b, 8);
  memcpy(&x2, a + 8, 8);
  memcpy(&y2, b + 8, 8);
  if (n == 18) {
    memcpy(&p, a + 16, 2);
    memcpy(&q, b + 16, 2);
    return x == y && x2 == y2 && p == q;
  }
  memcpy(&u, a + 16, 4);
  memcpy(&w, b + 16, 4);
  return x == y && x2 == y2 && u == w;
}

static inline uint64_t ss_rand(ss_store *s) {
  uint64_t x = s->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return s->rng = x;
}

/* Locks m; 1 when its holder died inside a critical section (the caller repairs, then calls
 * pthread_mutex_consistent). */
static int ss_lock(pthread_mutex_t *m) { return pthread_mutex_lock(m) == EOWNERDEAD; }

/* Counts change by dpeers (family v6) and dseeders: the region's and the global ones. */
static void ss_tally(ss_store *s, ss_stripe *sp, int v6, int32_t dpeers, int32_t dseeders) {
  ss_header *h = ss_head(s);
  sp->peers[v6] += (uint32_t)dpeers;
  sp->seeders += (uint32_t)dseeders;
  if (dpeers != 0) __atomic_add_fetch(v6 ? &h->peers6 : &h->peers4, dpeers, __ATOMIC_RELAXED);
  if (dseeders != 0) __atomic_add_fetch(&h->seeders, dseeders, __ATOMIC_RELAXED);
}

/* ---- Allocator: blocks of 2^order bytes, a free list per order. ---- */

/* The allocator's holder died (a list may be half-updated): its free blocks are given up. */
static void ss_abandon_free_lists(ss_store *s, pthread_mutex_t *m) {
  memset(ss_head(s)->free_head, 0, sizeof ss_head(s)->free_head);
  pthread_mutex_consistent(m);
}

static uint32_t ss_alloc(ss_store *s, uint32_t order) {
  ss_header *h = ss_head(s);
  pthread_mutex_t *m = (pthread_mutex_t *)(s->base + SS_ALLOC_MUTEX_AT);
  uint32_t out = 0;
  if (ss_lock(m)) ss_abandon_free_lists(s, m);
  uint64_t at = h->free_head[order];
  if (at != 0) {
    memcpy(&h->free_head[order], ss_arena(s) + at, 8);
    out = (uint32_t)(at / SS_UNIT);
  } else if (h->top + ((uint64_t)1 << order) <= h->arena_size) {
    out = (uint32_t)(h->top / SS_UNIT);
    h->top += (uint64_t)1 << order;
  }
  pthread_mutex_unlock(m);
  return out;
}

static void ss_free(ss_store *s, uint32_t block, uint32_t order) {
  ss_header *h = ss_head(s);
  pthread_mutex_t *m = (pthread_mutex_t *)(s->base + SS_ALLOC_MUTEX_AT);
  uint64_t at = (uint64_t)block * SS_UNIT;
  if (ss_lock(m)) ss_abandon_free_lists(s, m);
  memcpy(ss_arena(s) + at, &h->free_head[order], 8);
  h->free_head[order] = at;
  pthread_mutex_unlock(m);
}

/* ---- Tables ---- */

static inline size_t ss_align4(size_t n) { return (n + 3) & ~(size_t)3; }

/* Bytes of a block of cap slots, and where its arrays start. */
static size_t ss_layout(uint32_t cap, uint32_t stride, int ids, size_t *ls, size_t *fl, size_t *idx, size_t *id) {
  size_t o = ss_align4((size_t)cap * stride);
  *ls = o;
  o += (size_t)cap * 4;
  *fl = o;
  o = ss_align4(o + cap);
  *idx = o;
  if (cap > SS_SCAN_CAP) o += (size_t)cap * 8;
  *id = o;
  if (ids) o += (size_t)cap * 20;
  return o;
}

static uint32_t ss_order(size_t bytes) {
  uint32_t k = SS_MIN_ORDER;
  while (((size_t)1 << k) < bytes) k++;
  return k;
}

static uint32_t ss_block_order(uint32_t capbits, uint32_t stride, int ids) {
  size_t a, b, c, d;
  return ss_order(ss_layout(1u << capbits, stride, ids, &a, &b, &c, &d));
}

static void ss_view_of(ss_store *s, ss_fam *f, uint32_t stride, ss_view *v) {
  size_t ls, fl, idx, id;
  uint8_t *b = ss_arena(s) + (size_t)f->block * SS_UNIT;
  v->f = f;
  v->stride = stride;
  v->cap = 1u << f->capbits;
  ss_layout(v->cap, stride, f->ids, &ls, &fl, &idx, &id);
  v->rec = b;
  v->ls = (uint32_t *)(b + ls);
  v->fl = b + fl;
  v->idx = v->cap > SS_SCAN_CAP ? (uint32_t *)(b + idx) : NULL;
  v->ids = f->ids ? b + id : NULL;
}

static inline uint32_t ss_ep_home(ss_store *s, const ss_view *v, const uint8_t *ep) {
  return (uint32_t)ss_hash_bytes(ss_head(s)->seed, ep, v->stride) & (2 * v->cap - 1);
}

/* The slot holding endpoint ep, or -1; *pos: its index entry (or the empty entry ending the chain). */
static int64_t ss_find(ss_store *s, const ss_view *v, const uint8_t *ep, uint32_t *pos) {
  *pos = 0;
  if (v->idx == NULL) {
    for (uint32_t i = 0; i < v->f->count; i++)
      if (ss_eq(v->rec + (size_t)i * v->stride, ep, v->stride)) return i;
    return -1;
  }
  uint32_t mask = 2 * v->cap - 1;
  for (uint32_t i = ss_ep_home(s, v, ep);; i = (i + 1) & mask) {
    uint32_t e = v->idx[i];
    if (e == 0 || ss_eq(v->rec + (size_t)(e - 1) * v->stride, ep, v->stride)) {
      *pos = i;
      return e == 0 ? -1 : (int64_t)(e - 1);
    }
  }
}

static void ss_idx_put(ss_store *s, const ss_view *v, uint32_t slot) {
  if (v->idx == NULL) return;
  uint32_t pos;
  ss_find(s, v, v->rec + (size_t)slot * v->stride, &pos);
  v->idx[pos] = slot + 1;
}

/* Removes the index entry at pos (backward shift). */
static void ss_idx_del(ss_store *s, const ss_view *v, uint32_t i) {
  if (v->idx == NULL) return;
  uint32_t mask = 2 * v->cap - 1;
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    uint32_t e = v->idx[j];
    if (e == 0) break;
    uint32_t home = ss_ep_home(s, v, v->rec + (size_t)(e - 1) * v->stride);
    int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    v->idx[i] = e;
    i = j;
  }
  v->idx[i] = 0;
}

/* Moves slot `from` into slot `to` (whose peer is gone from the index already). */
static void ss_move(ss_store *s, const ss_view *v, uint32_t from, uint32_t to) {
  if (from == to) return;
  uint32_t pos = 0;
  if (v->idx) ss_find(s, v, v->rec + (size_t)from * v->stride, &pos);
  memcpy(v->rec + (size_t)to * v->stride, v->rec + (size_t)from * v->stride, v->stride);
  v->ls[to] = v->ls[from];
  v->fl[to] = v->fl[from];
  if (v->ids) memcpy(v->ids + (size_t)to * 20, v->ids + (size_t)from * 20, 20);
  if (v->idx) v->idx[pos] = to + 1;
}

/* Exchanges slots i and j (both in the index). */
static void ss_swap(ss_store *s, const ss_view *v, uint32_t i, uint32_t j) {
  if (i == j) return;
  uint32_t pi = 0, pj = 0;
  if (v->idx) {
    ss_find(s, v, v->rec + (size_t)i * v->stride, &pi);
    ss_find(s, v, v->rec + (size_t)j * v->stride, &pj);
  }
  uint8_t tmp[20];
  memcpy(tmp, v->rec + (size_t)i * v->stride, v->stride);
  memcpy(v->rec + (size_t)i * v->stride, v->rec + (size_t)j * v->stride, v->stride);
  memcpy(v->rec + (size_t)j * v->stride, tmp, v->stride);
  uint32_t w = v->ls[i];
  v->ls[i] = v->ls[j];
  v->ls[j] = w;
  uint8_t b = v->fl[i];
  v->fl[i] = v->fl[j];
  v->fl[j] = b;
  if (v->ids) {
    memcpy(tmp, v->ids + (size_t)i * 20, 20);
    memcpy(v->ids + (size_t)i * 20, v->ids + (size_t)j * 20, 20);
    memcpy(v->ids + (size_t)j * 20, tmp, 20);
  }
  if (v->idx) {
    v->idx[pi] = j + 1;
    v->idx[pj] = i + 1;
  }
}

/*
 * Gives the table a block of 2^capbits slots (with ids or not), copying its peers and
 * rebuilding the index; a table with no block gets an empty one. 0 when the arena is full (the
 * table is unchanged).
 */
static int ss_rebuild(ss_store *s, ss_fam *f, uint32_t stride, uint32_t capbits, int ids) {
  uint32_t order = ss_block_order(capbits, stride, ids);
  uint32_t block = ss_alloc(s, order);
  if (block == 0) return 0;
  ss_fam nf = *f;
  nf.block = block;
  nf.capbits = (uint8_t)capbits;
  nf.ids = (uint8_t)ids;
  ss_view nv;
  ss_view_of(s, &nf, stride, &nv);
  if (nv.idx) memset(nv.idx, 0, (size_t)nv.cap * 8);
  if (f->block != 0) {
    ss_view ov;
    ss_view_of(s, f, stride, &ov);
    memcpy(nv.rec, ov.rec, (size_t)f->count * stride);
    memcpy(nv.ls, ov.ls, (size_t)f->count * 4);
    memcpy(nv.fl, ov.fl, f->count);
    if (ids && ov.ids) memcpy(nv.ids, ov.ids, (size_t)f->count * 20);
    if (ids && !ov.ids)
      for (uint32_t i = 0; i < f->count; i++) nv.fl[i] &= (uint8_t)~SS_ID_KNOWN;
    for (uint32_t i = 0; i < f->count; i++) ss_idx_put(s, &nv, i);
  }
  /* The table leaves its old block before the block is freed: a process that dies between the
   * two leaks the block, instead of leaving a table on a free list (ss_validate cannot see that). */
  ss_fam old = *f;
  *f = nf;
  if (old.block != 0) ss_free(s, old.block, ss_block_order(old.capbits, stride, old.ids));
  return 1;
}

static void ss_drop_table(ss_store *s, ss_fam *f, uint32_t stride) {
  ss_fam old = *f; /* forgotten before freed, as in ss_rebuild */
  memset(f, 0, sizeof *f);
  ss_free(s, old.block, ss_block_order(old.capbits, stride, old.ids));
}

/*
 * Removes the peer in slot i (counts included); the table goes with its last peer, and a table a
 * quarter full moves to a block half its size. Returns 1 when the table is gone.
 */
static int ss_remove(ss_store *s, ss_stripe *sp, ss_view *v, uint32_t i, int v6) {
  ss_fam *f = v->f;
  uint32_t pos;
  if (v->idx) {
    ss_find(s, v, v->rec + (size_t)i * v->stride, &pos);
    ss_idx_del(s, v, pos);
  }
  ss_tally(s, sp, v6, -1, (v->fl[i] & SS_SEEDER) ? -1 : 0);
  if (v->fl[i] & SS_SEEDER) {
    ss_move(s, v, f->count - 1, i);
  } else {
    ss_move(s, v, f->leechers - 1, i);
    ss_move(s, v, f->count - 1, f->leechers - 1);
    f->leechers--;
  }
  f->count--;
  if (f->count == 0) {
    ss_drop_table(s, f, v->stride);
    return 1;
  }
  if (f->capbits > 1 && f->count <= (v->cap >> 2) && ss_rebuild(s, f, v->stride, f->capbits - 1, f->ids))
    ss_view_of(s, f, v->stride, v);
  return 0;
}

/* ---- Swarm table: linear probing within the stripe's region. ---- */

static inline uint64_t ss_swarm_hash(ss_store *s, const uint8_t *hash) {
  return ss_hash_bytes(ss_head(s)->seed, hash, 20);
}
static inline uint32_t ss_stripe_of(ss_store *s, uint64_t hv) { return (uint32_t)(hv >> 40) & (ss_head(s)->stripes - 1); }

/* The record of the info hash in its region, or of the empty record ending its chain (*found). */
static uint32_t ss_swarm_find(ss_store *s, uint32_t st, uint64_t hv, const uint8_t *hash, int *found) {
  uint32_t mask = ss_head(s)->per - 1;
  for (uint32_t i = (uint32_t)hv & mask;; i = (i + 1) & mask) {
    ss_swarm *w = ss_rec(s, st, i);
    if (!w->used || ss_eq(w->hash, hash, 20)) {
      *found = w->used != 0;
      return i;
    }
  }
}

static void ss_swarm_delete(ss_store *s, uint32_t st, uint32_t i) {
  uint32_t mask = ss_head(s)->per - 1;
  uint32_t j = i;
  for (;;) {
    j = (j + 1) & mask;
    ss_swarm *w = ss_rec(s, st, j);
    if (!w->used) break;
    uint32_t home = (uint32_t)ss_swarm_hash(s, w->hash) & mask;
    int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    memcpy(ss_rec(s, st, i), w, SS_REC);
    i = j;
  }
  memset(ss_rec(s, st, i), 0, SS_REC);
  ss_stripe_at(s, st)->used--;
  __atomic_sub_fetch(&ss_head(s)->torrents, 1, __ATOMIC_RELAXED);
}

/* Removes every peer of swarm record i (and the record); returns the peers removed. */
static uint32_t ss_swarm_drop(ss_store *s, uint32_t st, uint32_t i) {
  ss_swarm *w = ss_rec(s, st, i);
  uint32_t n = 0;
  for (int v6 = 0; v6 < 2; v6++) {
    ss_fam *f = &w->fam[v6];
    if (f->block == 0) continue;
    ss_view v;
    ss_view_of(s, f, v6 ? 18 : 6, &v);
    n += f->count;
    ss_tally(s, ss_stripe_at(s, st), v6, -(int32_t)f->count, -(int32_t)(f->count - f->leechers));
    ss_drop_table(s, f, v.stride);
  }
  ss_swarm_delete(s, st, i);
  return n;
}

/* ---- A holder that died: re-validation of its stripe ---- */

/*
 * Whether a table a dead process may have been changing is whole: its block inside the arena
 * given out so far, 1 <= count <= cap, leechers <= count, SEEDER flags matching the partition,
 * no endpoint twice. Its endpoint index is rebuilt from the records on the way.
 */
static int ss_table_ok(ss_store *s, ss_fam *f, uint32_t stride) {
  if (f->capbits < 1 || f->capbits > 30) return 0;
  uint64_t at = (uint64_t)f->block * SS_UNIT;
  uint64_t size = (uint64_t)1 << ss_block_order(f->capbits, stride, f->ids);
  uint32_t cap = 1u << f->capbits;
  if (at < SS_UNIT || at + size > ss_head(s)->top || f->count == 0 || f->count > cap || f->leechers > f->count)
    return 0;
  ss_view v;
  ss_view_of(s, f, stride, &v);
  for (uint32_t i = 0; i < f->count; i++)
    if (((v.fl[i] & SS_SEEDER) != 0) != (i >= f->leechers)) return 0;
  if (v.idx == NULL) {
    for (uint32_t i = 0; i < f->count; i++)
      for (uint32_t j = 0; j < i; j++)
        if (ss_eq(v.rec + (size_t)i * stride, v.rec + (size_t)j * stride, stride)) return 0;
    return 1;
  }
  memset(v.idx, 0, (size_t)cap * 8);
  for (uint32_t i = 0; i < f->count; i++) {
    uint32_t pos;
    if (ss_find(s, &v, v.rec + (size_t)i * stride, &pos) >= 0) return 0;
    v.idx[pos] = i + 1;
  }
  return 1;
}

/*
 * The holder of stripe st's lock died inside a critical section: its swarms may be half-updated
 * (a count, an index entry, a probe chain in the middle of a delete). Every swarm of the region
 * is checked; a broken table is dropped with its peers (who re-announce) and its block is leaked,
 * not freed (it may be on a free list already); the region is rebuilt from the survivors and
 * its counts recomputed, and the global counts corrected by the difference (a holder that died
 * between the region's count and the global one leaves the global off by one).
 */
static void ss_validate(ss_store *s, uint32_t st) {
  ss_header *h = ss_head(s);
  ss_stripe *sp = ss_stripe_at(s, st);
  ss_swarm *keep = malloc((size_t)h->per * SS_REC);
  if (keep == NULL) return;
  uint32_t n = 0, peers[2] = {0, 0}, seeders = 0;
  for (uint32_t i = 0; i < h->per; i++) {
    ss_swarm w = *ss_rec(s, st, i);
    if (!w.used) continue;
    for (int v6 = 0; v6 < 2; v6++) {
      ss_fam *f = &w.fam[v6];
      if (f->block != 0 && !ss_table_ok(s, f, v6 ? 18 : 6)) memset(f, 0, sizeof *f);
      peers[v6] += f->count;
      seeders += f->count - f->leechers;
    }
    if (w.fam[0].block != 0 || w.fam[1].block != 0) keep[n++] = w;
  }
  memset(ss_rec(s, st, 0), 0, (size_t)h->per * SS_REC);
  uint32_t kept = 0;
  for (uint32_t k = 0; k < n; k++) {
    int found;
    uint32_t i = ss_swarm_find(s, st, ss_swarm_hash(s, keep[k].hash), keep[k].hash, &found);
    if (found) continue; /* twice in the region: the first stays (its blocks are the second's too) */
    *ss_rec(s, st, i) = keep[k];
    kept++;
  }
  free(keep);
  __atomic_add_fetch(&h->torrents, (int64_t)kept - (int64_t)sp->used, __ATOMIC_RELAXED);
  sp->used = kept;
  ss_tally(s, sp, 0, (int32_t)(peers[0] - sp->peers[0]), (int32_t)(seeders - sp->seeders));
  ss_tally(s, sp, 1, (int32_t)(peers[1] - sp->peers[1]), 0);
}

/* Locks stripe st, re-validating it first when its previous holder died (ss_validate). */
static void ss_lock_stripe(ss_store *s, uint32_t st) {
  pthread_mutex_t *m = &ss_stripe_at(s, st)->mutex;
  if (!ss_lock(m)) return;
  ss_validate(s, st);
  pthread_mutex_consistent(m);
}

/* ---- Announce ---- */

static inline uint32_t *ss_out(ss_store *s) { return (uint32_t *)(s->io + IO_OUT); }

/* Copies candidates start .. start+len-1 (circular over n; slots at or above `skip` shift up past
 * the requester) after `written` peers of the answer. */
static uint32_t ss_copy_run(ss_store *s, const ss_view *v, uint32_t n, uint64_t skip, uint32_t start, uint32_t len,
                            uint32_t written, int ids) {
  uint8_t *out = s->io + IO_PEERS;
  for (uint32_t k = 0; k < len; k++, written++) {
    uint32_t slot = start + k;
    if (slot >= n) slot -= n;
    if (slot >= skip) slot++;
    memcpy(out + (size_t)written * v->stride, v->rec + (size_t)slot * v->stride, v->stride);
    if (ids) {
      int known = v->ids != NULL && (v->fl[slot] & SS_ID_KNOWN);
      s->io[IO_KNOWN + written] = (uint8_t)known;
      if (known) memcpy(s->io + IO_IDS + (size_t)written * 20, v->ids + (size_t)slot * 20, 20);
      else memset(s->io + IO_IDS + (size_t)written * 20, 0, 20);
    }
  }
  return written;
}

/*
 * Writes up to `want` peers from slots [0, m) other than `self` into the io buffer: all of them
 * when there are no more, else two runs (PeerPool.select's choice: a random start, then a random
 * gap that keeps the second run clear of the first), so that no peer comes twice.
 */
static uint32_t ss_select(ss_store *s, const ss_view *v, uint32_t m, int64_t self, uint32_t want, int ids) {
  int excluded = self >= 0 && (uint64_t)self < m;
  uint32_t n = m - (uint32_t)excluded;
  uint64_t skip = excluded ? (uint64_t)self : UINT64_MAX;
  if (n == 0 || want == 0) return 0;
  if (want >= n) return ss_copy_run(s, v, n, skip, 0, n, 0, ids);
  uint32_t first = (want + 1) / 2;
  uint32_t start = (uint32_t)(ss_rand(s) % n);
  uint32_t gap = (uint32_t)(ss_rand(s) % (n - want + 1));
  uint32_t written = ss_copy_run(s, v, n, skip, start, first, 0, ids);
  return ss_copy_run(s, v, n, skip, (uint32_t)(((uint64_t)start + first + gap) % n), want - first, written, ids);
}

/* The request in the io buffer; 0 answered (io out), 1 refused (tracker full). */
static int ss_announce(ss_store *s) {
  ss_header *h = ss_head(s);
  const uint8_t *io = s->io;
  const uint8_t *hash = io + IO_HASH;
  int v6 = io[IO_FAMILY] == 6;
  uint32_t stride = v6 ? 18 : 6;
  int seeder = io[IO_SEEDER] != 0;
  uint8_t event = io[IO_EVENT];
  int stopped = event == EV_STOPPED;
  int want_ids = io[IO_WANT_IDS] != 0;
  uint32_t numwant, now;
  memcpy(&numwant, io + IO_NUMWANT, 4);
  memcpy(&now, io + IO_NOW, 4);
  uint8_t ep[18];
  memcpy(ep, io + IO_IP, stride - 2);
  ep[stride - 2] = io[IO_PORT];
  ep[stride - 1] = io[IO_PORT + 1];
  uint32_t *out = ss_out(s);
  memset(out, 0, 5 * 4);

  uint64_t hv = ss_swarm_hash(s, hash);
  uint32_t st = ss_stripe_of(s, hv);
  ss_stripe *stripe = ss_stripe_at(s, st);
  int rc = 0;
  ss_lock_stripe(s, st);
  int64_t held = __atomic_load_n(&h->peers4, __ATOMIC_RELAXED) + __atomic_load_n(&h->peers6, __ATOMIC_RELAXED);
  int full = h->max_peers != 0 && held >= (int64_t)h->max_peers;
  int found;
  uint32_t wi = ss_swarm_find(s, st, hv, hash, &found);
  ss_swarm *w = ss_rec(s, st, wi);
  if (!found) {
    if (stopped) goto done;
    if (full || (h->max_torrents != 0 && __atomic_load_n(&h->torrents, __ATOMIC_RELAXED) >= h->max_torrents) ||
        stripe->used >= h->per - (h->per >> 3)) {
      rc = 1;
      goto done;
    }
    memset(w, 0, SS_REC);
    memcpy(w->hash, hash, 20);
    w->used = 1;
    stripe->used++;
    __atomic_add_fetch(&h->torrents, 1, __ATOMIC_RELAXED);
  }
  uint32_t complete = (w->fam[0].count - w->fam[0].leechers) + (w->fam[1].count - w->fam[1].leechers);
  uint32_t incomplete = w->fam[0].leechers + w->fam[1].leechers;
  ss_fam *f = &w->fam[v6];
  if (f->block == 0) {
    if (stopped) {
      out[1] = complete;
      out[2] = incomplete;
      out[3] = w->downloaded;
      goto done;
    }
    /* A new peer, the swarm's first of this family. */
    if (full || !ss_rebuild(s, f, stride, 1, w->want_ids != 0)) {
      if (w->fam[!v6].block == 0) ss_swarm_delete(s, st, wi);
      rc = 1;
      goto done;
    }
  }
  ss_view v;
  ss_view_of(s, f, stride, &v);
  uint32_t pos;
  int64_t slot = ss_find(s, &v, ep, &pos);
  if (slot < 0 && !stopped && (full || f->count == 0xffffffffu)) {
    rc = 1;
    goto done;
  }
  if (want_ids && !w->want_ids) {
    w->want_ids = 1;
    for (int k = 0; k < 2; k++)
      if (w->fam[k].block != 0 && !w->fam[k].ids) ss_rebuild(s, &w->fam[k], k ? 18 : 6, w->fam[k].capbits, 1);
    ss_view_of(s, f, stride, &v);
  }
  if (slot >= 0) {
    if (v.fl[slot] & SS_SEEDER) complete--;
    else incomplete--;
  }
  out[1] = complete;
  out[2] = incomplete;
  if (!stopped && numwant > 0)
    out[4] = ss_select(s, &v, seeder ? f->leechers : f->count, slot, numwant > SS_MAX_WANT ? SS_MAX_WANT : numwant,
                       want_ids);

  if (stopped) {
    out[3] = w->downloaded;
    if (slot >= 0 && ss_remove(s, stripe, &v, (uint32_t)slot, v6) && w->fam[!v6].block == 0) ss_swarm_delete(s, st, wi);
    goto done;
  }
  if (slot < 0) {
    if (f->count == v.cap) {
      if (!ss_rebuild(s, f, stride, f->capbits + 1, f->ids)) {
        out[4] = 0;
        rc = 1;
        goto done;
      }
      ss_view_of(s, f, stride, &v);
    }
    uint32_t i = f->count;
    if (!seeder) {
      if (f->leechers < f->count) {
        uint32_t p = 0;
        if (v.idx) ss_find(s, &v, v.rec + (size_t)f->leechers * stride, &p);
        memcpy(v.rec + (size_t)i * stride, v.rec + (size_t)f->leechers * stride, stride);
        v.ls[i] = v.ls[f->leechers];
        v.fl[i] = v.fl[f->leechers];
        if (v.ids) memcpy(v.ids + (size_t)i * 20, v.ids + (size_t)f->leechers * 20, 20);
        if (v.idx) v.idx[p] = i + 1;
      }
      i = f->leechers++;
    }
    f->count++;
    memcpy(v.rec + (size_t)i * stride, ep, stride);
    v.fl[i] = seeder ? SS_SEEDER : 0;
    ss_idx_put(s, &v, i);
    slot = i;
    ss_tally(s, stripe, v6, 1, seeder);
  } else if (((v.fl[slot] & SS_SEEDER) != 0) != seeder) {
    if (seeder) {
      ss_swap(s, &v, (uint32_t)slot, f->leechers - 1);
      slot = --f->leechers;
      v.fl[slot] |= SS_SEEDER;
      ss_tally(s, stripe, v6, 0, 1);
    } else {
      ss_swap(s, &v, (uint32_t)slot, f->leechers);
      slot = f->leechers++;
      v.fl[slot] &= (uint8_t)~SS_SEEDER;
      ss_tally(s, stripe, v6, 0, -1);
    }
  }
  v.ls[slot] = now;
  /* A completion counts once per peer (a peer first seen with event=completed counts too). */
  if (event == EV_COMPLETED && !(v.fl[slot] & SS_COUNTED)) {
    v.fl[slot] |= SS_COUNTED;
    if (w->downloaded != 0xffffffffu) w->downloaded++;
  }
  if (v.ids) {
    memcpy(v.ids + (size_t)slot * 20, io + IO_PEER_ID, 20);
    v.fl[slot] |= SS_ID_KNOWN;
  }
  out[3] = w->downloaded;
done:
  pthread_mutex_unlock(&stripe->mutex);
  out[0] = (uint32_t)rc;
  return rc;
}

/* Counts of the info hash at io[IO_HASH] into io out [1..3]. */
static void ss_scrape(ss_store *s) {
  uint64_t hv = ss_swarm_hash(s, s->io + IO_HASH);
  uint32_t st = ss_stripe_of(s, hv);
  uint32_t *out = ss_out(s);
  int found;
  ss_lock_stripe(s, st);
  ss_swarm *w = ss_rec(s, st, ss_swarm_find(s, st, hv, s->io + IO_HASH, &found));
  out[1] = found ? (w->fam[0].count - w->fam[0].leechers) + (w->fam[1].count - w->fam[1].leechers) : 0;
  out[2] = found ? w->fam[0].leechers + w->fam[1].leechers : 0;
  out[3] = found ? w->downloaded : 0;
  pthread_mutex_unlock(&ss_stripe_at(s, st)->mutex);
}

static uint32_t ss_drop(ss_store *s) {
  uint64_t hv = ss_swarm_hash(s, s->io + IO_HASH);
  uint32_t st = ss_stripe_of(s, hv);
  int found;
  uint32_t n = 0;
  ss_lock_stripe(s, st);
  uint32_t i = ss_swarm_find(s, st, hv, s->io + IO_HASH, &found);
  if (found) n = ss_swarm_drop(s, st, i);
  pthread_mutex_unlock(&ss_stripe_at(s, st)->mutex);
  return n;
}

/*
 * Removes peers last seen at or before `cutoff`, a stripe at a time from this process's cursor,
 * until `budget` peers were visited (a call starting at stripe 0 makes one pass, one resuming may
 * wrap once). Returns the peers removed.
 */
static uint32_t ss_sweep(ss_store *s, uint32_t cutoff, uint64_t budget) {
  ss_header *h = ss_head(s);
  uint64_t visited = 0;
  uint32_t removed = 0;
  uint32_t st = s->sweep_at;
  int wrapped = st == 0;
  while (visited < budget) {
    if (st >= h->stripes) {
      st = 0;
      if (wrapped) break;
      wrapped = 1;
      continue;
    }
    ss_stripe *stripe = ss_stripe_at(s, st);
    ss_lock_stripe(s, st);
    for (uint32_t i = 0; i < h->per;) {
      ss_swarm *w = ss_rec(s, st, i);
      if (!w->used) {
        i++;
        continue;
      }
      int gone = 0;
      for (int v6 = 0; v6 < 2 && !gone; v6++) {
        ss_fam *f = &w->fam[v6];
        if (f->block == 0) continue;
        ss_view v;
        ss_view_of(s, f, v6 ? 18 : 6, &v);
        visited += f->count;
        /* Descending: a removal moves only visited (higher) slots down. */
        for (uint32_t k = f->count; k-- > 0;) {
          if (v.ls[k] > cutoff) continue;
          removed++;
          if (ss_remove(s, stripe, &v, k, v6)) {
            if (w->fam[!v6].block == 0) {
              ss_swarm_delete(s, st, i);
              gone = 1;
            }
            break;
          }
        }
      }
      /* A deleted record may have received a later one: look at it again. */
      if (!gone) i++;
    }
    pthread_mutex_unlock(&stripe->mutex);
    st++;
  }
  s->sweep_at = st;
  return removed;
}

/* ---- N-API ---- */

static void ss_finalize(napi_env env, void *data, void *hint) {
  ss_store *s = (ss_store *)data;
  munmap(s->base, s->size);
  napi_delete_reference(env, s->io_ref);
  free(s);
}

static uint64_t ss_pow2(uint64_t n) {
  uint64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

/*
 * sharedSwarmsCreate(peerCapacity, torrentCapacity, maxPeers, maxTorrents): a new store in a
 * memfd; returns its descriptor. The capacities size the (sparse) mapping; the limits (0:
 * none) are the refusals of SwarmStore's contract.
 */
static napi_value js_ss_create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  uint32_t peers = 0, torrents = 0, max_peers = 0, max_torrents = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || napi_get_value_uint32(env, argv[0], &peers) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &torrents) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &max_peers) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &max_torrents) != napi_ok || peers == 0 || torrents == 0) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": sharedSwarmsCreate(peerCapacity, torrentCapacity, maxPeers, maxTorrents)");
    return NULL;
  }
  /* Records: twice the torrents; a region refuses a new swarm at 7/8 full. Regions of at least
   * 256 records, so that their fill stays near the mean: a region half full on average has a
   * standard deviation of sqrt(128) ~ 11 records, and reaching 7/8 is 8.5 of them away (with
   * 16-record regions, one of a few hundred filled up before max_torrents was reached). */
  uint64_t slots = ss_pow2((uint64_t)torrents * 2);
  if (slots < 1024) slots = 1024;
  uint64_t stripes = slots / 256 < 1024 ? slots / 256 : 1024;
  uint64_t per = slots / stripes;
  uint64_t arena_at = SS_HEADER + stripes * SS_STRIPE + slots * SS_REC;
  arena_at = (arena_at + 4095) & ~(uint64_t)4095;
  /* Worst case about 128 bytes a peer (IPv6 with ids, a table at half its capacity) and a
   * minimum block per swarm and family; doubled for blocks stranded on other orders' free lists. */
  uint64_t arena = ((uint64_t)peers * 128 + (uint64_t)torrents * 256) * 2 + 4096;
  uint64_t size = arena_at + arena;
  uint8_t *base;
  int fd = shm_create(env, "herald-swarms", size, &base);
  if (fd < 0) return NULL;
  ss_header *h = (ss_header *)base;
  h->stripes = (uint32_t)stripes;
  h->per = (uint32_t)per;
  h->max_peers = max_peers;
  h->max_torrents = max_torrents;
  h->size = size;
  h->arena_at = arena_at;
  h->arena_size = arena;
  h->top = SS_UNIT; /* offset 0 means "no block" */
  h->seed = shm_seed();
  int rc = shm_mutex_init((pthread_mutex_t *)(base + SS_ALLOC_MUTEX_AT));
  for (uint64_t i = 0; i < stripes && rc == 0; i++)
    rc = shm_mutex_init(&((ss_stripe *)(base + SS_HEADER + i * SS_STRIPE))->mutex);
  h->magic = rc == 0 ? SS_MAGIC : 0;
  return shm_created(env, fd, base, size, rc);
}

/* sharedSwarmsOpen(fd, io: ArrayBuffer of IO_SIZE bytes): this process's handle. */
static napi_value js_ss_open(napi_env env, napi_callback_info info) {
  uint8_t *io = NULL;
  size_t iolen = 0;
  int32_t fd = -1;
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 2) buffer_of(env, argv[1], &io, &iolen);
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || iolen < IO_SIZE) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": sharedSwarmsOpen(fd, io: ArrayBuffer)");
    return NULL;
  }
  ss_header h;
  if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) return throw_errno(env, "sharedSwarmsOpen: read");
  if (h.magic != SS_MAGIC) {
    napi_throw_error(env, NULL, ADDON_NAME ": sharedSwarmsOpen: not a swarm store");
    return NULL;
  }
  uint8_t *base = mmap(NULL, h.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return throw_errno(env, "sharedSwarmsOpen: mmap");
  ss_store *s = calloc(1, sizeof *s);
  if (s == NULL) {
    munmap(base, h.size);
    napi_throw_error(env, NULL, ADDON_NAME ": out of memory");
    return NULL;
  }
  s->base = base;
  s->size = h.size;
  s->io = io;
  s->rng = shm_seed() | 1; /* xorshift: never 0 */
  if (napi_create_reference(env, argv[1], 1, &s->io_ref) != napi_ok) {
    munmap(base, h.size);
    free(s);
    napi_throw_error(env, NULL, ADDON_NAME ": napi_create_reference failed");
    return NULL;
  }
  return shm_external(env, s, ss_finalize);
}

/* The handle and up to two uint32 arguments after it; NULL (thrown) when they are wrong. */
static ss_store *ss_args(napi_env env, napi_callback_info info, uint32_t *a, uint32_t *b) {
  size_t argc = 3;
  napi_value argv[3];
  void *p = NULL;
  size_t need = 1 + (a != NULL) + (b != NULL);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < need ||
      napi_get_value_external(env, argv[0], &p) != napi_ok ||
      (a != NULL && napi_get_value_uint32(env, argv[1], a) != napi_ok) ||
      (b != NULL && napi_get_value_uint32(env, argv[2], b) != napi_ok)) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": (store[, uint32, uint32])");
    return NULL;
  }
  return (ss_store *)p;
}

static napi_value ss_uint(napi_env env, uint32_t n) {
  napi_value out;
  CHECK(napi_create_uint32(env, n, &out));
  return out;
}

/* sharedSwarmsAnnounce(store): the request in io; 0 answered (io out), 1 tracker full. */
static napi_value js_ss_announce(napi_env env, napi_callback_info info) {
  ss_store *s = ss_args(env, info, NULL, NULL);
  return s == NULL ? NULL : ss_uint(env, (uint32_t)ss_announce(s));
}

/* sharedSwarmsScrape(store): the counts of the hash in io, in io out [1..3]. */
static napi_value js_ss_scrape(napi_env env, napi_callback_info info) {
  ss_store *s = ss_args(env, info, NULL, NULL);
  if (s != NULL) ss_scrape(s);
  return NULL;
}

/* sharedSwarmsDrop(store): removes the swarm of the hash in io; the peers removed. */
static napi_value js_ss_drop(napi_env env, napi_callback_info info) {
  ss_store *s = ss_args(env, info, NULL, NULL);
  return s == NULL ? NULL : ss_uint(env, ss_drop(s));
}

/* sharedSwarmsSweep(store, cutoff, budget): the peers removed. */
static napi_value js_ss_sweep(napi_env env, napi_callback_info info) {
  uint32_t cutoff = 0, budget = 0;
  ss_store *s = ss_args(env, info, &cutoff, &budget);
  return s == NULL ? NULL : ss_uint(env, ss_sweep(s, cutoff, budget));
}

/* sharedSwarmsStats(store): io out [1..4] = peers4, peers6, seeders, torrents. */
static napi_value js_ss_stats(napi_env env, napi_callback_info info) {
  ss_store *s = ss_args(env, info, NULL, NULL);
  if (s == NULL) return NULL;
  ss_header *h = ss_head(s);
  uint32_t *out = ss_out(s);
  out[1] = (uint32_t)__atomic_load_n(&h->peers4, __ATOMIC_RELAXED);
  out[2] = (uint32_t)__atomic_load_n(&h->peers6, __ATOMIC_RELAXED);
  out[3] = (uint32_t)__atomic_load_n(&h->seeders, __ATOMIC_RELAXED);
  out[4] = (uint32_t)__atomic_load_n(&h->torrents, __ATOMIC_RELAXED);
  return NULL;
}

/*
 * sharedSwarmsTestAbandon(store, corrupt) (tests only: test/integration/shared-swarms.test.ts):
 * takes the lock of the stripe of the hash in io and keeps it, as a process that dies inside an
 * update would; with `corrupt`, first leaves that swarm's IPv4 table half-updated (a count past
 * its capacity). The caller then exits.
 */
static napi_value js_ss_test_abandon(napi_env env, napi_callback_info info) {
  uint32_t corrupt = 0;
  ss_store *s = ss_args(env, info, &corrupt, NULL);
  if (s == NULL) return NULL;
  uint64_t hv = ss_swarm_hash(s, s->io + IO_HASH);
  uint32_t st = ss_stripe_of(s, hv);
  int found;
  ss_lock_stripe(s, st);
  ss_swarm *w = ss_rec(s, st, ss_swarm_find(s, st, hv, s->io + IO_HASH, &found));
  if (corrupt && found && w->fam[0].block != 0) w->fam[0].count = (1u << w->fam[0].capbits) + 1;
  return NULL;
}

/* sharedSwarmsScrapeAll(store): a Buffer of 32-byte entries (hash, then u32 complete,
 * incomplete, downloaded), a stripe at a time (not one snapshot of the whole store). */
static napi_value js_ss_scrape_all(napi_env env, napi_callback_info info) {
  ss_store *s = ss_args(env, info, NULL, NULL);
  if (s == NULL) return NULL;
  ss_header *h = ss_head(s);
  size_t cap = 64, n = 0;
  uint8_t *buf = malloc(cap * 32);
  for (uint32_t st = 0; st < h->stripes && buf != NULL; st++) {
    ss_lock_stripe(s, st);
    for (uint32_t i = 0; i < h->per && buf != NULL; i++) {
      ss_swarm *w = ss_rec(s, st, i);
      if (!w->used) continue;
      if (n == cap) {
        uint8_t *nb = realloc(buf, cap * 2 * 32);
        if (nb == NULL) {
          free(buf);
          buf = NULL;
          break;
        }
        buf = nb;
        cap *= 2;
      }
      uint32_t c[3] = {(w->fam[0].count - w->fam[0].leechers) + (w->fam[1].count - w->fam[1].leechers),
                       w->fam[0].leechers + w->fam[1].leechers, w->downloaded};
      memcpy(buf + n * 32, w->hash, 20);
      memcpy(buf + n * 32 + 20, c, 12);
      n++;
    }
    pthread_mutex_unlock(&ss_stripe_at(s, st)->mutex);
  }
  if (buf == NULL) {
    napi_throw_error(env, NULL, ADDON_NAME ": out of memory");
    return NULL;
  }
  napi_value out;
  napi_status rc = napi_create_buffer_copy(env, n * 32, buf, NULL, &out);
  free(buf);
  CHECK(rc);
  return out;
}

#endif
