/*
 * tsray_reduce: the float32 sum kernel of @tsray/collective's reductions, as a small N-API addon.
 *
 * sumF32(dst, inputs): dst[i] = ((inputs[0][i] + inputs[1][i]) + inputs[2][i]) + ... for every i, in
 * float32, folding left in the order of `inputs`: bitwise what pairwise float32 adds give (numpy, and the
 * JavaScript loop with Math.fround after each add), so every rank and language agrees on the bits.
 * Element-wise: `dst` may be one of the inputs (each block is read into a scratch block before dst is
 * written). Vectorized by the compiler across elements, never reassociated within one (no -ffast-math).
 * Why native: the JavaScript loop runs at a fraction of memory bandwidth (float64 adds + fround per
 * element, no SIMD), and the reduction was the largest per-rank cost of a large allreduce.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include "parallel.h"

#define MAX_INPUTS 256
#define BLOCK 2048 /* floats: 8 KiB of scratch, stays in L1 */

static napi_value throw_type(napi_env env, const char* msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* The float32 elements of a Float32Array (NULL after throwing a TypeError for anything else). */
static float* f32_data(napi_env env, napi_value v, size_t* length) {
  bool is_typed = false;
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed) return (float*)throw_type(env, "sumF32: expected Float32Array arguments");
  napi_typedarray_type type;
  void* data = NULL;
  napi_get_typedarray_info(env, v, &type, length, &data, NULL, NULL);
  if (type != napi_float32_array) return (float*)throw_type(env, "sumF32: expected Float32Array arguments");
  return (float*)data;
}

static void sum_block(float* restrict acc, const float* const* in, size_t n_in, size_t off, size_t len) {
  const float* a = in[0] + off;
  for (size_t k = 0; k < len; k++) acc[k] = a[k];
  for (size_t j = 1; j < n_in; j++) {
    const float* x = in[j] + off;
    for (size_t k = 0; k < len; k++) acc[k] += x[k];
  }
}

/* Elements [off, end) of dst, block by block through a scratch block (dst may be an input). */
static void sum_range(float* dst, const float* const* in, size_t n_in, size_t off, size_t end) {
  float acc[BLOCK];
  for (; off < end; off += BLOCK) {
    size_t len = end - off < BLOCK ? end - off : BLOCK;
    sum_block(acc, in, n_in, off, len);
    memcpy(dst + off, acc, len * sizeof(float));
  }
}

struct sum_job {
  float* dst;
  const float* const* in;
  size_t n_in;
  size_t n;
  size_t pieces;
};

/* Piece i of a sum: a run of whole blocks (parallel.c's helpers take the pieces). */
static void sum_piece(void* ctx, size_t i) {
  struct sum_job* j = ctx;
  size_t blocks = (j->n + BLOCK - 1) / BLOCK;
  size_t per = (blocks + j->pieces - 1) / j->pieces * BLOCK;
  size_t off = i * per;
  if (off >= j->n) return;
  sum_range(j->dst, j->in, j->n_in, off, j->n - off < per ? j->n : off + per);
}

static napi_value SumF32(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return throw_type(env, "sumF32(dst, inputs) takes 2 arguments");
  size_t n = 0;
  float* dst = f32_data(env, argv[0], &n);
  if (!dst && n > 0) return NULL;
  bool is_array = false;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array) return throw_type(env, "sumF32: inputs must be an array of Float32Array");
  uint32_t n_in = 0;
  napi_get_array_length(env, argv[1], &n_in);
  if (n_in < 1 || n_in > MAX_INPUTS) return throw_type(env, "sumF32: between 1 and 256 inputs");
  const float* in[MAX_INPUTS];
  for (uint32_t j = 0; j < n_in; j++) {
    napi_value x;
    napi_get_element(env, argv[1], j, &x);
    size_t len = 0;
    in[j] = f32_data(env, x, &len);
    if (!in[j] && len > 0) return NULL;
    if (len != n) return throw_type(env, "sumF32: every input must have dst's length");
  }
  struct sum_job j = {dst, in, n_in, n, tsray_parallel_pieces(n * sizeof(float) * (n_in + 1))};
  tsray_parallel_run(sum_piece, &j, j.pieces);
  return NULL;
}

void tsray_register_shm(napi_env env, napi_value exports);      /* shm.c */
void tsray_register_parallel(napi_env env, napi_value exports); /* parallel.c */

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sumF32", NULL, SumF32, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  tsray_register_shm(env, exports);
  tsray_register_parallel(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
