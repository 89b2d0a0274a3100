/* Batching between L and the worker, both ways. The main thread is the
 * worker's JS thread.
 *
 *  wake: what one iteration of L's loop queues for the worker is announced
 *        once, after it, so the worker's first take gets it all (woken at
 *        the first, it used to take that alone while L queued the rest).
 *  hold: between ymo_worker_begin_batch() and _end_batch(), a response owes
 *        L its wake instead of sending it; the batch's end sends it and the
 *        response goes out. Past the hold's time, or outside a batch, the
 *        wake is sent at once. */
#include <stdatomic.h>
#include <stdint.h>

#include "test_util.h"
#include "worker.h"

static atomic_int notified;
static void on_notify(int32_t event) {
  if (event == 0) atomic_fetch_add(&notified, 1);
}

/* On a worker of its own (no server, no L thread): what L's callbacks of
 * one iteration queue is announced once, by ymo__worker_wake_owed(), which
 * L calls from its prepare watcher before it waits. */
static void test_wake(void) {
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  CHECK(loop != NULL);
  int64_t options[16] = {0};
  atomic_int draining = 0;
  ymo_worker_t w;
  CHECK_OK(ymo__worker_init(&w, loop, 0, &draining, options));
  CHECK_OK(ymo_worker_set_notify(&w, on_notify));
  for (int i = 0; i < 3; i++) {
    ymo_exchange_t *ex = ymo__exchange_new(&w, &w.spares, NULL, false);
    CHECK(ex != NULL);
    CHECK_OK(ymo__worker_add_exchange(&w, ex));
    ymo__exchange_unref(ex); /* The queue holds its own reference. */
  }
  CHECKF(atomic_load(&notified) == 0, "notified %d times while queueing",
         atomic_load(&notified));
  ymo__worker_wake_owed(&w);
  CHECK_EQ(atomic_load(&notified), 1);
  /* Nothing new since: no second wake. */
  ymo__worker_wake_owed(&w);
  CHECK_EQ(atomic_load(&notified), 1);
  CHECK_OK(ymo_worker_set_notify(&w, NULL));
  ymo__worker_destroy(&w);
  ev_loop_destroy(loop);
}

static void answer(ymo_worker_t *w, const rec_t *r, const char *body) {
  CHECK_EQ(ymo_worker_respond(w, r->id, r->gen, 200, NULL, 0,
                              (const uint8_t *)body, (int32_t)strlen(body),
                              YMO_RESP_DONE),
           0);
}

/* test_util's clock, in ns as hold_until is. */
static uint64_t mono_ns(void) { return (uint64_t)(now_sec() * 1e9); }

static void test_hold(ymo_worker_t *w, int port) {
  takebuf_t tb = {0};
  int fd = client_connect(port);

  /* In a batch: the wake is owed, then sent by its end. The hold's end is
   * a millisecond away; pushed back here so that a slow machine cannot
   * turn the check into a race. */
  send_get(fd, "/held");
  rec_t r = take_request(w, &tb);
  uint64_t before = mono_ns();
  CHECK_OK(ymo_worker_begin_batch(w));
  uint64_t until = atomic_load(&w->hold_until);
  CHECK(until >= before + YMO__BATCH_HOLD_MS * 1000000u &&
        until <= mono_ns() + YMO__BATCH_HOLD_MS * 1000000u);
  atomic_store(&w->hold_until, UINT64_MAX);
  answer(w, &r, "held");
  CHECK_EQ(atomic_load(&w->wake_owed), 1);
  CHECK_OK(ymo_worker_end_batch(w));
  CHECK_EQ(atomic_load(&w->wake_owed), 0);
  CHECK_EQ(atomic_load(&w->holding), 0);
  expect_ok_body(fd, "held", "the response of a batch, after its end");

  /* Past the hold (YMO__BATCH_HOLD_MS): sent at once, the batch still
   * open. */
  send_get(fd, "/slow");
  r = take_request(w, &tb);
  CHECK_OK(ymo_worker_begin_batch(w));
  atomic_store(&w->hold_until, 0); /* As if the handler took long. */
  answer(w, &r, "slow");
  CHECK_EQ(atomic_load(&w->wake_owed), 0);
  expect_ok_body(fd, "slow", "a response after the hold, its batch open");
  CHECK_OK(ymo_worker_end_batch(w));

  /* Outside one: sent at once, nothing owed. */
  send_get(fd, "/free");
  r = take_request(w, &tb);
  answer(w, &r, "free");
  CHECK_EQ(atomic_load(&w->wake_owed), 0);
  expect_ok_body(fd, "free", "a response outside a batch");
  close(fd);
  takebuf_free(&tb);
}

int main(int argc, char **argv) {
  test_deadline(30);
  signal(SIGPIPE, SIG_IGN);
  CHECK(argc == 2);
  if (strcmp(argv[1], "wake") == 0) {
    test_wake();
    puts("batch_test wake: ok");
    return 0;
  }
  /* The handoff path: the loop stays on L. */
  setenv("YMO_NO_LOAN", "1", 1);
  int port;
  ymo_server_t *srv = test_server(1, &port);
  ymo_worker_t *w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_server_start(srv));
  if (strcmp(argv[1], "hold") == 0)
    test_hold(w, port);
  else
    CHECKF(false, "unknown case %s", argv[1]);
  CHECK_OK(ymo_worker_join(w));
  CHECK_OK(ymo_server_stop(srv));
  ymo_server_free(srv);
  printf("batch_test %s: ok\n", argv[1]);
  return 0;
}
