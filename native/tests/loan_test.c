/* The loan of the loop (loan.c): a C thread stands in for the JavaScript
 * thread and runs busy periods the way server/_worker.ts does (wait, take,
 * acquire, poll, take, answer, flush, give back when idle), over real
 * sockets.
 *
 * "busy": many keep-alive clients pipelining requests while the driver
 *   borrows and returns the loop; every reply is checked byte for byte, the
 *   driver must have owned the loop, and a static route answered by
 *   whichever thread runs the loop works throughout.
 * "stuck": the driver owns the loop and then stops polling (a handler stuck
 *   in synchronous code): L must take the loop back and serve other
 *   clients meanwhile; the driver's next poll says it no longer owns it.
 * "stop": ymo_server_stop() while the driver owns the loop returns, and the
 *   driver's next pass says the server is shutting down.
 * "shutdown": a graceful ymo_server_shutdown() while the driver owns the
 *   loop: the driver gives it back, L answers the request the driver still
 *   holds (answered during the grace period), and the waiter is released.
 * "nap": ymo_worker_nap() on the owned loop returns as soon as a request
 *   comes (well before its timeout), returns 0 after the timeout when none
 *   does, refuses timeouts out of range, and after ymo_server_stop() says
 *   the server is shutting down. */
#include "test_util.h"

static const char STATIC_BODY[] = "static answer";

static ymo_server_t *loan_server(int *port) {
  ymo_server_t *srv = test_server(1, port);
  CHECK_OK(ymo_server_add_static(srv, "/static", 200, NULL, 0,
                                 (const uint8_t *)STATIC_BODY,
                                 (int32_t)strlen(STATIC_BODY)));
  CHECK_OK(ymo_server_start(srv));
  return srv;
}

/* Answers every request in the batch with its target as the body. */
static long answer_batch(ymo_worker_t *w, takebuf_t *tb) {
  int32_t n = take_all(w, tb);
  long answered = 0;
  for (size_t off = 0; off < (size_t)n;) {
    rec_t r;
    off += parse_record(tb->p + off, (size_t)n - off, &r);
    if (r.flags & YMO_REQF_ABORT) continue;
    CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200, NULL, 0, r.url,
                                (int32_t)r.url_len, YMO_RESP_DONE));
    answered++;
  }
  return answered;
}

/* ------------------------------------------------------------------------ */
/* busy                                                                     */

typedef struct {
  ymo_worker_t *w;
  long answered;
  long owned_polls;  /* Passes run while owning the loop. */
  long periods;
} driver_t;

/* One busy period, as server/_worker.ts runs it; ends after `idle_passes`
 * passes without work. */
static void busy_period(driver_t *d, takebuf_t *tb, int idle_passes) {
  ymo_worker_t *w = d->w;
  d->periods++;
  d->answered += answer_batch(w, tb);
  bool owned = false;
  int idle = 0;
  while (idle < idle_passes) {
    if (!owned) {
      int rc = ymo_worker_acquire_loop(w);
      if (rc < 0) {
        CHECK_EQ(rc, YMO_ESHUTDOWN);
        break;
      }
      owned = rc == 1;
    }
    long got = 0;
    if (owned) {
      int n = ymo_worker_poll(w);
      if (n == YMO_EAGAIN) {
        owned = false;
      } else if (n < 0) {
        CHECK_EQ(n, YMO_ESHUTDOWN);
        break;
      } else {
        d->owned_polls++;
        got = answer_batch(w, tb);
        int f = ymo_worker_flush(w);
        CHECKF(f >= 0 || f == YMO_EAGAIN || f == YMO_ESHUTDOWN, "flush %d",
               f);
      }
    }
    if (!owned) got += answer_batch(w, tb);
    d->answered += got;
    idle = got > 0 ? 0 : idle + 1;
    sched_yield();
  }
  CHECK_OK(ymo_worker_release_loop(w));
  d->answered += answer_batch(w, tb);
}

static void *driver_main(void *arg) {
  driver_t *d = arg;
  takebuf_t tb = {.p = malloc(1 << 16), .cap = 1 << 16};
  for (;;) {
    int n = ymo_worker_wait(d->w);
    if (n == YMO_ESHUTDOWN) break;
    CHECK(n >= 0);
    busy_period(d, &tb, 200);
  }
  takebuf_free(&tb);
  free(tb.in);
  return NULL;
}

typedef struct {
  int port, index, n;
} load_t;

/* Pipelined pairs on one keep-alive connection, and now and then the static
 * route on a connection of its own. */
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
    if (i % 50 == 0) {
      int s = client_connect(l->port);
      send_get(s, "/static");
      expect_ok_body(s, STATIC_BODY, "static route");
      close(s);
    }
    /* Pauses let the driver go idle and give the loop back. */
    if (i % 64 == 0) sleep_ms(3);
  }
  close(fd);
  return NULL;
}

static void test_busy(void) {
  int port;
  ymo_server_t *srv = loan_server(&port);
  driver_t d = {.w = ymo_server_worker(srv, 0)};
  CHECK_OK(ymo_worker_start(d.w));
  pthread_t driver;
  CHECK(pthread_create(&driver, NULL, driver_main, &d) == 0);

  enum { CLIENTS = 8, EACH = 400 };
  load_t loads[CLIENTS];
  pthread_t clients[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    loads[i] = (load_t){.port = port, .index = i, .n = EACH};
    CHECK(pthread_create(&clients[i], NULL, load_main, &loads[i]) == 0);
  }
  for (int i = 0; i < CLIENTS; i++) pthread_join(clients[i], NULL);

  CHECK_OK(ymo_server_shutdown(srv, 1000));
  pthread_join(driver, NULL);
  CHECK_EQ(d.answered, CLIENTS * EACH);
  CHECKF(d.owned_polls > 0, "the driver never owned the loop (%ld periods)",
         d.periods);
  ymo_server_free(srv);
}

/* ------------------------------------------------------------------------ */
/* stuck, stop, shutdown: one driver step at a time, from this thread.      */

/* Asks for the loop until this thread owns it. */
static void acquire(ymo_worker_t *w) {
  for (int i = 0; ymo_worker_acquire_loop(w) != 1; i++) {
    CHECKF(i < 5000, "the loop was never handed over");
    sleep_ms(1);
  }
}

/* A started server whose worker this thread drives, with the loop lent. */
static ymo_server_t *lent_server(int *port, ymo_worker_t **w) {
  ymo_server_t *srv = loan_server(port);
  *w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(*w));
  acquire(*w);
  return srv;
}

/* Runs passes of the owned loop until a request can be taken; returns the
 * bytes take_all() wrote. */
static int32_t take_through_loop(ymo_worker_t *w, takebuf_t *tb) {
  for (int i = 0;; i++) {
    CHECKF(i < 5000, "the request never came through the owned loop");
    CHECK(ymo_worker_poll(w) >= 0);
    int32_t n = take_all(w, tb);
    if (n > 0) return n;
    sleep_ms(1);
  }
}

typedef struct {
  int port;
  atomic_int done;
} side_t;

static void *static_client(void *arg) {
  side_t *s = arg;
  int fd = client_connect(s->port);
  send_get(fd, "/static");
  expect_ok_body(fd, STATIC_BODY, "static route while the driver is stuck");
  close(fd);
  atomic_store(&s->done, 1);
  return NULL;
}

static void test_stuck(void) {
  int port;
  ymo_worker_t *w;
  ymo_server_t *srv = lent_server(&port, &w);
  CHECK(ymo_worker_poll(w) >= 0);
  /* Stuck: no pass from here. Only L can answer this client, and only once
   * it has taken the loop back. */
  side_t side = {.port = port};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, static_client, &side) == 0);
  while (!atomic_load(&side.done)) sleep_ms(1); /* test_deadline bounds it */
  pthread_join(t, NULL);
  CHECK_EQ(ymo_worker_poll(w), YMO_EAGAIN);
  CHECK_EQ(ymo_worker_flush(w), YMO_EAGAIN);
  /* It can be borrowed again, and works. */
  acquire(w);
  int fd = client_connect(port);
  send_get(fd, "/after");
  takebuf_t tb = {.p = malloc(1 << 16), .cap = 1 << 16};
  rec_t r;
  int32_t n = take_through_loop(w, &tb);
  CHECK_EQ(parse_record(tb.p, (size_t)n, &r), n);
  CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200, NULL, 0, r.url,
                              (int32_t)r.url_len, YMO_RESP_DONE));
  CHECK(ymo_worker_flush(w) >= 0);
  expect_ok_body(fd, "/after", "request through the owned loop");
  close(fd);
  CHECK_OK(ymo_worker_release_loop(w));
  ymo_server_free(srv);
  takebuf_free(&tb);
  free(tb.in);
}

static void test_stop(void) {
  int port;
  ymo_worker_t *w;
  ymo_server_t *srv = lent_server(&port, &w);
  CHECK(ymo_worker_poll(w) >= 0);
  CHECK_OK(ymo_server_stop(srv)); /* Returns: L was woken and joined. */
  CHECK_EQ(ymo_worker_poll(w), YMO_ESHUTDOWN);
  CHECK_EQ(ymo_worker_acquire_loop(w), YMO_ESHUTDOWN);
  CHECK_EQ(ymo_worker_wait(w), YMO_ESHUTDOWN);
  ymo_server_free(srv);
}

static void test_shutdown(void) {
  int port;
  ymo_worker_t *w;
  ymo_server_t *srv = lent_server(&port, &w);
  int fd = client_connect(port);
  send_get(fd, "/held");
  takebuf_t tb = {.p = malloc(1 << 16), .cap = 1 << 16};
  int32_t n = take_through_loop(w, &tb);
  rec_t r;
  CHECK_EQ(parse_record(tb.p, (size_t)n, &r), n);
  CHECK_OK(ymo_server_shutdown(srv, 5000));
  /* The next pass gives the loop back; L writes the answer. */
  CHECK_EQ(ymo_worker_poll(w), YMO_ESHUTDOWN);
  CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200, NULL, 0, r.url,
                              (int32_t)r.url_len, YMO_RESP_DONE));
  expect_t e = {0};
  expect_head(&e, 200, 5, false, true, false, "");
  db_puts(&e.b, "/held");
  EXPECT_RESPONSE(fd, &e, "held request answered during the grace period");
  db_free(&e.b);
  close(fd);
  CHECK_EQ(ymo_worker_wait(w), YMO_ESHUTDOWN);
  ymo_server_free(srv);
  takebuf_free(&tb);
  free(tb.in);
}

static void test_nap(void) {
  int port;
  ymo_worker_t *w;
  ymo_server_t *srv = lent_server(&port, &w);
  CHECK_EQ(ymo_worker_nap(w, -1), YMO_EINVAL);
  CHECK_EQ(ymo_worker_nap(w, 2001), YMO_EINVAL);
  /* Nothing comes: once what the handover left pending is done (a nap
   * returns after any event), a nap sleeps its time (epoll rounds it up
   * to 1 ms). */
  double slept = 0;
  for (int i = 0; i < 5 && slept < 0.0009; i++) {
    double t0 = now_sec();
    CHECK_EQ(ymo_worker_nap(w, 1000), 0);
    slept = now_sec() - t0;
  }
  CHECKF(slept >= 0.0009, "every nap with nothing to do ended early (the "
         "last after %.6f s)", slept);
  /* A request is there (the kernel completes the connection and holds
   * the bytes without the loop): each nap handles what is ready and
   * returns, so the accept, then the read, and it is in. */
  int fd = client_connect(port);
  send_get(fd, "/nap");
  int naps = 0, n = 0;
  while (n == 0 && naps < 3) {
    n = ymo_worker_nap(w, 2000);
    CHECK(n >= 0);
    naps++;
  }
  CHECKF(n > 0, "the request was not in after %d naps", naps);
  takebuf_t tb = {.p = malloc(1 << 16), .cap = 1 << 16};
  CHECK_EQ(answer_batch(w, &tb), 1);
  CHECK(ymo_worker_flush(w) >= 0);
  expect_ok_body(fd, "/nap", "request taken after a nap");
  close(fd);
  CHECK_OK(ymo_server_stop(srv));
  CHECK_EQ(ymo_worker_nap(w, 1000), YMO_ESHUTDOWN);
  ymo_server_free(srv);
  takebuf_free(&tb);
  free(tb.in);
}

/* An append that takes a streamed response past YMO_RESP_HIGH_WATER while
 * this thread holds the loop writes it there and then: the client gets the
 * bytes with no pass or flush after it, and the append returns what is
 * left, below the mark, so the stream need not wait for a drain notice.
 * Against a client that does not read, what is left stays past the mark,
 * and the drain notice comes through the owned loop once the client reads. */
static uint8_t big_chunk[16384];

/* Appends 16 KiB pieces until one was written (what is left fell) or what
 * is left passed the mark; returns what is left. */
static int32_t append_until_written(ymo_worker_t *w, const rec_t *r) {
  int32_t last = 0;
  for (int i = 0; i < 64; i++) {
    int32_t pending = ymo_worker_response_body_append(
        w, r->id, r->gen, big_chunk, (int32_t)sizeof(big_chunk), 0);
    CHECKF(pending >= 0, "append: %d", pending);
    if (pending < last || pending > YMO_RESP_HIGH_WATER) return pending;
    last = pending;
  }
  CHECKF(false, "64 appends and nothing was written");
  return -1;
}

static void test_write_through(void) {
  memset(big_chunk, 'w', sizeof(big_chunk));
  int port;
  ymo_worker_t *w;
  ymo_server_t *srv = lent_server(&port, &w);
  takebuf_t tb = {.p = malloc(1 << 16), .cap = 1 << 16};
  rec_t r;

  /* A client that reads: written at the mark, from this thread. */
  int fd = client_connect(port);
  send_get(fd, "/through");
  int32_t n = take_through_loop(w, &tb);
  CHECK_EQ(parse_record(tb.p, (size_t)n, &r), n);
  CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200, NULL, 0, NULL, 0, 0));
  int32_t left = append_until_written(w, &r);
  CHECKF(left <= YMO_RESP_HIGH_WATER, "%d bytes left past the mark", left);
  /* No pass, no flush: the head and at least the body up to the mark must
   * already be on the socket. */
  size_t want = YMO_RESP_HIGH_WATER;
  uint8_t *got = malloc(want);
  CHECK_EQ(recv_n(fd, got, want), want);
  CHECK(memcmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0);
  free(got);
  CHECK(ymo_worker_response_body_append(w, r.id, r.gen, NULL, 0,
                                        YMO_RESP_DONE) >= 0);
  CHECK(ymo_worker_flush(w) >= 0);
  close(fd);

  /* A client that does not read, with a small window: past the mark, and
   * a drain notice once it reads. */
  fd = client_connect_sized(port, 4096);
  send_get(fd, "/slow");
  n = take_through_loop(w, &tb);
  CHECK_EQ(parse_record(tb.p, (size_t)n, &r), n);
  CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200, NULL, 0, NULL, 0, 0));
  int32_t pending = 0;
  for (int i = 0; i < 1024 && pending <= YMO_RESP_HIGH_WATER; i++)
    pending = append_until_written(w, &r);
  CHECKF(pending > YMO_RESP_HIGH_WATER, "the socket never filled (%d left)",
         pending);
  dbuf_t all = {0};
  bool drained = false;
  for (int i = 0; i < 5000 && !drained; i++) {
    uint8_t tmp[65536];
    ssize_t k = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (k > 0) db_put(&all, tmp, (size_t)k);
    CHECK(ymo_worker_poll(w) >= 0);
    int32_t m = take_all(w, &tb);
    for (int32_t at = 0; at < m;) {
      const uint8_t *p = tb.p + at;
      uint32_t len = REC_FIELD(p, record_len);
      CHECKF(len >= YMO_REQ_ABORT_SIZE && len <= (uint32_t)(m - at),
             "record of %u bytes", len);
      if ((REC_FIELD(p, flags) & YMO_REQF_DRAIN) &&
          REC_FIELD(p, id) == r.id && REC_FIELD(p, gen) == r.gen)
        drained = true;
      at += (int32_t)len;
    }
    if (k <= 0) sleep_ms(1);
  }
  CHECKF(drained, "no drain notice after the client read %zu bytes", all.len);
  CHECK(ymo_worker_response_body_append(w, r.id, r.gen, NULL, 0,
                                        YMO_RESP_DONE) >= 0);
  CHECK(ymo_worker_flush(w) >= 0);
  close(fd);
  db_free(&all);
  CHECK_OK(ymo_worker_release_loop(w));
  ymo_server_free(srv);
  takebuf_free(&tb);
  free(tb.in);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  test_deadline(50);
  const char *which = argc > 1 ? argv[1] : "busy";
  if (strcmp(which, "busy") == 0)
    test_busy();
  else if (strcmp(which, "stuck") == 0)
    test_stuck();
  else if (strcmp(which, "stop") == 0)
    test_stop();
  else if (strcmp(which, "shutdown") == 0)
    test_shutdown();
  else if (strcmp(which, "nap") == 0)
    test_nap();
  else if (strcmp(which, "write_through") == 0)
    test_write_through();
  else
    CHECKF(false, "unknown test %s", which);
  printf("loan %s: ok\n", which);
  return 0;
}
