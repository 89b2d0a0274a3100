/* A disconnect storm: many clients send requests and go away at every point
 * of an exchange (mid-head, mid-body, after the request, while the response
 * streams, with FIN or with RST), while two worker threads answer slowly.
 *
 * Checked: an abort record only ever names an exchange the worker holds,
 * and one comes for every taken exchange whose client left while nothing was
 * being answered; after it, or when the client is gone, respond() and
 * append() return YMO_EPIPE, then YMO_ESTALE; nothing else is ever returned;
 * the server still answers a normal client byte for byte afterwards; every
 * connection is closed; shutdown is clean. Run under ASan/TSan, any report
 * fails the test. */
#include "test_util.h"

#define MAX_TOKENS 4096

enum { K_SLOW, K_WAIT_ABORT, K_STREAM_ABORT };

static atomic_int token_taken[MAX_TOKENS];
static atomic_int next_token;
static atomic_int wait_abort_pending; /* Taken, abort record not yet seen. */
static atomic_int wait_abort_taken;
static atomic_long tick;
static atomic_int ticker_stop;
static bool hard_stop; /* The "hard-stop" run: ymo_server_stop() mid-load. */

/* ------------------------------------------------------------------------ */
/* Worker threads: hold exchanges for a few ticks, then answer.             */

typedef struct {
  uint32_t id, gen;
  int kind, mode, step, token;
  long due;
  dbuf_t body;
} hx_t;

typedef struct {
  ymo_worker_t *w;
  pthread_t thread;
  takebuf_t tb;
  unsigned seed;
  hx_t *held;
  size_t n_held, cap_held;
  atomic_int held_count;
  atomic_long answered; /* /ok requests answered. */
  long requests, abort_records, epipe, released;
  int final_wait;
} driver_t;

static void hx_remove(driver_t *d, size_t i) {
  db_free(&d->held[i].body);
  d->held[i] = d->held[--d->n_held];
  atomic_store(&d->held_count, (int)d->n_held);
}

static hx_t *hx_add(driver_t *d) {
  if (d->n_held == d->cap_held) {
    d->cap_held = d->cap_held ? d->cap_held * 2 : 64;
    d->held = realloc(d->held, d->cap_held * sizeof(hx_t));
    CHECK(d->held != NULL);
  }
  hx_t *h = &d->held[d->n_held++];
  memset(h, 0, sizeof(*h));
  atomic_store(&d->held_count, (int)d->n_held);
  return h;
}

/* After YMO_EPIPE or a finished response, the handle is stale. */
static void check_stale(driver_t *d, const hx_t *h) {
  CHECK_EQ(ymo_worker_respond(d->w, h->id, h->gen, 200, NULL, 0, NULL, 0,
                              YMO_RESP_DONE),
           YMO_ESTALE);
  CHECK_EQ(ymo_worker_response_body_append(d->w, h->id, h->gen, NULL, 0,
                                           YMO_RESP_DONE),
           YMO_ESTALE);
  CHECK_EQ(ymo_worker_release(d->w, h->id, h->gen), YMO_ESTALE);
  CHECK(ymo_worker_aborted(d->w, h->id, h->gen) < 0);
}

/* One step of a held exchange; true when it is finished (answered, or its
 * client found gone). */
static bool step(driver_t *d, hx_t *h) {
  int rc;
  if (h->kind == K_STREAM_ABORT) {
    /* Streams until the client leaves. */
    rc = ymo_worker_response_body_append(d->w, h->id, h->gen,
                                         (const uint8_t *)"more\n", 5, 0);
    CHECKF(rc >= 0 || rc == YMO_EPIPE, "append: %s", ymo_strerror(rc));
    if (rc == YMO_EPIPE) d->epipe++;
    return rc == YMO_EPIPE;
  }
  if (h->step == 0 && h->mode == 2) {
    rc = ymo_worker_release(d->w, h->id, h->gen);
    CHECKF(rc == 0 || rc == YMO_EPIPE, "release: %s", ymo_strerror(rc));
    if (rc == YMO_EPIPE) d->epipe++;
    d->released++;
    return true;
  }
  if (h->step == 0) {
    bool done = h->mode == 0;
    size_t len = done ? h->body.len : h->body.len / 2;
    rc = ymo_worker_respond(d->w, h->id, h->gen, 200, NULL, 0, h->body.p,
                            (int32_t)len, done ? YMO_RESP_DONE : 0);
    CHECKF(rc == 0 || rc == YMO_EPIPE, "respond: %s", ymo_strerror(rc));
    h->step++;
    if (rc == YMO_EPIPE) d->epipe++;
    return done || rc == YMO_EPIPE;
  }
  size_t half = h->body.len / 2;
  rc = ymo_worker_response_body_append(d->w, h->id, h->gen, h->body.p + half,
                                       (int32_t)(h->body.len - half),
                                       YMO_RESP_DONE);
  CHECKF(rc >= 0 || rc == YMO_EPIPE, "append: %s", ymo_strerror(rc));
  if (rc == YMO_EPIPE) d->epipe++;
  return true;
}

static void on_abort(driver_t *d, const rec_t *r) {
  d->abort_records++;
  size_t i = 0;
  while (i < d->n_held && !(d->held[i].id == r->id && d->held[i].gen == r->gen))
    i++;
  CHECKF(i < d->n_held, "abort record for (%u, %u), which is not held", r->id,
         r->gen);
  hx_t *h = &d->held[i];
  CHECK_EQ(ymo_worker_aborted(d->w, h->id, h->gen), 1);
  int rc;
  if (h->kind == K_STREAM_ABORT || h->step > 0)
    rc = ymo_worker_response_body_append(d->w, h->id, h->gen, NULL, 0,
                                         YMO_RESP_DONE);
  else
    rc = ymo_worker_respond(d->w, h->id, h->gen, 200, NULL, 0, NULL, 0,
                            YMO_RESP_DONE);
  CHECKF(rc == YMO_EPIPE, "answer after the abort record: %d (%s)", rc,
         ymo_strerror(rc));
  check_stale(d, h);
  if (h->kind == K_WAIT_ABORT) atomic_fetch_sub(&wait_abort_pending, 1);
  hx_remove(d, i);
}

static void on_request(driver_t *d, const rec_t *r) {
  char url[512];
  rec_url(r, url, sizeof(url));
  d->requests++;
  if (strncmp(url, "/ok", 3) == 0) {
    /* A client that reads its answer: answered at once, whole or in two
     * parts, and it must get through (in the storm; a hard stop may cut
     * it off). */
    int mode = (int)url_param(url, "m", 0);
    dbuf_t body = {0};
    db_printf(&body, "ok:%s", url);
    int rc;
    if (mode == 0) {
      rc = ymo_worker_respond(d->w, r->id, r->gen, 200, NULL, 0, body.p,
                              (int32_t)body.len, YMO_RESP_DONE);
    } else {
      rc = ymo_worker_respond(d->w, r->id, r->gen, 200, NULL, 0, body.p, 3, 0);
      if (rc == 0) {
        if (hard_stop) sched_yield(); /* Let the stop land in between. */
        rc = ymo_worker_response_body_append(d->w, r->id, r->gen, body.p + 3,
                                             (int32_t)body.len - 3,
                                             YMO_RESP_DONE);
        if (rc > 0) rc = 0;
      }
    }
    if (rc == YMO_EPIPE && hard_stop) {
      d->epipe++;
      rc = 0;
    }
    CHECKF(rc == 0, "answer to %s: %s", url, ymo_strerror(rc));
    atomic_fetch_add(&d->answered, 1);
    hx_t gone = {.id = r->id, .gen = r->gen};
    check_stale(d, &gone);
    db_free(&body);
    return;
  }
  hx_t *h = hx_add(d);
  h->id = r->id;
  h->gen = r->gen;
  h->token = (int)url_param(url, "t", -1);
  db_printf(&h->body, "answer:%s", url);
  if (strncmp(url, "/wait-abort", 11) == 0) {
    h->kind = K_WAIT_ABORT;
    h->due = -1; /* Never answered: only its abort record ends it. */
    atomic_fetch_add(&wait_abort_pending, 1);
    atomic_fetch_add(&wait_abort_taken, 1);
  } else if (strncmp(url, "/stream-abort", 13) == 0) {
    h->kind = K_STREAM_ABORT;
    h->due = 0;
    int rc = ymo_worker_respond(d->w, h->id, h->gen, 200, NULL, 0,
                                (const uint8_t *)"start\n", 6, 0);
    CHECKF(rc == 0 || rc == YMO_EPIPE, "respond: %s", ymo_strerror(rc));
    if (rc == YMO_EPIPE) {
      int token = h->token;
      d->epipe++;
      check_stale(d, h);
      hx_remove(d, d->n_held - 1);
      if (token >= 0 && token < MAX_TOKENS)
        atomic_store(&token_taken[token], 1);
      return;
    }
  } else {
    h->kind = K_SLOW;
    h->mode = (int)(rand_r(&d->seed) % 10);
    h->mode = h->mode < 5 ? 0 : h->mode < 9 ? 1 : 2;
    h->due = atomic_load(&tick) + (long)(rand_r(&d->seed) % 4);
  }
  if (h->token >= 0 && h->token < MAX_TOKENS)
    atomic_store(&token_taken[h->token], 1);
}

static void answer_due(driver_t *d) {
  long now = atomic_load(&tick);
  for (size_t i = 0; i < d->n_held;) {
    hx_t *h = &d->held[i];
    if (h->due < 0 || h->due > now) {
      i++;
      continue;
    }
    if (step(d, h)) {
      check_stale(d, h);
      hx_remove(d, i);
    } else {
      h->due = now + 1;
      i++;
    }
  }
}

static void *driver_main(void *arg) {
  driver_t *d = arg;
  for (;;) {
    int n = ymo_worker_wait(d->w);
    if (n == YMO_ESHUTDOWN) {
      d->final_wait = n;
      break;
    }
    CHECKF(n >= 0, "wait: %d", n);
    /* Answer what is due before or after taking more, so answers race
     * with abort records both ways. */
    bool answer_first = rand_r(&d->seed) % 2;
    if (answer_first) answer_due(d);
    int32_t got;
    while ((got = take_all(d->w, &d->tb)) > 0) {
      for (size_t off = 0; off < (size_t)got;) {
        rec_t r;
        off += parse_record(d->tb.p + off, (size_t)got - off, &r);
        if (r.flags & YMO_REQF_ABORT)
          on_abort(d, &r);
        else
          on_request(d, &r);
      }
    }
    if (!answer_first) answer_due(d);
  }
  takebuf_free(&d->tb);
  return NULL;
}

/* Wakes both workers every 2 ms, so held exchanges move on. */
static ymo_worker_t *tick_workers[2];

static void *ticker_main(void *arg) {
  (void)arg;
  while (!atomic_load(&ticker_stop)) {
    sleep_ms(2);
    atomic_fetch_add(&tick, 1);
    for (int i = 0; i < 2; i++) CHECK_OK(ymo_worker_notify(tick_workers[i]));
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Clients.                                                                 */

typedef struct {
  int index, port, iterations;
  unsigned seed;
  pthread_t thread;
  long normal;
} client_t;

static unsigned rnd(client_t *c) { return (unsigned)rand_r(&c->seed); }

static void leave(client_t *c, int fd) {
  if (rnd(c) % 2)
    close_rst(fd);
  else
    close(fd);
}

static void send_path(int fd, const char *path) {
  char req[256];
  int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: s\r\n\r\n",
                     path);
  /* The server may have closed already (a pipelined error); that's fine. */
  (void)send_all_try(fd, req, (size_t)len);
}

static int new_token(void) {
  int t = atomic_fetch_add(&next_token, 1);
  CHECK(t < MAX_TOKENS);
  return t;
}

/* A normal client: two requests on one connection, each checked. */
static void normal_client(client_t *c, int fd) {
  for (int i = 0; i < 2; i++) {
    char path[64];
    int mode = (int)(rnd(c) % 2);
    snprintf(path, sizeof(path), "/ok?m=%d&c=%d&i=%d", mode, c->index, i);
    send_path(fd, path);
    expect_t e = {0};
    dbuf_t body = {0};
    db_printf(&body, "ok:%s", path);
    if (mode == 0) {
      expect_head(&e, 200, (long long)body.len, false, false, false, "");
      db_put(&e.b, body.p, body.len);
    } else {
      expect_head(&e, 200, -1, true, false, false, "");
      expect_chunk(&e, body.p, 3);
      expect_chunk(&e, body.p + 3, body.len - 3);
      db_puts(&e.b, "0\r\n\r\n");
    }
    EXPECT_RESPONSE(fd, &e, "normal client during the storm");
    db_free(&e.b);
    db_free(&body);
  }
  c->normal++;
  close(fd);
}

static void *client_main(void *arg) {
  client_t *c = arg;
  char path[128];
  for (int it = 0; it < c->iterations; it++) {
    int fd = client_connect(c->port);
    /* Every client does each deterministic kind at least once. */
    unsigned kind = it == 0 ? 7 : it == 1 ? 8 : rnd(c) % 13;
    switch (kind) {
      case 0: /* Mid-head. */
      case 1: {
        static const char part[] = "GET /slow HTTP/1.1\r\nHo";
        send_all_try(fd, part, sizeof(part) - 1);
        if (kind == 1)
          close_rst(fd);
        else
          close(fd);
        break;
      }
      case 2: { /* Mid-body. */
        static const char head[] =
            "POST /slow HTTP/1.1\r\nHost: s\r\nContent-Length: 1000\r\n\r\n";
        send_all_try(fd, head, sizeof(head) - 1);
        char body[300];
        memset(body, 'b', sizeof(body));
        send_all_try(fd, body, sizeof(body));
        leave(c, fd);
        break;
      }
      case 3: /* After the request, before the response. */
      case 4:
        snprintf(path, sizeof(path), "/slow?c=%d&it=%d", c->index, it);
        send_path(fd, path);
        if (kind == 4)
          close_rst(fd);
        else
          close(fd);
        break;
      case 5:
        snprintf(path, sizeof(path), "/slow?c=%d&it=%d", c->index, it);
        send_path(fd, path);
        usleep(rnd(c) % 3000);
        leave(c, fd);
        break;
      case 6: { /* Pipelined, then gone. */
        dbuf_t all = {0};
        for (int i = 0; i < 5; i++)
          db_printf(&all, "GET /slow?c=%d&it=%d&i=%d HTTP/1.1\r\nHost: s\r\n\r\n",
                    c->index, it, i);
        send_all_try(fd, all.p, all.len);
        db_free(&all);
        if (rnd(c) % 2) usleep(rnd(c) % 2000);
        leave(c, fd);
        break;
      }
      case 7: { /* Gone once the worker holds the exchange. */
        int t = new_token();
        snprintf(path, sizeof(path), "/wait-abort?t=%d", t);
        send_path(fd, path);
        while (!atomic_load(&token_taken[t])) sleep_ms(1);
        /* A reset: after a FIN alone the client only half-closed, and
         * still waits for its answer (RFC 9112 section 9.6), so no abort
         * would come while the worker waits for one. */
        close_rst(fd);
        break;
      }
      case 8: { /* Gone while the response streams. */
        int t = new_token();
        snprintf(path, sizeof(path), "/stream-abort?t=%d", t);
        send_path(fd, path);
        dbuf_t got = {0};
        uint8_t tmp[4096];
        while (strstr((char *)got.p ? (char *)got.p : "", "start\n") == NULL) {
          ssize_t k = recv(fd, tmp, sizeof(tmp), 0);
          CHECKF(k > 0, "stream-abort: %s", k == 0 ? "closed" : strerror(errno));
          db_put(&got, tmp, (size_t)k);
        }
        CHECKF(memcmp(got.p, "HTTP/1.1 200 OK\r\n", 17) == 0 &&
                   strstr((char *)got.p, "Transfer-Encoding: chunked\r\n"),
               "stream-abort: %s", (char *)got.p);
        db_free(&got);
        leave(c, fd);
        break;
      }
      case 9:
      case 10:
        normal_client(c, fd);
        break;
      case 11: /* Connect and leave. */
        leave(c, fd);
        break;
      default: { /* A request and half of the next. */
        dbuf_t all = {0};
        db_printf(&all, "GET /slow?c=%d&it=%d HTTP/1.1\r\nHost: s\r\n\r\n"
                  "GET /slow HTTP/1.1\r\nHost",
                  c->index, it);
        send_all_try(fd, all.p, all.len);
        db_free(&all);
        leave(c, fd);
        break;
      }
    }
  }
  return NULL;
}

/* Hard stop: clients keep requests going on keep-alive connections until
 * the server is gone; every byte they get must be a prefix of the right
 * answer, and the connection then ends (no hang). */
static atomic_int stop_sent;

static void *steady_client(void *arg) {
  client_t *c = arg;
  for (;;) {
    int fd = client_connect_try(c->port);
    if (fd < 0) {
      CHECKF(atomic_load(&stop_sent), "connect before the stop: %s",
             strerror(-fd));
      return NULL;
    }
    for (int i = 0; i < 20; i++) {
      char path[64];
      int mode = (int)(rnd(c) % 2);
      snprintf(path, sizeof(path), "/ok?m=%d&c=%d&i=%d", mode, c->index, i);
      send_path(fd, path);
      /* The answer; after the stop it may carry Connection: close. */
      expect_t e[2];
      memset(e, 0, sizeof(e));
      dbuf_t body = {0};
      db_printf(&body, "ok:%s", path);
      for (int k = 0; k < 2; k++) {
        if (mode == 0) {
          expect_head(&e[k], 200, (long long)body.len, false, k, false, "");
          db_put(&e[k].b, body.p, body.len);
        } else {
          expect_head(&e[k], 200, -1, true, k, false, "");
          expect_chunk(&e[k], body.p, 3);
          expect_chunk(&e[k], body.p + 3, body.len - 3);
          db_puts(&e[k].b, "0\r\n\r\n");
        }
      }
      /* Room for either answer: the keep-alive one carries the
       * Keep-Alive hint, the closing one Connection: close. */
      size_t most = e[0].b.len > e[1].b.len ? e[0].b.len : e[1].b.len;
      uint8_t *got = malloc(most);
      size_t n = recv_n(fd, got, e[0].b.len);
      bool cut = false;
      if (n == e[0].b.len && response_matches(&e[0], got, n)) {
        c->normal++;
      } else {
        /* Only the stop may change an answer or cut it short. */
        CHECKF(atomic_load(&stop_sent), "wrong answer before the stop");
        if (n < most) n += recv_n(fd, got + n, most - n);
        cut = true;
        bool prefix = false;
        for (int k = 0; k < 2 && !prefix; k++) {
          /* What came is the start of a right answer (Date aside). */
          size_t m = n < e[k].b.len ? n : e[k].b.len;
          size_t date_end = e[k].date_off + DATE_VALUE_LEN;
          prefix = n <= e[k].b.len &&
                   memcmp(got, e[k].b.p, m < e[k].date_off ? m : e[k].date_off) == 0 &&
                   (m <= date_end ||
                    memcmp(got + date_end, e[k].b.p + date_end, m - date_end) == 0);
        }
        if (!prefix) {
          fprintf(stderr, "after the stop got %zu bytes:\n", n);
          print_escaped(stderr, got, n, 400);
          test_fail(__FILE__, __LINE__, "not the start of a right answer");
        }
        /* And then the connection ends. */
        dbuf_t rest = {0};
        int rc = recv_until_close(fd, &rest);
        CHECKF(rc == 0 && rest.len == 0, "after the stop: %s",
               rc ? strerror(-rc) : "more bytes");
        db_free(&rest);
      }
      free(got);
      db_free(&e[0].b);
      db_free(&e[1].b);
      db_free(&body);
      if (cut) break;
    }
    close(fd);
  }
}

static int hard_stop_main(void) {
  hard_stop = true;
  int port;
  ymo_server_t *srv = test_server(2, &port);
  driver_t d[2];
  memset(d, 0, sizeof(d));
  for (int i = 0; i < 2; i++) {
    d[i].w = ymo_server_worker(srv, i);
    d[i].seed = 9u + (unsigned)i;
    CHECK_OK(ymo_worker_start(d[i].w));
  }
  CHECK_OK(ymo_server_start(srv));
  for (int i = 0; i < 2; i++)
    CHECK(pthread_create(&d[i].thread, NULL, driver_main, &d[i]) == 0);
  enum { N = 6 };
  client_t c[N];
  memset(c, 0, sizeof(c));
  for (int i = 0; i < N; i++) {
    c[i].index = i;
    c[i].port = port;
    c[i].seed = 17u * (unsigned)i + 1u;
    CHECK(pthread_create(&c[i].thread, NULL, steady_client, &c[i]) == 0);
  }
  /* Let answers flow, then stop with everything in flight. */
  long before = 0;
  while (before < 300) {
    sleep_ms(5);
    before = 0;
    for (int i = 0; i < 2; i++) before += atomic_load(&d[i].answered);
  }
  atomic_store(&stop_sent, 1);
  CHECK_OK(ymo_server_stop(srv));
  CHECK_EQ(ymo_server_connections(srv), 0);
  long normal = 0, epipe = 0;
  for (int i = 0; i < N; i++) {
    CHECK(pthread_join(c[i].thread, NULL) == 0);
    normal += c[i].normal;
  }
  for (int i = 0; i < 2; i++) {
    CHECK(pthread_join(d[i].thread, NULL) == 0);
    CHECK_EQ(d[i].final_wait, YMO_ESHUTDOWN);
    epipe += d[i].epipe;
  }
  ymo_server_free(srv);
  for (int i = 0; i < 2; i++) {
    free(d[i].tb.p);
    free(d[i].held);
  }
  printf("disconnect_test hard-stop: ok, %ld answers read, %ld EPIPE\n",
         normal, epipe);
  return 0;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  test_deadline(55);
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && strcmp(argv[1], "hard-stop") == 0) return hard_stop_main();
  int port;
  ymo_server_t *srv = test_server(2, &port);
  driver_t d[2];
  memset(d, 0, sizeof(d));
  for (int i = 0; i < 2; i++) {
    d[i].w = ymo_server_worker(srv, i);
    d[i].seed = 5u + (unsigned)i;
    tick_workers[i] = d[i].w;
    CHECK_OK(ymo_worker_start(d[i].w));
  }
  CHECK_OK(ymo_server_start(srv));
  for (int i = 0; i < 2; i++)
    CHECK(pthread_create(&d[i].thread, NULL, driver_main, &d[i]) == 0);
  pthread_t ticker;
  CHECK(pthread_create(&ticker, NULL, ticker_main, NULL) == 0);

  double t0 = now_sec();
  enum { N_CLIENTS = 8 };
  client_t c[N_CLIENTS];
  memset(c, 0, sizeof(c));
  for (int i = 0; i < N_CLIENTS; i++) {
    c[i].index = i;
    c[i].port = port;
    c[i].iterations = 250;
    c[i].seed = 31u * (unsigned)i + 3u;
    CHECK(pthread_create(&c[i].thread, NULL, client_main, &c[i]) == 0);
  }
  long normal = 0;
  for (int i = 0; i < N_CLIENTS; i++) {
    CHECK(pthread_join(c[i].thread, NULL) == 0);
    normal += c[i].normal;
  }
  double t1 = now_sec();

  /* Every connection closes, and every exchange held until its client left
   * gets its abort record. */
  while (ymo_server_connections(srv) != 0) sleep_ms(2);
  while (atomic_load(&wait_abort_pending) != 0) sleep_ms(2);
  CHECK(atomic_load(&wait_abort_taken) >= N_CLIENTS);
  for (int i = 0; i < 2; i++)
    while (atomic_load(&d[i].held_count) != 0) sleep_ms(2);

  /* The server still answers. */
  client_t after = {.index = 99, .port = port, .seed = 1};
  normal_client(&after, client_connect(port));

  CHECK_OK(ymo_server_shutdown(srv, 5000));
  long requests = 0, aborts = 0, epipe = 0, released = 0;
  for (int i = 0; i < 2; i++) {
    CHECK(pthread_join(d[i].thread, NULL) == 0);
    CHECK_EQ(d[i].final_wait, YMO_ESHUTDOWN);
    CHECK_EQ(d[i].n_held, 0);
    requests += d[i].requests;
    aborts += d[i].abort_records;
    epipe += d[i].epipe;
    released += d[i].released;
  }
  atomic_store(&ticker_stop, 1);
  CHECK(pthread_join(ticker, NULL) == 0);
  CHECK(aborts >= atomic_load(&wait_abort_taken));
  CHECK_OK(ymo_server_stop(srv));
  CHECK_EQ(ymo_server_connections(srv), 0);
  ymo_server_free(srv);
  for (int i = 0; i < 2; i++) {
    free(d[i].tb.p);
    free(d[i].held);
  }
  printf("disconnect_test: ok, %d clients x %d connections in %.2f s: %ld "
         "requests taken, %ld abort records, %ld EPIPE, %ld released, %ld "
         "normal clients\n",
         N_CLIENTS, c[0].iterations, t1 - t0, requests, aborts, epipe,
         released, normal);
  return 0;
}
