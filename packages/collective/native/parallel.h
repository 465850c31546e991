/* The helper-thread pool of parallel.c, for the other native files. */
#ifndef TSRAY_PARALLEL_H
#define TSRAY_PARALLEL_H
#include <stddef.h>

/** One piece of a job: `fn(ctx, i)` for i in [0, pieces). */
typedef void (*tsray_piece_fn)(void* ctx, size_t piece);

/** Run pieces 0..pieces-1 on the calling thread and the helpers; returns when all are done. */
void tsray_parallel_run(tsray_piece_fn fn, void* ctx, size_t pieces);
/** How many pieces a job over `bytes` bytes is split into (1 when helpers would not pay). */
size_t tsray_parallel_pieces(size_t bytes);
#endif
