/*
 * The classic BPF program of a UDP steering group (udp_batch.c openGroup; bench/udp-steer-kernel.c
 * measures it). Included by both, so that what is measured is what is served.
 *
 * Steering by info hash: a SO_REUSEPORT group of n sockets whose classic BPF program picks,
 * for each datagram, the socket of the worker that owns its swarm (src/core/shard.ts shardOf
 * computes the same choice in TypeScript).
 *
 * What the program sees (Linux net/core/sock_reuseport.c run_bpf_filter, called by the UDP
 * lookup with hdr_len = sizeof(struct udphdr)): the kernel pulls the UDP header before running
 * it, so absolute loads are offsets into the UDP payload and BPF_LEN is the payload length.
 * Checked by hand on Linux 6.18: `ld [0]; ret a` sends a datagram starting 00 00 00 0k to
 * socket k, `ld len; sub #100; ret a` sends a (100 + k)-byte datagram to socket k.
 * What the kernel does with the result: an index < n selects socks[index], the group's sockets
 * in the order they were bound (socket i of openGroup is index i); an index >= n falls back to
 * the kernel's own hash of the 4-tuple (reuseport_select_sock: "no bpf or invalid bpf result:
 * fall back to hash usage"), which spreads connect requests over the group. A load past the end
 * of the datagram aborts a classic program with 0, so the lengths are checked before loading:
 * without the checks every short datagram would land on socket 0.
 *
 *   A = len;            if A < 36 -> kernel hash
 *   X = A;  A = [8]     (BEP 15 action, big-endian)
 *   if A == 2 -> pick   (scrape: 16-byte header, first info hash at 16; >= 36 bytes)
 *   if A != 1 -> kernel hash (connect, error, unknown)
 *   A = X;  if A < 98 -> kernel hash (announce: 98 bytes before BEP 41 URL data)
 *   pick: A = [16] (the info hash's first 4 bytes, big-endian); A %= n; return A
 *   kernel hash: return 0xffffffff
 */
#ifndef HERALD_REUSEPORT_STEER_H
#define HERALD_REUSEPORT_STEER_H

#include <linux/filter.h>
#include <stdint.h>
#include <string.h>

/* An index no group has: the kernel then chooses by its own hash. */
#define STEER_FALLBACK 0xffffffffu
#define STEER_LEN 12

/* Writes the program for a group of n sockets into f[0..STEER_LEN). */
static inline void steer_program(struct sock_filter *f, uint32_t n) {
  struct sock_filter p[] = {
    /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
    /* 1 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 36, 0, 9),
    /* 2 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
    /* 3 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 8),
    /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 2, 3, 0),
    /* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 5),
    /* 6 */ BPF_STMT(BPF_MISC | BPF_TXA, 0),
    /* 7 */ BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 98, 0, 3),
    /* 8 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 16),
    /* 9 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
    /* 10 */ BPF_STMT(BPF_RET | BPF_A, 0),
    /* 11 */ BPF_STMT(BPF_RET | BPF_K, STEER_FALLBACK),
  };
  memcpy(f, p, sizeof p);
}

#endif
