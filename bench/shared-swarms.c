// bench/shared-swarms.c: the measurement behind docs/design-notes.md "Swarms in shared memory"
// (issue #13, option 2). Not part of Herald: a prototype of the store's announce over swarms in
// shared memory (memfd, MAP_SHARED) under striped process-shared robust mutexes, run by 1 or 2
// processes (each pinned to its own CPU) at once, CPU per announce from getrusage.
// Build and run: gcc -O2 -o /tmp/shared-swarms bench/shared-swarms.c -lpthread
//   /tmp/shared-swarms PROCESSES ANNOUNCES [TORRENTS]   (10 peers a torrent, numwant 50)
// Compare with `node bench/store-op.ts`: MemorySwarmStore's announce on the same load.
// Simplified on purpose: at most 32 peers a swarm inline (no allocator), IPv4 only, no peer ids.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sched.h>
#include <errno.h>

#define STRIPES 1024
#define SLOTS (1u << 18)
#define CAP 32
typedef struct { uint32_t ip; uint16_t port; uint8_t flags; uint8_t pad; uint32_t seen; } peer_t; // 12 B
typedef struct { uint8_t hash[20]; uint32_t used; uint16_t count, leechers; uint32_t downloaded; peer_t peers[CAP]; } swarm_t;
typedef struct { pthread_mutex_t m; char pad[64 - sizeof(pthread_mutex_t) % 64]; } lock_t;
typedef struct { lock_t locks[STRIPES]; swarm_t slots[SLOTS]; } table_t;

static table_t *T;
static uint64_t rng = 88172645463325252ull;
static inline uint64_t xs(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static void lock(pthread_mutex_t *m) { int r = pthread_mutex_lock(m); if (r == EOWNERDEAD) pthread_mutex_consistent(m); }

// returns peers written
static int announce(const uint8_t *h, uint32_t ip, uint16_t port, int seeder, int numwant, uint8_t *out, uint32_t now, int *complete) {
  uint32_t k; memcpy(&k, h, 4);
  pthread_mutex_t *m = &T->locks[k % STRIPES].m;
  lock(m);
  uint32_t i = k & (SLOTS - 1);
  swarm_t *s;
  for (;;) { s = &T->slots[i]; if (!s->used) { memcpy(s->hash, h, 20); s->used = 1; break; } if (!memcmp(s->hash, h, 20)) break; i = (i + 1) & (SLOTS - 1); }
  int self = -1;
  for (int j = 0; j < s->count; j++) if (s->peers[j].ip == ip && s->peers[j].port == port) { self = j; break; }
  if (self < 0 && s->count < CAP) { self = s->count++; s->peers[self].ip = ip; s->peers[self].port = port; s->peers[self].flags = 0; if (!seeder) s->leechers++; }
  else if (self >= 0) { int was = s->peers[self].flags & 1; if (was != seeder) s->leechers += seeder ? -1 : 1; }
  if (self >= 0) { s->peers[self].flags = seeder; s->peers[self].seen = now; }
  int n = 0, c = s->count;
  int start = c ? (int)(xs() % c) : 0;
  for (int j = 0; j < c && n < numwant; j++) {
    int q = (start + j) % c; if (q == self) continue;
    peer_t *p = &s->peers[q]; if (seeder && (p->flags & 1)) continue;
    memcpy(out + 6 * n, &p->ip, 4); memcpy(out + 6 * n + 4, &p->port, 2); n++;
  }
  *complete = c - s->leechers;
  pthread_mutex_unlock(m);
  return n;
}

static double cpu(void) { struct rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6; }

int main(int argc, char **argv) {
  int procs = atoi(argv[1]); long ops = atol(argv[2]); int torrents = argc > 3 ? atoi(argv[3]) : 10000, per = 10;
  int fd = memfd_create("swarms", 0); ftruncate(fd, sizeof(table_t));
  T = mmap(0, sizeof(table_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  pthread_mutexattr_t a; pthread_mutexattr_init(&a); pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED); pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&T->locks[i].m, &a);
  uint8_t (*hashes)[20] = malloc(20 * torrents);
  for (int i = 0; i < torrents; i++) for (int b = 0; b < 20; b++) hashes[i][b] = xs();
  uint8_t out[6 * 64]; int complete;
  for (int i = 0; i < torrents; i++) for (int p = 0; p < per; p++) announce(hashes[i], 0x7f000001 + p, 1024 + p, p % 4 == 0, 50, out, 1, &complete);
  for (int w = 0; w < procs; w++) if (fork() == 0) { cpu_set_t cs; CPU_ZERO(&cs); CPU_SET(w, &cs); sched_setaffinity(0, sizeof cs, &cs);
    rng += 7919 * (w + 1);
    double c0 = cpu(); long sum = 0;
    for (long o = 0; o < ops; o++) { int t = xs() % torrents, p = xs() % per; sum += announce(hashes[t], 0x7f000001 + p, 1024 + p, p % 4 == 0, 50, out, 2 + o / 100000, &complete); }
    double c1 = cpu();
    printf("proc %d: %.1f ns/announce (cpu), %ld peers out\n", w, (c1 - c0) * 1e9 / ops, sum);
    fflush(stdout); _exit(0);
  }
  while (wait(0) > 0) {}
  return 0;
}
