/*
 * Pieces both batched addons (udp_batch.c, http_batch.c) use. Include after defining
 * ADDON_NAME (the prefix of error messages) and ADDON_ERR_CODE (the error code of a failed
 * system call that is neither EADDRINUSE nor EACCES, or NULL for none).
 */
#ifndef HERALD_ADDON_COMMON_H
#define HERALD_ADDON_COMMON_H

#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* A failed N-API call throws "<addon>: <call> failed" and returns NULL from the calling function. */
#define CHECK(call)                                                    \
  do {                                                                 \
    if ((call) != napi_ok) {                                           \
      napi_throw_error(env, NULL, ADDON_NAME ": " #call " failed");    \
      return NULL;                                                     \
    }                                                                  \
  } while (0)

/* Throws "<what>: <strerror(errno)>" (or "<what>: failed (no error code)" when errno is 0) with the errno's code (EADDRINUSE, EACCES, ADDON_ERR_CODE). */
static inline napi_value throw_errno(napi_env env, const char *what) {
  char msg[256];
  const char *code = errno == EADDRINUSE ? "EADDRINUSE" : errno == EACCES ? "EACCES" : ADDON_ERR_CODE;
  /* Never "Success": a caller that reaches here without errno set (a short read) still says what failed. */
  snprintf(msg, sizeof msg, "%s: %s", what, errno != 0 ? strerror(errno) : "failed (no error code)");
  napi_throw_error(env, code, msg);
  return NULL;
}

/* The data and length of an ArrayBuffer argument (length 0 when it is not one). */
static inline void buffer_of(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  void *p = NULL;
  *len = 0;
  napi_get_arraybuffer_info(env, v, &p, len);
  *data = (uint8_t *)p;
}

/* The port a socket is bound to, or 0. */
static inline int bound_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return 0;
  return ss.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                 : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

#endif
