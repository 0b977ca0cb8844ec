/*
 * Pieces the tables in shared memory of the http_batch addon (conn_table.h, shared_swarms.h)
 * share: a memfd the primary creates and hands each worker, process-shared robust mutexes in it,
 * and a random hash seed.
 */
#ifndef HERALD_SHM_COMMON_H
#define HERALD_SHM_COMMON_H

#include <pthread.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

/* A new memfd of `size` bytes, mapped shared at *base; its descriptor, or -1 (thrown). */
static int shm_create(napi_env env, const char *name, size_t size, uint8_t **base) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, "memfd_create");
    return -1;
  }
  if (ftruncate(fd, (off_t)size) != 0) {
    throw_errno(env, "ftruncate");
    close(fd);
    return -1;
  }
  *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (*base == MAP_FAILED) {
    throw_errno(env, "mmap");
    close(fd);
    return -1;
  }
  return fd;
}

/* Unmaps a new memfd (see shm_create) and returns its descriptor, or throws when rc (of
 * pthread_mutex_init) says its mutexes could not be made. */
static napi_value shm_created(napi_env env, int fd, uint8_t *base, size_t size, int rc) {
  munmap(base, size);
  if (rc != 0) {
    close(fd);
    errno = rc;
    return throw_errno(env, "pthread_mutex_init");
  }
  napi_value out;
  CHECK(napi_create_int32(env, fd, &out));
  return out;
}

/* A process-shared robust mutex (a holder that dies leaves it to the next, with EOWNERDEAD). */
static int shm_mutex_init(pthread_mutex_t *m) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  int rc = pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return rc;
}

/* `data` as an external JavaScript value (a process's handle), or NULL (thrown, data finalized). */
static napi_value shm_external(napi_env env, void *data, napi_finalize finalize) {
  napi_value out;
  if (napi_create_external(env, data, finalize, NULL, &out) != napi_ok) {
    finalize(env, data, NULL);
    napi_throw_error(env, NULL, ADDON_NAME ": napi_create_external failed");
    return NULL;
  }
  return out;
}

/* A random hash seed (crafted keys cannot build long probe chains). */
static uint64_t shm_seed(void) {
  uint64_t seed;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
  return seed;
}

#endif
