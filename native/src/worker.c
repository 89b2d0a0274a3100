/* Layer 4: the thread worker, the handoff between the libev loop thread L
 * and the JavaScript thread that drives the worker.
 *
 * In:  L parses a whole request into an exchange and calls
 *      ymo__worker_add_exchange(), which queues it under lock_in and, only on
 *      the empty-to-non-empty transition, wakes the JS thread (ready_in for
 *      Deno's blocking waiter, notify_fn for Bun). The JS thread copies a
 *      batch out with ymo_worker_take().
 * Out: the JS thread formats response bytes in ymo_worker_respond() and
 *      ymo_worker_response_body_append(), queues them under lock_out and
 *      sends event_out; L drains the queue in its async, prepare and check
 *      watchers, taking the whole list under the lock and writing after
 *      releasing it. Those watchers call the drain callback that the
 *      connection layer installed: this file never names connection code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compress.h"
#include "worker.h"

/* queue_in holds exchanges, and items about exchanges JS holds, told apart
 * by the low bits of the pointer (all are malloc-aligned): 1 is an abort
 * notice and 2 a drain notice (both the exchange itself), 3 a piece of a
 * streaming request body (a ymo_body_t). */
#define ABORT_TAG ((uintptr_t)1)
#define DRAIN_TAG ((uintptr_t)2)
#define BODY_TAG ((uintptr_t)3)
#define TAGS ((uintptr_t)3)

typedef struct {
  ymo_exchange_t *exchange; /* Holds a reference. */
  size_t len;
  bool last;
  uint8_t ws_opcode; /* A WebSocket message's opcode; 0 for a body piece. */
  uint8_t data[];
} ymo_body_t;

static uintptr_t tag_of(void *item) { return (uintptr_t)item & TAGS; }

static void *untag_ptr(void *item) {
  return (void *)((uintptr_t)item & ~TAGS);
}

/* The exchange an item of queue_in is about. */
static ymo_exchange_t *untag(void *item) {
  void *p = untag_ptr(item);
  return tag_of(item) == BODY_TAG ? ((ymo_body_t *)p)->exchange
                                  : (ymo_exchange_t *)p;
}

/* Lets go of an item of queue_in that nobody will see. */
static void drop_item(void *item) {
  ymo_exchange_t *ex = untag(item);
  if (tag_of(item) == BODY_TAG) {
    ymo_body_t *body = untag_ptr(item);
    atomic_fetch_sub(&ex->body_unacked, (long long)body->len);
    free(body);
  }
  ymo__exchange_unref(ex);
}

/* ------------------------------------------------------------------------ */
/* Life cycle.                                                              */

/* The spares of a worker's response pieces, in two classes. A small one
 * holds a 16 KiB body or stream chunk with its head or framing: the common
 * large piece, kept at its size so that a stream's chunks in flight take
 * 17 KiB each, not 64. A large one holds up to 64 KiB. Up to
 * YMO__OUT_SMALL_MAX small ones are kept: about the pieces in flight when a
 * few hundred connections stream at once (each may hold up to
 * YMO_RESP_HIGH_WATER). Too few made glibc grow and trim its heap on every
 * batch (page faults on the JS thread, brk and TLB shootdowns on L): with 32
 * spares for 256 connections of 16 KiB answers, and with 256 for 256
 * streams. A spare is resident only as far as it was written. */
#define YMO__OUT_SMALL_SIZE (17 * 1024)
#define YMO__OUT_SMALL_MAX 1024
#define YMO__OUT_LARGE_SIZE 65600
#define YMO__OUT_LARGE_MAX 256

int ymo__worker_init(ymo_worker_t *worker, struct ev_loop *loop,
                     size_t thread_id, const atomic_int *draining,
                     const int64_t *options) {
  memset(worker, 0, sizeof(*worker));
  worker->options = options;
  worker->loop = loop;
  worker->id = thread_id;
  worker->draining = draining;
  ymo__queue_init(&worker->queue_in, worker->pool_in,
                  YMO_WORKER_QUEUE_POOL_SIZE);
  ymo__queue_init(&worker->queue_out, worker->pool_out,
                  YMO_WORKER_QUEUE_POOL_SIZE);
  if (pthread_mutex_init(&worker->lock_in, NULL) != 0) return YMO_ENOMEM;
  if (pthread_mutex_init(&worker->lock_out, NULL) != 0) {
    pthread_mutex_destroy(&worker->lock_in);
    return YMO_ENOMEM;
  }
  if (pthread_cond_init(&worker->ready_in, NULL) != 0) {
    pthread_mutex_destroy(&worker->lock_out);
    pthread_mutex_destroy(&worker->lock_in);
    return YMO_ENOMEM;
  }
  if (ymo__loan_init(&worker->loan) != 0) {
    pthread_cond_destroy(&worker->ready_in);
    pthread_mutex_destroy(&worker->lock_out);
    pthread_mutex_destroy(&worker->lock_in);
    return YMO_ENOMEM;
  }
  ymo__out_pool_init(&worker->spares_large, &worker->lock_out,
                     YMO__OUT_LARGE_SIZE, YMO__OUT_LARGE_MAX, NULL);
  ymo__out_pool_init(&worker->spares, &worker->lock_out, YMO__OUT_SMALL_SIZE,
                     YMO__OUT_SMALL_MAX, &worker->spares_large);
  worker->first_free = UINT32_MAX;
  return 0;
}

static void release_slots(ymo_worker_t *w);

void ymo__worker_destroy(ymo_worker_t *w) {
  const char *stats = getenv("YMO_STATS");
  if (stats != NULL && *stats == '1')
    fprintf(stderr,
            "ymo worker %zu: %lu waits, %lu takes, %lu exchanges taken, "
            "%lu drains of queue_out\n",
            w->id, w->stat_waits, w->stat_takes, w->stat_taken,
            w->stat_drains);
  /* Only after L has been joined and no JS thread drives the worker. */
  void *item;
  while ((item = ymo__queue_pop(&w->queue_in)) != NULL) drop_item(item);
  ymo_out_t *out;
  while ((out = ymo__queue_pop(&w->queue_out)) != NULL) {
    ymo__exchange_unref(out->exchange);
    ymo__out_free(out);
  }
  release_slots(w);
  free(w->slots);
  for (int c = 0; c < YMO__N_CODINGS; c++) ymo__compressor_free(w->once[c]);
  ymo__out_pool_destroy(&w->spares);
  ymo__out_pool_destroy(&w->spares_large);
  ymo__loan_destroy(&w->loan);
  pthread_cond_destroy(&w->ready_in);
  pthread_mutex_destroy(&w->lock_out);
  pthread_mutex_destroy(&w->lock_in);
}

int ymo_worker_start(ymo_worker_t *w) {
  if (w == NULL) return YMO_EINVAL;
  ymo__worker_lock_in(w);
  int err = w->stopped ? YMO_ESHUTDOWN : 0;
  ymo__worker_unlock_in(w);
  return err;
}

int ymo_worker_set_notify(ymo_worker_t *w, ymo_notify_fn fn) {
  if (w == NULL) return YMO_EINVAL;
  ymo__worker_lock_in(w);
  w->notify_fn = fn;
  /* Released between ymo_worker_start() and now (the server stopped while
   * the thread was making its callback): tell it, or it waits for ever. */
  if (fn != NULL && w->stopped) fn(1);
  ymo__worker_unlock_in(w);
  return 0;
}

/* Wake the JS thread. Caller holds lock_in, which is what makes removing the
 * callback in ymo_worker_set_notify() final: a Bun threadsafe callback only
 * schedules a call on the JS thread, so invoking it under the lock cannot
 * deadlock. */
static void notify_locked(ymo_worker_t *w, int32_t event) {
  pthread_cond_signal(&w->ready_in);
  if (w->notify_fn != NULL) w->notify_fn(event);
}

int ymo_worker_notify(ymo_worker_t *w) {
  if (w == NULL) return YMO_EINVAL;
  ymo__worker_lock_in(w);
  w->notified = true;
  notify_locked(w, 0);
  ymo__worker_unlock_in(w);
  return 0;
}

int ymo_worker_wait(ymo_worker_t *w) {
  if (w == NULL) return YMO_EINVAL;
  ymo__worker_lock_in(w);
  while (w->queue_in.count == 0 && !w->notified && !w->stopped)
    pthread_cond_wait(&w->ready_in, &w->lock_in);
  int n = (int)w->queue_in.count;
  if (n == 0 && w->stopped) n = YMO_ESHUTDOWN;
  w->stat_waits++;
  w->notified = false;
  ymo__worker_unlock_in(w);
  return n;
}

void ymo__worker_release_waiters(ymo_worker_t *w) {
  /* What L queued after its loop's last turn (the aborts of the
   * connections shutdown closed) is announced first, as it would have
   * been from the prepare watcher. */
  ymo__worker_wake_owed(w);
  ymo__worker_lock_in(w);
  w->stopped = true;
  pthread_cond_broadcast(&w->ready_in);
  if (w->notify_fn != NULL) w->notify_fn(1);
  ymo__worker_unlock_in(w);
}

static void answer_held(ymo_worker_t *w);

int ymo_worker_join(ymo_worker_t *w) {
  if (w == NULL) return YMO_EINVAL;
  ymo__worker_lock_in(w);
  w->notify_fn = NULL;
  w->notified = true;
  pthread_cond_broadcast(&w->ready_in);
  ymo__worker_unlock_in(w);
  /* A thread that goes away with the loop or a batch must not leave L
   * waiting. */
  ymo_worker_end_batch(w);
  ymo_worker_release_loop(w);
  answer_held(w);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Handoff in.                                                              */

static int queue_in_push(ymo_worker_t *w, ymo_exchange_t *ex, void *item) {
  ymo__exchange_ref(ex);
  ymo__worker_lock_in(w);
  /* While JS runs the loop, JS is the one pushing: it takes what it queued
   * after its pass, and nobody needs waking. Otherwise the worker is woken
   * once L has run this iteration's callbacks (ymo__worker_wake_owed(), from
   * the prepare watcher), so it takes all they queued in one batch: woken at
   * the first, it took that alone while L went on queueing the rest (and
   * its responses or publishes went out alone). */
  if (w->queue_in.count == 0 && !ymo__worker_loop_lent(w)) w->wake_in = true;
  int err = ymo__queue_push(&w->queue_in, item);
  ymo__worker_unlock_in(w);
  if (err != 0) ymo__exchange_unref(ex);
  return err;
}

void ymo__worker_wake_owed(ymo_worker_t *w) {
  ymo__worker_lock_in(w);
  bool wake = w->wake_in && w->queue_in.count > 0 &&
              !ymo__worker_loop_lent(w);
  w->wake_in = false;
  /* The callback is called under the lock (see notify_locked()). */
  if (wake && w->notify_fn != NULL) w->notify_fn(0);
  ymo__worker_unlock_in(w);
  /* Signalled after unlocking: a waiter woken while L still held lock_in
   * went straight back to sleep on it, two more futex calls and context
   * switches per wake. Safe: a waiter checks the queue under the lock and
   * holds it until it is inside pthread_cond_wait(). */
  if (wake) pthread_cond_signal(&w->ready_in);
}

int ymo__worker_add_exchange(ymo_worker_t *w, ymo_exchange_t *ex) {
  return queue_in_push(w, ex, ex);
}

int ymo__worker_add_abort(ymo_worker_t *w, ymo_exchange_t *ex) {
  return queue_in_push(w, ex, (void *)((uintptr_t)ex | ABORT_TAG));
}

int ymo__worker_add_drain(ymo_worker_t *w, ymo_exchange_t *ex) {
  return queue_in_push(w, ex, (void *)((uintptr_t)ex | DRAIN_TAG));
}

/* A body piece, or with ws_opcode a WebSocket message, for JS. */
static int add_piece(ymo_worker_t *w, ymo_exchange_t *ex, const uint8_t *data,
                     size_t len, bool last, uint8_t ws_opcode) {
  ymo_body_t *body = malloc(sizeof(*body) + len);
  if (body == NULL) return YMO_ENOMEM;
  body->exchange = ex;
  body->len = len;
  body->last = last;
  body->ws_opcode = ws_opcode;
  if (len > 0) memcpy(body->data, data, len);
  atomic_fetch_add(&ex->body_unacked, (long long)len);
  int err = queue_in_push(w, ex, (void *)((uintptr_t)body | BODY_TAG));
  if (err != 0) {
    atomic_fetch_sub(&ex->body_unacked, (long long)len);
    free(body);
  }
  return err;
}

int ymo__worker_add_body(ymo_worker_t *w, ymo_exchange_t *ex,
                         const uint8_t *data, size_t len, bool last) {
  return add_piece(w, ex, data, len, last, 0);
}

int ymo__worker_add_ws(ymo_worker_t *w, ymo_exchange_t *ex, int opcode,
                       const uint8_t *data, size_t len) {
  return add_piece(w, ex, data, len, false, (uint8_t)opcode);
}

static uint32_t slot_alloc(ymo_worker_t *w, ymo_exchange_t *ex) {
  uint32_t id = w->first_free;
  if (id == UINT32_MAX) {
    uint32_t n = w->n_slots ? w->n_slots * 2 : 64;
    ymo_slot_t *slots = realloc(w->slots, n * sizeof(*slots));
    if (slots == NULL) return UINT32_MAX;
    for (uint32_t i = n; i-- > w->n_slots;) {
      slots[i].exchange = NULL;
      slots[i].gen = 1;
      slots[i].next_free = w->first_free;
      w->first_free = i;
    }
    w->slots = slots;
    w->n_slots = n;
    id = w->first_free;
  }
  w->first_free = w->slots[id].next_free;
  w->slots[id].exchange = ex;
  ex->slot = id;
  return id;
}

static void slot_free(ymo_worker_t *w, uint32_t id) {
  w->slots[id].exchange = NULL;
  w->slots[id].gen++;
  w->slots[id].next_free = w->first_free;
  w->first_free = id;
}

static ymo_exchange_t *slot_get(ymo_worker_t *w, uint32_t id, uint32_t gen) {
  if (w == NULL || id >= w->n_slots) return NULL;
  ymo_slot_t *s = &w->slots[id];
  return s->gen == gen ? s->exchange : NULL;
}

#define TAKE_BATCH 256

/* One record picked for a take(): a request, or a notice or body piece for
 * a held one. */
typedef struct {
  ymo_exchange_t *exchange;
  ymo_body_t *body; /* For body pieces. */
  uint32_t id, gen;
  uint8_t notice; /* 0 for a request, else YMO_REQF_ABORT, _DRAIN, _BODY. */
  size_t size;
} pick_t;

int32_t ymo_worker_take(ymo_worker_t *w, uint8_t *buf, int32_t cap) {
  if (w == NULL || buf == NULL || cap < 0) return YMO_EINVAL;
  pick_t picks[TAKE_BATCH];
  int n = 0;
  size_t total = 0, needed = 0;
  /* Decide under the lock, in queue order, what this batch holds: handles
   * are given out here, so a notice later in the same batch sees the
   * exchange it is about as held. Items nobody will see (exchanges whose
   * client left, notices for exchanges not held) are dropped here too, so a
   * batch never comes back empty while the queue has work. The copying is
   * done after the lock is released. The slot table is the JS thread's, and
   * this is the JS thread. */
  ymo__worker_lock_in(w);
  while (n < TAKE_BATCH && w->queue_in.head != NULL) {
    void *item = w->queue_in.head->item;
    ymo_exchange_t *ex = untag(item);
    uintptr_t tag = tag_of(item);
    bool drop;
    size_t size;
    if (tag) {
      ymo_slot_t *slot = ex->slot < w->n_slots ? &w->slots[ex->slot] : NULL;
      drop = slot == NULL || slot->exchange != ex;
      size = YMO_REQ_ABORT_SIZE;
      if (tag == BODY_TAG)
        size += (((ymo_body_t *)untag_ptr(item))->len + 7) & ~(size_t)7;
    } else {
      drop = atomic_load_explicit(&ex->aborted, memory_order_acquire);
      size = ex->req_len;
    }
    if (drop) {
      ymo__queue_pop(&w->queue_in);
      drop_item(item); /* May free it: plain memory, fine here. */
      continue;
    }
    if (total + size > (size_t)cap) {
      if (n == 0) needed = size;
      break;
    }
    ymo__queue_pop(&w->queue_in);
    pick_t *pick = &picks[n];
    pick->exchange = ex;
    pick->size = size;
    pick->body = tag == BODY_TAG ? untag_ptr(item) : NULL;
    if (tag) {
      pick->notice = tag == ABORT_TAG   ? YMO_REQF_ABORT
                     : tag == DRAIN_TAG ? YMO_REQF_DRAIN
                                        : YMO_REQF_BODY;
      pick->id = ex->slot;
    } else {
      pick->notice = 0;
      pick->id = slot_alloc(w, ex);
      if (pick->id == UINT32_MAX) {
        /* Out of memory for the handle table: drop the request; its
         * connection waits until the client gives up. */
        ymo__exchange_unref(ex);
        continue;
      }
    }
    pick->gen = w->slots[pick->id].gen;
    n++;
    total += size;
  }
  w->stat_takes++;
  w->stat_taken += (unsigned long)n;
  ymo__worker_unlock_in(w);

  size_t off = 0;
  for (int i = 0; i < n; i++) {
    pick_t *pick = &picks[i];
    if (pick->notice) {
      ymo_body_t *body = pick->body;
      if (body != NULL) {
        uint8_t flags = pick->notice | (body->last ? YMO_REQF_END : 0) |
                        (body->ws_opcode ? YMO_REQF_UPGRADE : 0);
        ymo__record_notice(buf + off, pick->size, pick->id, pick->gen, flags,
                           body->data, body->len);
        if (body->ws_opcode)
          buf[off + YMO_REQ_AT_http_minor] = body->ws_opcode;
        free(body);
      } else {
        ymo__record_notice(buf + off, pick->size, pick->id, pick->gen,
                           pick->notice, NULL, 0);
      }
      /* The item's own reference; the slot keeps the exchange alive. */
      ymo__exchange_unref(pick->exchange);
    } else {
      ymo__record_copy(buf + off, pick->exchange, pick->id, pick->gen);
    }
    off += pick->size;
  }
  if (n == 0 && needed > 0) return -(int32_t)needed;
  return (int32_t)off;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int ymo_worker_begin_batch(ymo_worker_t *w) {
  if (w == NULL) return YMO_EINVAL;
  atomic_store_explicit(&w->hold_until,
                        now_ns() + YMO__BATCH_HOLD_MS * 1000000u,
                        memory_order_relaxed);
  atomic_store(&w->holding, 1);
  return 0;
}

int ymo_worker_end_batch(ymo_worker_t *w) {
  if (w == NULL) return YMO_EINVAL;
  /* Sequentially consistent with wake_l(): either a pusher sees holding
   * cleared and wakes L itself, or this sees the wake it owes. */
  atomic_store(&w->holding, 0);
  if (atomic_exchange(&w->wake_owed, 0)) ev_async_send(w->loop, &w->event_out);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Handoff out.                                                             */

/* Tells L that queue_out has pieces: now, or when the batch in hand ends. */
static void wake_l(ymo_worker_t *w) {
  if (atomic_load(&w->holding) &&
      now_ns() < atomic_load_explicit(&w->hold_until, memory_order_relaxed)) {
    atomic_store(&w->wake_owed, 1);
    if (atomic_load(&w->holding)) return;
  }
  ev_async_send(w->loop, &w->event_out);
}

static void push_out(ymo_worker_t *w, ymo_out_t *out) {
  ymo_exchange_t *ex = out->exchange; /* NULL for a server-wide publish. */
  if (ex != NULL)
    atomic_fetch_add_explicit(&ex->unwritten, (long long)out->len,
                              memory_order_relaxed);
  ymo__worker_lock_out(w);
  int err = ymo__queue_push(&w->queue_out, out);
  ymo__worker_unlock_out(w);
  if (err != 0) {
    /* The heap is exhausted: the piece is lost, so the connection must not
     * go on as if it were sent. Mark the exchange aborted; L closes it. */
    if (ex != NULL) {
      atomic_store(&ex->aborted, 1);
      ymo__exchange_unref(ex);
    }
    ymo__out_free(out);
    return;
  }
  wake_l(w);
}

ymo_exchange_t *ymo__worker_held(ymo_worker_t *w, uint32_t id, uint32_t gen) {
  return slot_get(w, id, gen);
}

void ymo__worker_push_out(ymo_worker_t *w, ymo_out_t *out) { push_out(w, out); }

/* Moves the slot's reference to a final output piece (or drops it). A
 * streamed response's coder ends with it, finished or not. */
static void finish_slot(ymo_worker_t *w, ymo_exchange_t *ex) {
  slot_free(w, ex->slot);
  ex->resp_state = 2;
  ymo__compressor_free(ex->resp_coder);
  ex->resp_coder = NULL;
}

void ymo__worker_finish_slot(ymo_worker_t *w, ymo_exchange_t *ex) {
  finish_slot(w, ex);
}

/* Automatic compression (YMO_OPT_COMPRESSION) of a response about to
 * start, on the JS thread, where the body already is in C's hands and L
 * stays free for I/O. A response with a body gets Vary: Accept-Encoding
 * (as with Deno.serve, compressed or not, so a cache keeps the variants
 * apart); a compressible one (compress.h) the client accepts a coding for
 * is compressed: a fixed body at once (unless shorter than
 * YMO__COMPRESS_MIN), a streamed one piece by piece through a coder kept in
 * ex->resp_coder. r is pointed at the new header lines (in *fields, which
 * the caller frees once r is built) and body (in a coder's buffer, valid
 * until the next response). Returns 0 or YMO_ENOMEM. */
static int compress_start(ymo_worker_t *w, ymo_exchange_t *ex,
                          ymo_response_t *r, uint8_t **fields) {
  *fields = NULL;
  if (r->status == 204 || r->status == 304 || (r->done && r->body_len == 0))
    return 0;
  ymo_compress_plan_t plan;
  ymo__compress_plan(&plan, r->status, r->fields, r->fields_len);
  int coding = YMO__CODING_NONE;
  /* The record is immutable once queued, so this JS thread may read it. */
  if (plan.eligible && !r->head &&
      (!r->done || r->body_len >= YMO__COMPRESS_MIN))
    coding = ymo__compress_request_coding(ex);
  const uint8_t *out = r->body;
  size_t out_len = r->body_len;
  if (coding != YMO__CODING_NONE && r->done) {
    if (w->once[coding] == NULL) w->once[coding] = ymo__compressor_new(coding);
    if (w->once[coding] == NULL ||
        ymo__compressor_once(w->once[coding], r->body, r->body_len, &out,
                             &out_len) != 0)
      return YMO_ENOMEM;
  } else if (coding != YMO__CODING_NONE) {
    ex->resp_coder = ymo__compressor_new(coding);
    if (ex->resp_coder == NULL ||
        ymo__compressor_run(ex->resp_coder, r->body, r->body_len, false, &out,
                            &out_len) != 0) {
      ymo__compressor_free(ex->resp_coder);
      ex->resp_coder = NULL;
      return YMO_ENOMEM;
    }
  }
  size_t fields_len;
  *fields = ymo__compress_fields(r->fields, r->fields_len, coding,
                                 plan.vary_has, &fields_len);
  if (*fields == NULL) {
    ymo__compressor_free(ex->resp_coder);
    ex->resp_coder = NULL;
    return YMO_ENOMEM;
  }
  r->fields = *fields;
  r->fields_len = fields_len;
  r->body = out;
  r->body_len = out_len;
  return 0;
}

int ymo_worker_respond(ymo_worker_t *w, uint32_t id, uint32_t gen, int status,
                       const uint8_t *headers, int32_t headers_len,
                       const uint8_t *body, int32_t body_len, int flags) {
  ymo_exchange_t *ex = slot_get(w, id, gen);
  if (ex == NULL) return YMO_ESTALE;
  if (ex->resp_state != 0 || status < 200 || status > 999 || headers_len < 0 ||
      body_len < 0 || (headers_len > 0 && headers == NULL) ||
      (body_len > 0 && body == NULL))
    return YMO_EINVAL;
  bool done = flags & YMO_RESP_DONE;
  if (atomic_load_explicit(&ex->aborted, memory_order_acquire)) {
    /* Nobody is listening: the handle is finished here. */
    finish_slot(w, ex);
    ymo__exchange_unref(ex);
    return YMO_EPIPE;
  }
  ymo_response_t r = {
      .status = status,
      .fields = headers,
      .fields_len = (size_t)headers_len,
      .body = body,
      .body_len = (size_t)body_len,
      .done = done,
      .head = ex->req_flags & YMO_REQF_HEAD,
      .http10 = ex->http_major == 1 && ex->http_minor == 0,
      .close = !(ex->req_flags & YMO_REQF_KEEPALIVE) ||
               (flags & YMO_RESP_CLOSE) ||
               atomic_load_explicit(w->draining, memory_order_relaxed),
      .own_length = flags & YMO_RESP_OWN_LENGTH,
      .keepalive_ms = w->options[YMO_OPT_KEEPALIVE_TIMEOUT_MS],
  };
  uint8_t *own_fields = NULL;
  if (w->compress) {
    int err = compress_start(w, ex, &r, &own_fields);
    if (err != 0) return err;
  }
  ymo_out_t *out;
  int err = ymo__response_start(&r, &w->date, ex, &out);
  if (own_fields != NULL) {
    free(own_fields);
    for (int c = 0; c < YMO__N_CODINGS; c++) ymo__compressor_trim(w->once[c]);
  }
  if (err != 0) {
    ymo__compressor_free(ex->resp_coder);
    ex->resp_coder = NULL;
    return err;
  }
  ex->resp_chunked = r.chunked;
  ex->resp_no_body = r.no_body;
  ex->resp_close = r.close;
  if (done)
    finish_slot(w, ex); /* The slot's reference moves to `out`. */
  else {
    ex->resp_state = 1;
    ymo__exchange_ref(ex);
  }
  push_out(w, out);
  return 0;
}

int32_t ymo_worker_response_body_append(ymo_worker_t *w, uint32_t id,
                                        uint32_t gen, const uint8_t *body,
                                        int32_t body_len, int flags) {
  ymo_exchange_t *ex = slot_get(w, id, gen);
  if (ex == NULL) return YMO_ESTALE;
  if (ex->resp_state != 1 || body_len < 0 || (body_len > 0 && body == NULL))
    return YMO_EINVAL;
  bool done = flags & YMO_RESP_DONE;
  if (atomic_load_explicit(&ex->aborted, memory_order_acquire)) {
    /* Nobody is listening: the handle is finished here. */
    finish_slot(w, ex);
    ymo__exchange_unref(ex);
    return YMO_EPIPE;
  }
  size_t send = ex->resp_no_body ? 0 : (size_t)body_len;
  if (ex->resp_coder != NULL) {
    /* Compressed and flushed, so what JS appended goes out now. */
    const uint8_t *coded;
    int err = ymo__compressor_run(ex->resp_coder, body, (size_t)body_len,
                                  done, &coded, &send);
    if (err != 0) return err;
    body = coded;
  }
  int out_flags = (done ? YMO_RESP_DONE : 0) |
                  (ex->resp_close ? YMO_RESP_CLOSE : 0);
  ymo_out_t *out =
      ymo__response_more(ex, body, send, ex->resp_chunked, done, out_flags);
  if (out == NULL) return YMO_ENOMEM;
  if (done)
    finish_slot(w, ex);
  else
    ymo__exchange_ref(ex);
  long long pending =
      atomic_load_explicit(&ex->unwritten, memory_order_relaxed) +
      (long long)out->len;
  bool over = !done && pending > YMO_RESP_HIGH_WATER;
  if (!over || !ymo__loan_write_through(w, ex, out, &pending)) {
    /* Past the high-water mark the caller waits for a drain notice; ask L
     * for one before it can see this piece. */
    if (over) atomic_store_explicit(&ex->want_drain, 1, memory_order_relaxed);
    push_out(w, out);
  }
  return pending > INT32_MAX ? INT32_MAX : (int32_t)pending;
}

int ymo_worker_respond_canned(ymo_worker_t *w, uint32_t id, uint32_t gen,
                              int status, int flags) {
  ymo_response_t page;
  ymo__response_canned(&page, status);
  return ymo_worker_respond(w, id, gen, status, page.fields,
                            (int32_t)page.fields_len, page.body,
                            (int32_t)page.body_len,
                            YMO_RESP_DONE | (flags & YMO_RESP_CLOSE));
}

int ymo_worker_release(ymo_worker_t *w, uint32_t id, uint32_t gen) {
  ymo_exchange_t *ex = slot_get(w, id, gen);
  if (ex == NULL) return YMO_ESTALE;
  if (ex->resp_state == 0)
    return ymo_worker_respond_canned(w, id, gen, 500, YMO_RESP_CLOSE);
  ymo_out_t *out = ymo__out_new(ex, 0, YMO_RESP_DONE | YMO_RESP_CLOSE |
                                           YMO__OUT_ABORT);
  finish_slot(w, ex);
  if (out == NULL) {
    atomic_store(&ex->aborted, 1);
    ymo__exchange_unref(ex);
    return YMO_ENOMEM;
  }
  push_out(w, out);
  return 0;
}

int ymo_worker_body_ack(ymo_worker_t *w, uint32_t id, uint32_t gen,
                        int32_t bytes) {
  ymo_exchange_t *ex = slot_get(w, id, gen);
  if (ex == NULL) return YMO_ESTALE;
  if (bytes <= 0) return 0;
  long long left = atomic_fetch_sub(&ex->body_unacked, bytes) - bytes;
  if (left <= YMO_BODY_LOW_WATER && atomic_exchange(&ex->want_resume, 0)) {
    ymo_out_t *out = ymo__out_new(ex, 0, YMO__OUT_RESUME);
    if (out == NULL) return YMO_ENOMEM;
    ymo__exchange_ref(ex);
    push_out(w, out);
  }
  return 0;
}

int ymo_worker_set_timeout(ymo_worker_t *w, uint32_t id, uint32_t gen,
                           int32_t ms) {
  ymo_exchange_t *ex = slot_get(w, id, gen);
  if (ex == NULL) return YMO_ESTALE;
  if (ms < 0) return YMO_EINVAL;
  /* A zero-length piece whose off says the timeout (len counts as
   * unwritten bytes), in order with the response's pieces. */
  ymo_out_t *out = ymo__out_new(ex, 0, YMO__OUT_TIMEOUT);
  if (out == NULL) return YMO_ENOMEM;
  out->off = (size_t)ms;
  ymo__exchange_ref(ex);
  push_out(w, out);
  return 0;
}

int ymo_worker_aborted(ymo_worker_t *w, uint32_t id, uint32_t gen) {
  ymo_exchange_t *ex = slot_get(w, id, gen);
  if (ex == NULL) return YMO_ESTALE;
  return atomic_load_explicit(&ex->aborted, memory_order_acquire) ? 1 : 0;
}

/* The JS thread is going away: every exchange it holds gets a 503 if no
 * response was started, or a close if one was. Queued ones stay queued for
 * the next thread that drives this worker. */
static void answer_held(ymo_worker_t *w) {
  for (uint32_t i = 0; i < w->n_slots; i++) {
    ymo_exchange_t *ex = w->slots[i].exchange;
    if (ex == NULL) continue;
    if (ex->resp_state == 0)
      ymo_worker_respond_canned(w, i, w->slots[i].gen, 503, YMO_RESP_CLOSE);
    else
      ymo_worker_release(w, i, w->slots[i].gen);
  }
}

static void release_slots(ymo_worker_t *w) {
  for (uint32_t i = 0; i < w->n_slots; i++) {
    if (w->slots[i].exchange != NULL) {
      ymo__compressor_free(w->slots[i].exchange->resp_coder);
      w->slots[i].exchange->resp_coder = NULL;
      ymo__exchange_unref(w->slots[i].exchange);
      slot_free(w, i);
    }
  }
}

/* ------------------------------------------------------------------------ */
/* L's side of the output queue.                                            */

ymo_queue_node_t *ymo__worker_take_out(ymo_worker_t *w) {
  ymo__worker_lock_out(w);
  ymo_queue_node_t *list = ymo__queue_take_all(&w->queue_out);
  ymo__worker_unlock_out(w);
  if (list != NULL) w->stat_drains++;
  return list;
}

void ymo__worker_recycle_out(ymo_worker_t *w, ymo_queue_node_t *list) {
  ymo__worker_lock_out(w);
  ymo__queue_recycle(&w->queue_out, list);
  ymo__worker_unlock_out(w);
}

void ymo__worker_drain(ymo_worker_t *w) {
  /* Responses tend to come in bursts: after a drain that found some, poll
   * once more before sleeping. */
  if (w->drain(w, w->drain_arg))
    ev_idle_start(w->loop, &w->idle_watcher);
  else
    ev_idle_stop(w->loop, &w->idle_watcher);
}

/* Three of the watchers that drain queue_out differ only in their type. */
#define DRAIN_CALLBACK(name, type)                                     \
  static void name(struct ev_loop *loop, type *watcher, int revents) { \
    (void)loop;                                                        \
    (void)revents;                                                     \
    ymo__worker_drain(watcher->data);                                  \
  }
DRAIN_CALLBACK(on_event_out, ev_async)
DRAIN_CALLBACK(on_check, ev_check)
DRAIN_CALLBACK(on_idle, ev_idle)
#undef DRAIN_CALLBACK

/* Before L waits: the worker's wake for what this iteration queued, then a
 * drain like the others. */
static void on_prepare(struct ev_loop *loop, ev_prepare *watcher,
                       int revents) {
  (void)loop;
  (void)revents;
  ymo__worker_wake_owed(watcher->data);
  ymo__worker_drain(watcher->data);
}

void ymo__worker_attach(ymo_worker_t *w, ymo_drain_fn drain, void *arg) {
  w->drain = drain;
  w->drain_arg = arg;
  ev_async_init(&w->event_out, on_event_out);
  w->event_out.data = w;
  ev_prepare_init(&w->prepare_watcher, on_prepare);
  w->prepare_watcher.data = w;
  ev_check_init(&w->check_watcher, on_check);
  w->check_watcher.data = w;
  ev_idle_init(&w->idle_watcher, on_idle);
  w->idle_watcher.data = w;
  ev_async_start(w->loop, &w->event_out);
  ev_prepare_start(w->loop, &w->prepare_watcher);
  ev_check_start(w->loop, &w->check_watcher);
}

void ymo__worker_detach(ymo_worker_t *w) {
  ev_async_stop(w->loop, &w->event_out);
  ev_prepare_stop(w->loop, &w->prepare_watcher);
  ev_check_stop(w->loop, &w->check_watcher);
  ev_idle_stop(w->loop, &w->idle_watcher);
  if (w->loan.enabled) ev_async_stop(w->loop, &w->loan.ask);
  w->drain(w, w->drain_arg);
}
