{
  "targets": [
    {
      "target_name": "tsray_shm",
      "sources": ["native/shm.c", "native/aead.c", "native/parallel_copy.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
