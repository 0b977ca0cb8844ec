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
 *   in meta, 32 bytes per entry: [0,4) fd (little-endian), [4,8) length read, [8] family (4|6),
 *     [9] 1 when accepted in this batch, [10,12) port (big-endian), [12,28) address (IPv4 in the
 *     first 4 bytes), [28,32) milliseconds since the connection's last answer (or its accept)
 *   in data, IN_SLOT bytes per entry
 *   out meta, 32 bytes per entry (same index as in): [0] action, [1] set by C: 1 the write was
 *     short, 2 the connection died (closed), [4,8) offset into out data, [8,12) length, [12,16)
 *     set by C: bytes written
 *   out data: the arena JavaScript packs responses into.
 *   completion meta, 32 bytes per entry: as out meta, and [16,20) fd; completion data: its arena.
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define ADDON_NAME "http_batch"
#define ADDON_ERR_CODE "ERR_HTTP_BATCH"
#include "addon_common.h"

#define BATCH 64
#define META 32
#define IN_SLOT 16384
#define MAX_ROUNDS 16

enum { ACT_CLOSE = 1, ACT_KEEP = 2, ACT_HANDOFF = 3, ACT_PARK = 4 };

/* Where a connection the addon holds is (conn_t.state). */
enum {
  C_NONE = 0, /* not held (or moved to a Node socket) */
  C_WAIT = 1, /* in the epoll set, waiting for its next request */
  C_PARKED_IN = 2, /* parked, still in the epoll set (taken out when it becomes readable) */
  C_PARKED = 3, /* parked, out of the epoll set */
};

/* A connection the addon holds (waiting or parked), indexed by its descriptor. */
typedef struct {
  uint8_t state;
  uint8_t full; /* parked: the read that parked it filled its slot (drain before a close) */
  uint8_t family;
  uint8_t port[2];
  uint8_t addr[16];
  uint64_t last; /* uv_now() of the accept or the last answer */
} conn_t;

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
static void forget(handle_t *h, int fd) {
  if (fd >= h->nconns) return;
  conn_t *c = &h->conns[fd];
  /* Removed explicitly: a forked child could still hold the description open. */
  if (c->state == C_WAIT || c->state == C_PARKED_IN) epoll_ctl(h->epfd, EPOLL_CTL_DEL, fd, NULL);
  if (c->state == C_WAIT) h->waiting--;
  else if (c->state != C_NONE) h->parked--;
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
  memset(m + 8, 0, 24);
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
    shorts += act(h, (int)get32(im), h->out_meta + i * META, h->out_data, h->out_size, im, h->full[i]);
  }
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
      if (c->state != C_WAIT) continue;
      ssize_t r;
      do r = read(fd, h->in_data + (size_t)h->n * IN_SLOT, IN_SLOT);
      while (r < 0 && errno == EINTR);
      if (r > 0) {
        uint8_t *m = h->in_meta + h->n * META;
        memset(m + 8, 0, 24);
        m[8] = c->family;
        memcpy(m + 10, c->port, 2);
        memcpy(m + 12, c->addr, 16);
        uint64_t age = now - c->last;
        add_entry(h, fd, r, 0, age > 0xffffffffu ? 0xffffffffu : (uint32_t)age);
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        continue;
      } else {
        /* EOF or an error (ECONNRESET) on a waiting connection: an empty entry, which JavaScript
         * answers with CLOSE (and so learns that the connection is gone). */
        uint8_t *m = h->in_meta + h->n * META;
        memset(m + 8, 0, 24);
        m[8] = c->family;
        memcpy(m + 10, c->port, 2);
        memcpy(m + 12, c->addr, 16);
        add_entry(h, fd, 0, 0, 0);
      }
    }
    if (flush(h, recv, on_batch, on_short) < 0) break;
    if (k < BATCH) break;
  }
  napi_close_handle_scope(env, scope);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  handle_t *h = (handle_t *)data;
  if (h->lfd < 0 && h->open_handles == 0) { free(h->conns); free(h); } /* else freed on close */
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
      if (c->state != C_NONE && (double)(now - c->last) >= idle) {
        close_fd(h, fd);
        napi_value v;
        CHECK(napi_create_int32(env, fd, &v));
        CHECK(napi_set_element(env, closed, n++, v));
      }
    }
  }
  return closed;
}

/* count(handle) -> [connections the addon holds (waiting or parked), of which parked] */
static napi_value js_count(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle_t *h = handle_arg(env, info, 1, argv);
  if (h == NULL) return NULL;
  napi_value r, held, parked;
  CHECK(napi_create_array_with_length(env, 2, &r));
  CHECK(napi_create_int32(env, h->waiting + h->parked, &held));
  CHECK(napi_create_int32(env, h->parked, &parked));
  CHECK(napi_set_element(env, r, 0, held));
  CHECK(napi_set_element(env, r, 1, parked));
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
      if (fd < 0 || fd >= h->nconns || (h->conns[fd].state != C_PARKED && h->conns[fd].state != C_PARKED_IN)) {
        om[1] = 3;
        reported++;
        continue;
      }
      reported += act(h, fd, om, h->c_data, h->c_size, NULL, h->conns[fd].full);
    }
  }
  napi_value r;
  CHECK(napi_create_int32(env, reported, &r));
  return r;
}

static void on_handle_closed(uv_handle_t *handle) {
  handle_t *h = (handle_t *)handle->data;
  if (--h->open_handles > 0) return;
  if (h->env == NULL) { free(h->conns); free(h); } /* the external was already finalized */
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
  h->waiting = h->parked = 0;
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

/* The interface JavaScript expects (src/frontend/http/batch.ts ABI): raise it with any change to
 * the buffers, the callbacks or what a function returns, so that a stale build is not loaded. */
#define ABI 3

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
    {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
