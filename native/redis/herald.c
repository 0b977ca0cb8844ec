/*
 * Herald's optional Redis module (issue #14): HERALD.ANNOUNCE, the batched packed announce of
 * src/store/redis/scripts.ts ANNOUNCE_BATCH done natively, on the same keys with the same
 * semantics, so that the Lua scripts (scrape, full scrape, sweep) keep working on what it writes
 * and an instance without the module (Lua) and one with it can share one Redis.
 *
 *   HERALD.ANNOUNCE <key> <prefix> <records> <deadline>
 *
 * <key> is the first record's bucket index ("<prefix>:{<b>}:i"): the command's one declared key,
 * which routes the call on a Cluster (as KEYS[1] routes the script). <records>, <deadline> and the
 * reply are exactly the script's (scripts.ts ANNOUNCE_BATCH): a call that starts after its
 * deadline (milliseconds by this server's clock; 0: none) changes nothing and answers LATE, as the
 * instance that sent it has given up on it. Replicas and an AOF replay do not look at the
 * deadline: the master ran the command in time, so they apply it whenever they get to it. Every record is parsed and checked before any
 * is applied: a malformed call is an error and changes nothing. A key of the wrong type is an
 * error too: the records before it stay applied, and its own writes before the command that would
 * have touched that key, as a script stops at its first failing command.
 *
 * Replication: the writes are a function of the arguments (the time is in each record) and the
 * data; the random peer selection only shapes the reply. So the command is replicated as it came
 * (replicas and the AOF need the module loaded), less any record skipped because its slot is not
 * on this master; a replica applies it without choosing peers.
 *
 * Cluster: keys other than the declared one are reached as the script reaches them with
 * allow-cross-slot-keys. Redis 7.0 gives a module no slot lookup, so the module keeps the slots
 * this node serves (CLUSTER SLOTS, read every 100 ms, and again in a call that meets a slot not
 * among them) and skips (status 3, untouched) a record whose slot is still not among them, for the
 * caller to send again alone.
 *
 * Built by scripts/build-native.sh: gcc -O2 -fPIC -shared -o native/build/herald-redis.so.
 * Loaded by: redis-server --loadmodule /path/to/herald-redis.so (docs/redis.md).
 */
#define REDISMODULE_EXPERIMENTAL_API
#include "redismodule.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---- */

static uint32_t be16(const unsigned char *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static uint32_t be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* A growable byte buffer (the reply, key names). */
typedef struct {
  char *p;
  size_t len, cap;
} Buf;

static void buf_need(Buf *b, size_t n) {
  if (b->len + n <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + n) cap *= 2;
  b->p = RedisModule_Realloc(b->p, cap);
  b->cap = cap;
}
static void buf_put(Buf *b, const void *s, size_t n) {
  buf_need(b, n);
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
}
static void buf_u8(Buf *b, unsigned v) {
  unsigned char c = (unsigned char)v;
  buf_put(b, &c, 1);
}
static void buf_u16(Buf *b, uint32_t v) {
  unsigned char c[2] = {(unsigned char)(v >> 8), (unsigned char)v};
  buf_put(b, c, 2);
}
static void buf_u32(Buf *b, uint32_t v) {
  unsigned char c[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                        (unsigned char)v};
  buf_put(b, c, 4);
}

/* Writes v in decimal at p (room for 10 digits); returns the length. */
static size_t u32dec(char *p, uint32_t v) {
  char t[10];
  size_t n = 0;
  do {
    t[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) p[i] = t[n - 1 - i];
  return n;
}

/* CRC16 (XMODEM) of a hash tag, modulo 16384: the Cluster slot. */
static unsigned slot_of(const char *s, size_t n) {
  uint32_t crc = 0;
  for (size_t i = 0; i < n; i++) {
    crc ^= (uint32_t)(unsigned char)s[i] << 8;
    for (int k = 0; k < 8; k++) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc & 16383;
}

/* ---- Cluster: the slots this node serves as a master ---- */

static unsigned char owned[16384 / 8];
static int cluster_mode = 0;

static void refresh_slots(RedisModuleCtx *ctx) {
  const char *me = RedisModule_GetMyClusterID();
  RedisModuleCallReply *r = RedisModule_Call(ctx, "CLUSTER", "c", "SLOTS");
  if (me == NULL || r == NULL) return;
  if (RedisModule_CallReplyType(r) != REDISMODULE_REPLY_ARRAY) {
    RedisModule_FreeCallReply(r);
    return;
  }
  unsigned char next[sizeof owned];
  memset(next, 0, sizeof next);
  size_t n = RedisModule_CallReplyLength(r);
  for (size_t i = 0; i < n; i++) {
    RedisModuleCallReply *range = RedisModule_CallReplyArrayElement(r, i);
    if (RedisModule_CallReplyLength(range) < 3) continue;
    RedisModuleCallReply *master = RedisModule_CallReplyArrayElement(range, 2);
    if (RedisModule_CallReplyLength(master) < 3) continue;
    size_t idlen;
    const char *id = RedisModule_CallReplyStringPtr(RedisModule_CallReplyArrayElement(master, 2), &idlen);
    if (id == NULL || idlen != REDISMODULE_NODE_ID_LEN || memcmp(id, me, idlen) != 0) continue;
    long long lo = RedisModule_CallReplyInteger(RedisModule_CallReplyArrayElement(range, 0));
    long long hi = RedisModule_CallReplyInteger(RedisModule_CallReplyArrayElement(range, 1));
    for (long long s = lo; s <= hi && s < 16384; s++)
      if (s >= 0) next[s >> 3] |= (unsigned char)(1 << (s & 7));
  }
  RedisModule_FreeCallReply(r);
  memcpy(owned, next, sizeof owned);
}

static void slots_timer(RedisModuleCtx *ctx, void *data) {
  (void)data;
  refresh_slots(ctx);
  RedisModule_CreateTimer(ctx, 100, slots_timer, NULL);
}

/* ---- one record ---- */

typedef struct {
  const unsigned char *p; /* the record's bytes */
  size_t len;
  uint32_t b, flags, event, numwant, now, r;
  const unsigned char *h, *pid, *ep;
  uint32_t eplen;
  int priv;
  const unsigned char *akey, *reported;
  uint32_t akeylen, reportedlen, limit, gap, refuse, timeout;
} Rec;

/* Parses the record at s[*pos]: 0 and *pos past it, or -1 if it is malformed. */
static int parse(const unsigned char *s, size_t n, size_t *pos, Rec *r) {
  size_t o = *pos;
  if (n - o < 56) return -1;
  r->p = s + o;
  r->b = be16(s + o);
  r->flags = s[o + 2];
  r->event = s[o + 3];
  r->numwant = be16(s + o + 4);
  r->now = be32(s + o + 6);
  r->r = be32(s + o + 10);
  r->h = s + o + 14;
  r->pid = s + o + 34;
  r->eplen = s[o + 54];
  if (r->flags > 7 || r->event > 3) return -1;
  if (r->eplen != ((r->flags & 1) ? 18u : 6u)) return -1;
  o += 55;
  if (n - o < r->eplen + 1u) return -1;
  r->ep = s + o;
  o += r->eplen;
  r->priv = s[o++];
  if (r->priv > 1) return -1;
  if (r->priv) {
    if (n - o < 2) return -1;
    r->akeylen = be16(s + o);
    o += 2;
    if (n - o < r->akeylen + 2u) return -1;
    r->akey = s + o;
    o += r->akeylen;
    r->reportedlen = be16(s + o);
    o += 2;
    if (n - o < r->reportedlen + 13u) return -1;
    r->reported = s + o;
    o += r->reportedlen;
    r->limit = be32(s + o);
    r->gap = be32(s + o + 4);
    r->refuse = s[o + 8];
    r->timeout = be32(s + o + 9);
    o += 13;
    if (r->akeylen == 0) return -1;
  }
  r->len = (s + o) - r->p;
  *pos = o;
  return 0;
}

static const char *FIELDS[4] = {"4s", "4l", "6s", "6l"};

/*
 * The field names the command reads and writes, made once at load (RedisModule_HashGet and
 * HashSet with REDISMODULE_HASH_CFIELDS would make and free a string object per field per call).
 */
static RedisModuleString *FIELD[4], *F_D, *F_P, *F_T, *F_TILDE, *ONE;

/* The working state of one call. */
typedef struct {
  RedisModuleCtx *ctx;
  const char *prefix;
  size_t prefixlen;
  Buf name; /* key names are made here */
  Buf out;  /* the reply */
  Buf peers; /* one announce's peers */
  Buf ss, sl; /* a small swarm's seeders and leechers, read from its meta hash */
  int replicated;
  int wrong; /* a key of the current announce holds the wrong type */
  int refreshed; /* the slots were read again in this call */
} Call;

/* A key "<prefix>:{<b>}:<tail><suffix>". */
static RedisModuleString *keyname(Call *c, uint32_t b, const void *tail, size_t taillen, const char *suffix) {
  char tag[16];
  size_t t = 2;
  tag[0] = ':';
  tag[1] = '{';
  t += u32dec(tag + t, b);
  tag[t++] = '}';
  tag[t++] = ':';
  c->name.len = 0;
  buf_put(&c->name, c->prefix, c->prefixlen);
  buf_put(&c->name, tag, t);
  buf_put(&c->name, tail, taillen);
  buf_put(&c->name, suffix, strlen(suffix));
  return RedisModule_CreateString(c->ctx, c->name.p, c->name.len);
}

/*
 * A key of the announce, opened when first needed (most announces touch two or three of the six),
 * and checked for its type then: NULL, and c->wrong set, if it holds another type.
 */
typedef struct {
  const Rec *r;
  int hashed; /* "<base><info hash><suffix>" or "<base><suffix>" */
  const char *suffix;
  int type;
  RedisModuleString *name;
  RedisModuleKey *k;
} Lazy;

static RedisModuleString *lazy_name(Call *c, Lazy *l) {
  if (l->name == NULL) l->name = keyname(c, l->r->b, l->r->h, l->hashed ? 20 : 0, l->suffix);
  return l->name;
}

static int typed(RedisModuleKey *k, int type);

static RedisModuleKey *lazy(Call *c, Lazy *l) {
  if (l->k == NULL) {
    l->k = RedisModule_OpenKey(c->ctx, lazy_name(c, l), REDISMODULE_READ | REDISMODULE_WRITE);
    if (typed(l->k, l->type)) c->wrong = 1;
  }
  return typed(l->k, l->type) ? NULL : l->k;
}

/* 0 if key (open) is empty or of `type`; -1 if not. */
static int typed(RedisModuleKey *k, int type) {
  int t = RedisModule_KeyType(k);
  return (t == REDISMODULE_KEYTYPE_EMPTY || t == type) ? 0 : -1;
}

static long long num(RedisModuleString *s) {
  long long v = 0;
  if (s != NULL && RedisModule_StringToLongLong(s, &v) != REDISMODULE_OK) {
    /* A count the script wrote as a float: read it as Lua's tonumber would. */
    double d = 0;
    if (RedisModule_StringToDouble(s, &d) == REDISMODULE_OK) v = (long long)d;
  }
  return v;
}

/* HINCRBY key field by (the statistics hash). */
static void hincr(Call *c, RedisModuleKey *k, RedisModuleString *field, long long by) {
  if (by == 0) return;
  RedisModuleString *v = NULL;
  RedisModule_HashGet(k, REDISMODULE_HASH_NONE, field, &v, NULL);
  RedisModuleString *nv = RedisModule_CreateStringFromLongLong(c->ctx, num(v) + by);
  RedisModule_HashSet(k, REDISMODULE_HASH_NONE, field, nv, NULL);
}

/* Deletes a key left empty (as Redis does after ZREM or HDEL of the last member). */
static void drop_empty(RedisModuleKey *k) {
  if (RedisModule_KeyType(k) != REDISMODULE_KEYTYPE_EMPTY && RedisModule_ValueLength(k) == 0)
    RedisModule_DeleteKey(k);
}

/* The time in a baseline 'uploaded:downloaded:at:seeding'. */
static long long at_of(const char *p, size_t n) {
  size_t i = 0;
  int colons = 0;
  while (i < n && colons < 2) {
    if (p[i] == ':') colons++;
    i++;
  }
  long long v = 0;
  int neg = 0;
  if (i < n && p[i] == '-') {
    neg = 1;
    i++;
  }
  while (i < n && p[i] >= '0' && p[i] <= '9') v = v * 10 + (p[i++] - '0');
  return neg ? -v : v;
}

/*
 * The meta hash read in one pass (when it is small): its counts and the requester's entry, and
 * the endpoints of the requester's family by set (the value's flag), which are the members of
 * that family's seeder and leecher sets (every write and the sweep change both together).
 */
typedef struct {
  const Rec *r;
  long long m[5]; /* d, 4s, 4l, 6s, 6l */
  int p;          /* the "p" field is set */
  char old[32];
  size_t oldlen;
  int hasOld;
  Buf *s, *l; /* the family's seeders' and leechers' endpoints */
} Scan;

static void scan_meta(RedisModuleKey *k, RedisModuleString *field, RedisModuleString *value, void *priv) {
  (void)k;
  Scan *sc = priv;
  size_t fl, vl;
  const char *f = RedisModule_StringPtrLen(field, &fl);
  const char *v = RedisModule_StringPtrLen(value, &vl);
  if (fl == sc->r->eplen) {
    if (memcmp(f, sc->r->ep, fl) == 0) {
      sc->hasOld = 1;
      sc->oldlen = vl < sizeof sc->old ? vl : sizeof sc->old;
      memcpy(sc->old, v, sc->oldlen);
    } else if (vl > 0) {
      buf_put((unsigned char)v[0] - 48 >= 2 ? sc->s : sc->l, f, fl);
    }
    return;
  }
  if (fl == 1 && f[0] == 'd')
    sc->m[0] = num(value);
  else if (fl == 1 && f[0] == 'p')
    sc->p = 1;
  else if (fl == 2 && (f[0] == '4' || f[0] == '6') && (f[1] == 's' || f[1] == 'l'))
    sc->m[1 + (f[0] == '6' ? 2 : 0) + (f[1] == 'l')] = num(value);
}

/* Appends the members in `from` (all of a small set, read from the meta hash) as pick does. */
static void take_all(Buf *from, long long count, uint32_t eplen, Buf *out, long long *n) {
  long long k = (long long)(from->len / eplen);
  if (k > count) k = count;
  buf_put(out, from->p, (size_t)k * eplen);
  *n += k;
}

/*
 * Appends to `out` (n entries of `ep` bytes) up to `count` distinct members of `zkey` (which has
 * `card`) other than `me` (`self`: whether `me` is in it), as scripts.ts SELECT `pick` does: the
 * whole set when it has no more than needed, else ZRANDMEMBER (distinct members).
 */
static void pick(Call *c, Lazy *zl, long long card, long long count, int self, const unsigned char *me,
                 uint32_t eplen, Buf *out, long long *n, Buf *all) {
  if (count <= 0) return;
  long long taken = 0;
  RedisModuleKey *z = lazy(c, zl);
  if (z == NULL || RedisModule_KeyType(z) != REDISMODULE_KEYTYPE_ZSET) return;
  if (card - self <= count && all != NULL) {
    take_all(all, count, eplen, out, n);
    return;
  }
  if (card - self <= count) {
    if (RedisModule_ZsetFirstInScoreRange(z, REDISMODULE_NEGATIVE_INFINITE, REDISMODULE_POSITIVE_INFINITE, 0, 0) !=
        REDISMODULE_OK)
      return;
    while (!RedisModule_ZsetRangeEndReached(z) && taken < count) {
      RedisModuleString *e = RedisModule_ZsetRangeCurrentElement(z, NULL);
      size_t len;
      const char *p = RedisModule_StringPtrLen(e, &len);
      if (!(len == eplen && memcmp(p, me, eplen) == 0)) {
        buf_put(out, p, len);
        (*n)++;
        taken++;
      }
      RedisModule_FreeString(c->ctx, e);
      RedisModule_ZsetRangeNext(z);
    }
    RedisModule_ZsetRangeStop(z);
    return;
  }
  RedisModuleCallReply *r = RedisModule_Call(c->ctx, "ZRANDMEMBER", "sl", lazy_name(c, zl), count + self);
  if (r == NULL) return;
  size_t m = RedisModule_CallReplyType(r) == REDISMODULE_REPLY_ARRAY ? RedisModule_CallReplyLength(r) : 0;
  for (size_t i = 0; i < m && taken < count; i++) {
    size_t len;
    const char *p = RedisModule_CallReplyStringPtr(RedisModule_CallReplyArrayElement(r, i), &len);
    if (p == NULL || (len == eplen && memcmp(p, me, eplen) == 0)) continue;
    buf_put(out, p, len);
    (*n)++;
    taken++;
  }
  RedisModule_FreeCallReply(r);
}

/* Divides `want` between ns seeders and nl leechers in proportion (scripts.ts SELECT `split`). */
static void split(long long want, long long ns, long long nl, double r, long long *ks, long long *kl) {
  if (ns + nl <= want) {
    *ks = ns;
    *kl = nl;
    return;
  }
  long long s = (long long)((double)want * (double)ns / (double)(ns + nl) + r);
  if (s > ns) s = ns;
  long long l = want - s;
  if (l > nl) {
    l = nl;
    s = want - l;
  }
  *ks = s;
  *kl = l;
}

enum { DONE = 0, REFUSED_LIMIT = 1, REFUSED_EARLY = 2, SKIPPED = 3, WRONGTYPE = -1 };

static void header(Buf *o, int status, long long complete, long long incomplete, long long downloaded,
                   size_t peers, size_t ids, size_t prev, long long seed, int early) {
  buf_u8(o, (unsigned)status);
  buf_u32(o, (uint32_t)complete);
  buf_u32(o, (uint32_t)incomplete);
  buf_u32(o, (uint32_t)downloaded);
  buf_u16(o, (uint32_t)peers);
  buf_u16(o, (uint32_t)ids);
  buf_u16(o, (uint32_t)prev);
  buf_u32(o, (uint32_t)seed);
  buf_u8(o, (unsigned)early);
}

/*
 * Private mode (scripts.ts `account`): replaces the peer's baseline in akey (drops it on
 * 'stopped'); returns the seeding seconds to credit.
 */
static long long account(Call *c, const Rec *r, RedisModuleKey *ak, RedisModuleString *pid, const char *prev,
                         size_t prevlen, long long prevAt, int seeder) {
  if (ak == NULL) return 0;
  long long now = r->now, seed = 0;
  if (prev != NULL && r->event != 2 && prevlen > 0 && prev[prevlen - 1] == '1') {
    RedisModuleString *t = NULL;
    RedisModule_HashGet(ak, REDISMODULE_HASH_NONE, F_TILDE, &t, NULL);
    long long from = num(t);
    if (prevAt > from) from = prevAt;
    if (now > from) {
      seed = now - from;
      RedisModule_HashSet(ak, REDISMODULE_HASH_NONE, F_TILDE, RedisModule_CreateStringFromLongLong(c->ctx, now), NULL);
    }
  }
  if (r->event == 3) {
    RedisModule_HashSet(ak, REDISMODULE_HASH_NONE, pid, REDISMODULE_HASH_DELETE, NULL);
  } else {
    char tail[32];
    int t = snprintf(tail, sizeof tail, ":%lld:%c", now, seeder ? '1' : '0');
    RedisModuleString *v = RedisModule_CreateString(c->ctx, (const char *)r->reported, r->reportedlen);
    RedisModule_StringAppendBuffer(c->ctx, v, tail, (size_t)t);
    RedisModule_HashSet(ak, REDISMODULE_HASH_NONE, pid, v, NULL);
  }
  drop_empty(ak);
  if (RedisModule_KeyType(ak) != REDISMODULE_KEYTYPE_EMPTY)
    RedisModule_SetExpire(ak, 2LL * (long long)r->timeout * 1000);
  return seed;
}

/* One announce (scripts.ts `announce`): appends its answer to c->out; returns its status. */
static int announce(Call *c, const Rec *r) {
  RedisModuleCtx *ctx = c->ctx;
  if (cluster_mode && !c->replicated) {
    char tag[10];
    unsigned s = slot_of(tag, u32dec(tag, r->b));
    if (!(owned[s >> 3] & (1 << (s & 7))) && !c->refreshed) {
      /* Maybe the node has just been given the slot (a replica promoted by a failover, a
       * migration finished): read the slots again, once per call, before skipping. */
      refresh_slots(ctx);
      c->refreshed = 1;
    }
    if (!(owned[s >> 3] & (1 << (s & 7)))) {
      header(&c->out, SKIPPED, 0, 0, 0, 0, 0, 0, 0, 0);
      return SKIPPED;
    }
  }
  int six = r->flags & 1, seeder = (r->flags & 2) != 0, wantIds = (r->flags & 4) != 0;
  int event = (int)r->event;
  long long want = r->numwant, now = r->now;
  const int mode = REDISMODULE_READ | REDISMODULE_WRITE;

  /*
   * The keys: the swarm's meta hash and the baseline hash (private mode) are read first and
   * checked at once; the others are opened when needed, each checked before it is written, so
   * that a key of the wrong type stops the announce before any write to it (as a script stops at
   * the command that fails).
   */
  c->wrong = 0;
  Lazy lmeta = {r, 1, ":m", REDISMODULE_KEYTYPE_HASH, NULL, NULL};
  Lazy lfs = {r, 1, six ? ":6s" : ":4s", REDISMODULE_KEYTYPE_ZSET, NULL, NULL};
  Lazy lfl = {r, 1, six ? ":6l" : ":4l", REDISMODULE_KEYTYPE_ZSET, NULL, NULL};
  Lazy lidx = {r, 0, "i", REDISMODULE_KEYTYPE_ZSET, NULL, NULL};
  Lazy lstats = {r, 0, "n", REDISMODULE_KEYTYPE_HASH, NULL, NULL};
  RedisModuleKey *meta = lazy(c, &lmeta);
  RedisModuleKey *ak = NULL;
  RedisModuleString *akName = NULL;
  int status = DONE;
  if (r->priv) {
    akName = keyname(c, r->b, r->akey, r->akeylen, "");
    ak = RedisModule_OpenKey(ctx, akName, mode);
    if (typed(ak, REDISMODULE_KEYTYPE_HASH)) c->wrong = 1;
  }
  if (c->wrong) goto close;

  RedisModuleString *ep = RedisModule_CreateString(ctx, (const char *)r->ep, r->eplen);
  /* The peer id is a field of the baseline hash only (private mode). */
  RedisModuleString *pid = ak != NULL ? RedisModule_CreateString(ctx, (const char *)r->pid, 20) : NULL;
  /*
   * The meta hash: read in one pass (ScanKey) when the swarm is small, no more peers than wanted,
   * so that every peer of both sets goes in the answer and is taken from here instead of read
   * member by member from the sets (a string object and a score parse per member); else its
   * fields one by one. The answer's peers are then in the hash's order, not the sets' (by time).
   */
  Scan sc = {r, {0, 0, 0, 0, 0}, 0, {0}, 0, 0, &c->ss, &c->sl};
  int scanned = 0;
  c->ss.len = c->sl.len = 0;
  size_t fields = RedisModule_KeyType(meta) == REDISMODULE_KEYTYPE_HASH ? RedisModule_ValueLength(meta) : 0;
  if (want > 0 && event != 3 && !c->replicated && fields > 0 && fields <= 64 && (long long)fields <= want + 7) {
    RedisModuleScanCursor *cur = RedisModule_ScanCursorCreate();
    while (RedisModule_ScanKey(meta, cur, scan_meta, &sc)) {
    }
    RedisModule_ScanCursorDestroy(cur);
    scanned = 1;
  } else {
    RedisModuleString *m[6] = {NULL, NULL, NULL, NULL, NULL, NULL}, *oldv = NULL;
    RedisModule_HashGet(meta, REDISMODULE_HASH_NONE, F_D, &m[0], FIELD[0], &m[1], FIELD[1], &m[2], FIELD[2], &m[3],
                        FIELD[3], &m[4], F_P, &m[5], ep, &oldv, NULL);
    for (int i = 0; i < 5; i++) sc.m[i] = num(m[i]);
    sc.p = m[5] != NULL;
    if (oldv != NULL) {
      size_t vl;
      const char *v = RedisModule_StringPtrLen(oldv, &vl);
      sc.hasOld = 1;
      sc.oldlen = vl < sizeof sc.old ? vl : sizeof sc.old;
      memcpy(sc.old, v, sc.oldlen);
    }
  }

  /* Private mode: the peer's baseline, and the rules of issue #16. */
  const char *prev = NULL;
  size_t prevlen = 0;
  long long prevAt = 0;
  int early = 0;
  if (ak != NULL) {
    long long cutoff = now - (long long)r->timeout;
    RedisModuleString *pv = NULL;
    RedisModule_HashGet(ak, REDISMODULE_HASH_NONE, pid, &pv, NULL);
    if (pv != NULL) {
      prev = RedisModule_StringPtrLen(pv, &prevlen);
      prevAt = at_of(prev, prevlen);
      if (prevAt < cutoff) prev = NULL;
    }
    if (event != 3) {
      if (prev == NULL) {
        if (r->limit > 0 && RedisModule_KeyType(ak) == REDISMODULE_KEYTYPE_HASH) {
          long long live = 0;
          RedisModuleCallReply *all = RedisModule_Call(ctx, "HGETALL", "s", akName);
          size_t na = all != NULL && RedisModule_CallReplyType(all) == REDISMODULE_REPLY_ARRAY
                          ? RedisModule_CallReplyLength(all)
                          : 0;
          for (size_t i = 0; i + 1 < na; i += 2) {
            size_t fl_, vl;
            const char *f = RedisModule_CallReplyStringPtr(RedisModule_CallReplyArrayElement(all, i), &fl_);
            const char *v = RedisModule_CallReplyStringPtr(RedisModule_CallReplyArrayElement(all, i + 1), &vl);
            if (f == NULL || v == NULL || (fl_ == 1 && f[0] == '~')) continue;
            if (at_of(v, vl) < cutoff) {
              RedisModuleString *fn = RedisModule_CreateString(ctx, f, fl_);
              RedisModule_HashSet(ak, REDISMODULE_HASH_NONE, fn, REDISMODULE_HASH_DELETE, NULL);
            } else
              live++;
          }
          if (all != NULL) RedisModule_FreeCallReply(all);
          drop_empty(ak);
          if (live >= (long long)r->limit) {
            status = REFUSED_LIMIT;
            header(&c->out, status, 0, 0, 0, 0, 0, 0, 0, 0);
            goto close;
          }
        }
      } else if (event != 1 && now - prevAt < (long long)r->gap) {
        if (r->refuse == 1) {
          status = REFUSED_EARLY;
          header(&c->out, status, 0, 0, 0, 0, 0, 0, 0, 0);
          goto close;
        }
        early = 1;
      }
    }
  }

  int iS = six ? 2 : 0, iL = six ? 3 : 1;
  long long downloaded = sc.m[0];
  long long n[4] = {sc.m[1], sc.m[2], sc.m[3], sc.m[4]};
  int keepIds = sc.p;
  size_t oldlen = sc.oldlen;
  const char *old = sc.hasOld ? sc.old : NULL;
  int flag = old && oldlen > 0 ? (unsigned char)old[0] - 48 : -1;
  int inS = flag >= 2, inL = flag == 0 || flag == 1;
  long long complete = n[0] + n[2], incomplete = n[1] + n[3];
  if (inS)
    complete--;
  else if (inL)
    incomplete--;
  long long dstat[5] = {0, 0, 0, 0, 0}; /* t, 4s, 4l, 6s, 6l */

  if (event == 3) {
    if (inS || inL) {
      RedisModuleKey *z = lazy(c, inL ? &lfl : &lfs);
      if (z == NULL) goto close;
      int i = inL ? iL : iS, gone = 0;
      if (RedisModule_KeyType(z) == REDISMODULE_KEYTYPE_ZSET) RedisModule_ZsetRem(z, ep, &gone);
      drop_empty(z);
      if (gone) {
        dstat[1 + i]--;
        RedisModule_HashSet(meta, REDISMODULE_HASH_NONE, FIELD[i], RedisModule_CreateStringFromLongLong(ctx, n[i] - 1),
                            NULL);
      }
      if (complete + incomplete == 0) {
        RedisModule_DeleteKey(meta);
        int out = 0;
        RedisModuleKey *idx = lazy(c, &lidx);
        if (idx == NULL) goto close;
        if (RedisModule_KeyType(idx) == REDISMODULE_KEYTYPE_ZSET) RedisModule_ZsetRem(idx, RedisModule_CreateString(ctx, (const char *)r->h, 20), &out);
        drop_empty(idx);
        if (out) dstat[0]--;
      } else {
        RedisModule_HashSet(meta, REDISMODULE_HASH_NONE, ep, REDISMODULE_HASH_DELETE, NULL);
        drop_empty(meta);
      }
    }
    long long seed = account(c, r, ak, pid, prev, prevlen, prevAt, seeder);
    header(&c->out, DONE, complete, incomplete, downloaded, 0, 0, prevlen * (prev != NULL), seed, early);
    if (prev != NULL) buf_put(&c->out, prev, prevlen);
    goto stats;
  }

  /* Peers (never the requester); a replica applying the command needs none. */
  Buf peers = c->peers; /* the call's buffer, reused by each announce */
  peers.len = 0;
  long long npeers = 0;
  if (want > 0 && !c->replicated) {
    long long cs = n[iS], cl = n[iL];
    if (seeder)
      pick(c, &lfl, cl, want, inL, r->ep, r->eplen, &peers, &npeers, scanned ? &c->sl : NULL);
    else {
      long long ks, kl;
      split(want, cs - inS, cl - inL, (double)r->r / 4294967296.0, &ks, &kl);
      pick(c, &lfs, cs, ks, inS, r->ep, r->eplen, &peers, &npeers, scanned ? &c->ss : NULL);
      pick(c, &lfl, cl, kl, inL, r->ep, r->eplen, &peers, &npeers, scanned ? &c->sl : NULL);
    }
    if (c->wrong) {
      c->peers = peers;
      goto close;
    }
  }

  /* Apply the announce. */
  {
    RedisModuleKey *key = lazy(c, seeder ? &lfs : &lfl);
    if (key == NULL) {
      c->peers = peers;
      goto close;
    }
    int i = seeder ? iS : iL, o = seeder ? iL : iS;
    RedisModuleString *set[16];
    int ns = 0;
    int zf = 0;
    RedisModule_ZsetAdd(key, (double)now, ep, &zf);
    if (zf & REDISMODULE_ZADD_ADDED) {
      dstat[1 + i]++;
      set[ns++] = FIELD[i];
      set[ns++] = RedisModule_CreateStringFromLongLong(ctx, n[i] + 1);
    }
    if ((seeder && inL) || (!seeder && inS)) {
      int gone = 0;
      RedisModuleKey *other = lazy(c, seeder ? &lfl : &lfs);
      if (other == NULL) {
        c->peers = peers;
        goto close;
      }
      if (RedisModule_KeyType(other) == REDISMODULE_KEYTYPE_ZSET) RedisModule_ZsetRem(other, ep, &gone);
      drop_empty(other);
      if (gone) {
        dstat[1 + o]--;
        set[ns++] = FIELD[o];
        set[ns++] = RedisModule_CreateStringFromLongLong(ctx, n[o] - 1);
      }
    }
    int counted = flag == 1 || flag == 3;
    if (event == 1 && !counted) {
      counted = 1;
      downloaded++;
      set[ns++] = F_D;
      set[ns++] = RedisModule_CreateStringFromLongLong(ctx, downloaded);
    }
    if (wantIds && !keepIds) {
      keepIds = 1;
      set[ns++] = F_P;
      set[ns++] = ONE;
    }
    char value[21];
    value[0] = (char)(48 + (counted ? 1 : 0) + (seeder ? 2 : 0));
    size_t vlen = 1;
    if (keepIds) {
      memcpy(value + 1, r->pid, 20);
      vlen = 21;
    }
    if (old == NULL || oldlen != vlen || memcmp(old, value, vlen) != 0) {
      set[ns++] = ep;
      set[ns++] = RedisModule_CreateString(ctx, value, vlen);
    }
    for (int k = 0; k < ns; k += 2) RedisModule_HashSet(meta, REDISMODULE_HASH_NONE, set[k], set[k + 1], NULL);
    if (complete + incomplete == 0 && !(inS || inL)) {
      int f = 0;
      RedisModuleKey *idx = lazy(c, &lidx);
      if (idx == NULL) {
        c->peers = peers;
        goto close;
      }
      RedisModule_ZsetAdd(idx, (double)now, RedisModule_CreateString(ctx, (const char *)r->h, 20), &f);
      if (f & REDISMODULE_ZADD_ADDED) dstat[0]++;
    }
  }

  {
    /* Peer ids (compact=0), read after the writes as the script reads them. */
    Buf ids = {NULL, 0, 0};
    if (wantIds && npeers > 0) {
      Buf known = {NULL, 0, 0};
      for (long long k = 0; k < npeers; k++) {
        RedisModuleString *f = RedisModule_CreateString(ctx, peers.p + k * r->eplen, r->eplen), *v = NULL;
        RedisModule_HashGet(meta, REDISMODULE_HASH_NONE, f, &v, NULL);
        size_t vl = 0;
        const char *vp = v ? RedisModule_StringPtrLen(v, &vl) : NULL;
        if (vp != NULL && vl == 21) {
          buf_put(&ids, vp + 1, 20);
          buf_u8(&known, 1);
        } else {
          static const char zero[20] = {0};
          buf_put(&ids, zero, 20);
          buf_u8(&known, 0);
        }
        RedisModule_FreeString(ctx, f);
        if (v) RedisModule_FreeString(ctx, v);
      }
      buf_put(&ids, known.p, known.len);
      RedisModule_Free(known.p);
    }
    long long seed = account(c, r, ak, pid, prev, prevlen, prevAt, seeder);
    size_t idbytes = wantIds && npeers > 0 ? (size_t)npeers * 20 : 0;
    header(&c->out, DONE, complete, incomplete, downloaded, peers.len, idbytes, prev != NULL ? prevlen : 0, seed,
           early);
    buf_put(&c->out, peers.p, peers.len);
    buf_put(&c->out, ids.p, ids.len);
    if (prev != NULL) buf_put(&c->out, prev, prevlen);
    c->peers = peers;
    if (ids.p) RedisModule_Free(ids.p);
  }

stats:
  if (dstat[0] || dstat[1] || dstat[2] || dstat[3] || dstat[4]) {
    RedisModuleKey *stats = lazy(c, &lstats);
    if (stats != NULL)
      for (int i = 0; i < 5; i++)
        if (dstat[i] != 0) hincr(c, stats, i == 0 ? F_T : FIELD[i - 1], dstat[i]);
  }

close:
  if (lmeta.k) RedisModule_CloseKey(lmeta.k);
  if (lfs.k) RedisModule_CloseKey(lfs.k);
  if (lfl.k) RedisModule_CloseKey(lfl.k);
  if (lidx.k) RedisModule_CloseKey(lidx.k);
  if (lstats.k) RedisModule_CloseKey(lstats.k);
  if (ak != NULL) RedisModule_CloseKey(ak);
  return c->wrong ? WRONGTYPE : status;
}

/* HERALD.ANNOUNCE <key> <prefix> <records> <deadline> */
static int announce_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
  if (argc != 5) return RedisModule_WrongArity(ctx);
  RedisModule_AutoMemory(ctx);
  size_t n;
  const unsigned char *s = (const unsigned char *)RedisModule_StringPtrLen(argv[3], &n);
  /* Every record is checked before any is applied. */
  size_t pos = 0, count = 0;
  Rec r;
  while (pos < n) {
    if (parse(s, n, &pos, &r) != 0)
      return RedisModule_ReplyWithError(ctx, "ERR herald.announce: malformed announce record");
    count++;
  }
  if (count == 0) return RedisModule_ReplyWithError(ctx, "ERR herald.announce: no announce record");
  long long deadline;
  if (RedisModule_StringToLongLong(argv[4], &deadline) != REDISMODULE_OK || deadline < 0)
    return RedisModule_ReplyWithError(ctx, "ERR herald.announce: the deadline is not a number");
  int flags = RedisModule_GetContextFlags(ctx);
  int replicated = (flags & (REDISMODULE_CTX_FLAGS_REPLICATED | REDISMODULE_CTX_FLAGS_LOADING)) != 0;
  /* The same words as scripts.ts LATE. */
  if (!replicated && deadline > 0 && RedisModule_Milliseconds() > deadline)
    return RedisModule_ReplyWithError(ctx, "LATE herald: the call started after its deadline, nothing was changed");
  Call c = {ctx, NULL, 0, {NULL, 0, 0}, {NULL, 0, 0}, {NULL, 0, 0}, {NULL, 0, 0}, {NULL, 0, 0},
            replicated, 0, 0};
  c.prefix = RedisModule_StringPtrLen(argv[2], &c.prefixlen);
  /* The records applied, for replication when some were not: made only then (until the first
   * record not applied, the records so far, as they came). */
  Buf applied = {NULL, 0, 0};
  size_t skipped = 0, done = 0;
  int wrong = 0;
  pos = 0;
  while (pos < n) {
    size_t start = pos;
    parse(s, n, &pos, &r);
    int status = announce(&c, &r);
    if (status == WRONGTYPE || status == SKIPPED) {
      if (skipped == 0) buf_put(&applied, s, start);
      if (status == WRONGTYPE) {
        wrong = 1;
        break;
      }
      skipped++;
    } else {
      done++;
      if (skipped > 0) buf_put(&applied, r.p, r.len);
    }
  }
  if (!c.replicated && done > 0) {
    if (skipped == 0 && !wrong)
      RedisModule_ReplicateVerbatim(ctx);
    else
      RedisModule_Replicate(ctx, "HERALD.ANNOUNCE", "ssbs", argv[1], argv[2], applied.p, applied.len, argv[4]);
  }
  if (wrong)
    RedisModule_ReplyWithError(ctx, "WRONGTYPE herald.announce: a swarm key holds the wrong kind of value");
  else
    RedisModule_ReplyWithStringBuffer(ctx, c.out.p ? c.out.p : "", c.out.len);
  if (applied.p) RedisModule_Free(applied.p);
  if (c.name.p) RedisModule_Free(c.name.p);
  if (c.out.p) RedisModule_Free(c.out.p);
  if (c.peers.p) RedisModule_Free(c.peers.p);
  if (c.ss.p) RedisModule_Free(c.ss.p);
  if (c.sl.p) RedisModule_Free(c.sl.p);
  return REDISMODULE_OK;
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
  (void)argv;
  (void)argc;
  if (RedisModule_Init(ctx, "herald", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) return REDISMODULE_ERR;
  if (RedisModule_CreateCommand(ctx, "herald.announce", announce_command, "write deny-oom", 1, 1, 1) ==
      REDISMODULE_ERR)
    return REDISMODULE_ERR;
  for (int i = 0; i < 4; i++) FIELD[i] = RedisModule_CreateString(NULL, FIELDS[i], 2);
  F_D = RedisModule_CreateString(NULL, "d", 1);
  F_P = RedisModule_CreateString(NULL, "p", 1);
  F_T = RedisModule_CreateString(NULL, "t", 1);
  F_TILDE = RedisModule_CreateString(NULL, "~", 1);
  ONE = RedisModule_CreateString(NULL, "1", 1);
  if (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_CLUSTER) {
    cluster_mode = 1;
    /* The cluster's slots are not known yet while the server loads: the timer reads them. */
    RedisModule_CreateTimer(ctx, 0, slots_timer, NULL);
  }
  return REDISMODULE_OK;
}
