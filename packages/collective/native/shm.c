/*
 * tsray_reduce (shm part): the shared-memory segment of a collective group on one node, and the barrier
 * its ranks synchronise with, so that an allreduce sends no message through the node per op.
 *
 * mapShared(fd, bytes): mmap the (tmpfs) file `fd` read-write, MAP_SHARED, pre-faulted, as an
 * ArrayBuffer (unmapped when the ArrayBuffer is collected). JavaScript copies arrays in and out of it and
 * the float32 kernel reduces in place.
 *
 * The barrier lives in the segment's header (32-bit words, see HDR_* below): each arrival bumps the
 * rank's own count and the shared `total` (a monotonic counter of every arrival of every barrier), then
 * futex-wakes the waiters; the k-th barrier has passed when total >= k * world size (wrap-safe compare).
 * Waiting is a futex wait on `total` in slices (`shmWait` returns after `slice_ms` so the caller's event
 * loop runs and it can ask the coordinator whether a rank died). `shmAbort` marks the segment failed and
 * wakes everyone: a failed segment is never used again (the group re-forms with a new one).
 * Shared futexes (not FUTEX_PRIVATE): the waiters are other processes.
 * Memory order: JavaScript writes the data with plain stores before calling shmArrive, whose seq_cst
 * read-modify-write publishes them; a waiter reads the data only after seeing `total` move (x86-TSO and
 * the seq_cst accesses here order it; on weaker CPUs the __atomic builtins emit the fences).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

/* Header words (uint32 index): keep in sync with packages/collective/src/shm-segment.ts. */
#define HDR_TOTAL 0
#define HDR_ABORT 1 /* (kind << 16) | rank of the first abort, 0 while healthy */
#define HDR_ARRIVED 16 /* + rank: barriers this rank has arrived at */
#define HDR_WORDS 1024 /* 4 KiB */
#define MAX_RANKS 256

static napi_value throw_err(napi_env env, const char* msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static void unmap(napi_env env, void* data, void* hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

static napi_value MapShared(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  int64_t bytes = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &bytes) != napi_ok)
    return throw_err(env, "mapShared(fd, bytes): expected two numbers");
  if (bytes < HDR_WORDS * 4) return throw_err(env, "mapShared: segment smaller than its header");
  void* p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    char msg[128];
    snprintf(msg, sizeof msg, "mapShared: mmap failed: %s", strerror(errno));
    return throw_err(env, msg);
  }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, (size_t)bytes, unmap, (void*)(uintptr_t)bytes, &ab) != napi_ok) {
    munmap(p, (size_t)bytes);
    return throw_err(env, "mapShared: could not wrap the mapping in an ArrayBuffer");
  }
  return ab;
}

/* The header words of argv[0] (an ArrayBuffer from mapShared); NULL after throwing. */
static uint32_t* header(napi_env env, napi_value v) {
  void* data = NULL;
  size_t len = 0;
  bool is_ab = false;
  napi_is_arraybuffer(env, v, &is_ab);
  if (!is_ab || napi_get_arraybuffer_info(env, v, &data, &len) != napi_ok || len < HDR_WORDS * 4)
    return (uint32_t*)throw_err(env, "expected a segment ArrayBuffer from mapShared");
  return (uint32_t*)data;
}

static long futex(uint32_t* addr, int op, uint32_t val, const struct timespec* ts) {
  return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

static napi_value uint_value(napi_env env, uint32_t v) {
  napi_value out;
  napi_create_uint32(env, v, &out);
  return out;
}

/* shmArrive(seg, rank) -> the barrier number this rank arrived at (1, 2, ...). */
static napi_value ShmArrive(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t* h = header(env, argv[0]);
  if (!h) return NULL;
  uint32_t rank = 0;
  if (argc < 2 || napi_get_value_uint32(env, argv[1], &rank) != napi_ok || rank >= MAX_RANKS) return throw_err(env, "shmArrive: bad rank");
  uint32_t k = __atomic_add_fetch(&h[HDR_ARRIVED + rank], 1, __ATOMIC_SEQ_CST);
  __atomic_add_fetch(&h[HDR_TOTAL], 1, __ATOMIC_SEQ_CST);
  futex(&h[HDR_TOTAL], FUTEX_WAKE, INT_MAX, NULL);
  return uint_value(env, k);
}

/*
 * shmWait(seg, target, sliceMs) -> 0: total reached target (the barrier passed); 1: not yet after
 * sliceMs; 2: the segment was aborted.
 */
static napi_value ShmWait(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t* h = header(env, argv[0]);
  if (!h) return NULL;
  uint32_t target = 0, slice_ms = 0;
  if (argc < 3 || napi_get_value_uint32(env, argv[1], &target) != napi_ok || napi_get_value_uint32(env, argv[2], &slice_ms) != napi_ok)
    return throw_err(env, "shmWait(seg, target, sliceMs): expected numbers");
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    uint32_t v = __atomic_load_n(&h[HDR_TOTAL], __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&h[HDR_ABORT], __ATOMIC_SEQ_CST) != 0) return uint_value(env, 2);
    if ((int32_t)(v - target) >= 0) return uint_value(env, 0);
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left_ns = (int64_t)slice_ms * 1000000 - ((int64_t)(now.tv_sec - start.tv_sec) * 1000000000 + (now.tv_nsec - start.tv_nsec));
    if (left_ns <= 0) return uint_value(env, 1);
    struct timespec ts = {(time_t)(left_ns / 1000000000), (long)(left_ns % 1000000000)};
    futex(&h[HDR_TOTAL], FUTEX_WAIT, v, &ts); /* returns on a wake, a changed value, a signal or the timeout */
  }
}

/* shmAbort(seg, kind, rank) -> true when this call set the failure (false: another rank already had). */
static napi_value ShmAbort(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t* h = header(env, argv[0]);
  if (!h) return NULL;
  uint32_t kind = 0, rank = 0;
  if (argc < 3 || napi_get_value_uint32(env, argv[1], &kind) != napi_ok || napi_get_value_uint32(env, argv[2], &rank) != napi_ok || kind == 0)
    return throw_err(env, "shmAbort(seg, kind, rank): expected a kind >= 1 and a rank");
  /* One word, (kind << 16) | rank, so the first abort's kind and rank are read together. */
  uint32_t expected = 0;
  bool won = __atomic_compare_exchange_n(&h[HDR_ABORT], &expected, (kind << 16) | (rank & 0xffff), false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  /* Move `total` so a waiter between its read of it and its futex wait does not sleep the whole slice. */
  __atomic_add_fetch(&h[HDR_TOTAL], 1u << 30, __ATOMIC_SEQ_CST);
  futex(&h[HDR_TOTAL], FUTEX_WAKE, INT_MAX, NULL);
  napi_value out;
  napi_get_boolean(env, won, &out);
  return out;
}

/* Registers the shm functions on the addon's exports (called from reduce.c's Init). */
void tsray_register_shm(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mapShared", NULL, MapShared, NULL, NULL, NULL, napi_enumerable, NULL},
      {"shmArrive", NULL, ShmArrive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"shmWait", NULL, ShmWait, NULL, NULL, NULL, napi_enumerable, NULL},
      {"shmAbort", NULL, ShmAbort, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
