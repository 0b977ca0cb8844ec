/*
 * Batched plain-HTTP I/O for Herald's tracker frontend (DESIGN.md "Where Node's own I/O is the
 * ceiling"): a connection that carries one announce costs Node a Socket object, its stream state,
 * listeners, a getpeername and the garbage they leave, more than the answer itself. Here C owns
 * the listening socket and the connections on the fast path; JavaScript sees only bytes.
 *
 * One handle per listener. The listening socket (non-blocking, SO_REUSEADDR, TCP_DEFER_ACCEPT;
 * IPv6-only for IPv6 addresses, so that 0.0.0.0:P and [::]:P can be bound side by side) is
 * watched by a uv_poll_t on Node's own loop. When readable, connections are accept4()ed in a loop
 * (bounded per wake-up) and read at once: with deferred accept their request is already there.
 * A connection with nothing to read yet goes into an epoll set owned by this handle, itself
 * watched by one uv_poll_t (readiness from libuv, no busy polling: idle costs nothing).
 * Kept-alive connections wait in the same set.
 *
 * JavaScript is called once per batch (up to 64 connections with bytes) and answers each entry
 * with response bytes in a shared output arena and an action:
 *   CLOSE   write the response, then close;
 *   KEEP    write the response, keep the connection in the epoll set for its next request;
 *   HANDOFF forget the descriptor without writing: JavaScript has wrapped it in a net.Socket
 *           (node:http hand-over, WebSocket upgrade, partial head, ...);
 *   PARK    write the response (the answers before an asynchronous one), then park the
 *           connection: it is not read again until JavaScript completes it.
 * An asynchronous answer (a swarm another worker owns, a Redis store) parks its connection in C:
 * no further byte is read from it, and JavaScript keeps the bytes of that read it has not
 * consumed (pipelined requests). When the answer settles, JavaScript packs it (and the answers of
 * those pipelined requests) into a second arena and calls complete(), which acts on each entry as
 * above: KEEP writes and reads the connection again, PARK writes and leaves it parked (another
 * asynchronous answer), CLOSE writes and closes, HANDOFF forgets it. A parked connection that was
 * waiting in the epoll set stays there until it becomes readable (no epoll_ctl for the usual
 * request-then-wait client); then it is taken out, and put back when completed. complete() is
 * refused while a batch is being answered (ctl[0] = 1, which JavaScript reads before it packs
 * anything): the batch's own PARK entries are acted on first, so nothing is reordered.
 * A response the kernel does not take in full is reported back (a second callback) and the
 * connection is forgotten; JavaScript then wraps it and writes the rest, so no byte is lost or
 * reordered. Idle connections in the set are closed by sweep(), called from a JavaScript timer,
 * which returns their descriptors. JavaScript learns of every connection and of its end (it counts
 * them per address, max_connections_per_ip): a connection accepted before its first bytes arrive
 * and a waiting connection that reaches EOF or an error come as empty entries (length 0; the
 * first kind marked fresh), which JavaScript answers with KEEP or CLOSE; a write that fails is
 * reported with the short writes (out meta [1] = 2; the addon has closed it).
 * So a connection is read again only once everything answered so far has been written: a client
 * that pipelines and does not read cannot make the addon hold its answers (JavaScript caps one
 * entry's answers at MAX_UNSENT and moves the rest of its requests to a Node socket).
 *
 * Buffer layout (shared ArrayBuffers, owned by JavaScript):
 *   in meta, 48 bytes per entry: [0,4) fd (little-endian), [4,8) length read, [8] family (4|6),
 *     [9] 1 when accepted in this batch (or IN_RELAYED, IN_SHORT_KEEP, IN_SHORT_CLOSE: see
 *     "Relay"), [10,12) port (big-endian), [12,28) address (IPv4 in the first 4 bytes), [28,32)
 *     milliseconds since the connection's last answer (or its accept); relayed entries: [32,40)
 *     the relay id, [40,44) the link's generation
 *   in data, IN_SLOT bytes per entry
 *   out meta, 48 bytes per entry (same index as in): [0] action, [1] set by C: 1 the write was
 *     short, 2 the connection died (closed), [4,8) offset into out data, [8,12) length, [12,16)
 *     set by C: bytes written
 *   out data: the arena JavaScript packs responses into.
 *   completion meta, 48 bytes per entry: as out meta, and [16,20) fd; a relayed request's
 *     answer: [2] 1, [16,20) its link, [32,44) as in meta; completion data: its arena.
 *   ctl: [0] 1 while a batch is being answered (complete() would be refused); [4,8) the number of
 *     completion entries complete() acts on.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#define ADDON_NAME "http_batch"
#define ADDON_ERR_CODE "ERR_HTTP_BATCH"
#include "addon_common.h"

#define BATCH 64
#define META 48
#define IN_SLOT 16384
#define MAX_ROUNDS 16

enum { ACT_CLOSE = 1, ACT_KEEP = 2, ACT_HANDOFF = 3, ACT_PARK = 4 };

/* Where a connection the addon holds is (conn_t.state). */
enum {
  C_NONE = 0, /* not held (or moved to a Node socket) */
  C_WAIT = 1, /* in the epoll set, waiting for its next request */
  C_PARKED_IN = 2, /* parked, still in the epoll set (taken out when it becomes readable) */
  C_PARKED = 3, /* parked, out of the epoll set */
  /* The relay (issue #13; see "Relay" below): descriptors that are not client connections. */
  C_LINK_LISTEN = 4, /* this worker's relay listener */
  C_LINK_IN = 5, /* a link another worker opened, before its secret */
  C_LINK_IN_OK = 6, /* a link another worker opened, authenticated: requests in, answers out */
  C_LINK_OUT = 7, /* a link this worker opened to an owner: requests out, answers in */
};

/* A connection the addon holds (waiting or parked), indexed by its descriptor. */
typedef struct {
  uint8_t state;
  uint8_t full; /* parked: the read that parked it filled its slot (drain before a close) */
  uint8_t family;
  uint8_t port[2];
  uint8_t addr[16];
  uint8_t relayed; /* parked on the relay: the owner's index + 1 (a link: its peer's index + 1) */
  uint32_t gen; /* relayed: the relay id's generation (a link: its own, checked by completions) */
  uint64_t last; /* uv_now() of the accept or the last answer */
} conn_t;

/* The relay's limits: workers, requests in flight on one link, an answer's bytes. */
#define RELAY_MAX_WORKERS 64
#define RELAY_MAX_INFLIGHT 256
#define RELAY_REQ_HDR 32
#define RELAY_ANS_HDR 16
#define RELAY_MAX_ANSWER (64 * 1024)
#define RELAY_SECRET 32
/* Bytes of one message: the records of one round for one link (at least one record of the largest size). */
#define RELAY_PACK (128 * 1024)
/* Authenticated links from other workers (one each, normally; a restarted worker's old one closes). */
#define RELAY_MAX_IN 128

/* Records waiting to go out on one link as one message (at the end of the round). */
typedef struct {
  int fd; /* -1: free */
  uint32_t gen;
  size_t len;
  uint8_t *buf; /* RELAY_PACK bytes, allocated once */
} pack_t;

typedef struct {
  int on;
  int index, count;
  int lfd;
  char prefix[80]; /* the abstract name without its index: "herald-relay-<cluster>-" */
  uint8_t secret[RELAY_SECRET];
  uint8_t *busy; /* the whole response a request gets when its owner's link goes down */
  size_t busy_len;
  int out[RELAY_MAX_WORKERS]; /* links to the owners (-1: none) */
  pack_t outq[RELAY_MAX_WORKERS]; /* requests for each owner, this round */
  pack_t inq[RELAY_MAX_IN]; /* answers for each link from another worker */
  uint32_t inflight[RELAY_MAX_WORKERS];
  uint64_t retry_at[RELAY_MAX_WORKERS]; /* uv_now() before which a failed connect is not retried */
  uint32_t gen;
  uint8_t *rbuf; /* one message read from a link (RELAY_PACK bytes) */
  double sent, served, answered, failed; /* requests relayed out, served for others, answered, failed busy */
} relay_t;

typedef struct {
  napi_env env;
  uv_loop_t *loop;
  uv_poll_t lpoll, epoll_poll;
  int lfd, epfd, spare;
  int started, closing, open_handles;
  napi_ref on_batch, on_short;
  napi_ref in_meta_ref, in_data_ref, out_meta_ref, out_data_ref, c_meta_ref, c_data_ref, ctl_ref;
  napi_async_context async;
  uint8_t *in_meta, *in_data, *out_meta, *out_data, *c_meta, *c_data, *ctl;
  size_t out_size, c_size;
  conn_t *conns;
  int nconns; /* capacity of conns */
  int waiting; /* connections in state C_WAIT */
  int parked; /* connections in state C_PARKED_IN or C_PARKED */
  int relayed; /* of those, parked on the relay (waiting for another worker's answer) */
  relay_t relay;
  int n; /* entries in the batch being filled */
  uint8_t full[BATCH]; /* the entry's read filled its slot (more may be waiting) */
  uint8_t waited[BATCH]; /* the entry came from the epoll set (close() has closed it if stopped) */
} handle_t;

static void put32(uint8_t *p, uint32_t v) {
  p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; p[2] = (v >> 16) & 0xff; p[3] = (v >> 24) & 0xff;
}
static uint32_t get32(const uint8_t *p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int ensure_slot(handle_t *h, int fd) {
  if (fd < h->nconns) return 0;
  int cap = h->nconns ? h->nconns : 1024;
  while (cap <= fd) cap *= 2;
  conn_t *c = realloc(h->conns, (size_t)cap * sizeof *c);
  if (c == NULL) return -1;
  memset(c + h->nconns, 0, (size_t)(cap - h->nconns) * sizeof *c);
  h->conns = c;
  h->nconns = cap;
  return 0;
}

/* Takes the descriptor out of the addon (and of the epoll set, if there) without closing it. */
/* A held connection no longer waits for a relayed answer (h->relayed counts those that do). */
static void unrelay(handle_t *h, conn_t *c) {
  if (c->relayed) h->relayed--;
  c->relayed = 0;
}

static void forget(handle_t *h, int fd) {
  if (fd >= h->nconns) return;
  conn_t *c = &h->conns[fd];
  /* Removed explicitly: a forked child could still hold the description open. */
  if (c->state == C_WAIT || c->state == C_PARKED_IN) epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
  if (c->state == C_WAIT) h->waiting--;
  else if (c->state != C_NONE) h->parked--;
  unrelay(h, c);
  c->state = C_NONE;
}

static void close_fd(handle_t *h, int fd) {
  forget(h, fd);
  close(fd);
}

/* Copies the address of in-meta entry m into the connection's record. */
static void remember(conn_t *c, const uint8_t *m) {
  c->family = m[8];
  memcpy(c->port, m + 10, 2);
  memcpy(c->addr, m + 12, 16);
}

/*
 * Puts (or keeps) the descriptor in the epoll set, waiting for its next request; m is its in-meta
 * entry (address, family), or NULL for a parked connection (whose record has them).
 */
static void watch(handle_t *h, int fd, const uint8_t *m) {
  if (ensure_slot(h, fd) < 0) { close(fd); return; }
  conn_t *c = &h->conns[fd];
  if (c->state == C_NONE || c->state == C_PARKED) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) { close_fd(h, fd); return; }
    if (c->state == C_NONE) remember(c, m);
  }
  if (c->state != C_WAIT) {
    if (c->state != C_NONE) h->parked--;
    c->state = C_WAIT;
    h->waiting++;
  }
  c->last = uv_now(h->loop);
}

/*
 * Parks the connection until complete(): it is not read meanwhile. One waiting in the epoll set
 * stays there (most clients send nothing before their answer, and it then costs no epoll_ctl);
 * it is taken out when it becomes readable. m: as for watch(); full: its last read filled its slot.
 */
static void park(handle_t *h, int fd, const uint8_t *m, int full) {
  if (ensure_slot(h, fd) < 0) { close(fd); return; }
  conn_t *c = &h->conns[fd];
  if (c->state == C_NONE) {
    remember(c, m);
    c->state = C_PARKED;
    h->parked++;
  } else if (c->state == C_WAIT) {
    c->state = C_PARKED_IN;
    h->waiting--;
    h->parked++;
  }
  c->full = (uint8_t)full;
  c->last = uv_now(h->loop);
}

/* Address of a peer into an in-meta entry (an IPv4-mapped IPv6 address is reported as IPv4). */
static void meta_addr(uint8_t *m, const struct sockaddr_storage *ss) {
  memset(m + 8, 0, META - 8);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    m[8] = 4;
    memcpy(m + 10, &a->sin_port, 2);
    memcpy(m + 12, &a->sin_addr, 4);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    memcpy(m + 10, &a->sin6_port, 2);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      m[8] = 4;
      memcpy(m + 12, &a->sin6_addr.s6_addr[12], 4);
    } else {
      m[8] = 6;
      memcpy(m + 12, &a->sin6_addr, 16);
    }
  }
}

/* Writes as much as the kernel takes now; -1 on a dead connection. */
static ssize_t send_some(int fd, const uint8_t *p, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t w = send(fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) { done += (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return -1;
  }
  return (ssize_t)done;
}

/*
 * Reads what is left before a close: closing with unread bytes makes the kernel send a reset,
 * which can destroy the answer before the client has read it. Bounded; the usual connection
 * (one request, read whole) skips it.
 */
static void drain(int fd) {
  uint8_t scratch[4096];
  for (int i = 0; i < 16; i++) {
    ssize_t r = read(fd, scratch, sizeof scratch);
    if (r <= 0 && !(r < 0 && errno == EINTR)) break;
  }
}

/*
 * Acts on one answered entry (om: its out-meta or completion-meta entry, arena: the responses):
 * writes its response, then keeps, parks, closes or forgets the connection. m: the entry's
 * in-meta (address of a connection not yet held), NULL for a completion; full: its read filled
 * its slot. Returns 1 when reported back to JavaScript (om[1]: 1 the write was short and the
 * connection is forgotten, with om[12,16) the bytes written; 2 the connection died and is closed).
 */
static int act(handle_t *h, int fd, uint8_t *om, const uint8_t *arena, size_t arena_size, const uint8_t *m,
               int full) {
  int action = om[0];
  om[1] = 0;
  if (action == ACT_HANDOFF) {
    forget(h, fd);
    return 0;
  }
  uint32_t off = get32(om + 4), len = get32(om + 8);
  if (action != ACT_KEEP && action != ACT_CLOSE && action != ACT_PARK) { action = ACT_CLOSE; len = 0; }
  if ((size_t)off + len > arena_size) len = 0;
  if (len > 0) {
    ssize_t w = send_some(fd, arena + off, len);
    if (w < 0) {
      /* A dead connection: closed here, and reported (om[1] = 2) like a short write. */
      close_fd(h, fd);
      om[1] = 2;
      return 1;
    }
    if ((uint32_t)w < len) {
      forget(h, fd);
      om[1] = 1;
      put32(om + 12, (uint32_t)w);
      return 1;
    }
  }
  if (action == ACT_KEEP) watch(h, fd, m);
  else if (action == ACT_PARK) park(h, fd, m, full);
  else {
    if (full) drain(fd);
    close_fd(h, fd);
  }
  return 0;
}

/* In-meta [9]: what an entry is (besides fresh = 1). */
enum {
  IN_RELAYED = 2, /* another worker's request (fd: its link; [32,40) its relay id, [40,44) the link's generation) */
  IN_SHORT_KEEP = 3, /* a relayed answer the kernel did not take in full: the rest is the data, then keep */
  IN_SHORT_CLOSE = 4, /* the same, then close */
};

static void relay_reply(handle_t *h, int link, uint32_t link_gen, const uint8_t *id, const uint8_t *om,
                        const uint8_t *arena, size_t arena_size);
static void relay_flush_in(handle_t *h);

/* Calls JavaScript with the batch, then acts on its answers. Returns -1 if JavaScript threw. */
static int flush(handle_t *h, napi_value recv, napi_value on_batch, napi_value on_short) {
  int n = h->n;
  if (n == 0) return 0;
  h->n = 0;
  napi_env env = h->env;
  napi_value argv[1], result;
  napi_create_uint32(env, (uint32_t)n, &argv[0]);
  for (int i = 0; i < n; i++) h->out_meta[i * META] = 0;
  int failed = 0;
  /* Until every entry is acted on: a completion now (from a promise settled in this callback's
   * microtasks) could overtake the answers before it, or find its connection not yet parked. */
  h->ctl[0] = 1;
  if (napi_make_callback(env, h->async, recv, on_batch, 1, argv, &result) != napi_ok) {
    /* The JS callback threw: leave it to Node's uncaught exception handling. The entries it
     * answered (JavaScript writes an entry's action last) are served; the rest are closed. */
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    failed = 1;
  }
  if (h->closing) {
    /* stop() was called from the callback: it closed the waiting connections; the fresh ones
     * not handed to Node are still ours to close. */
    for (int i = 0; i < n; i++)
      if (!h->waited[i] && h->out_meta[i * META] != ACT_HANDOFF) close((int)get32(h->in_meta + i * META));
    return -1;
  }
  int shorts = 0;
  for (int i = 0; i < n; i++) {
    uint8_t *im = h->in_meta + i * META;
    uint8_t *om = h->out_meta + i * META;
    if (im[9] == IN_RELAYED) {
      /* Another worker's request: the answer goes back on its link (never a descriptor here). */
      om[1] = 0;
      relay_reply(h, (int)get32(im), get32(im + 40), im + 32, om, h->out_data, h->out_size);
    } else shorts += act(h, (int)get32(im), om, h->out_data, h->out_size, im, h->full[i]);
  }
  if (h->relay.on) relay_flush_in(h);
  if (shorts > 0 && napi_make_callback(env, h->async, recv, on_short, 1, argv, &result) != napi_ok) {
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    failed = 1;
  }
  if (!h->closing) h->ctl[0] = 0;
  return failed ? -1 : 0;
}

/* Adds the bytes just read into entry h->n (in meta fd and length; the address is already there). */
static void add_entry(handle_t *h, int fd, ssize_t r, int fresh, uint32_t age) {
  uint8_t *m = h->in_meta + h->n * META;
  put32(m, (uint32_t)fd);
  put32(m + 4, (uint32_t)r);
  m[9] = (uint8_t)fresh;
  put32(m + 28, age);
  h->full[h->n] = r == IN_SLOT;
  h->waited[h->n] = !fresh;
  h->n++;
}

static int callbacks(handle_t *h, napi_value *recv, napi_value *on_batch, napi_value *on_short) {
  napi_env env = h->env;
  if (napi_get_reference_value(env, h->on_batch, on_batch) != napi_ok) return -1;
  if (napi_get_reference_value(env, h->on_short, on_short) != napi_ok) return -1;
  return napi_get_global(env, recv) == napi_ok ? 0 : -1; /* napi_make_callback needs an object */
}

/*
 * Relay (issue #13, `herald serve --workers N` with the sharded memory store). A kept-alive
 * connection's read that is exactly one announce for a swarm another worker owns is sent, bytes
 * and client address, to that worker's addon over a SOCK_SEQPACKET Unix socket, and the
 * connection is parked here: no JavaScript runs for it in this worker. The owner's addon puts
 * the request into its next batch as an entry marked IN_RELAYED (its fd is the link), which
 * JavaScript answers through the same code as its own connections; the answer goes back (relay
 * id, action, bytes), and this addon writes it to the client before it keeps or closes the
 * connection. Links are opened lazily (one per owner, in the same epoll set) and start with the
 * bus's secret. A link that goes down answers every request in flight on it with the sharded
 * store's retryable failure ("busy"), and closes those connections.
 *
 * A message carries the records of one round for one link (one sendmsg each, at the end of the
 * round; message boundaries are kept by the socket, so nothing ever resyncs). A request record:
 * [0] 'Q', [1] family, [2,4) port, [4,8) fd, [8,12) generation (the relay id), [12,28) address,
 * [28,32) length, then the request's bytes. An answer record: [0] 'A', [1] action (KEEP|CLOSE),
 * [4,8) fd, [8,12) generation, [12,16) length, then the response's bytes. A message that is not
 * exactly a sequence of well-formed records closes its link.
 */
typedef struct {
  napi_value recv, on_batch, on_short;
} cb_t;

static int flush_cb(handle_t *h, cb_t *cb) { return flush(h, cb->recv, cb->on_batch, cb->on_short); }

/* Room for one more entry (flushing the batch when it is full); -1 if stopped meanwhile. */
static int room(handle_t *h, cb_t *cb) {
  if (h->n < BATCH) return 0;
  flush_cb(h, cb);
  return h->closing || h->n >= BATCH ? -1 : 0;
}

/* Copies a held connection's address into in-meta entry m. */
static void meta_from_conn(uint8_t *m, const conn_t *c) {
  memset(m + 8, 0, META - 8);
  m[8] = c->family;
  memcpy(m + 10, c->port, 2);
  memcpy(m + 12, c->addr, 16);
}

/* An empty entry for a held connection that is over: JavaScript answers CLOSE and releases it. */
static void emit_end(handle_t *h, int fd, cb_t *cb) {
  if (room(h, cb) < 0) return;
  conn_t *c = &h->conns[fd];
  unrelay(h, c);
  meta_from_conn(h->in_meta + h->n * META, c);
  add_entry(h, fd, 0, 0, 0);
}

static int unix_addr(struct sockaddr_un *a, const char *prefix, int index) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "%s%d", prefix, index);
  return (int)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Sends a pack's records as one message; 0 when sent (or empty), -1 when the link failed. */
static int pack_send(pack_t *q) {
  if (q->len == 0) return 0;
  ssize_t w;
  do w = send(q->fd, q->buf, q->len, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (w < 0 && errno == EINTR);
  q->len = 0;
  return w < 0 ? -1 : 0;
}

/* Room for a record of `need` bytes in pack q (sending what it holds if need be); NULL: the link failed. */
static uint8_t *pack_room(pack_t *q, size_t need) {
  if (q->len + need > RELAY_PACK && pack_send(q) < 0) return NULL;
  uint8_t *p = q->buf + q->len;
  q->len += need;
  return p;
}

static void link_close(handle_t *h, int fd) {
  conn_t *c = &h->conns[fd];
  if (c->state == C_LINK_IN_OK) {
    pack_t *q = &h->relay.inq[c->family];
    q->fd = -1;
    q->len = 0;
  }
  epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
  c->state = C_NONE;
  c->relayed = 0;
  close(fd);
}

/* The link to owner t is down: every request in flight on it is answered "busy" and its connection closed. */
static void link_down(handle_t *h, int t, cb_t *cb) {
  relay_t *r = &h->relay;
  if (r->out[t] >= 0) link_close(h, r->out[t]);
  r->out[t] = -1;
  r->outq[t].len = 0;
  r->inflight[t] = 0;
  r->retry_at[t] = uv_now(h->loop) + 50;
  for (int fd = 0; fd < h->nconns && h->relayed > 0 && !h->closing; fd++) {
    conn_t *c = &h->conns[fd];
    if (c->relayed != t + 1 || (c->state != C_PARKED && c->state != C_PARKED_IN)) continue;
    send_some(fd, r->busy, r->busy_len);
    r->failed++;
    emit_end(h, fd, cb);
  }
}

/* Asking side, at the end of a round: each owner's requests go out as one message. */
static void relay_flush_out(handle_t *h, cb_t *cb) {
  relay_t *r = &h->relay;
  for (int t = 0; t < r->count && !h->closing; t++)
    if (r->outq[t].len > 0 && pack_send(&r->outq[t]) < 0) link_down(h, t, cb);
}

/* Owner side, after a batch or completions: each link's answers go out as one message. */
static void relay_flush_in(handle_t *h) {
  relay_t *r = &h->relay;
  for (int k = 0; k < RELAY_MAX_IN; k++) {
    pack_t *q = &r->inq[k];
    if (q->fd >= 0 && q->len > 0 && pack_send(q) < 0) link_close(h, q->fd);
  }
}

/*
 * Whether the other end of Unix socket `fd` runs as this process's user. An abstract name can be
 * bound by any local process while its worker restarts: the secret is sent only to a peer of our
 * own user (who could read our memory anyway), and a link is accepted only from one.
 */
static bool same_user(int fd) {
  struct ucred cr;
  socklen_t cl = sizeof cr;
  return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cl == sizeof cr && cr.uid == geteuid();
}

/* A link (opened or accepted) into the epoll set as `state`, with a 4 MiB send buffer; -1 if it cannot be. */
static int link_watch(handle_t *h, int fd, int state) {
  int size = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (ensure_slot(h, fd) < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) return -1;
  conn_t *c = &h->conns[fd];
  memset(c, 0, sizeof *c);
  c->state = state;
  return 0;
}

/* The link to owner t, opened (and authenticated) if need be; -1 when it cannot be now. */
static int link_to(handle_t *h, int t) {
  relay_t *r = &h->relay;
  if (r->out[t] >= 0) return r->out[t];
  uint64_t now = uv_now(h->loop);
  if (now < r->retry_at[t]) return -1;
  if (r->outq[t].buf == NULL && (r->outq[t].buf = malloc(RELAY_PACK)) == NULL) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un a;
  socklen_t al = (socklen_t)unix_addr(&a, r->prefix, t);
  if (connect(fd, (struct sockaddr *)&a, al) < 0 || !same_user(fd) ||
      send(fd, r->secret, RELAY_SECRET, MSG_NOSIGNAL | MSG_DONTWAIT) != RELAY_SECRET ||
      link_watch(h, fd, C_LINK_OUT) < 0) {
    close(fd);
    r->retry_at[t] = now + 50; /* the owner is down (restarting): fail fast, try again soon */
    return -1;
  }
  conn_t *c = &h->conns[fd];
  c->relayed = (uint8_t)(t + 1);
  r->out[t] = fd;
  r->outq[t].fd = fd;
  r->outq[t].len = 0;
  r->inflight[t] = 0;
  return fd;
}

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/*
 * The worker that owns the swarm of a read that is exactly one complete `GET /announce` or
 * `GET /announce/<passkey>` with one well-formed info_hash (20 bytes); -1 for anything else
 * (JavaScript serves it as before).
 */
static int relay_target(const handle_t *h, const uint8_t *b, size_t n) {
  if (n < 32 || n >= IN_SLOT || memcmp(b, "GET /announce", 13) != 0) return -1;
  const uint8_t *end = b + n;
  if (memcmp(end - 4, "\r\n\r\n", 4) != 0) return -1;
  /* The request line ends at the first '\r' (there is one: end - 4); memchr, not a loop per byte. */
  const uint8_t *cr = memchr(b + 13, '\r', (size_t)(end - (b + 13)));
  /* Pipelined: a blank line before the end (none can start in the request line, before cr). */
  if (memmem(cr, (size_t)(end - cr), "\r\n\r\n", 4) != end - 4) return -1;
  const uint8_t *p = b + 13;
  if (*p == '/') {
    /* /announce/<passkey>: no further slash, a path of at most 200 bytes (as server.ts reads it). */
    const uint8_t *k = ++p;
    while (p < end && *p != '?' && *p != ' ' && *p != '/') p++;
    if (p == k || *p == '/' || p - (b + 4) > 200) return -1;
  }
  if (*p != '?') return -1;
  const uint8_t *q = ++p;
  if (p > cr) return -1;
  const uint8_t *sp = memchr(p, ' ', (size_t)(cr - p));
  p = sp != NULL ? sp : cr;
  if (end - p < 9 || memcmp(p, " HTTP/1.", 8) != 0) return -1;
  const uint8_t *qe = p;
  int found = 0;
  uint8_t hash[4];
  for (const uint8_t *k = q; k < qe;) {
    const uint8_t *amp = memchr(k, '&', (size_t)(qe - k));
    const uint8_t *e = amp ? amp : qe;
    if (e - k >= 10 && memcmp(k, "info_hash=", 10) == 0) {
      if (found++) return -1;
      int len = 0;
      for (const uint8_t *v = k + 10; v < e; v++, len++) {
        uint8_t c = *v;
        if (c == '%') {
          if (e - v < 3) return -1;
          int hi = hexval(v[1]), lo = hexval(v[2]);
          if (hi < 0 || lo < 0) return -1;
          c = (uint8_t)(hi << 4 | lo);
          v += 2;
        }
        if (len < 4) hash[len] = c;
      }
      if (len != 20) return -1;
    }
    k = e + 1;
  }
  if (!found) return -1;
  uint32_t v = (uint32_t)hash[0] << 24 | (uint32_t)hash[1] << 16 | (uint32_t)hash[2] << 8 | hash[3];
  int t = (int)(v % (uint32_t)h->relay.count);
  return t == h->relay.index ? -1 : t;
}

/*
 * Relays the request just read from waiting connection fd (b, n) to owner t (it goes out at
 * the end of the round) and parks the connection. 0: relayed; -1: not (JavaScript serves it).
 */
static int relay_send(handle_t *h, int t, int fd, const uint8_t *b, size_t n) {
  relay_t *r = &h->relay;
  if (r->inflight[t] >= RELAY_MAX_INFLIGHT || link_to(h, t) < 0) return -1;
  uint8_t *rec = pack_room(&r->outq[t], RELAY_REQ_HDR + n);
  if (rec == NULL) return -1; /* the link failed: noticed when it is read (EOF) */
  conn_t *c = &h->conns[fd];
  uint32_t gen = ++r->gen;
  rec[0] = 'Q';
  rec[1] = c->family;
  memcpy(rec + 2, c->port, 2);
  put32(rec + 4, (uint32_t)fd);
  put32(rec + 8, gen);
  memcpy(rec + 12, c->addr, 16);
  put32(rec + 28, (uint32_t)n);
  memcpy(rec + RELAY_REQ_HDR, b, n);
  r->inflight[t]++;
  r->sent++;
  /* Parked as for an asynchronous answer: still in the epoll set until it becomes readable. */
  c->state = C_PARKED_IN;
  h->waiting--;
  h->parked++;
  h->relayed++;
  c->relayed = (uint8_t)(t + 1);
  c->gen = gen;
  c->full = 0;
  c->last = uv_now(h->loop);
  return 0;
}

/*
 * Owner side: queues JavaScript's answer to a relayed entry (om: its action, offset and length
 * in arena) for its link. PARK: nothing yet (a completion sends it). A link that does not take
 * it is closed (its worker then answers what it has in flight with the busy failure).
 */
static void relay_reply(handle_t *h, int link, uint32_t link_gen, const uint8_t *id, const uint8_t *om,
                        const uint8_t *arena, size_t arena_size) {
  int action = om[0];
  if (action == ACT_PARK) return;
  if (link < 0 || link >= h->nconns || h->conns[link].state != C_LINK_IN_OK || h->conns[link].gen != link_gen)
    return; /* the link went down meanwhile */
  uint32_t off = get32(om + 4), len = get32(om + 8);
  const uint8_t *bytes = arena + off;
  if (action != ACT_KEEP) action = ACT_CLOSE; /* HANDOFF never comes for a relayed entry */
  if ((size_t)off + len > arena_size || len > RELAY_MAX_ANSWER) {
    bytes = h->relay.busy;
    len = (uint32_t)h->relay.busy_len;
    action = ACT_CLOSE;
  }
  pack_t *q = &h->relay.inq[h->conns[link].family];
  uint8_t *rec = pack_room(q, RELAY_ANS_HDR + len);
  if (rec == NULL) {
    link_close(h, link);
    return;
  }
  rec[0] = 'A';
  rec[1] = (uint8_t)action;
  rec[2] = rec[3] = 0;
  memcpy(rec + 4, id, 8);
  put32(rec + 12, len);
  memcpy(rec + RELAY_ANS_HDR, bytes, len);
  h->relay.answered++;
}

/* Asking side: an answer for relayed connection fd: written, then KEEP or CLOSE. */
static void relay_deliver(handle_t *h, int fd, int action, const uint8_t *b, size_t n, cb_t *cb) {
  conn_t *c = &h->conns[fd];
  ssize_t w = n > 0 ? send_some(fd, b, n) : 0;
  if (w >= 0 && (size_t)w < n && n - (size_t)w <= IN_SLOT && room(h, cb) == 0) {
    /* A short write: the rest goes to JavaScript, which moves the connection to a Node socket. */
    unrelay(h, c);
    uint8_t *m = h->in_meta + h->n * META;
    meta_from_conn(m, c);
    memcpy(h->in_data + (size_t)h->n * IN_SLOT, b + w, n - (size_t)w);
    add_entry(h, fd, (ssize_t)(n - (size_t)w), 0, 0);
    m[9] = action == ACT_KEEP ? IN_SHORT_KEEP : IN_SHORT_CLOSE;
    return;
  }
  if (w < 0 || (size_t)w < n || action != ACT_KEEP) {
    emit_end(h, fd, cb);
    return;
  }
  unrelay(h, c);
  watch(h, fd, NULL);
}

/* Asking side: the answer records of one message from owner t; -1 when malformed. */
static int relay_answers(handle_t *h, int t, const uint8_t *m, size_t k, cb_t *cb) {
  relay_t *r = &h->relay;
  for (size_t at = 0; at < k && !h->closing;) {
    if (k - at < RELAY_ANS_HDR || m[at] != 'A') return -1;
    size_t len = get32(m + at + 12);
    if (len > k - at - RELAY_ANS_HDR) return -1;
    const uint8_t *rec = m + at;
    at += RELAY_ANS_HDR + len;
    if (r->inflight[t] > 0) r->inflight[t]--;
    int fd = (int)get32(rec + 4);
    if (fd < 0 || fd >= h->nconns) continue;
    conn_t *c = &h->conns[fd];
    if (c->relayed != t + 1 || c->gen != get32(rec + 8) || (c->state != C_PARKED && c->state != C_PARKED_IN))
      continue; /* closed meanwhile (swept, stopped): the answer is dropped */
    relay_deliver(h, fd, rec[1], rec + RELAY_ANS_HDR, len, cb);
  }
  return 0;
}

/* Owner side: the request records of one message from link fd, each an entry; -1 when malformed. */
static int relay_requests(handle_t *h, int fd, const uint8_t *m, size_t k, cb_t *cb) {
  relay_t *r = &h->relay;
  uint32_t gen = h->conns[fd].gen;
  for (size_t at = 0; at < k;) {
    if (k - at < RELAY_REQ_HDR || m[at] != 'Q' || (m[at + 1] != 4 && m[at + 1] != 6)) return -1;
    size_t len = get32(m + at + 28);
    if (len == 0 || len >= IN_SLOT || len > k - at - RELAY_REQ_HDR) return -1;
    if (room(h, cb) < 0 || h->conns[fd].state != C_LINK_IN_OK || h->conns[fd].gen != gen) return 0;
    const uint8_t *rec = m + at;
    at += RELAY_REQ_HDR + len;
    uint8_t *im = h->in_meta + h->n * META;
    memset(im + 8, 0, META - 8);
    im[8] = rec[1];
    memcpy(im + 10, rec + 2, 2);
    memcpy(im + 12, rec + 12, 16);
    memcpy(im + 32, rec + 4, 8);
    put32(im + 40, gen);
    memcpy(h->in_data + (size_t)h->n * IN_SLOT, rec + RELAY_REQ_HDR, len);
    add_entry(h, fd, (ssize_t)len, 0, 0);
    im[9] = IN_RELAYED;
    r->served++;
  }
  return 0;
}

/* A new link from another worker (accepted, not yet authenticated). */
static void relay_accept(handle_t *h, int lfd) {
  for (int i = 0; i < 16; i++) {
    int x = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (x < 0) break;
    if (!same_user(x) || link_watch(h, x, C_LINK_IN) < 0) { close(x); continue; }
    h->conns[x].gen = ++h->relay.gen;
  }
}

/* A link is readable (or the relay listener has a connection). */
static void relay_event(handle_t *h, int fd, cb_t *cb) {
  relay_t *r = &h->relay;
  conn_t *c = &h->conns[fd];
  if (c->state == C_LINK_LISTEN) {
    relay_accept(h, fd);
    return;
  }
  for (int i = 0; i < 16 && !h->closing; i++) {
    if (c->state != C_LINK_IN && c->state != C_LINK_IN_OK && c->state != C_LINK_OUT) return;
    struct iovec iov = {r->rbuf, RELAY_PACK};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t k;
    do k = recvmsg(fd, &msg, MSG_DONTWAIT);
    while (k < 0 && errno == EINTR);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    int bad = k <= 0 || (msg.msg_flags & MSG_TRUNC);
    if (c->state == C_LINK_OUT) {
      /* EOF: the owner died; garbage: it is not an owner. Either way its requests are answered busy. */
      if (bad || relay_answers(h, c->relayed - 1, r->rbuf, (size_t)k, cb) < 0) {
        link_down(h, c->relayed - 1, cb);
        return;
      }
      continue;
    }
    if (bad) { link_close(h, fd); return; }
    if (c->state == C_LINK_IN) {
      /* The first message must be the secret: a process without it is dropped unread. */
      uint8_t diff = k == RELAY_SECRET ? 0 : 1;
      for (int j = 0; j < RELAY_SECRET && j < k; j++) diff |= r->rbuf[j] ^ r->secret[j];
      int slot = -1;
      for (int j = 0; j < RELAY_MAX_IN && slot < 0; j++)
        if (r->inq[j].fd < 0) slot = j;
      if (slot >= 0 && r->inq[slot].buf == NULL) r->inq[slot].buf = malloc(RELAY_PACK);
      if (diff || slot < 0 || r->inq[slot].buf == NULL) { link_close(h, fd); return; }
      c->state = C_LINK_IN_OK;
      c->family = (uint8_t)slot;
      r->inq[slot].fd = fd;
      r->inq[slot].gen = c->gen;
      r->inq[slot].len = 0;
      continue;
    }
    if (relay_requests(h, fd, r->rbuf, (size_t)k, cb) < 0) {
      link_close(h, fd); /* garbage: the link is dropped */
      return;
    }
  }
}

static void on_listen_readable(uv_poll_t *poll, int status, int events) {
  handle_t *h = (handle_t *)poll->data;
  if (h->env == NULL) { uv_poll_stop(poll); return; } /* the environment is going away */
  if (status < 0 || h->closing) return;
  napi_env env = h->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value recv, on_batch, on_short;
  if (callbacks(h, &recv, &on_batch, &on_short) < 0) { napi_close_handle_scope(env, scope); return; }
  int more = 1;
  for (int round = 0; round < MAX_ROUNDS && more && !h->closing; round++) {
    while (h->n < BATCH) {
      struct sockaddr_storage ss;
      socklen_t sl = sizeof ss;
      int fd = accept4(h->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if ((errno == EMFILE || errno == ENFILE) && h->spare >= 0) {
          /* Out of descriptors: accept and close one with the spare, so that the listener does
           * not stay readable and spin (libuv does the same). */
          close(h->spare);
          h->spare = -1;
          int x = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
          if (x >= 0) close(x);
          h->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        more = 0;
        break;
      }
      uint8_t *m = h->in_meta + h->n * META;
      meta_addr(m, &ss);
      ssize_t r;
      do r = read(fd, h->in_data + (size_t)h->n * IN_SLOT, IN_SLOT);
      while (r < 0 && errno == EINTR);
      /* Nothing to read yet (accepted after TCP_DEFER_ACCEPT's timeout): an empty entry, so that
       * JavaScript counts the connection (max_connections_per_ip) before it waits in the set. */
      if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) add_entry(h, fd, r > 0 ? r : 0, 1, 0);
      else close(fd);
    }
    if (flush(h, recv, on_batch, on_short) < 0) break;
  }
  napi_close_handle_scope(env, scope);
}

static void on_epoll_readable(uv_poll_t *poll, int status, int events) {
  handle_t *h = (handle_t *)poll->data;
  if (h->env == NULL) { uv_poll_stop(poll); return; } /* the environment is going away */
  if (status < 0 || h->closing) return;
  napi_env env = h->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value recv, on_batch, on_short;
  if (callbacks(h, &recv, &on_batch, &on_short) < 0) { napi_close_handle_scope(env, scope); return; }
  cb_t cb = {recv, on_batch, on_short};
  struct epoll_event evs[BATCH];
  for (int round = 0; round < MAX_ROUNDS && !h->closing; round++) {
    int k = epoll_wait(h->epfd, evs, BATCH, 0);
    if (k <= 0) break;
    uint64_t now = uv_now(h->loop);
    for (int j = 0; j < k; j++) {
      int fd = evs[j].data.fd;
      if (fd >= h->nconns) continue;
      conn_t *c = &h->conns[fd];
      if (c->state == C_PARKED_IN) {
        /* Bytes (or its end) came while it is parked: they wait in the kernel until complete(). */
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
        c->state = C_PARKED;
        continue;
      }
      if (c->state >= C_LINK_LISTEN) {
        relay_event(h, fd, &cb);
        if (h->closing) break;
        continue;
      }
      if (c->state != C_WAIT || room(h, &cb) < 0) continue;
      ssize_t r;
      uint8_t *slot = h->in_data + (size_t)h->n * IN_SLOT;
      do r = read(fd, slot, IN_SLOT);
      while (r < 0 && errno == EINTR);
      if (r > 0) {
        int t = h->relay.on ? relay_target(h, slot, (size_t)r) : -1;
        if (t >= 0 && relay_send(h, t, fd, slot, (size_t)r) == 0) continue;
        uint8_t *m = h->in_meta + h->n * META;
        meta_from_conn(m, c);
        uint64_t age = now - c->last;
        add_entry(h, fd, r, 0, age > 0xffffffffu ? 0xffffffffu : (uint32_t)age);
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        continue;
      } else {
        /* EOF or an error (ECONNRESET) on a waiting connection: an empty entry, which JavaScript
         * answers with CLOSE (and so learns that the connection is gone). */
        meta_from_conn(h->in_meta + h->n * META, c);
        add_entry(h, fd, 0, 0, 0);
      }
    }
    /* The requests relayed this round go out first: their owners work while this batch runs. */
    if (h->relay.on && !h->closing) relay_flush_out(h, &cb);
    if (h->closing || flush(h, recv, on_batch, on_short) < 0) break;
    if (k < BATCH) break;
  }
  napi_close_handle_scope(env, scope);
}

static void free_handle(handle_t *h) {
  for (int i = 0; i < RELAY_MAX_WORKERS; i++) free(h->relay.outq[i].buf);
  for (int i = 0; i < RELAY_MAX_IN; i++) free(h->relay.inq[i].buf);
  free(h->relay.rbuf);
  free(h->relay.busy);
  free(h->conns);
  free(h);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  handle_t *h = (handle_t *)data;
  if (h->lfd < 0 && h->open_handles == 0) { free_handle(h); } /* else freed on close */
  else h->env = NULL;
}

/*
 * open(family: 4|6, host: string, port: number, reusePort: boolean) -> handle (external); bound and
 * listening. reusePort: SO_REUSEPORT, so that every worker process binds the same address and the
 * kernel spreads connections over them (`herald serve --workers N`).
 */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) { napi_throw_error(env, NULL, "open: 4 arguments"); return NULL; }
  int32_t family, port;
  bool reuse_port = false;
  char host[64];
  size_t hl;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hl));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_bool(env, argv[3], &reuse_port));
  int af = family == 6 ? AF_INET6 : AF_INET;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (af == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) { napi_throw_error(env, NULL, "invalid IPv4 address"); return NULL; }
    sl = sizeof *a;
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) { napi_throw_error(env, NULL, "invalid IPv6 address"); return NULL; }
    sl = sizeof *a;
  }
  int fd = socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    napi_value r = throw_errno(env, "SO_REUSEPORT");
    close(fd);
    return r;
  }
  /* Accepted connections inherit it: answers leave at once, as from Node's sockets. */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* A connection is accepted once its first bytes have arrived (or after a second without
   * any, when it is accepted anyway and waits in the epoll set): the read right after accept
   * then finds the request, and a one-request connection costs no epoll registration, no
   * wake-up of its own and no empty read (nginx's `deferred`). */
  int defer = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer);
  /* IPv6-only, so that 0.0.0.0:P and [::]:P can be bound side by side. */
  if (af == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) { napi_value r = throw_errno(env, "bind"); close(fd); return r; }
  if (listen(fd, 511) < 0) { napi_value r = throw_errno(env, "listen"); close(fd); return r; }
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) { napi_value r = throw_errno(env, "epoll_create1"); close(fd); return r; }
  handle_t *h = calloc(1, sizeof *h);
  if (h == NULL) { close(fd); close(epfd); napi_throw_error(env, NULL, "out of memory"); return NULL; }
  h->env = env;
  h->lfd = fd;
  h->epfd = epfd;
  h->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  h->relay.lfd = -1;
  for (int i = 0; i < RELAY_MAX_WORKERS; i++) h->relay.out[i] = h->relay.outq[i].fd = -1;
  for (int i = 0; i < RELAY_MAX_IN; i++) h->relay.inq[i].fd = -1;
  napi_value ext;
  CHECK(napi_create_external(env, h, finalize_handle, NULL, &ext));
  return ext;
}

static handle_t *handle_arg(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_error(env, NULL, "http_batch: missing arguments");
    return NULL;
  }
  handle_t *h = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&h) != napi_ok) {
    napi_throw_error(env, NULL, "http_batch: not a handle");
    return NULL;
  }
  return h;
}

/* port(handle) -> bound port */
static napi_value js_port(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle_t *h = handle_arg(env, info, 1, argv);
  if (h == NULL) return NULL;
  napi_value r;
  CHECK(napi_create_int32(env, bound_port(h->lfd), &r));
  return r;
}

/* start(handle, inMeta, inData, outMeta, outData, cMeta, cData, ctl, onBatch, onShort) */
static napi_value js_start(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  handle_t *h = handle_arg(env, info, 10, argv);
  if (h == NULL) return NULL;
  if (h->started || h->closing) { napi_throw_error(env, NULL, "start: already started or closed"); return NULL; }
  size_t l1, l2, l3, l4, l5, l6, l7;
  buffer_of(env, argv[1], &h->in_meta, &l1);
  buffer_of(env, argv[2], &h->in_data, &l2);
  buffer_of(env, argv[3], &h->out_meta, &l3);
  buffer_of(env, argv[4], &h->out_data, &l4);
  buffer_of(env, argv[5], &h->c_meta, &l5);
  buffer_of(env, argv[6], &h->c_data, &l6);
  buffer_of(env, argv[7], &h->ctl, &l7);
  if (!h->in_meta || !h->in_data || !h->out_meta || !h->out_data || !h->c_meta || !h->c_data || !h->ctl ||
      l1 < BATCH * META || l2 < (size_t)BATCH * IN_SLOT || l3 < BATCH * META || l4 < 65536 ||
      l5 < BATCH * META || l6 < 65536 || l7 < 8) {
    h->ctl = NULL;
    napi_throw_error(env, NULL, "start: buffers too small");
    return NULL;
  }
  h->out_size = l4;
  h->c_size = l6;
  h->ctl[0] = 0;
  CHECK(napi_create_reference(env, argv[1], 1, &h->in_meta_ref));
  CHECK(napi_create_reference(env, argv[2], 1, &h->in_data_ref));
  CHECK(napi_create_reference(env, argv[3], 1, &h->out_meta_ref));
  CHECK(napi_create_reference(env, argv[4], 1, &h->out_data_ref));
  CHECK(napi_create_reference(env, argv[5], 1, &h->c_meta_ref));
  CHECK(napi_create_reference(env, argv[6], 1, &h->c_data_ref));
  CHECK(napi_create_reference(env, argv[7], 1, &h->ctl_ref));
  CHECK(napi_create_reference(env, argv[8], 1, &h->on_batch));
  CHECK(napi_create_reference(env, argv[9], 1, &h->on_short));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "HeraldHttpBatch", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &h->async));
  CHECK(napi_get_uv_event_loop(env, (struct uv_loop_s **)&h->loop));
  if (uv_poll_init(h->loop, &h->lpoll, h->lfd) != 0) { napi_throw_error(env, NULL, "uv_poll_init failed"); return NULL; }
  h->lpoll.data = h;
  h->open_handles++;
  if (uv_poll_init(h->loop, &h->epoll_poll, h->epfd) != 0) { napi_throw_error(env, NULL, "uv_poll_init failed"); return NULL; }
  h->epoll_poll.data = h;
  h->open_handles++;
  h->started = 1;
  uv_poll_start(&h->lpoll, UV_READABLE, on_listen_readable);
  uv_poll_start(&h->epoll_poll, UV_READABLE, on_epoll_readable);
  return NULL;
}

/*
 * sweep(handle, idleMs) -> descriptors closed (an array): those waiting for a request longer than
 * idleMs, and those parked longer (an answer that never came: a store that hangs).
 */
static napi_value js_sweep(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  handle_t *h = handle_arg(env, info, 2, argv);
  if (h == NULL) return NULL;
  double idle;
  CHECK(napi_get_value_double(env, argv[1], &idle));
  napi_value closed;
  CHECK(napi_create_array(env, &closed));
  uint32_t n = 0;
  if (h->started && !h->closing && h->waiting + h->parked > 0) {
    uv_update_time(h->loop);
    uint64_t now = uv_now(h->loop);
    for (int fd = 0; fd < h->nconns && h->waiting + h->parked > 0; fd++) {
      conn_t *c = &h->conns[fd];
      if (c->state != C_NONE && c->state < C_LINK_LISTEN && (double)(now - c->last) >= idle) {
        close_fd(h, fd);
        napi_value v;
        CHECK(napi_create_int32(env, fd, &v));
        CHECK(napi_set_element(env, closed, n++, v));
      }
    }
  }
  return closed;
}

/*
 * count(handle) -> [connections the addon holds (waiting or parked), of which parked, of which
 * parked on the relay, requests relayed to other workers, requests served for other workers,
 * answers sent back, relayed requests answered "busy" (their owner's link went down)]
 */
static napi_value js_count(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle_t *h = handle_arg(env, info, 1, argv);
  if (h == NULL) return NULL;
  napi_value r, v;
  double figures[7] = {h->waiting + h->parked, h->parked, h->relayed, h->relay.sent, h->relay.served,
                       h->relay.answered, h->relay.failed};
  CHECK(napi_create_array_with_length(env, 7, &r));
  for (uint32_t i = 0; i < 7; i++) {
    CHECK(napi_create_double(env, figures[i], &v));
    CHECK(napi_set_element(env, r, i, v));
  }
  return r;
}

/*
 * complete(handle) -> entries reported back (om[1] set, as for on_short), or -1 when refused (a
 * batch is being answered: ctl[0]; or closed). Acts on completion entries [0, n), n in ctl[4,8):
 * each for a parked connection (others are skipped, om[1] = 3), with its responses in the
 * completion arena.
 */
static napi_value js_complete(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle_t *h = handle_arg(env, info, 1, argv);
  if (h == NULL) return NULL;
  int32_t reported = 0;
  if (!h->started || h->closing || h->ctl[0] != 0) reported = -1;
  else {
    uint32_t n = get32(h->ctl + 4);
    if (n > BATCH) n = BATCH;
    for (uint32_t i = 0; i < n; i++) {
      uint8_t *om = h->c_meta + i * META;
      int fd = (int)get32(om + 16);
      if (om[2] == 1) {
        /* A relayed request's answer: back on its link ([32,40) its relay id, [40,44) the link's generation). */
        om[1] = 0;
        relay_reply(h, fd, get32(om + 40), om + 32, om, h->c_data, h->c_size);
        continue;
      }
      if (fd < 0 || fd >= h->nconns || (h->conns[fd].state != C_PARKED && h->conns[fd].state != C_PARKED_IN)) {
        om[1] = 3;
        reported++;
        continue;
      }
      reported += act(h, fd, om, h->c_data, h->c_size, NULL, h->conns[fd].full);
    }
    if (h->relay.on) relay_flush_in(h);
  }
  napi_value r;
  CHECK(napi_create_int32(env, reported, &r));
  return r;
}

/*
 * relay(handle, clusterId: string, index, count, secret: ArrayBuffer (32 bytes), busy: ArrayBuffer)
 * -> true when this worker's relay listener is bound. Starts the relay (see "Relay"): this
 * handle's waiting connections' announces for another worker's swarms are relayed to it, and
 * this worker serves theirs in its batches. `busy`: the whole response (Connection: close) a
 * relayed request gets when its owner's link goes down. Call after start().
 */
static napi_value js_relay(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  handle_t *h = handle_arg(env, info, 6, argv);
  if (h == NULL) return NULL;
  char cluster[48];
  size_t cl;
  int32_t index, count;
  uint8_t *secret, *busy;
  size_t sl, bl;
  CHECK(napi_get_value_string_utf8(env, argv[1], cluster, sizeof cluster, &cl));
  CHECK(napi_get_value_int32(env, argv[2], &index));
  CHECK(napi_get_value_int32(env, argv[3], &count));
  buffer_of(env, argv[4], &secret, &sl);
  buffer_of(env, argv[5], &busy, &bl);
  if (!h->started || h->closing || h->relay.on || count < 2 || count > RELAY_MAX_WORKERS || index < 0 ||
      index >= count || sl != RELAY_SECRET || bl == 0 || bl > 4096) {
    napi_throw_error(env, NULL, "relay: not started, already relaying, or bad arguments");
    return NULL;
  }
  relay_t *r = &h->relay;
  snprintf(r->prefix, sizeof r->prefix, "herald-relay-%s-", cluster);
  memcpy(r->secret, secret, RELAY_SECRET);
  if (r->rbuf == NULL) r->rbuf = malloc(RELAY_PACK);
  free(r->busy);
  r->busy = malloc(bl);
  if (r->rbuf == NULL || r->busy == NULL) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  memcpy(r->busy, busy, bl);
  r->busy_len = bl;
  r->index = index;
  r->count = count;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "relay socket");
  struct sockaddr_un a;
  socklen_t al = (socklen_t)unix_addr(&a, r->prefix, index);
  if (bind(fd, (struct sockaddr *)&a, al) < 0 || listen(fd, 128) < 0 || ensure_slot(h, fd) < 0) {
    napi_value e = throw_errno(env, "relay bind");
    close(fd);
    return e;
  }
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    napi_value e = throw_errno(env, "relay epoll");
    close(fd);
    return e;
  }
  memset(&h->conns[fd], 0, sizeof h->conns[fd]);
  h->conns[fd].state = C_LINK_LISTEN;
  r->lfd = fd;
  r->on = 1;
  napi_value t;
  CHECK(napi_get_boolean(env, true, &t));
  return t;
}

static void on_handle_closed(uv_handle_t *handle) {
  handle_t *h = (handle_t *)handle->data;
  if (--h->open_handles > 0) return;
  if (h->env == NULL) { free_handle(h); } /* the external was already finalized */
}

/* close(handle): closes the listener and every connection it holds (waiting or parked), at once */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle_t *h = handle_arg(env, info, 1, argv);
  if (h == NULL) return NULL;
  if (h->closing) return NULL;
  h->closing = 1;
  for (int fd = 0; fd < h->nconns; fd++)
    if (h->conns[fd].state != C_NONE) {
      h->conns[fd].state = C_NONE;
      close(fd);
    }
  h->waiting = h->parked = h->relayed = 0;
  for (int i = 0; i < RELAY_MAX_WORKERS; i++) {
    h->relay.out[i] = h->relay.outq[i].fd = -1;
    h->relay.outq[i].len = 0;
  }
  for (int i = 0; i < RELAY_MAX_IN; i++) {
    h->relay.inq[i].fd = -1;
    h->relay.inq[i].len = 0;
  }
  h->relay.lfd = -1;
  h->relay.on = 0;
  if (h->ctl != NULL) h->ctl[0] = 0;
  if (h->spare >= 0) close(h->spare);
  h->spare = -1;
  if (h->started) {
    /* uv_poll_stop takes the descriptors out of libuv's epoll set right away, so they can be
     * closed now (a client connecting after stop() is refused, not reset later). */
    uv_poll_stop(&h->lpoll);
    uv_poll_stop(&h->epoll_poll);
    napi_delete_reference(env, h->on_batch);
    napi_delete_reference(env, h->on_short);
    napi_delete_reference(env, h->in_meta_ref);
    napi_delete_reference(env, h->in_data_ref);
    napi_delete_reference(env, h->out_meta_ref);
    napi_delete_reference(env, h->out_data_ref);
    napi_delete_reference(env, h->c_meta_ref);
    napi_delete_reference(env, h->c_data_ref);
    napi_delete_reference(env, h->ctl_ref);
    napi_async_destroy(env, h->async);
    uv_close((uv_handle_t *)&h->lpoll, on_handle_closed);
    uv_close((uv_handle_t *)&h->epoll_poll, on_handle_closed);
  }
  close(h->lfd);
  close(h->epfd);
  h->lfd = h->epfd = -1;
  return NULL;
}

#include "conn_table.h"
#include "shared_swarms.h"

/* The interface JavaScript expects (src/frontend/http/batch.ts ABI): raise it with any change to
 * the buffers, the callbacks or what a function returns, so that a stale build is not loaded. */
#define ABI 4

static napi_value init(napi_env env, napi_value exports) {
  napi_value abi;
  if (napi_create_int32(env, ABI, &abi) != napi_ok || napi_set_named_property(env, exports, "abi", abi) != napi_ok)
    return NULL;
  napi_property_descriptor props[] = {
    {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
    {"port", NULL, js_port, NULL, NULL, NULL, napi_default, NULL},
    {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
    {"sweep", NULL, js_sweep, NULL, NULL, NULL, napi_default, NULL},
    {"count", NULL, js_count, NULL, NULL, NULL, napi_default, NULL},
    {"complete", NULL, js_complete, NULL, NULL, NULL, napi_default, NULL},
    {"relay", NULL, js_relay, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
    {"connTableCreate", NULL, js_conn_table_create, NULL, NULL, NULL, napi_default, NULL},
    {"connTableOpen", NULL, js_conn_table_open, NULL, NULL, NULL, napi_default, NULL},
    {"connAcquire", NULL, js_conn_acquire, NULL, NULL, NULL, napi_default, NULL},
    {"connRelease", NULL, js_conn_release, NULL, NULL, NULL, napi_default, NULL},
    {"connCount", NULL, js_conn_count, NULL, NULL, NULL, napi_default, NULL},
    {"sharedSwarmsCreate", NULL, js_ss_create, NULL, NULL, NULL, napi_default, NULL},
    {"sharedSwarmsOpen", NULL, js_ss_open, NULL, NULL, NULL, napi_default, NULL},
    {"sharedSwarmsAnnounce", NULL, js_ss_announce, NULL, NULL, NULL, napi_default, NULL},
    {"sharedSwarmsScrape", NULL, js_ss_scrape, NULL, NULL, NULL, napi_default, NULL},
    {"sharedSwarmsScrapeAll", NULL, js_ss_scrape_all, NULL, NULL, NULL, napi_default, NULL},
    {"sharedSwarmsSweep", NULL, js_ss_sweep, NULL, NULL, NULL, napi_default, NULL},
    {"sharedSwarmsDrop", NULL, js_ss_drop, NULL, NULL, NULL, napi_default, NULL},
    {"sharedSwarmsStats", NULL, js_ss_stats, NULL, NULL, NULL, napi_default, NULL},
    {"sharedSwarmsTestAbandon", NULL, js_ss_test_abandon, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  ct_define_test_hooks(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
