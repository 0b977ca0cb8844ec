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
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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

#define BATCH 64
#define META 32
#define MAX_ROUNDS 16

typedef struct {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int family;
  int closing;
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
      h->siov[k].iov_base = h->out_data + i * h->out_slot;
      h->siov[k].iov_len = len;
      memset(&h->smsg[k].msg_hdr, 0, sizeof h->smsg[k].msg_hdr);
      h->smsg[k].msg_hdr.msg_iov = &h->siov[k];
      h->smsg[k].msg_hdr.msg_iovlen = 1;
      h->smsg[k].msg_hdr.msg_name = &h->saddr[k];
      h->smsg[k].msg_hdr.msg_namelen = alen;
      k++;
    }
    int sent = 0;
    while (sent < k) {
      int r = sendmmsg(h->fd, h->smsg + sent, k - sent, MSG_DONTWAIT);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) sent++; /* skip an unsendable datagram */
        else break; /* socket buffer full: drop the rest, as a kernel would */
      } else sent += r;
    }
    if (n < BATCH) break;
  }
  napi_close_handle_scope(env, scope);
}

/* open(family: 4|6, host: string, port: number, reusePort: boolean) -> handle (external) */
static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  handle_t *h = (handle_t *)data;
  if (h->fd < 0) free(h); /* closed: the poll handle is gone; else it is freed on close */
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family, port;
  bool reuse = false;
  char host[64];
  size_t hl;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hl));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  if (argc > 3) napi_get_value_bool(env, argv[3], &reuse);
  int af = family == 6 ? AF_INET6 : AF_INET;
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket");
  int one = 1;
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
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
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) { close(fd); napi_throw_error(env, NULL, "invalid IPv4 address"); return NULL; }
    sl = sizeof *a;
  } else {
    /* IPv6-only, so that 0.0.0.0:P and [::]:P can be bound side by side. */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) { close(fd); napi_throw_error(env, NULL, "invalid IPv6 address"); return NULL; }
    sl = sizeof *a;
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) { napi_value r = throw_errno(env, "bind"); close(fd); return r; }
  handle_t *h = calloc(1, sizeof *h);
  h->env = env;
  h->fd = fd;
  h->family = af;
  napi_value ext;
  CHECK(napi_create_external(env, h, finalize_handle, NULL, &ext));
  return ext;
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
  uv_poll_start(&h->poll, UV_READABLE, on_readable);
  return NULL;
}

static void on_poll_closed(uv_handle_t *handle) {
  handle_t *h = (handle_t *)handle->data;
  close(h->fd);
  h->fd = -1;
  /* The external's finalizer frees h when JS drops the handle object. */
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
    {"port", NULL, js_port, NULL, NULL, NULL, napi_default, NULL},
    {"start", NULL, js_start, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
