/*
 * Memory-bound phases of a shared-memory allreduce spread over a few threads: copies into and out of
 * the group's segment and the float32 sums (reduce.c). One rank process's JavaScript thread is one
 * core; on a machine with cores to spare (16 cores, 4 ranks) a 100 MiB copy runs at one core's
 * memory bandwidth (~10 GB/s) where several cores together reach several times that.
 *
 * A small pool of helper threads, created by setThreads(n) (n - 1 helpers; the calling thread is the
 * n-th). A job is split into pieces; the caller and the helpers take pieces from an atomic counter
 * until none is left, and the caller returns once every piece is done and every helper is idle again
 * (so the next job's fields are never read by a helper still finishing this one). The JavaScript thread
 * blocks for the job, as it does for a plain memcpy. One job at a time per process: a second caller
 * (a worker_thread) runs its pieces itself.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include "parallel.h"

#define MAX_THREADS 16
/* Pieces smaller than this are not worth a helper's wake-up. */
#define MIN_PIECE_BYTES (1u << 20)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER;
static int helpers = 0;
static int threads = 1;
static unsigned long generation = 0;
static int active = 0;
static tsray_piece_fn job_fn;
static void* job_ctx;
static size_t job_pieces;
static size_t pieces_done;
static atomic_size_t next_piece;

static void run_pieces(void) {
  size_t mine = 0;
  for (;;) {
    size_t i = atomic_fetch_add(&next_piece, 1);
    if (i >= job_pieces) break;
    job_fn(job_ctx, i);
    mine++;
  }
  if (mine == 0) return;
  pthread_mutex_lock(&mu);
  pieces_done += mine;
  if (pieces_done == job_pieces) pthread_cond_broadcast(&done_cv);
  pthread_mutex_unlock(&mu);
}

static void* helper_main(void* arg) {
  unsigned long seen = 0;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (generation == seen) pthread_cond_wait(&start_cv, &mu);
    seen = generation;
    active++;
    pthread_mutex_unlock(&mu);
    run_pieces();
    pthread_mutex_lock(&mu);
    if (--active == 0) pthread_cond_broadcast(&done_cv);
  }
  return NULL;
}

int tsray_parallel_threads(void) { return threads; }

size_t tsray_parallel_pieces(size_t bytes) {
  size_t by_size = bytes / MIN_PIECE_BYTES;
  size_t n = (size_t)threads < by_size ? (size_t)threads : by_size;
  return n < 1 ? 1 : n;
}

void tsray_parallel_run(tsray_piece_fn fn, void* ctx, size_t pieces) {
  if (pieces <= 1 || helpers == 0 || pthread_mutex_trylock(&job_mu) != 0) {
    for (size_t i = 0; i < pieces; i++) fn(ctx, i);
    return;
  }
  pthread_mutex_lock(&mu);
  job_fn = fn;
  job_ctx = ctx;
  job_pieces = pieces;
  pieces_done = 0;
  atomic_store(&next_piece, 0);
  generation++;
  pthread_cond_broadcast(&start_cv);
  pthread_mutex_unlock(&mu);
  run_pieces();
  pthread_mutex_lock(&mu);
  while (pieces_done < pieces || active > 0) pthread_cond_wait(&done_cv, &mu);
  pthread_mutex_unlock(&mu);
  pthread_mutex_unlock(&job_mu);
}

/* Threads per job from now on (1 to MAX_THREADS; helpers are started as needed, never stopped). */
static int set_threads(int n) {
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  pthread_mutex_lock(&job_mu);
  while (helpers < n - 1) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, helper_main, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) break;
    helpers++;
  }
  threads = n < helpers + 1 ? n : helpers + 1;
  pthread_mutex_unlock(&job_mu);
  return threads;
}

static napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t n = 1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "setThreads(n) takes a number");
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, set_threads(n), &out);
  return out;
}

struct copy_job {
  uint8_t* dst;
  const uint8_t* src;
  size_t bytes;
  size_t pieces;
};

static void copy_piece(void* ctx, size_t i) {
  struct copy_job* j = ctx;
  size_t per = ((j->bytes + j->pieces - 1) / j->pieces + 63) & ~(size_t)63;
  size_t start = i * per;
  if (start >= j->bytes) return;
  size_t len = j->bytes - start < per ? j->bytes - start : per;
  memmove(j->dst + start, j->src + start, len);
}

/* The bytes of a TypedArray (NULL after throwing a TypeError for anything else). */
static uint8_t* typed_bytes(napi_env env, napi_value v, size_t* bytes) {
  bool is_typed = false;
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed) {
    napi_throw_type_error(env, NULL, "copyBytes: expected TypedArray arguments");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* data = NULL;
  napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL);
  size_t el = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: el = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
    default: el = 1;
  }
  *bytes = length * el;
  return data ? (uint8_t*)data : (uint8_t*)"";
}

/* copyBytes(dst, src): dst's bytes = src's (same byte length; overlapping ranges are not split safely, callers never overlap). */
static napi_value CopyBytes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "copyBytes(dst, src) takes 2 arguments");
    return NULL;
  }
  size_t dst_bytes = 0, src_bytes = 0;
  uint8_t* dst = typed_bytes(env, argv[0], &dst_bytes);
  if (!dst) return NULL;
  uint8_t* src = typed_bytes(env, argv[1], &src_bytes);
  if (!src) return NULL;
  if (dst_bytes != src_bytes) {
    napi_throw_range_error(env, NULL, "copyBytes: dst and src differ in byte length");
    return NULL;
  }
  struct copy_job j = {dst, src, dst_bytes, tsray_parallel_pieces(dst_bytes)};
  tsray_parallel_run(copy_piece, &j, j.pieces);
  return NULL;
}

void tsray_register_parallel(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setThreads", NULL, SetThreads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copyBytes", NULL, CopyBytes, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
