/* Layer 4: the worker, the handoff between the loop thread L and the JS
 * thread that drives it: queue_in (requests, body pieces and notices for
 * JS) and queue_out (response pieces for L), their locks, waking and
 * waiting, and the slot table of handles JS holds. It knows nothing of
 * connections: L's side of queue_out goes up through
 * ymo__worker_take_out()/ymo__worker_recycle_out() and the drain callback
 * that the connection layer installs with ymo__worker_attach(). */
#ifndef YMO_WORKER_H
#define YMO_WORKER_H

#include <ev.h>

#include "compress.h"
#include "response.h"

/* Nodes preallocated per queue; past these the queue falls back to malloc. */
#define YMO_WORKER_QUEUE_POOL_SIZE 256

/* Called on L by the worker's watchers to deliver what queue_out holds;
 * returns whether it found anything (the worker then polls once more on the
 * next loop iteration). */
typedef bool (*ymo_drain_fn)(ymo_worker_t *worker, void *arg);

/* ---------------------------------------------------------------------------
 * The loan (loan.c): while its JS thread is busy, a server's only worker may
 * borrow the loop from L and run it itself, between batches, so a request is
 * read, handled and answered on one thread with no wake in between.
 *
 * state goes L -> WANTED (JS asked: ymo_worker_acquire_loop sends `ask`,
 * whose callback breaks L's ev_run, and waits a little on `handed`) -> JS (L, out of ev_run, hands over and
 * waits on `returned`) -> L (JS gives it back when idle, or L takes it back
 * when JS has not polled for YMO__LOAN_STUCK_MS: a handler stuck in
 * synchronous code must not stop every other connection). JS runs the loop
 * only inside ymo_worker_poll()/ymo_worker_flush(), holding `lock`, so L and
 * JS never run it at once and each sees what the other did (the lock orders
 * them). Lock order: lock, then lock_in or lock_out.
 * ------------------------------------------------------------------------- */
enum { YMO__LOAN_L, YMO__LOAN_WANTED, YMO__LOAN_JS };

/* How long JS may own the loop without polling before L takes it back. */
#define YMO__LOAN_STUCK_MS 10
/* How long a batch may hold back its pieces' wake of L. */
#define YMO__BATCH_HOLD_MS 1
/* The longest wait of ymo_worker_nap: well below YMO__LOAN_STUCK_MS, and
 * short enough that the runtime's own timers and I/O, which wait meanwhile,
 * hardly notice. */
#define YMO__LOAN_NAP_MAX_US 2000
/* How long ymo_worker_acquire_loop waits for L to hand the loop over. */
#define YMO__LOAN_ASK_MS 2

typedef struct ymo_loan {
  pthread_mutex_t lock;
  pthread_cond_t returned; /* Signalled when state leaves JS or on stop. */
  pthread_cond_t handed;   /* Signalled when state becomes JS or on stop. */
  atomic_int state;        /* Written under lock; read without it. */
  bool enabled;            /* Set before L starts: one worker, not disabled. */
  bool ended;              /* The server stopped: no more loans. Under lock. */
  unsigned long polls;     /* JS's passes; L watches it move. Under lock. */
  ev_async ask;            /* JS to L: leave ev_run and hand over. */
  ev_timer nap;            /* Bounds a pass that waits (ymo_worker_nap). */
  unsigned long stat_lent, stat_taken_back;
} ymo_loan_t;

/* ---------------------------------------------------------------------------
 * Worker.
 *
 * Locking: lock_in protects queue_in, pool_in, notify_fn, notified, wake_in and
 * stopped; ready_in is signalled under it. lock_out protects queue_out,
 * pool_out and the spares. No thread ever holds both locks. ev_async_send()
 * on event_out coalesces: many sends before L runs wake it once, so L always
 * drains the whole of queue_out. The slot table is touched only by the
 * worker's JS thread.
 * ------------------------------------------------------------------------- */
typedef struct ymo_slot {
  ymo_exchange_t *exchange; /* NULL when free. */
  uint32_t gen;
  uint32_t next_free;
} ymo_slot_t;

struct ymo_worker {
  ymo_queue_t queue_in;
  ymo_queue_t queue_out;
  ymo_queue_node_t pool_in[YMO_WORKER_QUEUE_POOL_SIZE];
  ymo_queue_node_t pool_out[YMO_WORKER_QUEUE_POOL_SIZE];

  /* Callbacks, all on L: prepare and check drain queue_out on each loop
   * iteration; idle is started when a drain found work, so what comes next
   * is written on the next iteration without a new async send. Each calls
   * `drain` (installed by ymo__worker_attach) with drain_arg. */
  ev_prepare prepare_watcher;
  ev_check check_watcher;
  ev_idle idle_watcher;
  ymo_drain_fn drain;
  void *drain_arg;

  /* Output data is signalled to the loop with an async watcher: */
  ev_async event_out;
  pthread_mutex_t lock_out;

  /* Input data is signalled with a condition variable (Deno's waiter) and
   * the notify callback (Bun's threadsafe JSCallback): */
  pthread_mutex_t lock_in;
  pthread_cond_t ready_in;
  ymo_notify_fn notify_fn;
  bool notified;
  /* queue_in went from empty to not: wake the worker before L waits. */
  bool wake_in;
  bool stopped;

  size_t id;
  struct ev_loop *loop;
  /* The server's "shutting down" flag: responses then close. */
  const atomic_int *draining;
  /* YMO_OPT_COMPRESSION, set before L starts and read-only after. */
  bool compress;
  /* The server's options (enum ymo_option), fixed once it has started. */
  const int64_t *options;

  /* Counters for YMO_STATS=1 (printed when the server is freed): waits and
   * takes by the JS thread, exchanges taken, drains of queue_out by L. */
  unsigned long stat_waits, stat_takes, stat_taken, stat_drains;

  /* Lending the loop to the JS thread (see above). */
  ymo_loan_t loan;

  /* A batch in hand (ymo_worker_begin_batch() to _end_batch()): pieces
   * pushed meanwhile owe L one wake, sent when the batch ends, so L drains
   * the batch's responses together instead of waking for the first and
   * draining it alone (which also split a batch's publishes into separate
   * fan-outs, one send per subscriber each). For YMO__BATCH_HOLD_MS at
   * most (hold_until, CLOCK_MONOTONIC ns): slow handlers must not keep a
   * batch's first responses back for the whole batch. Any thread reads
   * them. */
  atomic_int holding, wake_owed;
  _Atomic uint64_t hold_until;

  /* Spare output pieces for this worker's exchanges, in two size classes
   * (spares chains to spares_large); under lock_out. */
  ymo_out_pool_t spares, spares_large;

  /* JS thread only. */
  /* Coders reused for fixed bodies, one per coding, made on first use. */
  ymo_compressor_t *once[YMO__N_CODINGS];
  ymo_slot_t *slots;
  uint32_t n_slots, first_free;
  ymo_date_t date;
};

int ymo__worker_init(ymo_worker_t *worker, struct ev_loop *loop,
                     size_t thread_id, const atomic_int *draining,
                     const int64_t *options);
void ymo__worker_destroy(ymo_worker_t *worker);
/* L: queue an exchange for JS (takes a new reference); the worker is woken
 * by ymo__worker_wake_owed() if the queue was empty. */
/* L, once per loop iteration (before it waits): wakes the worker if
 * queue_in went from empty to not since the last call. */
void ymo__worker_wake_owed(ymo_worker_t *worker);
int ymo__worker_add_exchange(ymo_worker_t *worker, ymo_exchange_t *exchange);
/* L: the client of a queued or taken exchange went away; JS learns it from
 * an abort record in its next take(). */
int ymo__worker_add_abort(ymo_worker_t *worker, ymo_exchange_t *exchange);
/* L: a piece of a streaming request's body (data NULL, len 0 and last set
 * for its end), copied into queue_in for JS. */
int ymo__worker_add_body(ymo_worker_t *worker, ymo_exchange_t *exchange,
                         const uint8_t *data, size_t len, bool last);
/* L: a WebSocket message (or ping, pong, close) for JS, copied, and
 * counted in body_unacked like a body piece. */
int ymo__worker_add_ws(ymo_worker_t *worker, ymo_exchange_t *exchange,
                       int opcode, const uint8_t *data, size_t len);
/* JS thread, for the API in other files (ws_worker.c): the exchange JS
 * holds as (id, gen) or NULL; queue an output piece for L; give up the
 * slot (its reference moves to the caller). */
ymo_exchange_t *ymo__worker_held(ymo_worker_t *worker, uint32_t id,
                                 uint32_t gen);
void ymo__worker_push_out(ymo_worker_t *worker, ymo_out_t *out);
void ymo__worker_finish_slot(ymo_worker_t *worker, ymo_exchange_t *exchange);
/* L: a response JS waits on has drained (see want_drain). */
int ymo__worker_add_drain(ymo_worker_t *worker, ymo_exchange_t *exchange);
/* L: the server stopped; release the waiter and call notify(1). */
void ymo__worker_release_waiters(ymo_worker_t *worker);
/* L: watchers on the loop, each calling drain(worker, arg). */
void ymo__worker_attach(ymo_worker_t *worker, ymo_drain_fn drain, void *arg);
/* L: call the drain callback now, as a watcher would. */
void ymo__worker_drain(ymo_worker_t *worker);
/* L: watchers off the loop, after a last drain. */
void ymo__worker_detach(ymo_worker_t *worker);
/* L: take the whole of queue_out (under lock_out, released on return), and
 * give its nodes back once they are walked. The items are ymo_out_t. */
ymo_queue_node_t *ymo__worker_take_out(ymo_worker_t *worker);
void ymo__worker_recycle_out(ymo_worker_t *worker, ymo_queue_node_t *list);

/* The loan, from the server (loan.c). Before L starts: allow loans. On L,
 * out of ev_run for a reason that is not shutdown: hand the loop over if JS
 * asked, and return once it is L's again. Any thread, at stop: end loans for
 * good and wake L. */
int ymo__loan_init(ymo_loan_t *loan);
void ymo__loan_destroy(ymo_loan_t *loan);
void ymo__worker_allow_loans(ymo_worker_t *worker);
void ymo__worker_lend(ymo_worker_t *worker);
void ymo__worker_end_loans(ymo_worker_t *worker);
/* JS: an append took a streamed response past YMO_RESP_HIGH_WATER. If JS
 * holds the loop, queue `out`, write what queue_out holds now and set
 * *pending to what is left of the response (asking for a drain notice if
 * that is still past the mark); false, with nothing done, if not. */
bool ymo__loan_write_through(ymo_worker_t *worker, ymo_exchange_t *exchange,
                             ymo_out_t *out, long long *pending);
/* Whether JS owns the loop now (queue_in then wakes nobody: JS polls). */
static inline bool ymo__worker_loop_lent(ymo_worker_t *w) {
  return atomic_load_explicit(&w->loan.state, memory_order_relaxed) ==
         YMO__LOAN_JS;
}

static inline int ymo__worker_lock_in(ymo_worker_t *w) {
  return pthread_mutex_lock(&w->lock_in);
}
static inline int ymo__worker_unlock_in(ymo_worker_t *w) {
  return pthread_mutex_unlock(&w->lock_in);
}
static inline int ymo__worker_lock_out(ymo_worker_t *w) {
  return pthread_mutex_lock(&w->lock_out);
}
static inline int ymo__worker_unlock_out(ymo_worker_t *w) {
  return pthread_mutex_unlock(&w->lock_out);
}

#endif /* YMO_WORKER_H */
