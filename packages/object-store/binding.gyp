{
  "targets": [
    {
      "target_name": "tsray_shm",
      "sources": ["native/shm.c", "native/aead.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
