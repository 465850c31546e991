/* AES-256-GCM open and seal into a caller's buffer (aead.c). */
#ifndef TSRAY_AEAD_H
#define TSRAY_AEAD_H
#include <node_api.h>
void aead_init(napi_env env, napi_value exports);
#endif
