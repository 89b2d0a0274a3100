/* Handles are (id, generation) pairs: once an exchange is finished, or for
 * a handle that never existed, every call returns YMO_ESTALE and touches
 * nothing; a reused slot does not answer to its old generation. Also the
 * argument checks and the server's life-cycle errors. The main thread is
 * the worker's JS thread; requests go out on blocking sockets first. */
#include "test_util.h"

static ymo_server_t *srv;
static ymo_worker_t *w;
static int port;

static void get(int fd, const char *path) {
  char req[256];
  int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: s\r\n\r\n",
                     path);
  send_all(fd, req, (size_t)len);
}

/* Takes exactly one request (see take_request in test_util.h). */
static rec_t take_one(takebuf_t *tb) { return take_request(w, tb); }

static void expect_body(int fd, int status, const char *body, bool close,
                        const char *what) {
  expect_t e = {0};
  expect_head(&e, status, (long long)strlen(body), false, close, false, "");
  db_puts(&e.b, body);
  EXPECT_RESPONSE(fd, &e, what);
  db_free(&e.b);
}

static int respond(uint32_t id, uint32_t gen, const char *body, int flags) {
  return ymo_worker_respond(w, id, gen, 200, NULL, 0, (const uint8_t *)body,
                            (int32_t)strlen(body), flags);
}

static void all_stale(uint32_t id, uint32_t gen) {
  CHECK_EQ(respond(id, gen, "x", YMO_RESP_DONE), YMO_ESTALE);
  CHECK_EQ(respond(id, gen, "x", 0), YMO_ESTALE);
  CHECK_EQ(ymo_worker_response_body_append(w, id, gen, (const uint8_t *)"x",
                                           1, YMO_RESP_DONE),
           YMO_ESTALE);
  CHECK_EQ(ymo_worker_release(w, id, gen), YMO_ESTALE);
  CHECK_EQ(ymo_worker_aborted(w, id, gen), YMO_ESTALE);
}

/* ymo_server_port() while L closes the listener in a shutdown: the header
 * names no thread for it, and a JS getter such as `server.addr` may run at
 * any time. Under ThreadSanitizer this reports the race on listen_fd. */
static void test_port_during_shutdown(void) {
  int p;
  ymo_server_t *s = test_server(1, &p);
  CHECK_OK(ymo_server_start(s));
  CHECK_OK(ymo_server_shutdown(s, 0));
  /* The loop thread closes the listener now; keep asking meanwhile, and
   * once more after it surely has (connections are refused). */
  for (int i = 0; i < 100; i++) {
    CHECK_EQ(ymo_server_port(s), p);
    usleep(200);
  }
  int fd;
  while ((fd = client_connect_try(p)) >= 0) {
    close(fd);
    sleep_ms(1);
  }
  CHECK_EQ(ymo_server_port(s), p);
  CHECK_OK(ymo_server_stop(s));
  CHECK_EQ(ymo_server_port(s), p);
  ymo_server_free(s);
}

/* Counts what is queued for w without blocking once something is. */
static int queued_now(void) {
  int n = ymo_worker_wait(w);
  CHECK(n >= 0);
  return n;
}

/* MAX_CONNECTIONS: past it a connection is closed at accept, and its
 * request never reaches a worker. MAX_PIPELINE: past it L stops reading a
 * connection until responses go out; answers still come in order. */
static void test_limits(void) {
  int err;
  srv = ymo_server_create(1, &err);
  CHECK(srv != NULL);
  CHECK_OK(ymo_server_set_option(srv, YMO_OPT_MAX_CONNECTIONS, 2));
  CHECK_OK(ymo_server_set_option(srv, YMO_OPT_MAX_PIPELINE, 2));
  CHECK_OK(ymo_server_listen(srv, "127.0.0.1", 0));
  port = ymo_server_port(srv);
  w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_server_start(srv));
  takebuf_t tb = {0};

  int a = client_connect(port), b = client_connect(port);
  get(a, "/a");
  get(b, "/b");
  rec_t ra = take_one(&tb);
  char first = (char)ra.url[1]; /* Before the next take reuses tb. */
  rec_t rb = take_one(&tb);
  if (first == 'b') {
    rec_t t = ra;
    ra = rb;
    rb = t;
  }
  CHECK_EQ(ymo_server_connections(srv), 2);
  int c = client_connect(port); /* The kernel accepts; ymo closes. */
  get(c, "/c");
  dbuf_t rest = {0};
  CHECKF(recv_until_close(c, &rest) == 0 && rest.len == 0,
         "a connection past MAX_CONNECTIONS was served");
  close(c);
  db_free(&rest);
  CHECK_EQ(ymo_server_connections(srv), 2);
  CHECK_OK(respond(ra.id, ra.gen, "a", YMO_RESP_DONE));
  CHECK_OK(respond(rb.id, rb.gen, "b", YMO_RESP_DONE));
  expect_body(a, 200, "a", false, "first connection");
  expect_body(b, 200, "b", false, "second connection");
  close(b);
  while (ymo_server_connections(srv) != 1) sleep_ms(1);

  /* Five pipelined on a: two at a time reach the worker. */
  dbuf_t five = {0};
  for (int i = 0; i < 5; i++)
    db_printf(&five, "GET /p%d HTTP/1.1\r\nHost: s\r\n\r\n", i);
  send_all(a, five.p, five.len);
  db_free(&five);
  for (int i = 0; i < 5;) {
    while (queued_now() < (5 - i < 2 ? 5 - i : 2)) sleep_ms(1);
    sleep_ms(20); /* A broken limit would let more in meanwhile. */
    int q = queued_now();
    CHECKF(q <= 2, "%d requests queued with MAX_PIPELINE 2", q);
    int32_t n = take_all(w, &tb);
    rec_t r[2];
    int k = 0;
    for (size_t off = 0; off < (size_t)n; k++) {
      CHECK(k < 2);
      off += parse_record(tb.p + off, (size_t)n - off, &r[k]);
    }
    /* Answer the later one first. */
    for (int j = k - 1; j >= 0; j--) {
      char body[8];
      snprintf(body, sizeof(body), "p%d", i + j);
      CHECK_OK(respond(r[j].id, r[j].gen, body, YMO_RESP_DONE));
    }
    for (int j = 0; j < k; j++) {
      char body[8];
      snprintf(body, sizeof(body), "p%d", i + j);
      expect_body(a, 200, body, false, "pipelined past MAX_PIPELINE");
    }
    i += k;
  }
  close(a);
  CHECK_OK(ymo_server_stop(srv));
  ymo_server_free(srv);
  takebuf_free(&tb);
}

/* MAX_PIPELINE 1 and two requests: the parser pauses after each, the second
 * time exactly at the end of the bytes read, so nothing is left pending;
 * answering the second resumes parsing of nothing. (Under UBSan this
 * reports llhttp_execute(NULL, 0) from resume_parsing().) */
static void test_pause_at_end(void) {
  int err;
  srv = ymo_server_create(1, &err);
  CHECK(srv != NULL);
  CHECK_OK(ymo_server_set_option(srv, YMO_OPT_MAX_PIPELINE, 1));
  CHECK_OK(ymo_server_listen(srv, "127.0.0.1", 0));
  port = ymo_server_port(srv);
  w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_server_start(srv));
  takebuf_t tb = {0};
  int fd = client_connect(port);
  static const char two[] = "GET /1 HTTP/1.1\r\nHost: s\r\n\r\n"
                            "GET /2 HTTP/1.1\r\nHost: s\r\n\r\n";
  send_all(fd, two, sizeof(two) - 1);
  for (int i = 1; i <= 2; i++) {
    rec_t r = take_one(&tb);
    CHECK(r.url[1] == '0' + i);
    char body[4];
    snprintf(body, sizeof(body), "%d", i);
    CHECK_OK(respond(r.id, r.gen, body, YMO_RESP_DONE));
    expect_body(fd, 200, body, false, "pipelined with MAX_PIPELINE 1");
  }
  /* The connection still works. */
  get(fd, "/3");
  rec_t r = take_one(&tb);
  CHECK_OK(respond(r.id, r.gen, "3", YMO_RESP_DONE));
  expect_body(fd, 200, "3", false, "after the pauses");
  close(fd);
  CHECK_OK(ymo_server_stop(srv));
  ymo_server_free(srv);
  takebuf_free(&tb);
}

int main(int argc, char **argv) {
  test_deadline(55);
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && strcmp(argv[1], "pause-at-end") == 0) {
    test_pause_at_end();
    puts("stale_test pause-at-end: ok");
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "limits") == 0) {
    test_limits();
    puts("stale_test limits: ok");
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "port-during-shutdown") == 0) {
    test_port_during_shutdown();
    puts("stale_test port-during-shutdown: ok");
    return 0;
  }

  /* Life-cycle errors. */
  int err = 0;
  CHECK(ymo_server_create(0, &err) == NULL && err == YMO_EINVAL);
  CHECK(ymo_server_create(257, &err) == NULL && err == YMO_EINVAL);
  CHECK(ymo_server_create(0, NULL) == NULL);
  srv = ymo_server_create(1, &err);
  CHECK(srv != NULL && err == 0);
  CHECK_EQ(ymo_server_port(srv), YMO_ENOTCONN);
  CHECK_EQ(ymo_server_start(srv), YMO_ENOTCONN);
  CHECK_EQ(ymo_server_shutdown(srv, 0), YMO_ENOTCONN);
  CHECK_EQ(ymo_server_listen(srv, "127.0.0.1", 70000), YMO_EINVAL);
  CHECK_EQ(ymo_server_listen(srv, "127.0.0.1", -1), YMO_EINVAL);
  CHECK_OK(ymo_server_listen(srv, "127.0.0.1", 0));
  CHECK_EQ(ymo_server_listen(srv, "127.0.0.1", 0), YMO_EINVAL);
  port = ymo_server_port(srv);
  CHECK(port > 0);
  /* The port is taken now. */
  int err2;
  ymo_server_t *other = ymo_server_create(1, &err2);
  CHECK_EQ(ymo_server_listen(other, "127.0.0.1", port), YMO_EADDRINUSE);
  ymo_server_free(other);
  w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_server_start(srv));
  CHECK_EQ(ymo_server_port(srv), port);
  for (int e = -200; e <= 0; e++) CHECK(ymo_strerror(e) != NULL);
  CHECK(strcmp(ymo_strerror(YMO_ESTALE), "unknown error") != 0);
  CHECK(ymo_version() != NULL && strchr(ymo_version(), '.') != NULL);

  takebuf_t tb = {0};
  int fd = client_connect(port);

  /* Handles that never existed. */
  unsigned seed = 12345;
  for (int i = 0; i < 2000; i++) {
    uint32_t id = (uint32_t)rand_r(&seed) % 200, gen = (uint32_t)rand_r(&seed);
    if (i % 3 == 0) id = (uint32_t)rand_r(&seed) * 7919u;
    all_stale(id, gen);
  }
  all_stale(UINT32_MAX, 0);
  all_stale(0, 0);
  CHECK_EQ(ymo_worker_respond(NULL, 0, 0, 200, NULL, 0, NULL, 0, 1),
           YMO_ESTALE);

  /* Respond twice: the second is stale, and nothing more goes out. */
  get(fd, "/twice");
  rec_t r = take_one(&tb);
  CHECK_EQ(ymo_worker_aborted(w, r.id, r.gen), 0);
  /* Bad arguments leave the handle alive. */
  CHECK_EQ(ymo_worker_respond(w, r.id, r.gen, 99, NULL, 0, NULL, 0, 1),
           YMO_EINVAL);
  CHECK_EQ(ymo_worker_respond(w, r.id, r.gen, 1000, NULL, 0, NULL, 0, 1),
           YMO_EINVAL);
  CHECK_EQ(ymo_worker_respond(w, r.id, r.gen, 200, NULL, 5, NULL, 0, 1),
           YMO_EINVAL);
  CHECK_EQ(ymo_worker_respond(w, r.id, r.gen, 200, NULL, 0, NULL, 5, 1),
           YMO_EINVAL);
  CHECK_EQ(ymo_worker_respond(w, r.id, r.gen, 200, NULL, -1, NULL, 0, 1),
           YMO_EINVAL);
  CHECK_EQ(ymo_worker_response_body_append(w, r.id, r.gen, NULL, 0, 1),
           YMO_EINVAL); /* Not streaming. */
  CHECK_EQ(respond(r.id, r.gen + 1, "x", YMO_RESP_DONE), YMO_ESTALE);
  CHECK_EQ(respond(r.id, r.gen - 1, "x", YMO_RESP_DONE), YMO_ESTALE);
  CHECK_OK(respond(r.id, r.gen, "first", YMO_RESP_DONE));
  all_stale(r.id, r.gen);
  expect_body(fd, 200, "first", false, "respond twice");

  /* The slot comes back with a new generation; the old handle stays dead
   * and cannot answer the new exchange. */
  uint32_t old_id = r.id, old_gen = r.gen;
  get(fd, "/reuse");
  r = take_one(&tb);
  CHECK_EQ(r.id, old_id);
  CHECK(r.gen != old_gen);
  all_stale(old_id, old_gen);
  CHECK_OK(respond(r.id, r.gen, "second", YMO_RESP_DONE));
  expect_body(fd, 200, "second", false, "reused slot");

  /* Streaming: respond again is refused (not stale: the handle is live),
   * the last append finishes the handle. */
  get(fd, "/stream");
  r = take_one(&tb);
  CHECK_OK(respond(r.id, r.gen, "ab", 0));
  CHECK_EQ(respond(r.id, r.gen, "x", YMO_RESP_DONE), YMO_EINVAL);
  CHECK(ymo_worker_response_body_append(w, r.id, r.gen, (const uint8_t *)"cd",
                                        2, 0) >= 0);
  CHECK(ymo_worker_response_body_append(w, r.id, r.gen, (const uint8_t *)"e",
                                        1, YMO_RESP_DONE) >= 0);
  all_stale(r.id, r.gen);
  expect_t e = {0};
  expect_head(&e, 200, -1, true, false, false, "");
  db_puts(&e.b, "2\r\nab\r\n2\r\ncd\r\n1\r\ne\r\n0\r\n\r\n");
  EXPECT_RESPONSE(fd, &e, "streamed");
  db_free(&e.b);

  /* Release before responding: a 500 and a close; then stale. */
  get(fd, "/release");
  r = take_one(&tb);
  CHECK_OK(ymo_worker_release(w, r.id, r.gen));
  all_stale(r.id, r.gen);
  expect_t e500 = {0};
  expect_head(&e500, 500, 21, false, true, false,
              "Content-Type: text/plain;charset=UTF-8\r\n");
  db_puts(&e500.b, "Internal Server Error");
  EXPECT_RESPONSE(fd, &e500, "released");
  CHECK_CLOSED(fd, "released");
  close(fd);
  db_free(&e500.b);

  /* Release while streaming: the connection closes mid-body (the client
   * sees no last chunk). */
  fd = client_connect(port);
  get(fd, "/release-streaming");
  r = take_one(&tb);
  CHECK_OK(respond(r.id, r.gen, "part", 0));
  CHECK_OK(ymo_worker_release(w, r.id, r.gen));
  all_stale(r.id, r.gen);
  expect_head(&e, 200, -1, true, false, false, "");
  db_puts(&e.b, "4\r\npart\r\n");
  EXPECT_RESPONSE(fd, &e, "released while streaming");
  CHECK_CLOSED(fd, "released while streaming");
  close(fd);
  db_free(&e.b);

  /* A client gone before the answer: aborted() says so, respond gives
   * EPIPE once, then the handle is stale. */
  fd = client_connect(port);
  get(fd, "/gone");
  r = take_one(&tb);
  close_rst(fd); /* A FIN alone would be a half-close, still answered. */
  while (ymo_worker_aborted(w, r.id, r.gen) == 0) sleep_ms(1);
  CHECK_EQ(ymo_worker_aborted(w, r.id, r.gen), 1);
  /* Its abort record is queued for this worker. */
  CHECK(ymo_worker_wait(w) > 0);
  int32_t n = take_all(w, &tb);
  rec_t ab;
  CHECK_EQ(parse_record(tb.p, (size_t)n, &ab), n);
  CHECK(ab.flags & YMO_REQF_ABORT);
  CHECK(ab.id == r.id && ab.gen == r.gen);
  CHECK_EQ(respond(r.id, r.gen, "late", YMO_RESP_DONE), YMO_EPIPE);
  all_stale(r.id, r.gen);

  /* After stop and free nothing is touched; handles held at stop are
   * released by free (ASan's leak check sees it if not). */
  fd = client_connect(port);
  get(fd, "/held-at-stop");
  r = take_one(&tb);
  int fd2 = client_connect(port);
  get(fd2, "/held-at-free");
  rec_t r2 = take_one(&tb);
  (void)r2; /* Never answered: ymo_server_free() releases it. */
  CHECK_OK(ymo_server_stop(srv));
  /* The client is gone for the server now. */
  CHECK_EQ(ymo_worker_aborted(w, r.id, r.gen), 1);
  CHECK_EQ(respond(r.id, r.gen, "x", YMO_RESP_DONE), YMO_EPIPE);
  all_stale(r.id, r.gen);
  CHECK_CLOSED(fd, "held at stop");
  close(fd);
  close(fd2);
  ymo_server_free(srv);
  takebuf_free(&tb);
  puts("stale_test: ok");
  return 0;
}
