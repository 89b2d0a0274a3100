/* Layer 2: exchanges and their reference counts, and the output pieces that
 * carry response bytes from a JS thread to L, with the pool of spares they
 * come from. Any thread; the pool's lock is the only lock taken here. */
#include <stdlib.h>
#include <string.h>

#include "exchange.h"

/* Room for a typical request head; record.c grows it. */
#define RECORD_INITIAL_CAP 512

ymo_exchange_t *ymo__exchange_new(ymo_worker_t *worker, ymo_out_pool_t *spares,
                                  ymo_session_t *session, bool record) {
  ymo_exchange_t *ex = calloc(1, sizeof(*ex));
  if (ex == NULL) return NULL;
  if (record) {
    ex->req_cap = RECORD_INITIAL_CAP;
    ex->req = malloc(ex->req_cap);
    if (ex->req == NULL) {
      free(ex);
      return NULL;
    }
    memset(ex->req, 0, YMO_REQ_FIXED_SIZE);
    ex->req_len = YMO_REQ_FIXED_SIZE;
  }
  atomic_init(&ex->refs, 1);
  atomic_init(&ex->aborted, 0);
  atomic_init(&ex->unwritten, 0);
  ex->session = session;
  ex->worker = worker;
  ex->spares = spares;
  return ex;
}

void ymo__exchange_ref(ymo_exchange_t *ex) {
  atomic_fetch_add_explicit(&ex->refs, 1, memory_order_relaxed);
}

void ymo__exchange_unref(ymo_exchange_t *ex) {
  /* acq_rel: the thread that frees must see every write made by the others
   * before they let go. */
  if (atomic_fetch_sub_explicit(&ex->refs, 1, memory_order_acq_rel) == 1) {
    if (ex->attachment != NULL) ex->attachment->free(ex->attachment);
    free(ex->req);
    free(ex);
  }
}

/* A response piece comes from its worker's spares when it is larger than
 * this (smaller ones are cheap for malloc) and fits a spare. */
#define OUT_POOLED_MIN 1024

void ymo__out_pool_init(ymo_out_pool_t *pool, pthread_mutex_t *lock,
                        size_t piece, size_t max, ymo_out_pool_t *larger) {
  pool->lock = lock;
  pool->piece = piece;
  pool->max = max;
  pool->larger = larger;
  pool->spare = NULL;
  pool->n_spare = 0;
}

void ymo__out_pool_destroy(ymo_out_pool_t *pool) {
  while (pool->spare != NULL) {
    ymo_out_t *next = pool->spare->next;
    free(pool->spare);
    pool->spare = next;
  }
  pool->n_spare = 0;
}

static void pool_lock(ymo_out_pool_t *pool) {
  if (pool->lock != NULL) pthread_mutex_lock(pool->lock);
}

static void pool_unlock(ymo_out_pool_t *pool) {
  if (pool->lock != NULL) pthread_mutex_unlock(pool->lock);
}

ymo_out_t *ymo__out_new_in(ymo_out_pool_t *pool, ymo_exchange_t *ex,
                           size_t len, int flags) {
  ymo_out_t *out = NULL;
  while (pool != NULL && len > pool->piece) pool = pool->larger;
  bool pooled = pool != NULL;
  if (pooled) {
    pool_lock(pool);
    out = pool->spare;
    if (out != NULL) {
      pool->spare = out->next;
      pool->n_spare--;
    }
    pool_unlock(pool);
    if (out == NULL) out = malloc(sizeof(*out) + pool->piece);
  } else {
    out = malloc(sizeof(*out) + len);
  }
  if (out == NULL) return NULL;
  out->next = NULL;
  out->exchange = ex;
  out->pool = pooled ? pool : NULL;
  out->flags = flags;
  out->len = len;
  out->cap = pooled ? pool->piece : len;
  out->off = 0;
  return out;
}

ymo_out_t *ymo__out_new(ymo_exchange_t *ex, size_t len, int flags) {
  ymo_out_pool_t *pool = ex != NULL ? ex->spares : NULL;
  return ymo__out_new_in(len > OUT_POOLED_MIN ? pool : NULL, ex, len, flags);
}

void ymo__out_free(ymo_out_t *out) {
  ymo_out_pool_t *pool = out->pool;
  if (pool != NULL) {
    pool_lock(pool);
    bool keep = pool->n_spare < pool->max;
    if (keep) {
      out->next = pool->spare;
      pool->spare = out;
      pool->n_spare++;
    }
    pool_unlock(pool);
    if (keep) return;
  }
  free(out);
}
