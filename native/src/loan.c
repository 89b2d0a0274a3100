/* Layer 4: the loan of the loop to the JS thread (the state machine is in
 * worker.h, "The loan").
 *
 * Why: handing every request from L to JS and every response back costs a
 * wake and a context switch each way, about what Deno.serve spends on a
 * whole request. While JS is busy it runs the loop itself between batches
 * (ymo_worker_poll), so reading, handling and writing happen on one thread;
 * when it goes idle it gives the loop back and L waits in epoll as before.
 * The handoff through queue_in and queue_out stays the one path for
 * everything: the loan only changes which thread runs the loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "exchange.h"
#include "worker.h"

int ymo__loan_init(ymo_loan_t *loan) {
  if (pthread_mutex_init(&loan->lock, NULL) != 0) return YMO_ENOMEM;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  int err = pthread_cond_init(&loan->returned, &attr);
  if (err == 0) {
    err = pthread_cond_init(&loan->handed, &attr);
    if (err != 0) pthread_cond_destroy(&loan->returned);
  }
  pthread_condattr_destroy(&attr);
  if (err != 0) {
    pthread_mutex_destroy(&loan->lock);
    return YMO_ENOMEM;
  }
  atomic_init(&loan->state, YMO__LOAN_L);
  return 0;
}

void ymo__loan_destroy(ymo_loan_t *loan) {
  const char *stats = getenv("YMO_STATS");
  if (loan->enabled && stats != NULL && *stats == '1')
    fprintf(stderr, "ymo loan: lent %lu times, taken back %lu times\n",
            loan->stat_lent, loan->stat_taken_back);
  pthread_cond_destroy(&loan->returned);
  pthread_cond_destroy(&loan->handed);
  pthread_mutex_destroy(&loan->lock);
}

/* L: JS asked for the loop; leave ev_run after this iteration (the server's
 * loop then calls ymo__worker_lend). */
static void on_ask(struct ev_loop *loop, ev_async *w, int revents) {
  (void)revents;
  ymo_worker_t *worker = w->data;
  if (atomic_load(&worker->loan.state) == YMO__LOAN_WANTED)
    ev_break(loop, EVBREAK_ONE);
}

/* The nap's end: nothing to do but return from ev_run. */
static void on_nap(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop, (void)t, (void)revents;
}

void ymo__worker_allow_loans(ymo_worker_t *w) {
  w->loan.enabled = true;
  ev_timer_init(&w->loan.nap, on_nap, 0., 0.);
  ev_async_init(&w->loan.ask, on_ask);
  w->loan.ask.data = w;
  ev_async_start(w->loop, &w->loan.ask);
}

static void add_ms(struct timespec *t, long ms) {
  t->tv_nsec += ms * 1000000L;
  t->tv_sec += t->tv_nsec / 1000000000L;
  t->tv_nsec %= 1000000000L;
}

void ymo__worker_lend(ymo_worker_t *w) {
  ymo_loan_t *loan = &w->loan;
  pthread_mutex_lock(&loan->lock);
  if (atomic_load(&loan->state) != YMO__LOAN_WANTED || loan->ended) {
    /* JS gave up asking before L got here: L runs on. */
    pthread_mutex_unlock(&loan->lock);
    return;
  }
  atomic_store(&loan->state, YMO__LOAN_JS);
  pthread_cond_signal(&loan->handed);
  loan->stat_lent++;
  unsigned long seen = loan->polls;
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  while (atomic_load(&loan->state) == YMO__LOAN_JS && !loan->ended) {
    add_ms(&deadline, YMO__LOAN_STUCK_MS);
    int rc = 0;
    while (rc != ETIMEDOUT && atomic_load(&loan->state) == YMO__LOAN_JS &&
           !loan->ended)
      rc = pthread_cond_timedwait(&loan->returned, &loan->lock, &deadline);
    if (rc != ETIMEDOUT) break;
    if (loan->polls == seen) {
      /* A whole period without a pass: JS is busy in synchronous code (it
       * cannot be inside a pass, which holds the lock). Take the loop back;
       * JS learns it from its next poll and asks again when it can. */
      loan->stat_taken_back++;
      break;
    }
    seen = loan->polls;
  }
  atomic_store(&loan->state, YMO__LOAN_L);
  pthread_mutex_unlock(&loan->lock);
}

void ymo__worker_end_loans(ymo_worker_t *w) {
  ymo_loan_t *loan = &w->loan;
  pthread_mutex_lock(&loan->lock);
  loan->ended = true;
  pthread_cond_broadcast(&loan->returned);
  pthread_cond_broadcast(&loan->handed);
  pthread_mutex_unlock(&loan->lock);
}

/* ------------------------------------------------------------------------ */
/* The JS thread's side (ymo.h).                                            */

int ymo_worker_acquire_loop(ymo_worker_t *w) {
  if (w == NULL) return YMO_EINVAL;
  ymo_loan_t *loan = &w->loan;
  if (!loan->enabled) return YMO_EALREADY;
  pthread_mutex_lock(&loan->lock);
  int rc;
  if (loan->ended || atomic_load(w->draining)) {
    rc = YMO_ESHUTDOWN;
  } else {
    if (atomic_load(&loan->state) == YMO__LOAN_L) {
      atomic_store(&loan->state, YMO__LOAN_WANTED);
      ev_async_send(w->loop, &loan->ask);
    }
    /* Wait a little for L to hand over rather than spin: on a busy core, a
     * JS thread that keeps running keeps L from getting there at all. L
     * leaves ev_run within one iteration of its loop. */
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    add_ms(&deadline, YMO__LOAN_ASK_MS);
    int wait = 0;
    while (wait != ETIMEDOUT &&
           atomic_load(&loan->state) == YMO__LOAN_WANTED && !loan->ended)
      wait = pthread_cond_timedwait(&loan->handed, &loan->lock, &deadline);
    rc = atomic_load(&loan->state) == YMO__LOAN_JS ? 1 : 0;
  }
  pthread_mutex_unlock(&loan->lock);
  return rc;
}

/* Gives the loop back to L. Caller holds the lock. */
static void give_back(ymo_loan_t *loan) {
  if (atomic_load(&loan->state) == YMO__LOAN_L) return;
  atomic_store(&loan->state, YMO__LOAN_L);
  pthread_cond_signal(&loan->returned);
}

int ymo_worker_release_loop(ymo_worker_t *w) {
  if (w == NULL) return YMO_EINVAL;
  if (!w->loan.enabled) return 0;
  pthread_mutex_lock(&w->loan.lock);
  give_back(&w->loan);
  pthread_mutex_unlock(&w->loan.lock);
  return 0;
}

enum pass { PASS_FLUSH, PASS_POLL, PASS_NAP };

/* Runs a pass of the loop if JS owns it: a flush of queue_out, one
 * iteration that does not wait, or one that waits up to nap_us for an
 * event. On shutdown the loop goes back to L, which finishes it alone. */
static int owned_pass(ymo_worker_t *w, enum pass pass, int32_t nap_us) {
  if (w == NULL) return YMO_EINVAL;
  ymo_loan_t *loan = &w->loan;
  if (!loan->enabled) return YMO_EAGAIN;
  pthread_mutex_lock(&loan->lock);
  int rc = YMO_EAGAIN;
  if (loan->ended || atomic_load(w->draining)) {
    give_back(loan);
    rc = YMO_ESHUTDOWN;
  } else if (atomic_load(&loan->state) == YMO__LOAN_JS) {
    loan->polls++;
    if (pass == PASS_NAP) {
      ev_timer_set(&loan->nap, nap_us / 1e6, 0.);
      ev_timer_start(w->loop, &loan->nap);
      ev_run(w->loop, EVRUN_ONCE);
      ev_timer_stop(w->loop, &loan->nap);
    } else if (pass == PASS_POLL) {
      ev_run(w->loop, EVRUN_NOWAIT);
    } else {
      ymo__worker_drain(w);
    }
    ymo__worker_lock_in(w);
    rc = (int)w->queue_in.count;
    ymo__worker_unlock_in(w);
  }
  pthread_mutex_unlock(&loan->lock);
  return rc;
}

int ymo_worker_poll(ymo_worker_t *w) { return owned_pass(w, PASS_POLL, 0); }

int ymo_worker_nap(ymo_worker_t *w, int32_t timeout_us) {
  if (timeout_us < 0 || timeout_us > YMO__LOAN_NAP_MAX_US) return YMO_EINVAL;
  return owned_pass(w, PASS_NAP, timeout_us);
}

int ymo_worker_flush(ymo_worker_t *w) { return owned_pass(w, PASS_FLUSH, 0); }

/* Why: past the high-water mark a streamed response waits in JS for a
 * drain notice, which only a pass of the loop brings, while the socket of a
 * client that reads could take the bytes at once (megabytes of buffer). At
 * 256 streams of 1 MiB nearly every stream waited so, in flight with a
 * chunk its stream had read ahead, each kept past the engine's young
 * collections. Written here, the stream goes on. Under the lock with the
 * loop ours, L cannot write between the write and want_drain, so no drain
 * notice is missed. */
bool ymo__loan_write_through(ymo_worker_t *w, ymo_exchange_t *ex,
                             ymo_out_t *out, long long *pending) {
  ymo_loan_t *loan = &w->loan;
  if (!loan->enabled || !ymo__worker_loop_lent(w)) return false;
  pthread_mutex_lock(&loan->lock);
  bool ours = !loan->ended && !atomic_load(w->draining) &&
              atomic_load(&loan->state) == YMO__LOAN_JS;
  if (ours) {
    loan->polls++;
    ymo__worker_push_out(w, out);
    ymo__worker_drain(w);
    *pending = atomic_load_explicit(&ex->unwritten, memory_order_relaxed);
    if (*pending > YMO_RESP_HIGH_WATER)
      atomic_store_explicit(&ex->want_drain, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&loan->lock);
  return ours;
}
