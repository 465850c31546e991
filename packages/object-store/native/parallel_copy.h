/* Large copies split over several threads (parallel_copy.c), for shm.c's copy(). */
#ifndef TSRAY_PARALLEL_COPY_H
#define TSRAY_PARALLEL_COPY_H
#include <stddef.h>
#include <stdint.h>

/** Most threads one copy uses (the calling thread included). */
#define TSRAY_COPY_MAX_THREADS 16

/**
 * `memmove(dst, src, len)`, with up to `threads` threads (the caller and threads - 1 it starts) when the
 * copy is large enough for each to get at least TSRAY_COPY_MIN_PIECE bytes and the ranges do not overlap.
 * A thread that cannot be started leaves its piece to the caller. Returns the threads used.
 */
int tsray_parallel_copy(uint8_t* dst, const uint8_t* src, size_t len, int threads);
#endif
