/*
 * The kernel's share of steering by info hash (bench/udp-steer.ts runs it): CPU per datagram of
 * the loopback send and receive path into each socket layout, with the reuseport program of
 * native/src/reuseport_steer.h (the one the addon attaches) and without. All layouts are open at
 * once; each iteration sends one batch of 64 announces (98 bytes, random info hashes) to each
 * layout in a rotating order and drains it, adding the thread's CPU time to that layout, so that
 * drift on a shared machine falls on every layout alike.
 *
 *   udp-steer-kernel ITERATIONS
 *
 * Prints one JSON line: {"<layout>": nanoseconds per datagram, ...}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../native/src/reuseport_steer.h"

#define LAYOUTS 5
#define BATCH 64
static const char *names[LAYOUTS] = {"plain", "reuseport", "steer1", "steer2", "steer4"};
static const int nsock[LAYOUTS] = {1, 1, 1, 2, 4}; /* reuseport: SO_REUSEPORT, no program */
static int fds[LAYOUTS][4];
static struct sockaddr_in to[LAYOUTS];

static uint64_t cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static void open_layout(int l) {
  int port = 0;
  for (int i = 0; i < nsock[l]; i++) {
    int fd = fds[l][i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int one = 1, buf = 8 << 20;
    if (l >= 1) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (i == 0 && l >= 2) {
      struct sock_filter f[STEER_LEN];
      steer_program(f, (uint32_t)nsock[l]);
      struct sock_fprog p = {STEER_LEN, f};
      if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &p, sizeof p)) { perror("attach"); exit(1); }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a)) { perror("bind"); exit(1); }
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    port = ntohs(a.sin_port);
  }
  to[l] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &to[l].sin_addr);
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 6000;
  static uint8_t pk[BATCH][98], rb[BATCH][2048];
  struct mmsghdr sm[BATCH], rm[BATCH];
  struct iovec si[BATCH], ri[BATCH];
  for (int i = 0; i < BATCH; i++) {
    memset(pk[i], 0, 98);
    pk[i][11] = 1; /* action: announce */
    si[i] = (struct iovec){pk[i], 98};
    ri[i] = (struct iovec){rb[i], sizeof rb[i]};
    memset(&rm[i], 0, sizeof rm[i]);
    rm[i].msg_hdr.msg_iov = &ri[i];
    rm[i].msg_hdr.msg_iovlen = 1;
  }
  for (int l = 0; l < LAYOUTS; l++) open_layout(l);
  int c = socket(AF_INET, SOCK_DGRAM, 0);
  uint32_t x = 12345;
  uint64_t cpu[LAYOUTS] = {0};
  long got[LAYOUTS] = {0};
  for (int it = 0; it < iters; it++) {
    for (int k = 0; k < LAYOUTS; k++) {
      int l = (it + k) % LAYOUTS;
      for (int i = 0; i < BATCH; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        memcpy(pk[i] + 16, &x, 4); /* the info hash's first word */
        memset(&sm[i], 0, sizeof sm[i]);
        sm[i].msg_hdr.msg_iov = &si[i];
        sm[i].msg_hdr.msg_iovlen = 1;
        sm[i].msg_hdr.msg_name = &to[l];
        sm[i].msg_hdr.msg_namelen = sizeof to[l];
      }
      uint64_t t0 = cpu_ns();
      if (sendmmsg(c, sm, BATCH, 0) != BATCH) { perror("sendmmsg"); return 1; }
      for (int s = 0; s < nsock[l]; s++) {
        int g;
        while ((g = recvmmsg(fds[l][s], rm, BATCH, MSG_DONTWAIT, NULL)) > 0) got[l] += g;
      }
      cpu[l] += cpu_ns() - t0;
    }
  }
  printf("{");
  for (int l = 0; l < LAYOUTS; l++) {
    if (got[l] != (long)iters * BATCH) { fprintf(stderr, "%s: %ld of %d received\n", names[l], got[l], iters * BATCH); return 1; }
    printf("%s\"%s\":%.1f", l ? "," : "", names[l], cpu[l] / (double)got[l]);
  }
  printf("}\n");
  return 0;
}
