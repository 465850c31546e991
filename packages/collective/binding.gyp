{
  "targets": [
    {
      "target_name": "tsray_reduce",
      "sources": ["native/reduce.c", "native/shm.c", "native/parallel.c"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11", "-fno-fast-math", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
