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

/* Pieces between these sizes come from the spares (a 16 KiB stream chunk
 * with its framing fits); smaller ones are cheap for malloc, larger rare.
 * Up to OUT_SPARES_MAX are kept: about one per response in flight at a few
 * hundred connections. With only 32, 256 connections of 16 KiB answers made
 * glibc grow and trim its heap on every batch (page faults on the JS thread,
 * brk and TLB shootdowns on L). A spare is resident only as far as it was
 * written, so the cost is at most 256 x 64 KiB per pool. */
#define OUT_POOLED_MIN 1024
#define OUT_POOLED 65600
#define OUT_SPARES_MAX 256

void ymo__out_pool_init(ymo_out_pool_t *pool, pthread_mutex_t *lock) {
  pool->lock = lock;
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

ymo_out_t *ymo__out_new(ymo_exchange_t *ex, size_t len, int flags) {
  ymo_out_pool_t *pool = ex != NULL ? ex->spares : NULL;
  ymo_out_t *out = NULL;
  bool pooled = pool != NULL && len > OUT_POOLED_MIN && len <= OUT_POOLED;
  if (pooled) {
    pthread_mutex_lock(pool->lock);
    out = pool->spare;
    if (out != NULL) {
      pool->spare = out->next;
      pool->n_spare--;
    }
    pthread_mutex_unlock(pool->lock);
    if (out == NULL) out = malloc(sizeof(*out) + OUT_POOLED);
  } else {
    out = malloc(sizeof(*out) + len);
  }
  if (out == NULL) return NULL;
  out->next = NULL;
  out->exchange = ex;
  out->pool = pooled ? pool : NULL;
  out->flags = flags;
  out->len = len;
  out->cap = pooled ? OUT_POOLED : len;
  out->off = 0;
  return out;
}

void ymo__out_free(ymo_out_t *out) {
  ymo_out_pool_t *pool = out->pool;
  if (pool != NULL) {
    pthread_mutex_lock(pool->lock);
    bool keep = pool->n_spare < OUT_SPARES_MAX;
    if (keep) {
      out->next = pool->spare;
      pool->spare = out;
      pool->n_spare++;
    }
    pthread_mutex_unlock(pool->lock);
    if (keep) return;
  }
  free(out);
}
