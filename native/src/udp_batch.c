/*
 * Batched UDP I/O for Herald's UDP tracker frontend (DESIGN.md: a `dgram` socket costs about
 * 11 us of CPU per packet; recvmmsg/sendmmsg in batches cost about 4).
 *
 * One non-blocking socket per handle, watched by a uv_poll_t on Node's own event loop (readiness
 * from libuv, no busy polling: an idle tracker uses no CPU). When readable, up to 64 datagrams
 * are read with one recvmmsg into a shared input buffer, JavaScript is called once with the
 * count, writes its replies into a shared output buffer and returns how many, and they leave
 * with one sendmmsg. Up to 16 batches per wake-up, then back to the loop so other work runs.
 *
 * Buffer layout (shared ArrayBuffers, owned by JavaScript):
 *   meta, 32 bytes per slot: [0,16) address (IPv4 in the first 4 bytes), [16] family (4 or 6),
 *                            [18,20) port (big-endian), [20,24) length (little-endian)
 *   data, SLOT bytes per slot.
 * The input and output sides each have their own meta and data buffers.
 *
 * Replies go out of the socket the request came in on; a socket bound to a specific address
 * therefore answers from that address (bind one socket per address to serve several).
 *
 * Workers: openGroup opens a SO_REUSEPORT group whose sockets receive announces and scrapes by
 * info hash (see "Steering by info hash" below), and a worker process serves the socket it
 * inherited through adopt.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define ADDON_NAME "udp_batch"
#define ADDON_ERR_CODE NULL
#include "addon_common.h"
#include "reuseport_steer.h"

#define BATCH 64
#define META 32
#define MAX_ROUNDS 16

typedef struct {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int family;
  int closing;
  int started;   /* a poll handle refers to h until on_poll_closed */
  int finalized; /* JavaScript dropped the handle: on_poll_closed frees h */
  napi_ref callback;
  napi_ref in_meta_ref, in_data_ref, out_meta_ref, out_data_ref;
  napi_async_context async;
  uint8_t *in_meta, *in_data, *out_meta, *out_data;
  size_t in_slot, out_slot;
  struct mmsghdr rmsg[BATCH], smsg[BATCH];
  struct iovec riov[BATCH], siov[BATCH];
  struct sockaddr_storage raddr[BATCH], saddr[BATCH];
} handle_t;

static void write_meta(uint8_t *m, const struct sockaddr_storage *ss, uint32_t len) {
  memset(m, 0, META);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    memcpy(m, &a->sin_addr, 4);
    m[16] = 4;
    memcpy(m + 18, &a->sin_port, 2);
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    memcpy(m, &a->sin6_addr, 16);
    m[16] = 6;
    memcpy(m + 18, &a->sin6_port, 2);
  }
  m[20] = len & 0xff; m[21] = (len >> 8) & 0xff; m[22] = (len >> 16) & 0xff; m[23] = (len >> 24) & 0xff;
}

static socklen_t read_meta(const uint8_t *m, struct sockaddr_storage *ss, int sock_family, uint32_t *len) {
  *len = m[20] | (m[21] << 8) | (m[22] << 16) | ((uint32_t)m[23] << 24);
  memset(ss, 0, sizeof *ss);
  if (sock_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    memcpy(&a->sin_addr, m, 4);
    memcpy(&a->sin_port, m + 18, 2);
    return sizeof *a;
  }
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
  a->sin6_family = AF_INET6;
  if (m[16] == 4) { /* an IPv4 peer on a dual-stack socket: IPv4-mapped */
    a->sin6_addr.s6_addr[10] = 0xff; a->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&a->sin6_addr.s6_addr[12], m, 4);
  } else {
    memcpy(&a->sin6_addr, m, 16);
  }
  memcpy(&a->sin6_port, m + 18, 2);
  return sizeof *a;
}

/* Points message m at one datagram: `len` bytes at `base`, to `addr`. */
static void set_msg(struct mmsghdr *m, struct iovec *iov, void *base, size_t len, struct sockaddr_storage *addr,
                    socklen_t alen) {
  iov->iov_base = base;
  iov->iov_len = len;
  memset(&m->msg_hdr, 0, sizeof m->msg_hdr);
  m->msg_hdr.msg_iov = iov;
  m->msg_hdr.msg_iovlen = 1;
  m->msg_hdr.msg_name = addr;
  m->msg_hdr.msg_namelen = alen;
}

/* Sends k prepared datagrams with sendmmsg; returns how many the kernel took. */
static int send_all(int fd, struct mmsghdr *msg, int k) {
  int sent = 0, took = 0;
  while (sent < k) {
    int r = sendmmsg(fd, msg + sent, k - sent, MSG_DONTWAIT);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) sent++; /* skip an unsendable datagram */
      else break; /* socket buffer full: drop the rest, as a kernel would */
    } else {
      sent += r;
      took += r;
    }
  }
  return took;
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  handle_t *h = (handle_t *)poll->data;
  if (status < 0 || h->closing) return;
  napi_env env = h->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[1], result;
  napi_get_reference_value(env, h->callback, &cb);
  napi_get_global(env, &recv); /* napi_make_callback needs an object as `this` */
  for (int round = 0; round < MAX_ROUNDS && !h->closing; round++) {
    for (int i = 0; i < BATCH; i++) {
      h->riov[i].iov_base = h->in_data + i * h->in_slot;
      h->riov[i].iov_len = h->in_slot;
      memset(&h->rmsg[i].msg_hdr, 0, sizeof h->rmsg[i].msg_hdr);
      h->rmsg[i].msg_hdr.msg_iov = &h->riov[i];
      h->rmsg[i].msg_hdr.msg_iovlen = 1;
      h->rmsg[i].msg_hdr.msg_name = &h->raddr[i];
      h->rmsg[i].msg_hdr.msg_namelen = sizeof h->raddr[i];
    }
    int n = recvmmsg(h->fd, h->rmsg, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) {
      uint32_t len = h->rmsg[i].msg_len;
      if (h->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) len = (uint32_t)h->in_slot + 1; /* oversized: JS drops it */
      write_meta(h->in_meta + i * META, &h->raddr[i], len);
    }
    napi_create_uint32(env, (uint32_t)n, &argv[0]);
    if (napi_make_callback(env, h->async, recv, cb, 1, argv, &result) != napi_ok) {
      /* The JS callback threw: leave it to Node's uncaught exception handling. */
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
      break;
    }
    uint32_t m = 0;
    if (napi_get_value_uint32(env, result, &m) != napi_ok) m = 0;
    if (m > BATCH) m = BATCH;
    int k = 0;
    for (uint32_t i = 0; i < m; i++) {
      uint32_t len;
      socklen_t alen = read_meta(h->out_meta + i * META, &h->saddr[k], h->family, &len);
      if (len == 0 || len > h->out_slot) continue;
      set_msg(&h->smsg[k], &h->siov[k], h->out_data + i * h->out_slot, len, &h->saddr[k], alen);
      k++;
    }
    send_all(h->fd, h->smsg, k);
    if (n < BATCH) break;
  }
  napi_close_handle_scope(env, scope);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  handle_t *h = (handle_t *)data;
  /* Closed, or never started: no poll handle refers to h; else on_poll_closed frees it. An
   * unclosed descriptor stays open: descriptors are closed by close(), never by the collector. */
  if (h->fd < 0 || !h->started) free(h);
  else h->finalized = 1;
}

/* A handle (external) serving fd. */
static napi_value wrap_handle(napi_env env, int fd, int af) {
  handle_t *h = calloc(1, sizeof *h);
  if (!h) { napi_throw_error(env, NULL, ADDON_NAME ": out of memory"); return NULL; }
  h->env = env;
  h->fd = fd;
  h->family = af;
  napi_value ext;
  if (napi_create_external(env, h, finalize_handle, NULL, &ext) != napi_ok) {
    free(h);
    napi_throw_error(env, NULL, ADDON_NAME ": napi_create_external failed");
    return NULL;
  }
  return ext;
}

/*
 * A bound, non-blocking, close-on-exec UDP socket, or -1 with a JavaScript error thrown. With
 * reuse, SO_REUSEPORT; with prog, that reuseport program is attached before bind, so the group
 * has it from the moment it exists.
 */
static int bind_udp(napi_env env, int af, const char *host, int port, int reuse, const struct sock_fprog *prog) {
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { throw_errno(env, "socket"); return -1; }
  int one = 1;
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (prog && setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, prog, sizeof *prog) < 0) {
    throw_errno(env, "SO_ATTACH_REUSEPORT_CBPF");
    close(fd);
    return -1;
  }
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  if (af == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) { close(fd); napi_throw_error(env, NULL, "invalid IPv4 address"); return -1; }
    sl = sizeof *a;
  } else {
    /* IPv6-only, so that 0.0.0.0:P and [::]:P can be bound side by side. */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) { close(fd); napi_throw_error(env, NULL, "invalid IPv6 address"); return -1; }
    sl = sizeof *a;
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) { throw_errno(env, "bind"); close(fd); return -1; }
  return fd;
}

/* The (family: 4|6, host, port) arguments open and openGroup begin with; 0, or -1 with an error thrown. */
static int address_args(napi_env env, napi_value *argv, int *af, char *host, size_t host_size, int32_t *port) {
  int32_t family;
  size_t hl;
  if (napi_get_value_int32(env, argv[0], &family) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], host, host_size, &hl) != napi_ok ||
      napi_get_value_int32(env, argv[2], port) != napi_ok) {
    napi_throw_type_error(env, NULL, ADDON_NAME ": expected (family, host, port, ...)");
    return -1;
  }
  if (*port < 0 || *port > 65535) { napi_throw_range_error(env, NULL, ADDON_NAME ": port must be 0..65535"); return -1; }
  *af = family == 6 ? AF_INET6 : AF_INET;
  return 0;
}

/* open(family: 4|6, host: string, port: number, reusePort: boolean) -> handle (external) */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int af;
  int32_t port;
  bool reuse = false;
  char host[64];
  if (argc < 3) { napi_throw_error(env, NULL, "open: 4 arguments"); return NULL; }
  if (address_args(env, argv, &af, host, sizeof host, &port) < 0) return NULL;
  if (argc > 3) napi_get_value_bool(env, argv[3], &reuse);
  int fd = bind_udp(env, af, host, port, reuse, NULL);
  if (fd < 0) return NULL;
  napi_value ext = wrap_handle(env, fd, af);
  if (!ext) close(fd);
  return ext;
}

/*
 * Steering by info hash (the program and what the kernel does with its answer: reuseport_steer.h).
 *
 * The program is attached to socket 0 before it binds. That gives the group its program from the
 * moment it exists, and it makes a second openGroup on a port a group already holds fail with
 * EADDRINUSE instead of silently joining the first group (the kernel lets a socket join another's
 * group only if it has no group of its own yet: udp_lib_lport_inuse), where its sockets would sit
 * at indices >= n and receive no steered datagrams. A plain SO_REUSEPORT socket of the same user
 * could still join (at index n or later: it would receive only some non-steered datagrams).
 *
 * Indices follow bind order only while every socket stays open: closing one moves the last
 * socket into its place (__reuseport_detach_sock). The process that opened the group keeps its
 * descriptors open for as long as the group serves, so a worker that exits leaves its socket
 * (and its queued datagrams) in place for the worker that replaces it.
 */
#define STEER_MAX_GROUP 1024

/* openGroup(family: 4|6, host: string, port: number, n: number) -> fds: number[] (index i = socket i) */
static napi_value js_open_group(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int af;
  int32_t port, n;
  char host[64];
  if (argc < 4) { napi_throw_error(env, NULL, "openGroup: 4 arguments"); return NULL; }
  if (address_args(env, argv, &af, host, sizeof host, &port) < 0) return NULL;
  CHECK(napi_get_value_int32(env, argv[3], &n));
  if (n < 1 || n > STEER_MAX_GROUP) { napi_throw_range_error(env, NULL, "openGroup: n must be 1..1024"); return NULL; }
  struct sock_filter f[STEER_LEN];
  steer_program(f, (uint32_t)n);
  struct sock_fprog prog = {.len = STEER_LEN, .filter = f};
  int fds[STEER_MAX_GROUP];
  for (int i = 0; i < n; i++) {
    /* Port 0: the first socket picks one, the rest join it there. */
    fds[i] = bind_udp(env, af, host, i == 0 ? port : bound_port(fds[0]), 1, i == 0 ? &prog : NULL);
    if (fds[i] < 0) {
      for (int k = 0; k < i; k++) close(fds[k]);
      return NULL;
    }
  }
  napi_value arr;
  if (napi_create_array_with_length(env, (size_t)n, &arr) == napi_ok) {
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
      napi_value v;
      ok = napi_create_int32(env, fds[i], &v) == napi_ok && napi_set_element(env, arr, (uint32_t)i, v) == napi_ok;
    }
    if (ok) return arr;
  }
  for (int i = 0; i < n; i++) close(fds[i]);
  napi_throw_error(env, NULL, ADDON_NAME ": openGroup: could not build the result");
  return NULL;
}

/*
 * sendTo(handle, meta, data) -> bytes sent (0 if the kernel could not take it now: UDP, dropped)
 * One reply outside a batch: an answer that came later than its batch (another worker's swarm,
 * issue #13). `meta` is a 32-byte slot as in the batch buffers (address, family, port, length).
 *
 * sendMany(handle, meta, data, slot, count) -> datagrams the kernel took
 * Several replies outside a batch in one sendmmsg (issue #14: the answers of an asynchronous
 * store, such as one Redis call's batch of announces, arrive together): reply i is the first
 * `length` bytes of data[i * slot, (i + 1) * slot), to the address of meta slot i. At most BATCH.
 */
static napi_value send_replies(napi_env env, napi_callback_info info, int many) {
  size_t n = many ? 5 : 3, argc = n;
  napi_value argv[5], r;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < n) {
    napi_throw_error(env, NULL, many ? "sendMany: 5 arguments" : "sendTo: 3 arguments");
    return NULL;
  }
  handle_t *h;
  CHECK(napi_get_value_external(env, argv[0], (void **)&h));
  uint8_t *meta, *data;
  size_t ml, dl;
  buffer_of(env, argv[1], &meta, &ml);
  buffer_of(env, argv[2], &data, &dl);
  uint32_t slot = (uint32_t)dl, count = 1;
  if (many) {
    CHECK(napi_get_value_uint32(env, argv[3], &slot));
    CHECK(napi_get_value_uint32(env, argv[4], &count));
  }
  if (count > BATCH) count = BATCH;
  if (!meta || !data || h->fd < 0 || h->closing) count = 0;
  if (count > 0 && (size_t)count * META > ml) count = (uint32_t)(ml / META);
  if (count > 0 && (size_t)count * slot > dl) count = slot > 0 ? (uint32_t)(dl / slot) : 0;
  struct mmsghdr msg[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage addr[BATCH];
  int k = 0;
  uint32_t bytes = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t len;
    socklen_t alen = read_meta(meta + i * META, &addr[k], h->family, &len);
    if (!many && len > slot) len = slot; /* sendTo: at most the data given */
    if (len == 0 || len > slot) continue;
    set_msg(&msg[k], &iov[k], data + (size_t)i * slot, len, &addr[k], alen);
    bytes = len;
    k++;
  }
  int took = send_all(h->fd, msg, k);
  CHECK(napi_create_int32(env, many ? took : (took == 1 ? (int32_t)bytes : 0), &r));
  return r;
}

static napi_value js_send_to(napi_env env, napi_callback_info info) { return send_replies(env, info, 0); }

static napi_value js_send_many(napi_env env, napi_callback_info info) { return send_replies(env, info, 1); }

/*
 * adopt(fd) -> handle: serves a UDP socket this process inherited (a worker spawned with a group
 * socket in its stdio array gets it as that index; libuv dup2()s it there, which leaves the
 * child's copy open across exec even though openGroup made the parent's close-on-exec). The
 * handle owns the descriptor from now on: close(handle) closes it. Marked close-on-exec here so
 * the worker's own children do not inherit it.
 */
static napi_value js_adopt(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  int type = 0, proto = 0;
  socklen_t tl = sizeof type, pl = sizeof proto;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) != 0 || type != SOCK_DGRAM || proto != IPPROTO_UDP ||
      getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
    char msg[96];
    snprintf(msg, sizeof msg, "adopt: descriptor %d is not a UDP socket", (int)fd);
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
    return throw_errno(env, "adopt: fcntl");
  return wrap_handle(env, fd, ss.ss_family);
}

/* port(handle) -> bound port */
static napi_value js_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  handle_t *h;
  CHECK(napi_get_value_external(env, argv[0], (void **)&h));
  napi_value r;
  CHECK(napi_create_int32(env, bound_port(h->fd), &r));
  return r;
}

/* start(handle, inMeta, inData, inSlot, outMeta, outData, outSlot, callback) */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) { napi_throw_error(env, NULL, "start: 8 arguments"); return NULL; }
  handle_t *h;
  CHECK(napi_get_value_external(env, argv[0], (void **)&h));
  size_t l1, l2, l3, l4;
  uint32_t in_slot, out_slot;
  buffer_of(env, argv[1], &h->in_meta, &l1);
  buffer_of(env, argv[2], &h->in_data, &l2);
  CHECK(napi_get_value_uint32(env, argv[3], &in_slot));
  buffer_of(env, argv[4], &h->out_meta, &l3);
  buffer_of(env, argv[5], &h->out_data, &l4);
  CHECK(napi_get_value_uint32(env, argv[6], &out_slot));
  if (!h->in_meta || !h->in_data || !h->out_meta || !h->out_data || l1 < BATCH * META || l3 < BATCH * META ||
      l2 < (size_t)BATCH * in_slot || l4 < (size_t)BATCH * out_slot) {
    napi_throw_error(env, NULL, "start: buffers too small");
    return NULL;
  }
  h->in_slot = in_slot;
  h->out_slot = out_slot;
  CHECK(napi_create_reference(env, argv[1], 1, &h->in_meta_ref));
  CHECK(napi_create_reference(env, argv[2], 1, &h->in_data_ref));
  CHECK(napi_create_reference(env, argv[4], 1, &h->out_meta_ref));
  CHECK(napi_create_reference(env, argv[5], 1, &h->out_data_ref));
  CHECK(napi_create_reference(env, argv[7], 1, &h->callback));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "HeraldUdpBatch", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &h->async));
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, (struct uv_loop_s **)&loop));
  if (uv_poll_init(loop, &h->poll, h->fd) != 0) { napi_throw_error(env, NULL, "uv_poll_init failed"); return NULL; }
  h->poll.data = h;
  h->started = 1;
  uv_poll_start(&h->poll, UV_READABLE, on_readable);
  return NULL;
}

static void on_poll_closed(uv_handle_t *handle) {
  handle_t *h = (handle_t *)handle->data;
  close(h->fd);
  h->fd = -1;
  if (h->finalized) free(h); /* else the external's finalizer frees h when JS drops the handle */
}

/* close(handle) */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  handle_t *h;
  CHECK(napi_get_value_external(env, argv[0], (void **)&h));
  if (h->closing) return NULL;
  h->closing = 1;
  if (h->callback) {
    uv_poll_stop(&h->poll);
    napi_delete_reference(env, h->callback);
    napi_delete_reference(env, h->in_meta_ref);
    napi_delete_reference(env, h->in_data_ref);
    napi_delete_reference(env, h->out_meta_ref);
    napi_delete_reference(env, h->out_data_ref);
    napi_async_destroy(env, h->async);
    h->callback = NULL;
    uv_close((uv_handle_t *)&h->poll, on_poll_closed);
  } else {
    close(h->fd);
    h->fd = -1;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
    {"openGroup", NULL, js_open_group, NULL, NULL, NULL, napi_default, NULL},
    {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_default, NULL},
    {"sendTo", NULL, js_send_to, NULL, NULL, NULL, napi_default, NULL},
    {"sendMany", NULL, js_send_many, NULL, NULL, NULL, napi_default, NULL},
    {"port", NULL, js_port, NULL, NULL, NULL, napi_default, NULL},
    {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
