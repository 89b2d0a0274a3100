/* Helpers shared by the native tests: a CHECK macro that ends the process
 * with a message, growable byte buffers, blocking loopback clients, the
 * response heads ymo formats (to compare replies byte for byte), and a parser
 * for the request records that ymo_worker_take() writes (format in ymo.h).
 *
 * Everything is static: each test is one executable that includes this once.
 * Only 127.0.0.1 is ever contacted. */
#ifndef YMO_TEST_UTIL_H
#define YMO_TEST_UTIL_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ymo.h"
#include "record_field.h"

/* ------------------------------------------------------------------------ */
/* Failing.                                                                 */

/* Prints where and why, then ends the whole process at once with status 1:
 * other threads may still run, so no exit handlers. */
__attribute__((format(printf, 3, 4), noreturn)) static void test_fail(
    const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s:%d: FAIL: ", file, line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fflush(stderr);
  _exit(1);
}

#define CHECK(cond)                                     \
  do {                                                  \
    if (!(cond)) test_fail(__FILE__, __LINE__, "%s", #cond); \
  } while (0)

#define CHECKF(cond, ...)                                 \
  do {                                                    \
    if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

#define CHECK_EQ(a, b)                                                    \
  do {                                                                    \
    long long a_ = (long long)(a), b_ = (long long)(b);                   \
    if (a_ != b_)                                                         \
      test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, \
                b_);                                                      \
  } while (0)

/* A ymo call that must return 0. */
#define CHECK_OK(call)                                                  \
  do {                                                                  \
    int rc_ = (call);                                                   \
    if (rc_ != 0)                                                       \
      test_fail(__FILE__, __LINE__, "%s: %d (%s)", #call, rc_,          \
                ymo_strerror(rc_));                                     \
  } while (0)

/* Whole-test deadline: a hang fails with SIGALRM instead of waiting for
 * ctest's timeout, which would report less. */
static void test_deadline(unsigned seconds) { alarm(seconds); }

static double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ------------------------------------------------------------------------ */
/* Byte buffers.                                                            */

typedef struct {
  uint8_t *p;
  size_t len, cap;
} dbuf_t;

static void db_reserve(dbuf_t *b, size_t more) {
  if (b->len + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  CHECK(p != NULL);
  b->p = p;
  b->cap = cap;
}

static void db_put(dbuf_t *b, const void *data, size_t len) {
  db_reserve(b, len + 1);
  if (len > 0) memcpy(b->p + b->len, data, len);
  b->len += len;
  b->p[b->len] = 0; /* Always NUL-terminated, for strstr and printing. */
}

static void db_puts(dbuf_t *b, const char *s) { db_put(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void db_printf(dbuf_t *b,
                                                            const char *fmt,
                                                            ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  CHECK(n >= 0);
  db_reserve(b, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

static void db_clear(dbuf_t *b) {
  b->len = 0;
  if (b->p) b->p[0] = 0;
}

static void db_free(dbuf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* Prints bytes with control characters escaped, at most max of them. */
static void print_escaped(FILE *f, const uint8_t *p, size_t len, size_t max) {
  for (size_t i = 0; i < len && i < max; i++) {
    uint8_t c = p[i];
    if (c == '\r')
      fputs("\\r", f);
    else if (c == '\n')
      fputs("\\n\n", f);
    else if (c < 32 || c > 126)
      fprintf(f, "\\x%02x", c);
    else
      fputc(c, f);
  }
  if (len > max) fprintf(f, "... (%zu bytes in all)", len);
  fputc('\n', f);
}

/* ------------------------------------------------------------------------ */
/* Loopback clients: blocking sockets whose reads and writes give up after
 * a while (SO_RCVTIMEO), so a missing reply fails the test, never hangs it. */

#define CLIENT_TIMEOUT_SEC 15

/* With rcvbuf > 0, the client's receive buffer is that small (set before
 * connecting, so the window is too): a server's big write then stops
 * part way. */
static int client_connect_sized(int port, int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECKF(fd >= 0, "socket: %s", strerror(errno));
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  struct timeval tv = {CLIENT_TIMEOUT_SEC, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc;
  do {
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

static int client_connect_try(int port) {
  return client_connect_sized(port, 0);
}

static int client_connect(int port) {
  int fd = client_connect_try(port);
  CHECKF(fd >= 0, "connect to 127.0.0.1:%d: %s", port, strerror(-fd));
  return fd;
}

static int local_port(int fd) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
  return ntohs(sa.sin_port);
}

/* Close with RST instead of FIN. */
static void close_rst(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

/* Sends everything or returns false (the peer is gone). */
static bool send_all_try(int fd, const void *data, size_t len) {
  const uint8_t *p = data;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

static void send_all(int fd, const void *data, size_t len) {
  CHECKF(send_all_try(fd, data, len), "send: %s", strerror(errno));
}

/* Reads up to n bytes, stopping early only at end of stream or on an error
 * (a timeout included); returns how many were read. */
static size_t recv_n(int fd, uint8_t *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = recv(fd, buf + got, n - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    got += (size_t)k;
  }
  return got;
}

/* Reads until the server closes. Returns 0 at end of stream, or -errno
 * (-EAGAIN after CLIENT_TIMEOUT_SEC without the close). */
static int recv_until_close(int fd, dbuf_t *out) {
  uint8_t tmp[16384];
  for (;;) {
    ssize_t k = recv(fd, tmp, sizeof(tmp), 0);
    if (k < 0 && errno == EINTR) continue;
    if (k == 0) return 0;
    if (k < 0) return errno == ECONNRESET ? 0 : -errno;
    db_put(out, tmp, (size_t)k);
  }
}

/* Asserts that the server closes the connection and sends nothing more. */
#define CHECK_CLOSED(fd, what)                                            \
  do {                                                                    \
    dbuf_t rest_ = {0};                                                   \
    int rc_ = recv_until_close((fd), &rest_);                             \
    if (rc_ != 0 || rest_.len != 0) {                                     \
      fprintf(stderr, "%s: after the response got %zu bytes:\n", (what),  \
              rest_.len);                                                 \
      print_escaped(stderr, rest_.p, rest_.len, 400);                     \
      test_fail(__FILE__, __LINE__, "%s: connection not closed (%s)",     \
                (what), rc_ ? strerror(-rc_) : "extra bytes");            \
    }                                                                     \
    db_free(&rest_);                                                      \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Responses as ymo formats them: status line, Date, framing, Connection,
 * the handler's headers, a blank line. The Date value is the one part that
 * varies; `date_off` marks where it starts so a comparison can skip it. */

#define DATE_VALUE_LEN 29 /* "Thu, 01 Jan 1970 00:00:00 GMT" */

typedef struct {
  dbuf_t b;
  size_t date_off; /* 0: no Date line expected. */
} expect_t;

static const char *reason_of(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
  }
}

/* content_length < 0: none; then `chunked` picks Transfer-Encoding. */
/* The N of "Keep-Alive: timeout=N" on keep-alive responses: the default
 * YMO_OPT_KEEPALIVE_TIMEOUT_MS in seconds; a test that sets the option sets
 * this too. */
static int expect_keepalive_s = 5;

static void expect_head(expect_t *e, int status, long long content_length,
                        bool chunked, bool close, bool keepalive_10,
                        const char *headers) {
  db_printf(&e->b, "HTTP/1.1 %d %s\r\nDate: ", status, reason_of(status));
  e->date_off = e->b.len;
  db_puts(&e->b, "Thu, 01 Jan 1970 00:00:00 GMT\r\n");
  if (content_length >= 0)
    db_printf(&e->b, "Content-Length: %lld\r\n", content_length);
  else if (chunked)
    db_puts(&e->b, "Transfer-Encoding: chunked\r\n");
  if (close)
    db_puts(&e->b, "Connection: close\r\n");
  else if (keepalive_10)
    db_puts(&e->b, "Connection: keep-alive\r\n");
  /* The keep-alive hint, from the default YMO_OPT_KEEPALIVE_TIMEOUT_MS. */
  if (!close) db_printf(&e->b, "Keep-Alive: timeout=%d\r\n", expect_keepalive_s);
  db_puts(&e->b, headers);
  db_puts(&e->b, "\r\n");
}

/* One chunk of a chunked body as ymo frames it (nothing for an empty one). */
static void expect_chunk(expect_t *e, const uint8_t *p, size_t len) {
  if (len == 0) return;
  db_printf(&e->b, "%zx\r\n", len);
  db_put(&e->b, p, len);
  db_puts(&e->b, "\r\n");
}

/* An error answered by the loop thread itself. */
static void expect_local_error(expect_t *e, int status) {
  const char *reason = reason_of(status);
  expect_head(e, status, (long long)strlen(reason), false, true, false,
              "Content-Type: text/plain;charset=UTF-8\r\n");
  db_puts(&e->b, reason);
}

static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* "Www, DD Mmm YYYY HH:MM:SS GMT" */
static bool date_value_ok(const uint8_t *p) {
  size_t i;
  /* Day name. */
  for (int k = 0; k < 3; k++)
    if (!((p[k] >= 'A' && p[k] <= 'Z') || (p[k] >= 'a' && p[k] <= 'z')))
      return false;
  i = 3;
  if (memcmp(p + i, ", ", 2) != 0) return false;
  i += 2;
  if (!is_digit(p[i]) || !is_digit(p[i + 1]) || p[i + 2] != ' ') return false;
  i += 3;
  i += 3; /* Month name. */
  if (p[i] != ' ') return false;
  i++;
  for (int k = 0; k < 4; k++)
    if (!is_digit(p[i + k])) return false;
  i += 4;
  if (p[i] != ' ') return false;
  i++;
  if (!is_digit(p[i]) || !is_digit(p[i + 1]) || p[i + 2] != ':' ||
      !is_digit(p[i + 3]) || !is_digit(p[i + 4]) || p[i + 5] != ':' ||
      !is_digit(p[i + 6]) || !is_digit(p[i + 7]))
    return false;
  i += 8;
  return memcmp(p + i, " GMT", 4) == 0 && i + 4 == DATE_VALUE_LEN;
}

static bool response_matches(const expect_t *e, const uint8_t *got,
                             size_t len) {
  if (len != e->b.len) return false;
  if (e->date_off == 0) return memcmp(got, e->b.p, len) == 0;
  size_t after = e->date_off + DATE_VALUE_LEN;
  return memcmp(got, e->b.p, e->date_off) == 0 &&
         date_value_ok(got + e->date_off) &&
         memcmp(got + after, e->b.p + after, len - after) == 0;
}

static void check_response_at(const char *file, int line, const expect_t *e,
                              const uint8_t *got, size_t got_len,
                              const char *what) {
  if (response_matches(e, got, got_len)) return;
  fprintf(stderr, "%s: expected %zu bytes:\n", what, e->b.len);
  print_escaped(stderr, e->b.p, e->b.len, 1200);
  fprintf(stderr, "got %zu bytes:\n", got_len);
  print_escaped(stderr, got, got_len, 1200);
  test_fail(file, line, "%s: response differs", what);
}

#define CHECK_RESPONSE(e, got, got_len, what) \
  check_response_at(__FILE__, __LINE__, (e), (got), (got_len), (what))

/* Reads exactly as many bytes as expected and compares them. */
static void expect_response_at(const char *file, int line, int fd,
                               const expect_t *e, const char *what) {
  uint8_t *got = malloc(e->b.len + 1);
  CHECK(got != NULL);
  size_t n = recv_n(fd, got, e->b.len);
  check_response_at(file, line, e, got, n, what);
  free(got);
}

#define EXPECT_RESPONSE(fd, e, what) \
  expect_response_at(__FILE__, __LINE__, (fd), (e), (what))

/* Sends "GET path" on a keep-alive HTTP/1.1 connection. */
static void send_get(int fd, const char *path) {
  char req[256];
  int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: n\r\n\r\n",
                     path);
  send_all(fd, req, (size_t)len);
}

/* Expects a keep-alive 200 whose body is `body` and nothing else. */
static void expect_ok_body(int fd, const char *body, const char *what) {
  expect_t e = {0};
  expect_head(&e, 200, (long long)strlen(body), false, false, false, "");
  db_puts(&e.b, body);
  EXPECT_RESPONSE(fd, &e, what);
  db_free(&e.b);
}

/* ------------------------------------------------------------------------ */
/* Request records (ymo.h, "Wire format of one request record").           */

typedef struct {
  uint32_t len, id, gen;
  uint8_t http_major, http_minor, flags;
  const uint8_t *method;
  size_t method_len;
  const uint8_t *url;
  size_t url_len;
  uint32_t n_headers;
  const uint8_t *headers;
  size_t headers_len;
  const uint8_t *body;
  size_t body_len;
  uint16_t remote_port;
  uint8_t remote_family;
  const uint8_t *remote_addr;
} rec_t;

/* Parses and validates the record at p (avail bytes left in the batch);
 * returns its length. Any inconsistency fails the test. */
static size_t parse_record(const uint8_t *p, size_t avail, rec_t *r) {
  memset(r, 0, sizeof(*r));
  CHECKF(avail >= YMO_REQ_ABORT_SIZE, "record: %zu bytes left", avail);
  r->len = REC_FIELD(p, record_len);
  r->id = REC_FIELD(p, id);
  r->gen = REC_FIELD(p, gen);
  r->http_major = (uint8_t)REC_FIELD(p, http_major);
  r->http_minor = (uint8_t)REC_FIELD(p, http_minor);
  r->flags = (uint8_t)REC_FIELD(p, flags);
  CHECKF(r->len % 8 == 0 && r->len <= avail && r->len >= YMO_REQ_ABORT_SIZE,
         "record length %u (%zu bytes left)", r->len, avail);
  if (r->flags & YMO_REQF_ABORT) {
    CHECKF(r->len == YMO_REQ_ABORT_SIZE, "abort record of %u bytes", r->len);
    CHECK(r->flags == YMO_REQF_ABORT);
    return r->len;
  }
  CHECKF(r->len >= YMO_REQ_FIXED_SIZE, "record length %u", r->len);
  CHECKF((r->flags & ~(YMO_REQF_KEEPALIVE | YMO_REQF_HEAD |
                       YMO_REQF_STREAM | YMO_REQF_UPGRADE)) == 0,
         "record flags %#x", r->flags);
  r->method_len = REC_FIELD(p, method_len);
  r->url_len = REC_FIELD(p, url_len);
  r->n_headers = REC_FIELD(p, n_headers);
  r->headers_len = REC_FIELD(p, headers_len);
  r->body_len = REC_FIELD(p, body_len);
  r->remote_port = (uint16_t)REC_FIELD(p, remote_port);
  r->remote_family = (uint8_t)REC_FIELD(p, remote_family);
  r->remote_addr = p + YMO_REQ_AT_remote_addr;
  size_t need = YMO_REQ_FIXED_SIZE + r->method_len + r->url_len +
                r->headers_len + r->body_len;
  CHECKF(r->len == ((need + 7) & ~(size_t)7),
         "record length %u, fields add up to %zu (method %zu, url %zu, "
         "%u headers in %zu bytes, body %zu)",
         r->len, need, r->method_len, r->url_len, r->n_headers,
         r->headers_len, r->body_len);
  for (size_t i = need; i < r->len; i++)
    CHECKF(p[i] == 0, "padding byte %zu is %#x", i, p[i]);
  CHECKF(r->remote_family == 4 || r->remote_family == 6,
         "remote family %u", r->remote_family);
  r->method = p + YMO_REQ_FIXED_SIZE;
  r->url = r->method + r->method_len;
  r->headers = r->url + r->url_len;
  r->body = r->headers + r->headers_len;
  /* The header entries must fill the header block exactly. */
  size_t off = 0;
  for (uint32_t i = 0; i < r->n_headers; i++) {
    CHECKF(off + YMO_REQ_FIELD_SIZE <= r->headers_len,
           "header %u of %u starts at %zu, past the %zu-byte header block", i,
           r->n_headers, off, r->headers_len);
    size_t nl = REC_FIELD(r->headers + off, field_name_len);
    size_t vl = REC_FIELD(r->headers + off, field_value_len);
    CHECKF(off + YMO_REQ_FIELD_SIZE + nl + vl <= r->headers_len,
           "header %u of %u (%zu+%zu bytes) overruns the %zu-byte header "
           "block",
           i, r->n_headers, nl, vl, r->headers_len);
    CHECKF(nl > 0, "header %u has an empty name", i);
    off += YMO_REQ_FIELD_SIZE + nl + vl;
  }
  CHECKF(off == r->headers_len, "%u headers fill %zu of %zu bytes",
         r->n_headers, off, r->headers_len);
  return r->len;
}

/* The value of the first header called name, or NULL. */
static const uint8_t *rec_header(const rec_t *r, const char *name,
                                 size_t *value_len) {
  size_t off = 0, want = strlen(name);
  for (uint32_t i = 0; i < r->n_headers; i++) {
    size_t nl = REC_FIELD(r->headers + off, field_name_len);
    size_t vl = REC_FIELD(r->headers + off, field_value_len);
    const uint8_t *n = r->headers + off + YMO_REQ_FIELD_SIZE;
    if (nl == want && strncasecmp((const char *)n, name, nl) == 0) {
      *value_len = vl;
      return n + nl;
    }
    off += YMO_REQ_FIELD_SIZE + nl + vl;
  }
  *value_len = 0;
  return NULL;
}

/* The request target as a NUL-terminated string in buf. */
static const char *rec_url(const rec_t *r, char *buf, size_t cap) {
  size_t n = r->url_len < cap - 1 ? r->url_len : cap - 1;
  memcpy(buf, r->url, n);
  buf[n] = 0;
  return buf;
}

/* An integer query parameter "name=value" of url, or dflt. */
static long url_param(const char *url, const char *name, long dflt) {
  size_t nl = strlen(name);
  const char *q = strchr(url, '?');
  while (q != NULL) {
    q++;
    if (strncmp(q, name, nl) == 0 && q[nl] == '=')
      return strtol(q + nl + 1, NULL, 10);
    q = strchr(q, '&');
  }
  return dflt;
}

/* A request whose body is still coming, held by take_all() until its last
 * body record: the record as taken, then its body so far. */
typedef struct {
  uint32_t id, gen;
  uint8_t *rec; /* Fixed part, method, url, headers, body so far. */
  size_t len, cap;
} take_held_t;

#define TAKE_MAX_HELD 64

/* A growable take() buffer, grown the way the JS side does it. Unless raw
 * is set, take_all() hands over streamed requests (YMO_REQF_STREAM) whole,
 * as one record, the way these drivers were written; stream_test.c sets raw
 * to see the body records themselves. */
typedef struct {
  uint8_t *p;
  int32_t cap;
  int grows;
  bool raw;
  uint8_t *in; /* What ymo_worker_take() wrote, before reassembly. */
  int32_t in_cap;
  take_held_t held[TAKE_MAX_HELD];
  int n_held;
} takebuf_t;

static void takebuf_free(takebuf_t *tb) {
  free(tb->p);
  free(tb->in);
  tb->p = tb->in = NULL;
  tb->cap = tb->in_cap = 0;
}

/* Calls ymo_worker_take() into (*buf, *cap), growing the buffer on a
 * negative return; returns the bytes written (0: nothing queued). */
static int32_t take_raw(ymo_worker_t *w, uint8_t **buf, int32_t *cap,
                        int *grows) {
  for (;;) {
    int32_t n = ymo_worker_take(w, *buf, *cap);
    if (n >= 0) return n;
    CHECKF(n < -1, "take returned %d", n);
    CHECKF(-n > *cap, "take asks for %d bytes with a %d-byte buffer", -n,
           *cap);
    int32_t c = *cap ? *cap * 2 : 64;
    while (c < -n) c *= 2;
    uint8_t *p = realloc(*buf, (size_t)c);
    CHECK(p != NULL);
    *buf = p;
    *cap = c;
    (*grows)++;
  }
}

static void db_grow_to(uint8_t **p, size_t *cap, size_t need) {
  if (need <= *cap) return;
  size_t c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  uint8_t *q = realloc(*p, c);
  CHECK(q != NULL);
  *p = q;
  *cap = c;
}

static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Appends a record of len bytes to the output (tb->p at *out). */
static void take_emit(takebuf_t *tb, int32_t *out, const uint8_t *rec,
                      size_t len) {
  if ((size_t)tb->cap < (size_t)*out + len) {
    int32_t c = tb->cap ? tb->cap : 64;
    while ((size_t)c < (size_t)*out + len) c *= 2;
    uint8_t *p = realloc(tb->p, (size_t)c);
    CHECK(p != NULL);
    tb->p = p;
    tb->cap = c;
  }
  memcpy(tb->p + *out, rec, len);
  *out += (int32_t)len;
}

static take_held_t *take_find(takebuf_t *tb, uint32_t id, uint32_t gen) {
  for (int i = 0; i < tb->n_held; i++)
    if (tb->held[i].id == id && tb->held[i].gen == gen) return &tb->held[i];
  return NULL;
}

static void take_drop(takebuf_t *tb, take_held_t *h) {
  free(h->rec);
  *h = tb->held[--tb->n_held];
}

/* Reassembles the records in `in` into tb->p; returns the output length. */
static int32_t take_merge(ymo_worker_t *w, takebuf_t *tb, const uint8_t *in,
                          int32_t n) {
  int32_t out = 0;
  for (int32_t off = 0; off < n;) {
    const uint8_t *p = in + off;
    uint32_t len = REC_FIELD(p, record_len);
    uint32_t flags = REC_FIELD(p, flags);
    uint32_t id = REC_FIELD(p, id), gen = REC_FIELD(p, gen);
    CHECKF(len >= YMO_REQ_ABORT_SIZE && len % 8 == 0 &&
               len <= (uint32_t)(n - off),
           "record length %u", len);
    off += (int32_t)len;
    take_held_t *h = take_find(tb, id, gen);
    if (flags & YMO_REQF_BODY) {
      CHECKF(h != NULL, "a body record for %u/%u, not a streamed request", id,
             gen);
      size_t data = len - YMO_REQ_ABORT_SIZE - REC_FIELD(p, body_padding);
      db_grow_to(&h->rec, &h->cap, h->len + data + 8);
      memcpy(h->rec + h->len, p + YMO_REQ_ABORT_SIZE, data);
      h->len += data;
      if (data > 0) ymo_worker_body_ack(w, id, gen, (int32_t)data);
      if (!(flags & YMO_REQF_END)) continue;
      /* The whole request, as one record without YMO_REQF_STREAM. */
      size_t body_at = YMO_REQ_FIXED_SIZE + REC_FIELD(h->rec, method_len) +
                       REC_FIELD(h->rec, url_len) +
                       REC_FIELD(h->rec, headers_len);
      size_t padded = (h->len + 7) & ~(size_t)7;
      memset(h->rec + h->len, 0, padded - h->len);
      put_le32(h->rec + YMO_REQ_AT_record_len, (uint32_t)padded);
      put_le32(h->rec + YMO_REQ_AT_body_len, (uint32_t)(h->len - body_at));
      h->rec[YMO_REQ_AT_flags] &= (uint8_t)~YMO_REQF_STREAM;
      take_emit(tb, &out, h->rec, padded);
      take_drop(tb, h);
    } else if (flags & YMO_REQF_ABORT) {
      if (h == NULL) {
        take_emit(tb, &out, p, len);
      } else {
        /* The driver never saw this request: let go of it here. */
        ymo_worker_release(w, id, gen);
        take_drop(tb, h);
      }
    } else if (!(flags & YMO_REQF_DRAIN) && (flags & YMO_REQF_STREAM)) {
      CHECKF(tb->n_held < TAKE_MAX_HELD, "more than %d streamed requests",
             TAKE_MAX_HELD);
      h = &tb->held[tb->n_held++];
      memset(h, 0, sizeof(*h));
      h->id = id;
      h->gen = gen;
      size_t need = YMO_REQ_FIXED_SIZE + REC_FIELD(p, method_len) +
                    REC_FIELD(p, url_len) + REC_FIELD(p, headers_len) +
                    REC_FIELD(p, body_len);
      CHECKF(need <= len, "record of %u bytes holds %zu", len, need);
      db_grow_to(&h->rec, &h->cap, need + 8);
      memcpy(h->rec, p, need);
      h->len = need;
    } else {
      take_emit(tb, &out, p, len);
    }
  }
  return out;
}

/* Calls ymo_worker_take(), growing the buffer on a negative return, and
 * (unless tb->raw) reassembles streamed requests; returns the bytes written
 * to tb->p (0: nothing queued, or only parts of requests still coming). */
static int32_t take_all(ymo_worker_t *w, takebuf_t *tb) {
  if (!tb->raw) {
    /* As much room as the caller's buffer: some drivers rely on one take
     * emptying the queue, others on a fresh buffer taking one request. */
    if (tb->in_cap < tb->cap) {
      uint8_t *p = realloc(tb->in, (size_t)tb->cap);
      CHECK(p != NULL);
      tb->in = p;
      tb->in_cap = tb->cap;
    }
    int32_t n = take_raw(w, &tb->in, &tb->in_cap, &tb->grows);
    return n == 0 ? 0 : take_merge(w, tb, tb->in, n);
  }
  for (;;) {
    int32_t n = ymo_worker_take(w, tb->p, tb->cap);
    if (n >= 0) return n;
    CHECKF(n < -1, "take returned %d", n);
    CHECKF(-n > tb->cap, "take asks for %d bytes with a %d-byte buffer", -n,
           tb->cap);
    int32_t cap = tb->cap ? tb->cap * 2 : 64;
    while (cap < -n) cap *= 2;
    uint8_t *p = realloc(tb->p, (size_t)cap);
    CHECK(p != NULL);
    tb->p = p;
    tb->cap = cap;
    tb->grows++;
  }
}

/* Waits for and takes exactly one request. A wait may also count an abort
 * notice for an exchange already finished (after a release mid-stream,
 * say), which take() skips: then take() returns 0 and we wait again. */
static rec_t take_request(ymo_worker_t *w, takebuf_t *tb) {
  int32_t n = 0;
  while (n == 0) {
    CHECK(ymo_worker_wait(w) > 0);
    n = take_all(w, tb);
  }
  rec_t r;
  CHECK(n > 0);
  CHECK_EQ(parse_record(tb->p, (size_t)n, &r), n);
  CHECK(!(r.flags & YMO_REQF_ABORT));
  return r;
}

/* A server on 127.0.0.1 with a free port, not yet started. */
static ymo_server_t *test_server(int n_workers, int *port) {
  int err = 1;
  ymo_server_t *srv = ymo_server_create(n_workers, &err);
  CHECKF(srv != NULL && err == 0, "ymo_server_create: %s", ymo_strerror(err));
  CHECK_OK(ymo_server_listen(srv, "127.0.0.1", 0));
  *port = ymo_server_port(srv);
  CHECKF(*port > 0, "port %d", *port);
  return srv;
}

#endif /* YMO_TEST_UTIL_H */
