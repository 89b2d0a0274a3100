/* ymo_worker_take(): the record format, byte for byte, and the buffer
 * protocol (a negative return asks for a bigger buffer; 0 means nothing is
 * queued). The main thread is the worker's JS thread here: it sends on
 * blocking sockets, which the kernel buffers, then waits and takes. */
#include "test_util.h"

static ymo_server_t *srv;
static ymo_worker_t *w;
static int port;

/* Blocks until at least `want` items (requests or abort notices) are queued
 * for the worker; ymo_worker_wait() returns at once while any are. */
static void wait_queued(int want) {
  for (;;) {
    int n = ymo_worker_wait(w);
    CHECKF(n >= 0, "wait: %s", ymo_strerror(n));
    if (n >= want) {
      CHECKF(n == want, "%d items queued, expected %d", n, want);
      return;
    }
    sleep_ms(1);
  }
}

static void respond_ok(const rec_t *r, const char *body) {
  CHECK_OK(ymo_worker_respond(w, r->id, r->gen, 200, NULL, 0,
                              (const uint8_t *)body, (int32_t)strlen(body),
                              YMO_RESP_DONE));
}

static void expect_ok(int fd, const char *body, bool close, const char *what) {
  expect_t e = {0};
  expect_head(&e, 200, (long long)strlen(body), false, close, false, "");
  db_puts(&e.b, body);
  EXPECT_RESPONSE(fd, &e, what);
  db_free(&e.b);
}

static bool field_is(const uint8_t *p, size_t len, const char *s) {
  return len == strlen(s) && memcmp(p, s, len) == 0;
}

/* Every field of a record, against the request that made it. */
static void test_record_fields(void) {
  int fd = client_connect(port);
  static const char req[] =
      "PATCH /a/b%20c?x=1&y=%FF HTTP/1.1\r\n"
      "Host: example.test\r\n"
      "X-Empty:\r\n"
      "X-Dup: one\r\n"
      "x-dup: two\r\n"
      "X-Spaces:   inner  spaces   \r\n"
      "Content-Length: 11\r\n"
      "\r\n"
      "hello\0world";
  send_all(fd, req, sizeof(req) - 1);
  wait_queued(1);
  uint8_t buf[4096];
  int32_t n = ymo_worker_take(w, buf, sizeof(buf));
  CHECK(n > 0);
  rec_t r;
  CHECK_EQ(parse_record(buf, (size_t)n, &r), n);
  CHECK_EQ(r.http_major, 1);
  CHECK_EQ(r.http_minor, 1);
  CHECK_EQ(r.flags, YMO_REQF_KEEPALIVE);
  CHECK(field_is(r.method, r.method_len, "PATCH"));
  CHECK(field_is(r.url, r.url_len, "/a/b%20c?x=1&y=%FF"));
  CHECK_EQ(r.n_headers, 6);
  static const char *names[] = {"Host",     "X-Empty", "X-Dup",
                                "x-dup",    "X-Spaces", "Content-Length"};
  /* Leading whitespace is not part of a value; trailing whitespace may be
   * left in the record (the JS side's Headers trims it). */
  static const char *values[] = {"example.test", "", "one", "two",
                                 "inner  spaces", "11"};
  size_t off = 0;
  for (int i = 0; i < 6; i++) {
    size_t nl = REC_FIELD(r.headers + off, field_name_len);
    size_t vl = REC_FIELD(r.headers + off, field_value_len);
    const uint8_t *name = r.headers + off + YMO_REQ_FIELD_SIZE;
    CHECKF(field_is(name, nl, names[i]), "header %d name", i);
    size_t trimmed = vl;
    while (trimmed > 0 && (name[nl + trimmed - 1] == ' ' ||
                           name[nl + trimmed - 1] == '\t'))
      trimmed--;
    CHECKF(field_is(name + nl, trimmed, values[i]), "header %d value: '%.*s'",
           i, (int)vl, (const char *)name + nl);
    off += YMO_REQ_FIELD_SIZE + nl + vl;
  }
  CHECK_EQ(r.body_len, 11);
  CHECK(memcmp(r.body, "hello\0world", 11) == 0);
  CHECK_EQ(r.remote_family, 4);
  CHECK_EQ(r.remote_port, local_port(fd));
  static const uint8_t loopback[16] = {127, 0, 0, 1};
  CHECK(memcmp(r.remote_addr, loopback, 16) == 0);
  CHECK(r.id != 0 || r.gen != 0);
  CHECK_EQ(ymo_worker_take(w, buf, sizeof(buf)), 0); /* Nothing left. */
  respond_ok(&r, "fields");
  expect_ok(fd, "fields", false, "record fields");

  /* HTTP/1.0 without keep-alive, and HEAD. */
  static const char req10[] = "HEAD /h HTTP/1.0\r\n\r\n";
  send_all(fd, req10, sizeof(req10) - 1);
  wait_queued(1);
  n = ymo_worker_take(w, buf, sizeof(buf));
  CHECK(n > 0);
  CHECK_EQ(parse_record(buf, (size_t)n, &r), n);
  CHECK_EQ(r.http_minor, 0);
  CHECK_EQ(r.flags, YMO_REQF_HEAD);
  CHECK_EQ(r.n_headers, 0);
  CHECK_EQ(r.headers_len, 0);
  CHECK_EQ(r.body_len, 0);
  respond_ok(&r, "head");
  expect_t e = {0};
  expect_head(&e, 200, 4, false, true, false, "");
  EXPECT_RESPONSE(fd, &e, "HEAD over HTTP/1.0");
  CHECK_CLOSED(fd, "HEAD over HTTP/1.0");
  db_free(&e.b);
  close(fd);
}

/* A chunked body with a trailer section: the record must stay
 * self-consistent (parse_record checks that the header entries fill the
 * header block exactly), and the body is the decoded body. */
static void test_chunked_trailers(void) {
  int fd = client_connect(port);
  static const char req[] =
      "POST /t HTTP/1.1\r\n"
      "Host: t\r\n"
      "Transfer-Encoding: chunked\r\n"
      "\r\n"
      "5\r\nhello\r\n"
      "6\r\n world\r\n"
      "0\r\n"
      "X-Trailer: yes\r\n"
      "\r\n";
  send_all(fd, req, sizeof(req) - 1);
  wait_queued(1);
  uint8_t buf[4096];
  int32_t n = ymo_worker_take(w, buf, sizeof(buf));
  CHECK(n > 0);
  rec_t r;
  CHECK_EQ(parse_record(buf, (size_t)n, &r), n);
  CHECK_EQ(r.n_headers, 2);
  CHECKF(r.body_len == 11 && memcmp(r.body, "hello world", 11) == 0,
         "body of %zu bytes: '%.*s'", r.body_len, (int)r.body_len,
         (const char *)r.body);
  respond_ok(&r, "trailers");
  expect_ok(fd, "trailers", false, "chunked body with trailers");
  close(fd);
}

/* The buffer protocol: a buffer one byte short gets -(size), the exact
 * size gets the record, and nothing is lost in between. */
static void test_buffer_sizes(void) {
  int fd = client_connect(port);
  dbuf_t req = {0};
  db_puts(&req, "POST /big HTTP/1.1\r\nHost: b\r\nContent-Length: 5000\r\n\r\n");
  for (int i = 0; i < 5000; i++) db_printf(&req, "%c", 'a' + i % 26);
  send_all(fd, req.p, req.len);
  wait_queued(1);
  uint8_t *buf = malloc(8192);
  int32_t need = ymo_worker_take(w, buf, 16);
  CHECKF(need < -1, "take into 16 bytes: %d", need);
  need = -need;
  CHECK(need > 5000 && need % 8 == 0);
  CHECK_EQ(ymo_worker_take(w, buf, need - 1), -need);
  CHECK_EQ(ymo_worker_take(w, buf, 0), -need);
  CHECK_EQ(ymo_worker_take(w, NULL, 100), YMO_EINVAL);
  CHECK_EQ(ymo_worker_take(w, buf, -5), YMO_EINVAL);
  CHECK_EQ(ymo_worker_take(NULL, buf, 100), YMO_EINVAL);
  wait_queued(1); /* Still queued. */
  int32_t n = ymo_worker_take(w, buf, need);
  CHECK_EQ(n, need);
  rec_t r;
  CHECK_EQ(parse_record(buf, (size_t)n, &r), n);
  CHECK_EQ(r.body_len, 5000);
  CHECK(memcmp(r.body, req.p + req.len - 5000, 5000) == 0);
  respond_ok(&r, "big");
  expect_ok(fd, "big", false, "buffer sizes");

  /* Two pipelined requests and room for one: the first comes, the second
   * stays queued for the next call. */
  dbuf_t two = {0};
  db_puts(&two, "GET /one HTTP/1.1\r\nHost: b\r\n\r\n");
  db_puts(&two, "GET /two HTTP/1.1\r\nHost: b\r\n\r\n");
  send_all(fd, two.p, two.len);
  wait_queued(2);
  need = -ymo_worker_take(w, buf, 8);
  CHECK(need > 0);
  n = ymo_worker_take(w, buf, need + 8);
  CHECK_EQ(n, need);
  rec_t r1, r2;
  parse_record(buf, (size_t)n, &r1);
  CHECK(field_is(r1.url, r1.url_len, "/one"));
  uint8_t buf2[1024];
  n = ymo_worker_take(w, buf2, sizeof(buf2));
  CHECK(n > 0);
  parse_record(buf2, (size_t)n, &r2);
  CHECK(field_is(r2.url, r2.url_len, "/two"));
  /* Answered in reverse, delivered in order. */
  respond_ok(&r2, "two");
  respond_ok(&r1, "one");
  expect_ok(fd, "one", false, "pipelined one");
  expect_ok(fd, "two", false, "pipelined two");
  close(fd);
  db_free(&req);
  db_free(&two);
  free(buf);
}

/* Connects, sends a whole request and closes before the worker takes it:
 * the exchange is queued, then (once L reads the end of stream) an abort
 * notice behind it. */
static void send_and_vanish(const char *path) {
  int fd = client_connect(port);
  char req[128];
  int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: v\r\n\r\n",
                     path);
  send_all(fd, req, (size_t)len);
  /* With a reset: a FIN alone is a half-close, whose requests are still
   * answered (RFC 9112 section 9.6). */
  close_rst(fd);
}

/* take() must not return 0 while something is still queued: a worker driven
 * by the notify callback (Bun) drains until take() returns 0 and is woken
 * again only when queue_in goes from empty to non-empty, so a 0 with items
 * left stalls that worker for good. Here the queue holds an exchange whose
 * client left before it was taken (dropped unseen), its abort notice (for
 * an exchange the caller never held, so no record), and a request bigger
 * than what is left of the buffer after the notice's 16 bytes. */
static void test_zero_only_when_empty_small(void) {
  send_and_vanish("/gone");
  wait_queued(2);
  int fd = client_connect(port);
  dbuf_t req = {0};
  db_puts(&req, "POST /after HTTP/1.1\r\nHost: v\r\nContent-Length: 1000\r\n\r\n");
  for (int i = 0; i < 1000; i++) db_puts(&req, "x");
  send_all(fd, req.p, req.len);
  wait_queued(3);
  takebuf_t tb = {.p = malloc(512), .cap = 512};
  int32_t n = ymo_worker_take(w, tb.p, tb.cap);
  CHECKF(n != 0,
         "take returned 0 with a request still queued (after a dropped "
         "exchange and its abort notice): a notify-driven worker would "
         "never be woken for it");
  n = take_all(w, &tb);
  rec_t r;
  CHECK(n > 0);
  CHECK_EQ(parse_record(tb.p, (size_t)n, &r), n);
  CHECK(field_is(r.url, r.url_len, "/after"));
  respond_ok(&r, "after");
  expect_ok(fd, "after", false, "request after a vanished client");
  CHECK_EQ(take_all(w, &tb), 0);
  close(fd);
  db_free(&req);
  takebuf_free(&tb);
}

/* The same with many vanished clients: more dropped exchanges and unheld
 * abort notices than one take() handles (it looks at 256 at most). */
static void test_zero_only_when_empty_many(void) {
  const int vanished = 300;
  for (int i = 0; i < vanished; i++) send_and_vanish("/gone");
  wait_queued(2 * vanished);
  int fd = client_connect(port);
  static const char req[] = "GET /survivor HTTP/1.1\r\nHost: v\r\n\r\n";
  send_all(fd, req, sizeof(req) - 1);
  wait_queued(2 * vanished + 1);
  /* Drain as the notify-driven worker does: take until 0. */
  takebuf_t tb = {.p = malloc(65536), .cap = 65536};
  bool found = false;
  int takes = 0;
  for (;;) {
    int32_t n = take_all(w, &tb);
    if (n == 0) break;
    takes++;
    for (size_t off = 0; off < (size_t)n;) {
      rec_t r;
      off += parse_record(tb.p + off, (size_t)n - off, &r);
      CHECKF(!(r.flags & YMO_REQF_ABORT),
             "abort record for an exchange never taken");
      CHECK(field_is(r.url, r.url_len, "/survivor"));
      found = true;
      respond_ok(&r, "survivor");
    }
  }
  CHECKF(found,
         "take returned 0 after %d calls with the request still queued "
         "behind %d vanished clients: a notify-driven worker would never be "
         "woken for it",
         takes, vanished);
  expect_ok(fd, "survivor", false, "request after many vanished clients");
  close(fd);
  takebuf_free(&tb);
}

/* Expect: 100-continue on a request pipelined behind one still being
 * answered: ymo rightly holds the 100 back so it cannot overtake the earlier
 * response, but it must send it once that response is out (RFC 9110
 * section 10.1.1: the server sends 100 or a final status). A client that
 * waits for the 100 otherwise waits until the header timeout's 408. */
static void test_continue_after_pipelined(void) {
  int fd = client_connect(port);
  static const char req[] =
      "GET /first HTTP/1.1\r\nHost: c\r\n\r\n"
      "POST /second HTTP/1.1\r\nHost: c\r\nContent-Length: 4\r\n"
      "Expect: 100-continue\r\n\r\n";
  send_all(fd, req, sizeof(req) - 1);
  /* The second head goes to the worker at once too, its body to follow:
   * take_request() holds it back until the body is complete. */
  takebuf_t tb = {0};
  rec_t r = take_request(w, &tb);
  CHECK(field_is(r.url, r.url_len, "/first"));
  /* Both heads normally came in one read; give L a moment in case not, so
   * the second head is parsed while the first is unanswered. */
  sleep_ms(50);
  respond_ok(&r, "first");
  expect_ok(fd, "first", false, "first of two");
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  uint8_t got[sizeof(cont) - 1];
  size_t k = recv_n(fd, got, sizeof(got));
  if (k != sizeof(got) || memcmp(got, cont, k) != 0) {
    fprintf(stderr, "expected 100 Continue, got %zu bytes:\n", k);
    print_escaped(stderr, got, k, 100);
    test_fail(__FILE__, __LINE__,
              "no 100 Continue once the earlier response was written");
  }
  send_all(fd, "body", 4);
  r = take_request(w, &tb);
  CHECK(field_is(r.url, r.url_len, "/second"));
  CHECK(r.body_len == 4 && memcmp(r.body, "body", 4) == 0);
  respond_ok(&r, "second");
  expect_ok(fd, "second", false, "second of two");
  close(fd);
  takebuf_free(&tb);
  free(tb.in);
}

int main(int argc, char **argv) {
  test_deadline(55);
  signal(SIGPIPE, SIG_IGN);
  int err;
  srv = ymo_server_create(1, &err);
  CHECK(srv != NULL);
  /* A missing 100 Continue shows as a 408 after this, not a hang. */
  CHECK_OK(ymo_server_set_option(srv, YMO_OPT_HEADER_TIMEOUT_MS, 3000));
  CHECK_OK(ymo_server_listen(srv, "127.0.0.1", 0));
  port = ymo_server_port(srv);
  w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_server_start(srv));
  const char *only = argc > 1 ? argv[1] : NULL;
  if (only == NULL || strcmp(only, "format") == 0) {
    test_record_fields();
    test_buffer_sizes();
  }
  if (only == NULL || strcmp(only, "trailers") == 0) test_chunked_trailers();
  if (only == NULL || strcmp(only, "zero-small") == 0)
    test_zero_only_when_empty_small();
  if (only == NULL || strcmp(only, "zero-many") == 0)
    test_zero_only_when_empty_many();
  if (only == NULL || strcmp(only, "continue-after-pipelined") == 0)
    test_continue_after_pipelined();
  CHECK_OK(ymo_server_stop(srv));
  CHECK_EQ(ymo_worker_wait(w), YMO_ESHUTDOWN);
  ymo_server_free(srv);
  printf("take_test%s%s: ok\n", only ? " " : "", only ? only : "");
  return 0;
}
