/* Automatic response compression (compress.c, and the worker's use of it).
 *
 *   compress_test          the pieces alone: Accept-Encoding negotiation,
 *                          the plan read off response header lines, the
 *                          header rewrite, and zlib round trips (fixed, and
 *                          streamed with a flush per piece);
 *   compress_test server   end to end with YMO_OPT_COMPRESSION: a fixed and
 *                          a streamed response to one client, gzip, read
 *                          back and inflated; under TSan this checks the
 *                          coder's life on the JS thread against L. */
#include <zlib.h>

#include "compress.h"
#include "test_util.h"

static int pick(const char *value) {
  ymo_accept_t a;
  ymo__accept_init(&a);
  if (value != NULL) ymo__accept_add(&a, value, strlen(value));
  return ymo__accept_pick(&a);
}

static void test_negotiation(void) {
  static const struct {
    const char *value;
    int coding;
  } cases[] = {
      {NULL, YMO__CODING_NONE},
      {"", YMO__CODING_NONE},
      {"gzip", YMO__CODING_GZIP},
      {"br", YMO__CODING_BR},
      {"deflate", YMO__CODING_DEFLATE},
      {"gzip, deflate, br", YMO__CODING_BR},
      {"deflate, gzip", YMO__CODING_GZIP},
      {"gzip;q=0.5, br;q=0.8, deflate", YMO__CODING_DEFLATE},
      {"br;q=0, gzip", YMO__CODING_GZIP},
      {"gzip;q=0", YMO__CODING_NONE},
      {"gzip; q=0.000", YMO__CODING_NONE},
      {"gzip;q=0.001", YMO__CODING_GZIP},
      {"*", YMO__CODING_BR},
      {"*;q=0.5, br;q=0", YMO__CODING_GZIP},
      {"*;q=0", YMO__CODING_NONE},
      {"identity", YMO__CODING_NONE},
      {"identity;q=1, gzip;q=0.5", YMO__CODING_NONE},
      {"identity;q=0.5, gzip", YMO__CODING_GZIP},
      {"identity;q=0, *;q=0", YMO__CODING_NONE},
      {"BR ; Q=0.9 , GZIP;q=0.9", YMO__CODING_BR},
      {"x-gzip", YMO__CODING_GZIP},
      {"zstd, compress", YMO__CODING_NONE},
      {"gzip;q=2", YMO__CODING_NONE},    /* Malformed: ignored. */
      {"gzip;q=abc, br", YMO__CODING_BR}, /* Likewise. */
      {" ,, gzip ,", YMO__CODING_GZIP},
      {"gzip;level=9;q=0.4, deflate;q=0.3", YMO__CODING_GZIP},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int got = pick(cases[i].value);
    CHECKF(got == cases[i].coding, "Accept-Encoding '%s': %s, expected %s",
           cases[i].value ? cases[i].value : "(none)", ymo__coding_name(got),
           ymo__coding_name(cases[i].coding));
  }
  /* Two fields add up, as one list. */
  ymo_accept_t a;
  ymo__accept_init(&a);
  ymo__accept_add(&a, "br;q=0", 6);
  ymo__accept_add(&a, "deflate", 7);
  CHECK_EQ(ymo__accept_pick(&a), YMO__CODING_DEFLATE);
}

static ymo_compress_plan_t plan_of(int status, const char *fields) {
  ymo_compress_plan_t p;
  ymo__compress_plan(&p, status, (const uint8_t *)fields, strlen(fields));
  return p;
}

static void test_plan(void) {
  static const char *const yes[] = {
      "Content-Type: text/plain;charset=UTF-8\r\n",
      "content-type: TEXT/HTML\r\n",
      "Content-Type: application/json\r\n",
      "Content-Type: application/problem+json; charset=utf-8\r\n",
      "Content-Type: image/svg+xml\r\n",
      "Content-Type: application/wasm\r\n",
      "Content-Type: text/javascript\r\n",
      "X-A: 1\r\nContent-Type: text/css\r\nCache-Control: max-age=60\r\n",
  };
  static const char *const no[] = {
      "",
      "X-A: text/plain\r\n",
      "Content-Type: image/png\r\n",
      "Content-Type: application/octet-stream\r\n",
      "Content-Type: text/event-stream\r\n",
      "Content-Type: text/fake\r\n",
      "Content-Type: text/plain\r\nContent-Encoding: gzip\r\n",
      "Content-Type: text/plain\r\nContent-Range: bytes 0-9/100\r\n",
      "Content-Type: text/plain\r\nCache-Control: public, No-Transform\r\n",
  };
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
    CHECKF(plan_of(200, yes[i]).eligible, "should compress: %s", yes[i]);
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
    CHECKF(!plan_of(200, no[i]).eligible, "should not compress: %s", no[i]);
  CHECK(!plan_of(206, "Content-Type: text/plain\r\n").eligible);
  CHECK(!plan_of(200, "Vary: Origin\r\n").vary_has);
  CHECK(plan_of(200, "Vary: Origin, accept-encoding\r\n").vary_has);
  CHECK(plan_of(200, "Vary: *\r\n").vary_has);
}

static void check_fields(const char *in, int coding, const char *want) {
  ymo_compress_plan_t p = plan_of(200, in);
  size_t len;
  uint8_t *out = ymo__compress_fields((const uint8_t *)in, strlen(in), coding,
                                      p.vary_has, &len);
  CHECK(out != NULL);
  CHECKF(len == strlen(want) && memcmp(out, want, len) == 0,
         "fields for '%s': got '%.*s', expected '%s'", in, (int)len, out,
         want);
  free(out);
}

static void test_fields(void) {
  check_fields("Content-Type: text/plain\r\n", YMO__CODING_GZIP,
               "Content-Type: text/plain\r\nVary: Accept-Encoding\r\n"
               "Content-Encoding: gzip\r\n");
  check_fields("Content-Type: text/plain\r\n", YMO__CODING_NONE,
               "Content-Type: text/plain\r\nVary: Accept-Encoding\r\n");
  check_fields("vary: Origin\r\nETag: \"v1\"\r\n", YMO__CODING_BR,
               "Vary: Accept-Encoding, Origin\r\nETag: W/\"v1\"\r\n"
               "Content-Encoding: br\r\n");
  check_fields("etag: W/\"v1\"\r\nvary: accept-encoding\r\n",
               YMO__CODING_DEFLATE,
               "etag: W/\"v1\"\r\nvary: accept-encoding\r\n"
               "Content-Encoding: deflate\r\n");
  /* An app's own length goes with compression, stays without. */
  check_fields("content-length: 1000\r\nContent-Type: text/plain\r\n",
               YMO__CODING_GZIP,
               "Content-Type: text/plain\r\nVary: Accept-Encoding\r\n"
               "Content-Encoding: gzip\r\n");
  check_fields("content-length: 1000\r\n", YMO__CODING_NONE,
               "content-length: 1000\r\nVary: Accept-Encoding\r\n");
  /* Not compressed: the strong ETag stays. */
  check_fields("ETag: \"v1\"\r\n", YMO__CODING_NONE,
               "ETag: \"v1\"\r\nVary: Accept-Encoding\r\n");
}

/* Inflates gzip or zlib data (windowBits 15 + 32 detects which) into out;
 * with partial, stops at the end of the input without wanting the end of
 * the stream. */
static void inflate_all(const uint8_t *in, size_t len, dbuf_t *out,
                        bool partial) {
  z_stream z = {0};
  CHECK_EQ(inflateInit2(&z, 15 + 32), Z_OK);
  uint8_t buf[4096];
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)len;
  int rc;
  do {
    z.next_out = buf;
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_SYNC_FLUSH);
    CHECKF(rc == Z_OK || rc == Z_STREAM_END || (partial && rc == Z_BUF_ERROR),
           "inflate: %d", rc);
    db_put(out, buf, sizeof(buf) - z.avail_out);
  } while (rc == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
  CHECK(partial || rc == Z_STREAM_END);
  inflateEnd(&z);
}

static void test_round_trip(void) {
  dbuf_t text = {0};
  for (int i = 0; i < 2000; i++) db_puts(&text, "all work and no play. ");
  for (int coding = YMO__CODING_GZIP; coding <= YMO__CODING_DEFLATE;
       coding++) {
    size_t len;
    uint8_t *z = ymo__compress_all(coding, text.p, text.len, &len);
    CHECK(z != NULL && len > 0 && len < text.len / 10);
    CHECK(coding != YMO__CODING_GZIP || (z[0] == 0x1f && z[1] == 0x8b));
    dbuf_t back = {0};
    inflate_all(z, len, &back, false);
    CHECK(back.len == text.len && memcmp(back.p, text.p, text.len) == 0);
    db_free(&back);
    free(z);

    /* One coder, body after body (the worker's fixed-body coders). */
    ymo_compressor_t *once = ymo__compressor_new(coding);
    CHECK(once != NULL);
    for (size_t n = text.len; n > 0; n /= 7) {
      const uint8_t *out;
      size_t out_len;
      CHECK_OK(ymo__compressor_once(once, text.p, n, &out, &out_len));
      dbuf_t again = {0};
      inflate_all(out, out_len, &again, false);
      CHECK(again.len == n && memcmp(again.p, text.p, n) == 0);
      db_free(&again);
    }
    ymo__compressor_free(once);

    /* Streamed: each flushed piece inflates to what went in so far. */
    ymo_compressor_t *c = ymo__compressor_new(coding);
    CHECK(c != NULL);
    dbuf_t wire = {0}, so_far = {0};
    for (size_t at = 0; at < text.len; at += 5000) {
      size_t n = text.len - at < 5000 ? text.len - at : 5000;
      const uint8_t *out;
      size_t out_len;
      CHECK_OK(ymo__compressor_run(c, text.p + at, n, false, &out,
                                   &out_len));
      CHECK(out_len > 0);
      db_put(&wire, out, out_len);
      inflate_all(wire.p, wire.len, &so_far, true);
      CHECKF(so_far.len == at + n, "piece at %zu: %zu bytes back", at,
             so_far.len);
      db_clear(&so_far);
    }
    const uint8_t *out;
    size_t out_len;
    CHECK_OK(ymo__compressor_run(c, NULL, 0, true, &out, &out_len));
    db_put(&wire, out, out_len);
    CHECK_EQ(ymo__compressor_run(c, NULL, 0, true, &out, &out_len),
             YMO_EINVAL);
    ymo__compressor_free(c);
    inflate_all(wire.p, wire.len, &so_far, false);
    CHECK(so_far.len == text.len &&
          memcmp(so_far.p, text.p, text.len) == 0);
    db_free(&wire);
    db_free(&so_far);
  }
  /* br: smaller than the input, and its coder streams too (decoded by the
   * TypeScript tests with node:zlib). */
  size_t len;
  uint8_t *z = ymo__compress_all(YMO__CODING_BR, text.p, text.len, &len);
  CHECK(z != NULL && len > 0 && len < text.len / 10);
  free(z);
  ymo_compressor_t *c = ymo__compressor_new(YMO__CODING_BR);
  const uint8_t *once_out;
  size_t once_len;
  CHECK_OK(ymo__compressor_once(c, text.p, text.len, &once_out, &once_len));
  CHECK(once_len > 0 && once_len < text.len / 10);
  ymo__compressor_free(c);
  c = ymo__compressor_new(YMO__CODING_BR);
  const uint8_t *out;
  size_t out_len;
  CHECK(c != NULL);
  CHECK_OK(ymo__compressor_run(c, text.p, 100, false, &out, &out_len));
  CHECK(out_len > 0);
  ymo__compressor_free(c); /* Freed unfinished, as on an abort. */
  db_free(&text);
}

/* The body of a response in raw (after the head), chunked or not. */
static void body_of(const dbuf_t *raw, dbuf_t *body) {
  const char *s = (const char *)raw->p;
  const char *end = memmem(s, raw->len, "\r\n\r\n", 4);
  CHECK(end != NULL);
  const char *p = end + 4, *limit = s + raw->len;
  if (memmem(s, (size_t)(end - s), "chunked", 7) == NULL) {
    db_put(body, p, (size_t)(limit - p));
    return;
  }
  for (;;) {
    size_t n = strtoul(p, NULL, 16);
    p = strstr(p, "\r\n") + 2;
    if (n == 0) break;
    db_put(body, p, n);
    p += n + 2;
    CHECK(p <= limit);
  }
}

static void test_end_to_end(void) {
  int port;
  ymo_server_t *srv = test_server(1, &port);
  CHECK_OK(ymo_server_set_option(srv, YMO_OPT_COMPRESSION, 1));
  ymo_worker_t *w = ymo_server_worker(srv, 0);
  CHECK_OK(ymo_worker_start(w));
  CHECK_OK(ymo_server_start(srv));
  takebuf_t tb = {0};
  dbuf_t text = {0};
  for (int i = 0; i < 500; i++) db_puts(&text, "compress me, please. ");
  static const char fields[] = "Content-Type: text/plain\r\n";

  for (int streamed = 0; streamed < 2; streamed++) {
    int fd = client_connect(port);
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: c\r\nAccept-Encoding: gzip\r\n"
        "Connection: close\r\n\r\n";
    send_all(fd, req, sizeof(req) - 1);
    rec_t r = take_request(w, &tb);
    if (!streamed) {
      CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200,
                                  (const uint8_t *)fields, sizeof(fields) - 1,
                                  text.p, (int32_t)text.len,
                                  YMO_RESP_DONE));
    } else {
      CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200,
                                  (const uint8_t *)fields, sizeof(fields) - 1,
                                  text.p, 1000, 0));
      CHECK(ymo_worker_response_body_append(w, r.id, r.gen, text.p + 1000,
                                            (int32_t)text.len - 1000, 0) >= 0);
      CHECK(ymo_worker_response_body_append(w, r.id, r.gen, NULL, 0,
                                            YMO_RESP_DONE) >= 0);
    }
    dbuf_t raw = {0}, body = {0}, back = {0};
    CHECK_EQ(recv_until_close(fd, &raw), 0);
    close(fd);
    CHECK(memmem(raw.p, raw.len, "Content-Encoding: gzip\r\n", 24));
    CHECK(memmem(raw.p, raw.len, "Vary: Accept-Encoding\r\n", 23));
    body_of(&raw, &body);
    inflate_all(body.p, body.len, &back, false);
    CHECKF(back.len == text.len && memcmp(back.p, text.p, text.len) == 0,
           "%s body inflated to %zu bytes", streamed ? "streamed" : "fixed",
           back.len);
    db_free(&raw);
    db_free(&body);
    db_free(&back);
  }
  /* A streamed response abandoned half way frees its coder (ASan, TSan). */
  int fd = client_connect(port);
  static const char req[] =
      "GET / HTTP/1.1\r\nHost: c\r\nAccept-Encoding: br\r\n\r\n";
  send_all(fd, req, sizeof(req) - 1);
  rec_t r = take_request(w, &tb);
  CHECK_OK(ymo_worker_respond(w, r.id, r.gen, 200, (const uint8_t *)fields,
                              sizeof(fields) - 1, text.p, 1000, 0));
  CHECK_OK(ymo_worker_release(w, r.id, r.gen));
  close(fd);

  CHECK_OK(ymo_worker_join(w));
  CHECK_OK(ymo_server_stop(srv));
  ymo_server_free(srv);
  takebuf_free(&tb);
  db_free(&text);
}

int main(int argc, char **argv) {
  test_deadline(30);
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1 && strcmp(argv[1], "server") == 0) {
    test_end_to_end();
  } else {
    test_negotiation();
    test_plan();
    test_fields();
    test_round_trip();
  }
  puts("compress_test: ok");
  return 0;
}
