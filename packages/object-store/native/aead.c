/*
 * AES-256-GCM open and seal straight into a caller's buffer (for tsray's bulk data plane: a sealed chunk
 * is decrypted into its slot of the shared-memory arena in one pass, where node:crypto would allocate a
 * new buffer per call and need a second copy; and a chunk is sealed from the arena into one buffer, 1.5–3×
 * faster than node:crypto's Cipher.update here, bench/collective/gcm-speed.mjs). OpenSSL is the one node itself links (its headers come
 * with node's; the symbols resolve against the running node), so nothing else is linked in.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>

#include "aead.h"

static int buffer_arg(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  bool is = false;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) return 0;
  void* p = NULL;
  if (napi_get_buffer_info(env, v, &p, len) != napi_ok) return 0;
  *data = (uint8_t*)p;
  return 1;
}

/* The six Buffer arguments of gcmOpen/gcmSeal, in order; 0 (a TypeError thrown) if any is missing or
 * not a Buffer. */
static int six_buffers(napi_env env, napi_callback_info info, const char* usage, uint8_t* data[6], size_t len[6]) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t i = 0; i < 6; i++) {
    if (i >= argc || !buffer_arg(env, argv[i], &data[i], &len[i])) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", usage);
      return 0;
    }
  }
  return 1;
}

/* One AES-256-GCM pass of src into dst (enc 1: seal, writing the tag; enc 0: open, checking it). Returns
 * whether OpenSSL succeeded (for an open: whether the tag matched). */
static int gcm_run(int enc, const uint8_t* key, const uint8_t* iv, const uint8_t* aad, size_t aad_len, const uint8_t* src,
                   size_t src_len, uint8_t* dst, uint8_t* tag) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int out_len = 0;
  int ok = ctx != NULL && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv, enc) == 1;
  if (ok && aad_len > 0) ok = EVP_CipherUpdate(ctx, NULL, &out_len, aad, (int)aad_len) == 1;
  size_t done = 0;
  while (ok && done < src_len) {
    size_t n = src_len - done > (1u << 30) ? (1u << 30) : src_len - done;
    ok = EVP_CipherUpdate(ctx, dst + done, &out_len, src + done, (int)n) == 1;
    done += n;
  }
  if (ok && !enc) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1;
  if (ok) ok = EVP_CipherFinal_ex(ctx, dst + done, &out_len) == 1;
  if (ok && enc) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

/* The sizes both functions need: key 32, iv 12, tag 16, dst at least src, aad within int. 0 (a RangeError
 * thrown) otherwise. */
static int sizes_ok(napi_env env, const char* what, size_t key_len, size_t iv_len, size_t aad_len, size_t tag_len, size_t src_len,
                    size_t dst_len) {
  if (key_len == 32 && iv_len == 12 && tag_len == 16 && dst_len >= src_len && aad_len <= INT32_MAX) return 1;
  char msg[128];
  snprintf(msg, sizeof msg, "%s: key 32 bytes, iv 12, tag 16, dst at least as long as src", what);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return 0;
}

static napi_value boolean(napi_env env, int ok) {
  napi_value result;
  napi_get_boolean(env, ok != 0, &result);
  return result;
}

/* gcmOpen and gcmSeal take the same six Buffers, in the order of their JS signatures (the tag before the
 * data for an open, after it for a seal): parse and check them, then run one pass. */
static napi_value gcm_call(napi_env env, napi_callback_info info, int enc) {
  const char* what = enc ? "gcmSeal" : "gcmOpen";
  const int TAG = enc ? 5 : 3, SRC = enc ? 3 : 4, DST = enc ? 4 : 5;
  uint8_t* b[6];
  size_t n[6];
  if (!six_buffers(env, info, enc ? "gcmSeal(key, iv, aad, src, dst, tag) takes six Buffers" : "gcmOpen(key, iv, aad, tag, src, dst) takes six Buffers", b, n))
    return NULL;
  if (!sizes_ok(env, what, n[0], n[1], n[2], n[TAG], n[SRC], n[DST])) return NULL;
  return boolean(env, gcm_run(enc, b[0], b[1], b[2], n[2], b[SRC], n[SRC], b[DST], b[TAG]));
}

/* gcmOpen(key: Buffer(32), iv: Buffer(12), aad: Buffer, tag: Buffer(16), src: Buffer, dst: Buffer): boolean
 * Decrypts src into dst (dst.length >= src.length) and returns whether the tag matched. On false, dst
 * holds unauthenticated bytes: the caller must not use them. */
static napi_value GcmOpen(napi_env env, napi_callback_info info) {
  return gcm_call(env, info, 0);
}

/* gcmSeal(key: Buffer(32), iv: Buffer(12), aad: Buffer, src: Buffer, dst: Buffer, tag: Buffer(16)): boolean
 * Encrypts src into dst (dst.length >= src.length; dst may be src itself) and writes the tag. Returns
 * false only when OpenSSL fails (then dst and tag hold garbage). */
static napi_value GcmSeal(napi_env env, napi_callback_info info) {
  return gcm_call(env, info, 1);
}

void aead_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"gcmOpen", NULL, GcmOpen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"gcmSeal", NULL, GcmSeal, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
