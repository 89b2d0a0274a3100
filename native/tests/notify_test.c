/* The notify path, as Bun drives a worker: L calls a C callback (here in
 * place of Bun's threadsafe JSCallback) with 0 when queue_in goes from empty
 * to non-empty and with 1 once when the server stops; the worker's thread
 * drains with take() on each call. After ymo_worker_set_notify(NULL)
 * returns, the callback is never called again. Also ymo_worker_notify() and
 * ymo_worker_join() waking a waiter. */
#include <semaphore.h>

#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* Callbacks: a notify_fn carries no context, so each server has its own
 * function and counters. */

typedef struct {
  sem_t sem;
  atomic_int zeros, ones, other;
  atomic_int calls;        /* All calls, in order. */
  atomic_int call_of_one;  /* calls when event 1 came. */
  atomic_int removed;      /* Set once set_notify(NULL) has returned. */
  atomic_int after_removal;
} notes_t;

static void note(notes_t *n, int32_t event) {
  if (atomic_load(&n->removed)) atomic_fetch_add(&n->after_removal, 1);
  int k = atomic_fetch_add(&n->calls, 1) + 1;
  if (event == 0) {
    atomic_fetch_add(&n->zeros, 1);
  } else if (event == 1) {
    atomic_fetch_add(&n->ones, 1);
    atomic_store(&n->call_of_one, k);
  } else {
    atomic_fetch_add(&n->other, 1);
  }
  sem_post(&n->sem);
}

static notes_t notes_a, notes_b, notes_c, notes_d, notes_e;
static void cb_a(int32_t event) { note(&notes_a, event); }
static void cb_b(int32_t event) { note(&notes_b, event); }
static void cb_c(int32_t event) { note(&notes_c, event); }
static void cb_d(int32_t event) { note(&notes_d, event); }
static void cb_e(int32_t event) { note(&notes_e, event); }

static void notes_init(notes_t *n) {
  memset(n, 0, sizeof(*n));
  CHECK(sem_init(&n->sem, 0, 0) == 0);
}

static void sem_wait_intr(sem_t *s) {
  while (sem_wait(s) != 0) CHECK(errno == EINTR);
}

/* ------------------------------------------------------------------------ */
/* Answering: the body is the request target. */

static void answer_batch(ymo_worker_t *w, const uint8_t *buf, int32_t n,
                         long *answered) {
  for (size_t off = 0; off < (size_t)n;) {
    rec_t r;
    off += parse_record(buf + off, (size_t)n - off, &r);
    CHECKF(!(r.flags & YMO_REQF_ABORT), "unexpected abort record");
    CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200, NULL, 0, r.url,
                                (int32_t)r.url_len, YMO_RESP_DONE));
    (*answered)++;
  }
}

typedef struct {
  int port, index, n;
} load_t;

/* Requests in pipelined pairs on one keep-alive connection. */
static void *load_main(void *arg) {
  load_t *l = arg;
  int fd = client_connect(l->port);
  char path[64], path2[64];
  for (int i = 0; i < l->n; i += 2) {
    snprintf(path, sizeof(path), "/load/%d/%d", l->index, i);
    snprintf(path2, sizeof(path2), "/load/%d/%d", l->index, i + 1);
    send_get(fd, path);
    send_get(fd, path2);
    expect_ok_body(fd, path, "load");
    expect_ok_body(fd, path2, "load");
  }
  close(fd);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Server A: driven only through the callback. */

typedef struct {
  ymo_worker_t *w;
  notes_t *notes;
  long answered, wakes;
  int removed_after; /* >0: remove the callback after this many answers. */
  atomic_long zero_wakes; /* Waits that returned 0 (ymo_worker_notify). */
  int final_wait;
} bun_t;

/* One take per callback, into a buffer big enough for everything that can
 * be queued here (fewer than 256 small requests), so each take empties
 * queue_in. Then each call means queue_in went from empty to non-empty
 * since the previous take, and the take must find something. (The JS side
 * takes until take() returns 0 instead, which is also right but lets a take
 * find what the next call announces.) */
static void *bun_main(void *arg) {
  bun_t *b = arg;
  takebuf_t tb = {.p = malloc(1 << 20), .cap = 1 << 20};
  for (;;) {
    sem_wait_intr(&b->notes->sem);
    if (atomic_load(&b->notes->ones)) break;
    b->wakes++;
    int32_t n = take_all(b->w, &tb);
    CHECKF(n > 0, "notified with nothing to take (wake %ld)", b->wakes);
    answer_batch(b->w, tb.p, n, &b->answered);
    if (b->removed_after > 0 && b->answered >= b->removed_after) break;
  }
  if (b->removed_after > 0) {
    /* Switch to the Deno way while clients keep sending. */
    CHECK_OK(ymo_worker_set_notify(b->w, NULL));
    atomic_store(&b->notes->removed, 1);
    for (;;) {
      int n = ymo_worker_wait(b->w);
      if (n == YMO_ESHUTDOWN) {
        b->final_wait = n;
        break;
      }
      CHECK(n >= 0);
      if (n == 0) atomic_fetch_add(&b->zero_wakes, 1);
      int32_t got;
      while ((got = take_all(b->w, &tb)) > 0)
        answer_batch(b->w, tb.p, got, &b->answered);
    }
  }
  takebuf_free(&tb);
  return NULL;
}

static void test_notify_driven(void) {
  int port;
  ymo_server_t *srv = test_server(1, &port);
  ymo_worker_t *w = ymo_server_worker(srv, 0);
  notes_init(&notes_a);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_worker_set_notify(w, cb_a));
  CHECK_OK(ymo_server_start(srv));
  bun_t b = {.w = w, .notes = &notes_a};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, bun_main, &b) == 0);

  /* One request at a time: every request finds queue_in empty, so each
   * one is exactly one callback. */
  int fd = client_connect(port);
  char path[64];
  const int sequential = 40;
  for (int i = 0; i < sequential; i++) {
    snprintf(path, sizeof(path), "/seq/%d", i);
    send_get(fd, path);
    expect_ok_body(fd, path, "sequential");
  }
  CHECK_EQ(atomic_load(&notes_a.zeros), sequential);

  /* Ten pipelined: between one and ten callbacks. */
  for (int i = 0; i < 10; i++) {
    snprintf(path, sizeof(path), "/pipe/%d", i);
    send_get(fd, path);
  }
  for (int i = 0; i < 10; i++) {
    snprintf(path, sizeof(path), "/pipe/%d", i);
    expect_ok_body(fd, path, "pipelined");
  }
  int zeros = atomic_load(&notes_a.zeros);
  CHECK(zeros > sequential && zeros <= sequential + 10);
  close(fd);

  /* Concurrent clients. */
  load_t l[4];
  pthread_t lt[4];
  for (int i = 0; i < 4; i++) {
    l[i] = (load_t){port, i, 60};
    CHECK(pthread_create(&lt[i], NULL, load_main, &l[i]) == 0);
  }
  for (int i = 0; i < 4; i++) CHECK(pthread_join(lt[i], NULL) == 0);
  CHECK_EQ(atomic_load(&notes_a.ones), 0);

  /* Stop: event 1, once, as the last call; it wakes the thread. */
  CHECK_OK(ymo_server_stop(srv));
  CHECK_EQ(atomic_load(&notes_a.ones), 1);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK_EQ(b.answered, sequential + 10 + 4 * 60);
  CHECK_EQ(atomic_load(&notes_a.other), 0);
  CHECK_EQ(atomic_load(&notes_a.call_of_one), atomic_load(&notes_a.calls));
  CHECK_EQ(ymo_worker_wait(w), YMO_ESHUTDOWN);
  CHECK_EQ(ymo_worker_start(w), YMO_ESHUTDOWN);
  CHECK_OK(ymo_server_stop(srv));
  CHECK_EQ(atomic_load(&notes_a.ones), 1);
  CHECK_EQ(atomic_load(&notes_a.call_of_one), atomic_load(&notes_a.calls));
  ymo_server_free(srv);
  sem_destroy(&notes_a.sem);
}

/* Server B: the callback is removed while clients are sending; from then on
 * it is never called (not even with 1 at stop), and waits carry on. */
static void test_remove_callback(void) {
  int port;
  ymo_server_t *srv = test_server(1, &port);
  ymo_worker_t *w = ymo_server_worker(srv, 0);
  notes_init(&notes_b);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_worker_set_notify(w, cb_b));
  CHECK_OK(ymo_server_start(srv));
  bun_t b = {.w = w, .notes = &notes_b, .removed_after = 50};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, bun_main, &b) == 0);
  load_t l[3];
  pthread_t lt[3];
  for (int i = 0; i < 3; i++) {
    l[i] = (load_t){port, i, 200};
    CHECK(pthread_create(&lt[i], NULL, load_main, &l[i]) == 0);
  }
  for (int i = 0; i < 3; i++) CHECK(pthread_join(lt[i], NULL) == 0);
  CHECK(atomic_load(&notes_b.removed));
  int calls = atomic_load(&notes_b.calls);
  CHECK(calls > 0);

  /* ymo_worker_notify() wakes the waiter with 0. */
  CHECK_OK(ymo_worker_notify(w));
  while (atomic_load(&b.zero_wakes) == 0) sleep_ms(1);
  int fd = client_connect(port);
  send_get(fd, "/after-removal");
  expect_ok_body(fd, "/after-removal", "after removal");
  close(fd);
  CHECK_OK(ymo_server_stop(srv));
  CHECK(pthread_join(t, NULL) == 0);
  CHECK_EQ(b.final_wait, YMO_ESHUTDOWN);
  CHECK_EQ(b.answered, 3 * 200 + 1);
  CHECK_EQ(atomic_load(&notes_b.after_removal), 0);
  CHECK_EQ(atomic_load(&notes_b.ones), 0);
  CHECK_EQ(atomic_load(&notes_b.calls), calls);
  ymo_server_free(srv);
  sem_destroy(&notes_b.sem);
}

/* Server C, never started: notify makes the next wait return 0 at once;
 * stop releases waiters and calls the callback with 1. */
static void test_never_started(void) {
  int err;
  ymo_server_t *srv = ymo_server_create(1, &err);
  CHECK(srv != NULL);
  ymo_worker_t *w = ymo_server_worker(srv, 0);
  notes_init(&notes_c);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_worker_set_notify(w, cb_c));
  CHECK_OK(ymo_worker_notify(w));
  CHECK_EQ(atomic_load(&notes_c.zeros), 1);
  CHECK_EQ(ymo_worker_wait(w), 0);
  CHECK_OK(ymo_server_stop(srv));
  CHECK_EQ(atomic_load(&notes_c.ones), 1);
  CHECK_EQ(ymo_worker_wait(w), YMO_ESHUTDOWN);
  CHECK_EQ(ymo_worker_set_notify(NULL, cb_c), YMO_EINVAL);
  CHECK_EQ(ymo_worker_notify(NULL), YMO_EINVAL);
  CHECK_EQ(ymo_worker_wait(NULL), YMO_EINVAL);
  CHECK_EQ(ymo_worker_start(NULL), YMO_EINVAL);
  CHECK_EQ(ymo_worker_join(NULL), YMO_EINVAL);
  ymo_server_free(srv);
  sem_destroy(&notes_c.sem);
}

/* The server stops after a thread started its worker but before it set
 * its callback (Bun makes the callback in between): setting it then tells
 * the thread at once that it is released, instead of never. */
static void test_notify_set_after_stop(void) {
  int err;
  ymo_server_t *srv = ymo_server_create(1, &err);
  CHECK(srv != NULL);
  ymo_worker_t *w = ymo_server_worker(srv, 0);
  notes_init(&notes_e);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_server_stop(srv));
  CHECK_EQ(atomic_load(&notes_e.calls), 0);
  CHECK_OK(ymo_worker_set_notify(w, cb_e));
  CHECK_EQ(atomic_load(&notes_e.ones), 1);
  CHECK_OK(ymo_worker_set_notify(w, NULL));
  CHECK_EQ(atomic_load(&notes_e.calls), 1);
  ymo_server_free(srv);
  sem_destroy(&notes_e.sem);
}

/* ymo_worker_join() from another thread releases a parked waiter and
 * removes the callback. */
typedef struct {
  ymo_worker_t *w;
  atomic_int parked;
  int result;
} waiter_t;

static void *waiter_main(void *arg) {
  waiter_t *wt = arg;
  atomic_store(&wt->parked, 1);
  wt->result = ymo_worker_wait(wt->w);
  return NULL;
}

static void test_join_releases(void) {
  int port;
  ymo_server_t *srv = test_server(1, &port);
  ymo_worker_t *w = ymo_server_worker(srv, 0);
  notes_init(&notes_d);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_worker_set_notify(w, cb_d));
  CHECK_OK(ymo_server_start(srv));
  waiter_t wt = {.w = w, .result = -1};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, waiter_main, &wt) == 0);
  while (!atomic_load(&wt.parked)) sleep_ms(1);
  CHECK_OK(ymo_worker_join(w));
  atomic_store(&notes_d.removed, 1);
  CHECK_OK(ymo_worker_join(w)); /* Idempotent. */
  CHECK(pthread_join(t, NULL) == 0);
  CHECK_EQ(wt.result, 0);
  /* A request after join: no callback. */
  int fd = client_connect(port);
  send_get(fd, "/after-join");
  /* The second join may have left a wake-up behind: wait returns 0 for it. */
  int n;
  while ((n = ymo_worker_wait(w)) == 0) {
  }
  CHECK_EQ(n, 1);
  close(fd);
  CHECK_OK(ymo_server_stop(srv));
  CHECK_EQ(atomic_load(&notes_d.after_removal), 0);
  CHECK_EQ(atomic_load(&notes_d.calls), 0);
  ymo_server_free(srv);
  sem_destroy(&notes_d.sem);
}

/* Join answers what the worker holds: a 503 (and a close) where no response
 * was started, a close where one was; a request still queued waits for the
 * next ymo_worker_start(). Called on the thread that drove the worker, as
 * ymo.h asks. */
static void test_join_answers_held(void) {
  int port;
  ymo_server_t *srv = test_server(1, &port);
  ymo_worker_t *w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_server_start(srv));
  int held = client_connect(port), streaming = client_connect(port);
  send_get(held, "/held");
  send_get(streaming, "/streaming");
  takebuf_t tb = {0};
  rec_t r[2];
  int got = 0;
  while (got < 2) {
    CHECK(ymo_worker_wait(w) >= 0);
    int32_t n = take_all(w, &tb);
    for (size_t off = 0; off < (size_t)n; got++) {
      CHECK(got < 2);
      off += parse_record(tb.p + off, (size_t)n - off, &r[got]);
    }
  }
  const rec_t *rs = r[0].url_len == 10 ? &r[0] : &r[1]; /* "/streaming" */
  CHECK_OK(ymo_worker_respond(w, rs->id, rs->gen, 200, NULL, 0,
                              (const uint8_t *)"part", 4, 0));
  int later = client_connect(port);
  send_get(later, "/later");
  while (ymo_worker_wait(w) < 1) {
  }
  CHECK_OK(ymo_worker_join(w));
  CHECK_OK(ymo_worker_join(w)); /* Idempotent. */
  for (int i = 0; i < 2; i++)
    CHECK_EQ(ymo_worker_respond(w, r[i].id, r[i].gen, 200, NULL, 0, NULL, 0,
                                YMO_RESP_DONE),
             YMO_ESTALE);

  expect_t e = {0};
  expect_head(&e, 503, 19, false, true, false,
              "Content-Type: text/plain;charset=UTF-8\r\n");
  db_puts(&e.b, "Service Unavailable");
  EXPECT_RESPONSE(held, &e, "held by a joined worker");
  CHECK_CLOSED(held, "held by a joined worker");
  db_free(&e.b);
  expect_head(&e, 200, -1, true, false, false, "");
  db_puts(&e.b, "4\r\npart\r\n");
  EXPECT_RESPONSE(streaming, &e, "streaming on a joined worker");
  CHECK_CLOSED(streaming, "streaming on a joined worker");
  db_free(&e.b);

  /* The next thread to drive the worker gets the queued request. */
  CHECK_OK(ymo_worker_start(w));
  int32_t n = 0;
  while (n == 0) {
    CHECK(ymo_worker_wait(w) >= 0);
    n = take_all(w, &tb);
  }
  rec_t rl;
  CHECK_EQ(parse_record(tb.p, (size_t)n, &rl), n);
  CHECK(rl.url_len == 6 && memcmp(rl.url, "/later", 6) == 0);
  CHECK_OK(ymo_worker_respond(w, rl.id, rl.gen, 200, NULL, 0, rl.url,
                              (int32_t)rl.url_len, YMO_RESP_DONE));
  expect_ok_body(later, "/later", "queued across a join");
  close(held);
  close(streaming);
  close(later);
  CHECK_OK(ymo_server_stop(srv));
  ymo_server_free(srv);
  takebuf_free(&tb);
}

int main(int argc, char **argv) {
  test_deadline(55);
  signal(SIGPIPE, SIG_IGN);
  const char *only = argc > 1 ? argv[1] : "";
  if (strcmp(only, "join") == 0) {
    test_join_answers_held();
  } else {
    test_notify_driven();
    test_remove_callback();
    test_never_started();
    test_notify_set_after_stop();
    test_join_releases();
  }
  printf("notify_test %s: ok\n", only);
  return 0;
}
