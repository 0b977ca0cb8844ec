/*
 * UDP tracker load generator for `npm run bench` (BEP 15). Built by the bench with the system C
 * compiler. One process, one core: a closed loop keeping WINDOW requests in flight, batching its
 * own socket calls with sendmmsg/recvmmsg so that it can load a tracker faster than the fastest
 * tracker answers.
 *
 *   udp-load HOST PORT[,PORT...] MODE SECONDS WINDOW TORRENTS PEERS_PER_TORRENT SEED
 *     MODE: announce | scrape | fill (announce every (torrent, peer) pair once, then stop)
 *           | hashes (print the info hashes, 40 hex digits a line, for opentracker -w)
 *
 * Requests vary info hashes, peer ids, ports and events like real clients. Every response is
 * checked: action, transaction id, size; invalid and missing (timed out) responses are counted.
 * With several ports (up to 8; the bench's floor row: independent trackers side by side), each
 * port has its own socket and connection id, and torrent t goes to port t % ports: every tracker
 * holds its share of the swarms, and the one window is shared by all of them.
 * Prints one JSON line: sent, ok, invalid, missing, seconds, rps, p50_us, p99_us, max_us, cpu_s.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXWIN 4096
#define PKT 128
#define RESP 2048
#define MAXPORTS 8

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}
static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17; return rng_state;
}
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint32_t get32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static void put64(uint8_t *p, uint64_t v) { put32(p, v >> 32); put32(p + 4, (uint32_t)v); }
static int cmp64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b; return x < y ? -1 : x > y;
}

static void info_hash(uint8_t *out, uint32_t t) {
  /* Deterministic per torrent index so every tracker sees the same hashes (opentracker -w list). */
  uint64_t x = 0x9e3779b97f4a7c15ull * (t + 1);
  for (int i = 0; i < 20; i++) { x ^= x >> 29; x *= 0xbf58476d1ce4e5b9ull; x ^= x >> 32; out[i] = (uint8_t)x; }
}

int main(int argc, char **argv) {
  if (argc < 9) { fprintf(stderr, "usage: udp-load HOST PORT MODE SECONDS WINDOW TORRENTS PEERS SEED\n"); return 2; }
  const char *host = argv[1]; const char *mode = argv[3];
  int ports[MAXPORTS], nports = 0;
  for (char *q = argv[2]; *q && nports < MAXPORTS; q++) {
    ports[nports++] = atoi(q);
    while (*q && *q != ',') q++;
    if (!*q) break;
  }
  double seconds = atof(argv[4]); int window = atoi(argv[5]); uint32_t torrents = (uint32_t)atol(argv[6]);
  uint32_t peers = (uint32_t)atol(argv[7]); rng_state = strtoull(argv[8], 0, 10) | 1;
  if (window > MAXWIN) window = MAXWIN;
  if (strcmp(mode, "hashes") == 0) { /* the whitelist for opentracker -w: 40 hex digits a line */
    uint8_t h[20];
    for (uint32_t t = 0; t < torrents; t++) { info_hash(h, t); for (int i = 0; i < 20; i++) printf("%02x", h[i]); printf("\n"); }
    return 0;
  }
  int is_scrape = strcmp(mode, "scrape") == 0, is_fill = strcmp(mode, "fill") == 0;

  int fds[MAXPORTS]; uint8_t cids[MAXPORTS][8]; uint8_t buf[RESP];
  for (int k = 0; k < nports; k++) {
    int fd = fds[k] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int bufsz = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(ports[k])};
    inet_pton(AF_INET, host, &to.sin_addr);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0) { perror("connect"); return 1; }

    /* BEP 15 connect (retried until answered). */
    uint8_t *cid = cids[k];
    for (int attempt = 0;; attempt++) {
      uint8_t c[16]; put64(c, 0x41727101980ull); put32(c + 8, 0); put32(c + 12, 0xC0FFEE);
      send(fd, c, 16, 0);
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 500) > 0) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 16 && get32(buf) == 0 && get32(buf + 4) == 0xC0FFEE) { memcpy(cid, buf + 8, 8); break; }
      }
      if (attempt > 20) { fprintf(stderr, "no connect reply\n"); return 1; }
    }
  }

  static uint8_t pkts[MAXWIN][PKT];
  static uint64_t sent_at[MAXWIN];
  static uint8_t busy[MAXWIN];
  static uint32_t gen[MAXWIN];
  uint64_t *lat = malloc(sizeof(uint64_t) * 40000000ull);
  size_t nlat = 0;
  uint64_t sent = 0, ok = 0, invalid = 0, missing = 0;
  uint64_t fill_next = 0, fill_total = (uint64_t)torrents * peers;
  uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
  uint32_t tid_base = (uint32_t)rnd();

  struct mmsghdr sm[BATCH], rm[BATCH], sk[BATCH]; struct iovec siov[BATCH], riov[BATCH]; int sfd[BATCH];
  static uint8_t rbufs[BATCH][RESP];
  for (int i = 0; i < BATCH; i++) {
    riov[i].iov_base = rbufs[i]; riov[i].iov_len = RESP;
    memset(&rm[i], 0, sizeof rm[i]); rm[i].msg_hdr.msg_iov = &riov[i]; rm[i].msg_hdr.msg_iovlen = 1;
  }
  int done = 0;
  while (!done) {
    uint64_t t = now_ns();
    if (t >= end && !is_fill) break;
    /* Fill free slots (and re-send slots that timed out after 1 s: counted missing). */
    int ns = 0;
    for (int s = 0; s < window && ns < BATCH; s++) {
      if (busy[s] && t - sent_at[s] > 1000000000ull) { missing++; busy[s] = 0; }
      if (busy[s]) continue;
      if (is_fill && fill_next >= fill_total) continue;
      uint8_t *p = pkts[s]; size_t len;
      gen[s]++;
      uint32_t tid = tid_base + (uint32_t)s * 65536u + (gen[s] & 0xffff);
      put32(p + 12, tid);
      uint32_t tor, peer;
      if (is_fill) { tor = fill_next % torrents; peer = (uint32_t)(fill_next / torrents); fill_next++; }
      else { tor = (uint32_t)(rnd() % torrents); peer = (uint32_t)(rnd() % peers); }
      sfd[ns] = (int)(tor % (uint32_t)nports); memcpy(p, cids[sfd[ns]], 8);
      if (is_scrape) {
        put32(p + 8, 2);
        for (int k = 0; k < 4; k++) info_hash(p + 16 + 20 * k, (tor + k * 7919u) % torrents);
        len = 16 + 80;
      } else {
        put32(p + 8, 1);
        info_hash(p + 16, tor);
        memset(p + 36, 0, 20); memcpy(p + 36, "-HB0001-", 8); put32(p + 44, tor); put32(p + 48, peer); put32(p + 52, (uint32_t)rnd());
        int seeder = (peer % 4) == 0; /* a quarter seeders */
        put64(p + 56, 1000); put64(p + 64, seeder ? 0 : 1000000); put64(p + 72, 500);
        uint32_t r = (uint32_t)(rnd() % 100);
        put32(p + 80, is_fill ? 2 : (r < 2 ? 1 : r < 4 ? 2 : 0)); /* mostly regular announces */
        put32(p + 84, 0); put32(p + 88, (uint32_t)rnd()); put32(p + 92, 50);
        uint16_t pport = (uint16_t)(1024 + peer);
        p[96] = pport >> 8; p[97] = pport & 0xff;
        len = 98;
      }
      siov[ns].iov_base = p; siov[ns].iov_len = len;
      memset(&sm[ns], 0, sizeof sm[ns]); sm[ns].msg_hdr.msg_iov = &siov[ns]; sm[ns].msg_hdr.msg_iovlen = 1;
      busy[s] = 1; sent_at[s] = t; ns++;
    }
    for (int k = 0; k < nports && ns > 0; k++) {
      int nk = 0;
      for (int i = 0; i < ns; i++) if (sfd[i] == k) sk[nk++] = sm[i];
      if (nk == 0) continue;
      int r = sendmmsg(fds[k], sk, nk, 0);
      if (r < 0) r = 0;
      for (int i = r; i < nk; i++) { /* not sent: free the slot again */
        for (int s = 0; s < window; s++) if (pkts[s] == sk[i].msg_hdr.msg_iov->iov_base) { busy[s] = 0; gen[s]--; if (is_fill) fill_next--; }
      }
      sent += (uint64_t)r;
    }
    struct pollfd pf[MAXPORTS];
    for (int k = 0; k < nports; k++) { pf[k].fd = fds[k]; pf[k].events = POLLIN; pf[k].revents = 0; }
    poll(pf, nports, ns > 0 ? 0 : 5);
    for (int k = 0; k < nports; k++) {
      int nr = recvmmsg(fds[k], rm, BATCH, MSG_DONTWAIT, NULL);
      uint64_t tr = now_ns();
      for (int i = 0; i < nr; i++) {
        uint8_t *b = rbufs[i]; size_t n = rm[i].msg_len;
        if (n < 8) { invalid++; continue; }
        uint32_t tid = get32(b + 4); uint32_t s = (tid - tid_base) / 65536u;
        if (s >= (uint32_t)window || !busy[s] || ((tid - tid_base) & 0xffff) != (gen[s] & 0xffff)) { invalid++; continue; }
        uint32_t action = get32(b);
        int good = is_scrape ? (action == 2 && n == 8 + 12 * 4) : (action == 1 && n >= 20 && (n - 20) % 6 == 0);
        busy[s] = 0;
        if (!good) { invalid++; continue; }
        ok++;
        if (nlat < 40000000ull) lat[nlat++] = tr - sent_at[s];
      }
    }
    if (is_fill && fill_next >= fill_total) {
      int any = 0; for (int s = 0; s < window; s++) any |= busy[s];
      if (!any) done = 1;
      if (now_ns() - start > (uint64_t)(seconds * 1e9)) done = 1;
    }
  }
  double el = (now_ns() - start) / 1e9;
  qsort(lat, nlat, sizeof(uint64_t), cmp64);
  struct rusage ru; getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  printf("{\"sent\":%llu,\"ok\":%llu,\"invalid\":%llu,\"missing\":%llu,\"seconds\":%.3f,\"rps\":%.0f,"
         "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,\"cpu_s\":%.3f}\n",
         (unsigned long long)sent, (unsigned long long)ok, (unsigned long long)invalid, (unsigned long long)missing, el,
         ok / el, nlat ? lat[nlat / 2] / 1e3 : 0, nlat ? lat[(size_t)(nlat * 0.99)] / 1e3 : 0,
         nlat ? lat[nlat - 1] / 1e3 : 0, cpu);
  return 0;
}
