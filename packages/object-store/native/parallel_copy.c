/*
 * Large copies into the arena over several threads. A put of a large array is one memcpy into shared
 * memory; one thread reaches one core's share of the memory bandwidth (≈ 10–20 GB/s), and a machine
 * with idle cores copies several times faster with a few threads each taking a slice. Ray does the same
 * for its puts (src/ray/util/memory.h: parallel_memcopy, "required to saturate the memory bandwidth of
 * modern cpus").
 *
 * Threads are started per copy and joined before it returns: a copy split this way is at least
 * 2 × TSRAY_COPY_MIN_PIECE bytes (≥ 0.4 ms at 20 GB/s), against ≈ 10–30 µs to start and join a thread,
 * and no thread outlives the call (nothing to stop at exit, nothing running while the process forks).
 * The JavaScript thread blocks for the copy, as it does for a plain memcpy.
 */
#include <pthread.h>
#include <string.h>

#include "parallel_copy.h"

/* Each thread copies at least this much: below it, starting the thread costs more than it saves. */
#define TSRAY_COPY_MIN_PIECE ((size_t)4 << 20)

typedef struct copy_piece {
  uint8_t* dst;
  const uint8_t* src;
  size_t len;
} copy_piece;

static void* copy_main(void* arg) {
  copy_piece* p = (copy_piece*)arg;
  memcpy(p->dst, p->src, p->len);
  return NULL;
}

static int overlaps(const uint8_t* a, const uint8_t* b, size_t len) {
  return (a < b + len) && (b < a + len);
}

int tsray_parallel_copy(uint8_t* dst, const uint8_t* src, size_t len, int threads) {
  size_t by_size = len / TSRAY_COPY_MIN_PIECE;
  size_t n = threads < 1 ? 1 : (size_t)threads;
  if (n > TSRAY_COPY_MAX_THREADS) n = TSRAY_COPY_MAX_THREADS;
  if (n > by_size) n = by_size;
  if (n <= 1 || overlaps(dst, src, len)) {
    if (len) memmove(dst, src, len);
    return 1;
  }
  /* Pieces of whole cache lines; piece 0 is the caller's. */
  size_t per = ((len + n - 1) / n + 63) & ~(size_t)63;
  copy_piece pieces[TSRAY_COPY_MAX_THREADS];
  pthread_t tids[TSRAY_COPY_MAX_THREADS];
  int started[TSRAY_COPY_MAX_THREADS] = {0};
  int used = 1;
  for (size_t i = 0; i < n; i++) {
    size_t start = i * per;
    pieces[i].dst = dst + start;
    pieces[i].src = src + start;
    pieces[i].len = start >= len ? 0 : (len - start < per ? len - start : per);
    if (i > 0 && pieces[i].len > 0 && pthread_create(&tids[i], NULL, copy_main, &pieces[i]) == 0) {
      started[i] = 1;
      used++;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (!started[i] && pieces[i].len > 0) memcpy(pieces[i].dst, pieces[i].src, pieces[i].len);
  }
  for (size_t i = 1; i < n; i++) {
    if (started[i]) pthread_join(tids[i], NULL);
  }
  return used;
}
