/*
 * tsray_shm: a small N-API addon that maps a file (normally in /dev/shm) with MAP_SHARED and hands out
 * zero-copy external Buffers that point into the mapping.
 *
 * Lifetime: a `shm_map` holds one reference for the open handle, one per live view (Buffer) and one per
 * in-flight prefault. The mapping is unmapped when the count reaches zero, i.e. when the handle was
 * closed (or garbage collected) AND every view was finalized AND no prefault is running. The struct
 * itself is freed when additionally the JS external that names it was collected.
 *
 * Every reference-count change happens on the JS thread: Node runs external-buffer finalizers and
 * async-work completions there. The prefault worker thread only reads `base` and the `aborted` flag.
 */
#define _GNU_SOURCE
#include "aead.h"
#include "parallel_copy.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct shm_map {
  uint8_t* base;
  size_t size;
  int64_t refs;       /* handle (until closed) + live views + running prefaults */
  int closed;         /* close() was called or the handle was collected */
  int handle_alive;   /* the JS external still exists */
  int mapped;         /* base is a live mapping */
  int aborted;        /* read by prefault threads (atomically) */
  int64_t views;      /* live views, for diagnostics */
} shm_map;

/* ---------------------------------------------------------------------------------------------- */
/* helpers                                                                                        */

static const char* errno_code(int e) {
  switch (e) {
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOMEM: return "ENOMEM";
    case ENOSPC: return "ENOSPC";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EFBIG: return "EFBIG";
    case EISDIR: return "EISDIR";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EHWPOISON: return "EHWPOISON";
    default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, const char* syscall, const char* path, int e) {
  char msg[1200];
  snprintf(msg, sizeof msg, "%s(%s) failed: %s (%s)", syscall, path ? path : "", strerror(e),
           errno_code(e));
  napi_throw_error(env, errno_code(e), msg);
  return NULL;
}

static napi_value throw_type(napi_env env, const char* msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char* msg) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

/* Reads a non-negative safe integer (up to 2^53) as a size_t. Returns 0 and throws on error. */
static int get_size(napi_env env, napi_value v, const char* what, size_t* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    throw_type(env, msg);
    return 0;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (!(d >= 0) || d > 9007199254740991.0 || d != (double)(int64_t)d) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s must be a non-negative integer, got %g", what, d);
    throw_range(env, msg);
    return 0;
  }
  *out = (size_t)d;
  return 1;
}

static void maybe_free(shm_map* m) {
  if (m->refs == 0 && m->mapped) {
    munmap(m->base, m->size);
    m->mapped = 0;
    m->base = NULL;
  }
  if (m->refs == 0 && !m->handle_alive) free(m);
}

static void release(shm_map* m) {
  m->refs--;
  maybe_free(m);
}

static void handle_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  shm_map* m = (shm_map*)data;
  m->handle_alive = 0;
  if (!m->closed) {
    m->closed = 1;
    __atomic_store_n(&m->aborted, 1, __ATOMIC_RELAXED);
    m->refs--; /* the handle's own reference */
  }
  maybe_free(m);
}

static shm_map* get_map(napi_env env, napi_value v, int require_open) {
  napi_valuetype t;
  void* data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    throw_type(env, "handle must be a handle returned by mapFile()");
    return NULL;
  }
  shm_map* m = (shm_map*)data;
  if (require_open && m->closed) {
    napi_throw_error(env, "ERR_SHM_CLOSED", "the shared-memory mapping was closed");
    return NULL;
  }
  return m;
}

static int check_range(napi_env env, shm_map* m, size_t offset, size_t length) {
  if (offset > m->size || length > m->size - offset) {
    char msg[200];
    snprintf(msg, sizeof msg, "range [%zu, %zu + %zu) is outside the mapping of %zu bytes", offset,
             offset, length, m->size);
    throw_range(env, msg);
    return 0;
  }
  return 1;
}

/* ---------------------------------------------------------------------------------------------- */
/* mapFile(path: string, size: number, create: boolean): handle                                   */

static napi_value MapFile(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return throw_type(env, "mapFile(path, size, create) takes 3 arguments");

  char path[1024];
  size_t path_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len) != napi_ok)
    return throw_type(env, "path must be a string");
  if (path_len >= sizeof path - 1) return throw_range(env, "path is too long");
  size_t size;
  if (!get_size(env, argv[1], "size", &size)) return NULL;
  bool create;
  if (napi_get_value_bool(env, argv[2], &create) != napi_ok)
    return throw_type(env, "create must be a boolean");

  int fd;
  if (create) {
    if (size == 0) return throw_range(env, "size must be > 0");
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return throw_errno(env, "open", path, errno);
    if (ftruncate(fd, (off_t)size) != 0) {
      int e = errno;
      close(fd);
      unlink(path);
      return throw_errno(env, "ftruncate", path, e);
    }
  } else {
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return throw_errno(env, "open", path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, "fstat", path, e);
    }
    if (size == 0) size = (size_t)st.st_size;
    if (size == 0 || (size_t)st.st_size < size) {
      close(fd);
      char msg[1300];
      snprintf(msg, sizeof msg, "file %s has %lld bytes, fewer than the %zu requested", path,
               (long long)st.st_size, size);
      return throw_range(env, msg);
    }
  }

  void* base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (base == MAP_FAILED) {
    if (create) unlink(path);
    return throw_errno(env, "mmap", path, e);
  }

  shm_map* m = (shm_map*)calloc(1, sizeof *m);
  if (!m) {
    munmap(base, size);
    if (create) unlink(path);
    return throw_errno(env, "calloc", path, ENOMEM);
  }
  m->base = (uint8_t*)base;
  m->size = size;
  m->refs = 1;
  m->mapped = 1;
  m->handle_alive = 1;

  napi_value result;
  if (napi_create_external(env, m, handle_finalize, NULL, &result) != napi_ok) {
    munmap(base, size);
    free(m);
    if (create) unlink(path);
    return NULL;
  }
  return result;
}

/* Arguments (handle, offset, length) of view() and prefault(): checked, or NULL with a JS error set. */
static shm_map* handle_range_args(napi_env env, napi_callback_info info, const char* usage, size_t* offset,
                                  size_t* length) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    throw_type(env, usage);
    return NULL;
  }
  shm_map* m = get_map(env, argv[0], 1);
  if (!m) return NULL;
  if (!get_size(env, argv[1], "offset", offset)) return NULL;
  if (!get_size(env, argv[2], "length", length)) return NULL;
  if (!check_range(env, m, *offset, *length)) return NULL;
  return m;
}

/* ---------------------------------------------------------------------------------------------- */
/* view(handle, offset, length): Buffer (external, zero-copy)                                     */

static void view_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)data;
  shm_map* m = (shm_map*)hint;
  m->views--;
  release(m);
}

static napi_value View(napi_env env, napi_callback_info info) {
  size_t offset, length;
  shm_map* m = handle_range_args(env, info, "view(handle, offset, length) takes 3 arguments", &offset, &length);
  if (!m) return NULL;

  napi_value result;
  if (length == 0) {
    void* unused;
    napi_create_buffer(env, 0, &unused, &result);
    return result;
  }
  napi_status s =
      napi_create_external_buffer(env, length, m->base + offset, view_finalize, m, &result);
  if (s != napi_ok) {
    const napi_extended_error_info* ei = NULL;
    napi_get_last_error_info(env, &ei);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) {
      char msg[300];
      snprintf(msg, sizeof msg, "could not create an external Buffer of %zu bytes: %s", length,
               ei && ei->error_message ? ei->error_message : "unknown N-API error");
      napi_throw_error(env, "ERR_SHM_VIEW", msg);
    }
    return NULL;
  }
  m->refs++;
  m->views++;
  return result;
}

/* ---------------------------------------------------------------------------------------------- */
/* copy(handle, offset, src: TypedArray | ArrayBuffer | DataView, threads?: number): number        */
/* (the threads it used: large copies split over up to `threads`, parallel_copy.c)                */

static int get_bytes(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t n;
    void* p;
    napi_get_typedarray_info(env, v, &type, &n, &p, NULL, NULL);
    size_t es = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: es = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: es = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: es = 8; break;
      default: es = 1;
    }
    *data = (uint8_t*)p;
    *len = n * es;
    return 1;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    void* p;
    napi_get_dataview_info(env, v, len, &p, NULL, NULL);
    *data = (uint8_t*)p;
    return 1;
  }
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    void* p;
    napi_get_arraybuffer_info(env, v, &p, len);
    *data = (uint8_t*)p;
    return 1;
  }
  throw_type(env, "src must be a TypedArray, DataView or ArrayBuffer");
  return 0;
}

static napi_value Copy(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return throw_type(env, "copy(handle, offset, src, threads?) takes 3 or 4 arguments");
  shm_map* m = get_map(env, argv[0], 1);
  if (!m) return NULL;
  size_t offset;
  if (!get_size(env, argv[1], "offset", &offset)) return NULL;
  uint8_t* src;
  size_t len;
  if (!get_bytes(env, argv[2], &src, &len)) return NULL;
  if (!check_range(env, m, offset, len)) return NULL;
  int32_t threads = 1;
  if (argc > 3 && napi_get_value_int32(env, argv[3], &threads) != napi_ok) return throw_type(env, "threads must be a number");
  napi_value used;
  napi_create_int32(env, tsray_parallel_copy(m->base + offset, src, len, threads), &used);
  return used;
}

/* ---------------------------------------------------------------------------------------------- */
/* prefault(handle, offset, length): Promise<void>                                                */

typedef struct prefault_work {
  napi_async_work work;
  napi_deferred deferred;
  shm_map* m;
  uint8_t* start;
  size_t length;
  int err;
  int used_fallback;
} prefault_work;

#define PREFAULT_CHUNK ((size_t)64 << 20)

static void prefault_execute(napi_env env, void* data) {
  (void)env;
  prefault_work* w = (prefault_work*)data;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uintptr_t s = (uintptr_t)w->start & ~(uintptr_t)(page - 1);
  uintptr_t end = (uintptr_t)w->start + w->length;
  int use_madvise = 1;
  while (s < end) {
    if (__atomic_load_n(&w->m->aborted, __ATOMIC_RELAXED)) return;
    uintptr_t e = s + PREFAULT_CHUNK < end ? s + PREFAULT_CHUNK : end;
    if (use_madvise) {
      if (madvise((void*)s, e - s, MADV_POPULATE_WRITE) == 0) {
        s = e;
        continue;
      }
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno != EINVAL) { /* EFAULT/ENOMEM/EHWPOISON: e.g. tmpfs out of space */
        w->err = errno;
        return;
      }
      use_madvise = 0; /* kernel < 5.14: touch the pages */
      w->used_fallback = 1;
    }
    /* Atomic add of 0: a write fault that cannot lose a concurrent writer's bytes. Note: when
     * tmpfs is out of space this raises SIGBUS; the TS layer checks free space before creating. */
    for (uintptr_t p = s; p < e; p += page) __atomic_fetch_add((uint8_t*)p, 0, __ATOMIC_RELAXED);
    s = e;
  }
}

static void prefault_complete(napi_env env, napi_status status, void* data) {
  prefault_work* w = (prefault_work*)data;
  if (status == napi_ok && w->err == 0) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, w->deferred, undef);
  } else {
    char msg[300];
    int e = w->err ? w->err : ECANCELED;
    snprintf(msg, sizeof msg, "prefault (madvise MADV_POPULATE_WRITE) failed: %s", strerror(e));
    napi_value m, c, err;
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
    napi_create_string_utf8(env, e == ECANCELED ? "ECANCELED" : errno_code(e), NAPI_AUTO_LENGTH,
                            &c);
    napi_create_error(env, c, m, &err);
    napi_reject_deferred(env, w->deferred, err);
  }
  napi_delete_async_work(env, w->work);
  release(w->m);
  free(w);
}

static napi_value Prefault(napi_env env, napi_callback_info info) {
  size_t offset, length;
  shm_map* m = handle_range_args(env, info, "prefault(handle, offset, length) takes 3 arguments", &offset, &length);
  if (!m) return NULL;

  prefault_work* w = (prefault_work*)calloc(1, sizeof *w);
  if (!w) return throw_errno(env, "calloc", NULL, ENOMEM);
  w->m = m;
  w->start = m->base + offset;
  w->length = length;
  napi_value promise, name;
  napi_create_promise(env, &w->deferred, &promise);
  napi_create_string_utf8(env, "tsray:shm:prefault", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, prefault_execute, prefault_complete, w, &w->work) !=
      napi_ok) {
    free(w);
    return NULL;
  }
  m->refs++;
  if (napi_queue_async_work(env, w->work) != napi_ok) {
    m->refs--;
    napi_delete_async_work(env, w->work);
    free(w);
    return NULL;
  }
  return promise;
}

/* ---------------------------------------------------------------------------------------------- */
/* close(handle): void — idempotent; the mapping lives on while views exist                       */

static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return throw_type(env, "close(handle) takes 1 argument");
  shm_map* m = get_map(env, argv[0], 0);
  if (!m) return NULL;
  if (!m->closed) {
    m->closed = 1;
    __atomic_store_n(&m->aborted, 1, __ATOMIC_RELAXED);
    release(m);
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* info(handle): { size, closed, mapped, views, refs }                                            */

static void set_num(napi_env env, napi_value obj, const char* key, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, key, n);
}

static void set_bool(napi_env env, napi_value obj, const char* key, int v) {
  napi_value b;
  napi_get_boolean(env, v != 0, &b);
  napi_set_named_property(env, obj, key, b);
}

static napi_value Info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) return throw_type(env, "info(handle) takes 1 argument");
  shm_map* m = get_map(env, argv[0], 0);
  if (!m) return NULL;
  napi_value obj;
  napi_create_object(env, &obj);
  set_num(env, obj, "size", (double)m->size);
  set_bool(env, obj, "closed", m->closed);
  set_bool(env, obj, "mapped", m->mapped);
  set_num(env, obj, "views", (double)m->views);
  set_num(env, obj, "refs", (double)m->refs);
  return obj;
}

/* ---------------------------------------------------------------------------------------------- */

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mapFile", NULL, MapFile, NULL, NULL, NULL, napi_enumerable, NULL},
      {"view", NULL, View, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copy", NULL, Copy, NULL, NULL, NULL, napi_enumerable, NULL},
      {"prefault", NULL, Prefault, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"info", NULL, Info, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value page;
  napi_create_double(env, (double)sysconf(_SC_PAGESIZE), &page);
  napi_set_named_property(env, exports, "pageSize", page);
  aead_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
