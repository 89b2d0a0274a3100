/* libFuzzer target for the request path: bytes from a client in, the
 * session's behaviour out.
 *
 * Everything runs on the fuzzer's thread, in process, with no timing: one
 * server is created on the first call but never started; its loop is run
 * here with EVRUN_NOWAIT, and its worker is driven here the way the
 * JavaScript side drives it (take, then respond). Each input is written to a
 * fresh socketpair() whose other end is handed to ymo__conn_start(), so
 * the real read, parse, queue, respond, write and close code runs.
 *
 * Each input is played up to four times: in one write, in one write followed
 * by a half-close (shutdown(SHUT_WR), after which every request read must
 * still be answered and the connection then closed), in three writes split
 * at points derived from the input, and (for short inputs) one byte per
 * write. Every request reaches the worker as soon as its head is complete,
 * its body in body records when it did not come whole with the head, so
 * splitting the input also splits requests into streamed ones. After each
 * play the harness checks:
 *
 *  1. The reply is a sequence of well-formed HTTP/1.1 responses (interim
 *     100 Continue allowed), each with a Date, framed by Content-Length or
 *     chunked coding (or, only for a streamed HTTP/1.0 response, by the
 *     close), with no body for HEAD, 204 and 304.
 *  2. The responses answer the requests the server handed over, in order,
 *     with the status and body the harness gave them, up to the first
 *     response that closes the connection; after that nothing follows and the
 *     connection is closed. Two static routes (/s: 200 "static", /z: 204)
 *     are answered by L itself, in their place in that order (a request
 *     with a body goes to the worker, however it is split).
 *  3. A response the server made itself (400, 413, 414, 431, ...) comes
 *     after every earlier response, says Connection: close, and is the last
 *     thing on the connection, which is then closed.
 *  4. The requests handed over are sane: lengths within the configured
 *     limits, header names are tokens, values hold no CR, LF or NUL.
 *  5. How the bytes were split into reads changes nothing: the same requests
 *     (method, target, version, headers, body), and an error response in
 *     both plays or in neither.
 *  6. When the client goes away the session is closed and freed (no stuck
 *     connection, no leak: LeakSanitizer checks each input).
 *
 * A violation aborts with a message naming the invariant; ASan and UBSan
 * reports abort too.
 *
 * Known server bugs, while they wait for a fix, can be tolerated by name so
 * a long run looks for new ones: YMO_FUZZ_KNOWN=version,empty_name (see
 * KNOWN_NAMES; scripts/fuzz.sh passes it through). Each tolerated violation
 * is counted and the counts are printed at exit. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ymo_internal.h"
#include "../tests/record_field.h"

/* Record flags that newer versions of ymo.h define; 0 (never set) before. */
#ifdef YMO_REQF_STREAM
#define REQF_STREAM YMO_REQF_STREAM
#define REQF_BODY YMO_REQF_BODY
#define REQF_END YMO_REQF_END
#else
#define REQF_STREAM 0
#define REQF_BODY 0
#define REQF_END 0
#endif
#ifdef YMO_REQF_DRAIN
#define REQF_DRAIN YMO_REQF_DRAIN
#else
#define REQF_DRAIN 0
#endif

/* Small limits, so the fuzzer reaches every one of them with short inputs. */
#define LIMIT_HEAD 2048
#define LIMIT_URL 256
#define LIMIT_HEADERS 16
#define LIMIT_BODY 4096
#define LIMIT_PIPELINE 4

/* A session that is still making progress after this many loop turns in a
 * row is a livelock. */
#define MAX_ROUNDS 20000

static ymo_server_t *server;
static ymo_worker_t *worker;
static ev_prepare reaper;
static uint8_t *take_buf;
static size_t take_cap;

/* The input being played, for failure messages. */
static const uint8_t *cur_data;
static size_t cur_size;
static const char *cur_mode;

static void dump_input(void) {
  fprintf(stderr, "ymo fuzz: mode %s, input (%zu bytes): \"", cur_mode,
          cur_size);
  size_t n = cur_size < 2048 ? cur_size : 2048;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = cur_data[i];
    if (c == '\r')
      fputs("\\r", stderr);
    else if (c == '\n')
      fputs("\\n", stderr);
    else if (c == '"' || c == '\\')
      fprintf(stderr, "\\%c", c);
    else if (c < 0x20 || c >= 0x7f)
      fprintf(stderr, "\\x%02x", c);
    else
      fputc(c, stderr);
  }
  fputs(n < cur_size ? "...\"\n" : "\"\n", stderr);
}

static void fail(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("ymo fuzz: invariant violated: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  dump_input();
  abort();
}

#define CHECK(cond, ...)            \
  do {                              \
    if (!(cond)) fail(__VA_ARGS__); \
  } while (0)

/* Invariants that YMO_FUZZ_KNOWN may name:
 *   version   a request with a version other than 1.0 or 1.1 is handed over
 *             (RFC 9110 section 6.2: 505 or 400 instead), including
 *             HTTP/0.9-style request lines without a version;
 *   empty_name  a header line with an empty name (": v") is handed over
 *             (RFC 9110 section 5.1: a field name is a token, 1*tchar);
 *   obs_fold_split  an obs-fold is refused with 400 only when both of its
 *             lines come in one read (the split-invariance check, for inputs
 *             with a fold);
 *   bare_lf_split  a bare LF ending the request line is refused only when
 *             the LF comes in the same read as what precedes it (the same
 *             check, for inputs with a bare LF);
 *   stream_early_close  answering a streamed request before its body has
 *             come in whole frees the exchange while the session still
 *             parses into it (use after free): with this name the harness
 *             holds such answers back until the body ends, and counts them.
 * (Trailer fields corrupting the record, and llhttp_execute(p, NULL, 0) on
 * resume, found by this harness, were fixed in cfb03ff and are checked
 * without exception.) */
#define KNOWN_NAMES(X) \
  X(version)           \
  X(empty_name) X(obs_fold_split) X(bare_lf_split) X(stream_early_close)

enum {
#define KNOWN_ENUM(name) KNOWN_##name,
  KNOWN_NAMES(KNOWN_ENUM)
#undef KNOWN_ENUM
      N_KNOWN
};
static const char *const known_names[N_KNOWN] = {
#define KNOWN_STR(name) #name,
    KNOWN_NAMES(KNOWN_STR)
#undef KNOWN_STR
};
static bool known_on[N_KNOWN];
/* YMO_FUZZ_DEBUG=1: print what each play handed over and got back. */
static bool debug;
static unsigned long known_hits[N_KNOWN];

static void print_known(void) {
  for (int i = 0; i < N_KNOWN; i++)
    if (known_on[i])
      fprintf(stderr, "ymo fuzz: known bug '%s' tolerated %lu times\n",
              known_names[i], known_hits[i]);
}

static void read_known(void) {
  const char *env = getenv("YMO_FUZZ_KNOWN");
  if (env == NULL) return;
  char buf[256];
  snprintf(buf, sizeof(buf), "%s", env);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ", ", &save); tok != NULL;
       tok = strtok_r(NULL, ", ", &save)) {
    int i = 0;
    while (i < N_KNOWN && strcmp(tok, known_names[i]) != 0) i++;
    if (i == N_KNOWN) {
      fprintf(stderr, "YMO_FUZZ_KNOWN: unknown name '%s'\n", tok);
      exit(2);
    }
    known_on[i] = true;
  }
  atexit(print_known);
}

/* A check that YMO_FUZZ_KNOWN can turn into a count; evaluates to true when
 * the condition holds, false when a tolerated violation was counted. */
#define CHECK_KNOWN(name, cond, ...)                              \
  ((cond)                   ? true                                \
   : known_on[KNOWN_##name] ? (known_hits[KNOWN_##name]++, false) \
                            : (fail(__VA_ARGS__), false))


/* FNV-1a, to compare what two plays of one input handed over. */
static uint64_t fnv(uint64_t h, const void *data, size_t len) {
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static void on_reap(struct ev_loop *loop, ev_prepare *w, int revents) {
  (void)loop;
  (void)w;
  (void)revents;
  ymo__conns_reap(&server->conns);
}

/* The dynamic routes the server has, with their parameter counts. */
static const struct {
  const char *pattern, *method;
  size_t n_params;
} patterns[] = {
    {"/p/:a/:b", NULL, 2}, {"/p/:a/x", NULL, 1}, {"/w/*", NULL, 0},
    {"/m/:id", "POST", 1}, {"/*", "DELETE", 0},
};
#define N_PATTERNS (int)(sizeof(patterns) / sizeof(patterns[0]))

static void setup(void) {
  read_known();
  debug = getenv("YMO_FUZZ_DEBUG") != NULL;
  signal(SIGPIPE, SIG_IGN);
  int err = 0;
  server = ymo_server_create(1, &err);
  if (server == NULL) {
    fprintf(stderr, "ymo_server_create: %s\n", ymo_strerror(err));
    abort();
  }
  ymo_server_set_option(server, YMO_OPT_MAX_HEAD_SIZE, LIMIT_HEAD);
  ymo_server_set_option(server, YMO_OPT_MAX_URL_SIZE, LIMIT_URL);
  ymo_server_set_option(server, YMO_OPT_MAX_HEADERS, LIMIT_HEADERS);
  ymo_server_set_option(server, YMO_OPT_MAX_BODY_SIZE, LIMIT_BODY);
  ymo_server_set_option(server, YMO_OPT_MAX_PIPELINE, LIMIT_PIPELINE);
  worker = ymo_server_worker(server, 0);
  ymo_worker_start(worker);
  /* What loop_main() does on L before ev_run(), minus the listener. */
  ymo__conns_attach(&server->conns);
  ev_prepare_init(&reaper, on_reap);
  ev_prepare_start(server->loop, &reaper);
  /* Static routes, answered by L without a record; X-Static marks them. */
  static const char hdr[] = "X-Static: 1\r\n";
  ymo_server_add_static(server, "/s", 200, (const uint8_t *)hdr,
                        sizeof(hdr) - 1, (const uint8_t *)"static", 6);
  ymo_server_add_static(server, "/z", 204, (const uint8_t *)hdr,
                        sizeof(hdr) - 1, NULL, 0);
  /* Dynamic routes, matched by L into the record (router.c). */
  for (int i = 0; i < N_PATTERNS; i++)
    ymo_server_add_route(server, patterns[i].pattern, patterns[i].method, i);
  take_cap = 1 << 16;
  take_buf = malloc(take_cap);
}

/* ------------------------------------------------------------------------ */
/* What one play saw.                                                       */

enum kind {
  KIND_OK,      /* 200, body "r<index>", done at once. */
  KIND_EMPTY,   /* 204. */
  KIND_STREAM,  /* 200 streamed in three appends: "ab", "cd", "". */
  KIND_CLOSE,   /* 200 with YMO_RESP_CLOSE. */
  KIND_NOTMOD,  /* 304. */
  KIND_RELEASE, /* ymo_worker_release() before responding: 500 + close. */
  N_KINDS
};

#define MAX_REQS 4096

typedef struct {
  uint8_t kind;
  bool head;
  bool http10;
  bool keepalive;
  bool upgrade;  /* Upgrade header or CONNECT: the server stops after it. */
  bool streamed; /* Handed over before its body was complete. */
  bool ended;    /* ... and its last body record came. */
} req_info_t;

typedef struct {
  req_info_t reqs[MAX_REQS];
  size_t n_reqs;
  uint64_t hash; /* Of every request handed over, bodies too, in order. */
  uint64_t hashes[MAX_REQS]; /* hash after each request's head. */
  uint64_t before[MAX_REQS]; /* hash before each request. */
  size_t body_total;         /* Body bytes of the last request so far. */
  /* A streamed request held back until its body ends (stream_early_close). */
  bool deferred;
  uint32_t deferred_id, deferred_gen;
  size_t deferred_index;
  uint8_t *out; /* Everything the server wrote. */
  size_t out_len, out_cap;
  bool eof;           /* The server closed the connection. */
  bool half_closed;   /* The client shut down its sending side. */
  int error_status;   /* Status of a response the server made itself. */
  size_t first_close; /* Index of the first request answered with close. */
} play_t;

static play_t plays[4];

static void out_append(play_t *p, const uint8_t *data, size_t len) {
  if (p->out_len + len > p->out_cap) {
    size_t cap = p->out_cap ? p->out_cap : 4096;
    while (cap < p->out_len + len) cap *= 2;
    p->out = realloc(p->out, cap);
    if (p->out == NULL) abort();
    p->out_cap = cap;
  }
  memcpy(p->out + p->out_len, data, len);
  p->out_len += len;
}

static bool is_tchar(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* Answers request `index` (id, gen) the way its kind says. */
static void answer(play_t *p, uint32_t id, uint32_t gen, size_t index) {
  const req_info_t *r = &p->reqs[index];
  static const char hdr[] = "Content-Type: text/plain\r\n";
  char body[32];
  int body_n = snprintf(body, sizeof(body), "r%zu", index);
  int rc = 0;
  switch (r->kind) {
    case KIND_OK:
      rc = ymo_worker_respond(worker, id, gen, 200, (const uint8_t *)hdr,
                              sizeof(hdr) - 1, (const uint8_t *)body, body_n,
                              YMO_RESP_DONE);
      break;
    case KIND_EMPTY:
      rc = ymo_worker_respond(worker, id, gen, 204, NULL, 0, NULL, 0,
                              YMO_RESP_DONE);
      break;
    case KIND_NOTMOD:
      rc = ymo_worker_respond(worker, id, gen, 304, NULL, 0, NULL, 0,
                              YMO_RESP_DONE);
      break;
    case KIND_CLOSE:
      rc = ymo_worker_respond(worker, id, gen, 200, (const uint8_t *)hdr,
                              sizeof(hdr) - 1, (const uint8_t *)body, body_n,
                              YMO_RESP_DONE | YMO_RESP_CLOSE);
      break;
    case KIND_STREAM:
      rc = ymo_worker_respond(worker, id, gen, 200, (const uint8_t *)hdr,
                              sizeof(hdr) - 1, (const uint8_t *)"ab", 2, 0);
      if (rc == 0)
        rc = ymo_worker_response_body_append(worker, id, gen,
                                             (const uint8_t *)"cd", 2, 0);
      if (rc >= 0)
        rc = ymo_worker_response_body_append(worker, id, gen, NULL, 0,
                                             YMO_RESP_DONE);
      if (rc > 0) rc = 0;
      break;
    case KIND_RELEASE:
      rc = ymo_worker_release(worker, id, gen);
      break;
  }
  /* EPIPE: the connection closed already (an earlier close response). */
  CHECK(rc == 0 || rc == YMO_EPIPE, "responding failed: %s", ymo_strerror(rc));
}

/* Checks one request record, folds it into the play's hash, and answers it
 * the way its kind says. */
static void handle_record(play_t *p, const uint8_t *rec, size_t size) {
  CHECK(size >= YMO_REQ_FIXED_SIZE && size % 8 == 0,
        "record size %zu is not a padded record", size);
  uint32_t id = REC_FIELD(rec, id), gen = REC_FIELD(rec, gen);
  uint8_t major = (uint8_t)REC_FIELD(rec, http_major);
  uint8_t minor = (uint8_t)REC_FIELD(rec, http_minor);
  uint8_t flags = (uint8_t)REC_FIELD(rec, flags);
  size_t method_len = REC_FIELD(rec, method_len);
  size_t url_len = REC_FIELD(rec, url_len);
  size_t n_headers = REC_FIELD(rec, n_headers);
  size_t headers_len = REC_FIELD(rec, headers_len);
  size_t body_len = REC_FIELD(rec, body_len);
  size_t route = REC_FIELD(rec, route), n_params = REC_FIELD(rec, n_params);
  CHECK(route <= N_PATTERNS, "route %zu handed over", route);
  CHECK(n_params == (route == 0 ? 0 : patterns[route - 1].n_params),
        "route %zu with %zu parameters", route, n_params);
  /* HTTP/0.9-style lines ("GET /" with no version) count here too: llhttp
   * hands them over as version 0.9, sometimes with an empty target. */
  bool version_ok =
      CHECK_KNOWN(version, major == 1 && minor <= 1,
                  "request handed over with version %u.%u", major, minor);
  CHECK(method_len > 0, "request handed over with an empty method");
  CHECK((url_len > 0 || !version_ok) && url_len <= LIMIT_URL,
        "target of %zu bytes handed over (limit %d)", url_len, LIMIT_URL);
  CHECK(n_headers <= LIMIT_HEADERS, "%zu headers handed over (limit %d)",
        n_headers, LIMIT_HEADERS);
  CHECK(body_len <= LIMIT_BODY, "body of %zu bytes handed over (limit %d)",
        body_len, LIMIT_BODY);
  /* The limit counts method, target, names and values (not the 8-byte
   * length prefix of each header in the record). */
  size_t n_entries = n_headers + n_params;
  CHECK(headers_len >= 8 * n_entries, "header block of %zu bytes for %zu "
        "entries", headers_len, n_entries);
  size_t need =
      YMO_REQ_FIXED_SIZE + method_len + url_len + headers_len + body_len;
  CHECK(need <= size, "record of %zu bytes holds %zu bytes of fields", size,
        need);
  CHECK(size - need < 8,
        "record of %zu bytes holds %zu bytes of fields (trailer fields after "
        "the body?)",
        size, need);
  const uint8_t *method = rec + YMO_REQ_FIXED_SIZE;
  const uint8_t *url = method + method_len;
  for (size_t i = 0; i < method_len; i++)
    CHECK(is_tchar(method[i]), "method byte 0x%02x is not a tchar", method[i]);
  for (size_t i = 0; i < url_len; i++)
    CHECK(url[i] > 0x20 && url[i] != 0x7f,
          "target byte 0x%02x (CTL or space) handed over", url[i]);

  /* llhttp stops after CONNECT, or Upgrade with Connection: upgrade; the
   * server then closes once the response is written. */
  bool connect = method_len == 7 && memcmp(method, "CONNECT", 7) == 0;
  bool upgrade_field = false, connection_upgrade = false;
  if (debug)
    fprintf(stderr,
            "[%s] request: HTTP/%u.%u flags %u method \"%.*s\" target "
            "\"%.*s\" %zu headers, %zu body bytes\n",
            cur_mode, major, minor, flags, (int)method_len, method,
            (int)url_len, url, n_headers, body_len);
  const uint8_t *h = url + url_len, *h_end = h + headers_len;
  for (size_t i = 0; i < n_headers; i++) {
    CHECK(h + YMO_REQ_FIELD_SIZE <= h_end,
          "header %zu runs past the header block", i);
    size_t nl = REC_FIELD(h, field_name_len);
    size_t vl = REC_FIELD(h, field_value_len);
    CHECK(h + YMO_REQ_FIELD_SIZE + nl + vl <= h_end,
          "header %zu runs past the header block", i);
    const uint8_t *name = h + YMO_REQ_FIELD_SIZE, *value = name + nl;
    CHECK_KNOWN(empty_name, nl > 0, "header %zu has an empty name", i);
    for (size_t j = 0; j < nl; j++)
      CHECK(is_tchar(name[j]), "header name byte 0x%02x is not a tchar",
            name[j]);
    for (size_t j = 0; j < vl; j++)
      CHECK(value[j] != '\r' && value[j] != '\n' && value[j] != 0,
            "header value holds byte 0x%02x", value[j]);
    if (nl == 7 && strncasecmp((const char *)name, "upgrade", 7) == 0)
      upgrade_field = true;
    if (nl == 10 && strncasecmp((const char *)name, "connection", 10) == 0)
      for (size_t j = 0; j + 7 <= vl; j++)
        if (strncasecmp((const char *)value + j, "upgrade", 7) == 0)
          connection_upgrade = true;
    h += YMO_REQ_FIELD_SIZE + nl + vl;
  }
  /* The limit counts method, target, names and values (not the 8-byte
   * length prefix of each header in the record, nor the parameters). */
  size_t head = method_len + url_len + (size_t)(h - (url + url_len)) -
                8 * n_headers;
  CHECK(head <= LIMIT_HEAD, "head of %zu bytes handed over (limit %d)", head,
        LIMIT_HEAD);
  /* Each parameter: one non-empty path segment, a piece of the target. */
  for (size_t i = 0; i < n_params; i++) {
    CHECK(h + YMO_REQ_FIELD_SIZE <= h_end, "parameter %zu runs past", i);
    size_t nl = REC_FIELD(h, field_name_len);
    size_t vl = REC_FIELD(h, field_value_len);
    CHECK(nl == 0 && vl > 0 && vl <= url_len &&
              h + YMO_REQ_FIELD_SIZE + vl <= h_end,
          "parameter %zu: name %zu, value %zu bytes", i, nl, vl);
    const uint8_t *value = h + YMO_REQ_FIELD_SIZE;
    for (size_t j = 0; j < vl; j++)
      CHECK(value[j] != '/' && value[j] != '\\' && value[j] != '?' &&
                value[j] != '#',
            "parameter %zu holds byte 0x%02x", i, value[j]);
    h += YMO_REQ_FIELD_SIZE + vl;
  }
  CHECK(h == h_end, "header block has %zu bytes left over",
        (size_t)(h_end - h));

  /* The hash covers everything but the handle, the peer address, and how
   * much of the body came with the head (a streamed request's body goes on
   * in body records, as far as the reads went). */
  CHECK(p->n_reqs < MAX_REQS, "more than %d requests", MAX_REQS);
  p->before[p->n_reqs] = p->hash;
  /* From the version up to the body length: the fields two plays share. */
  uint8_t fixed[YMO_REQ_AT_body_len - YMO_REQ_AT_http_major];
  memcpy(fixed, rec + YMO_REQ_AT_http_major, sizeof(fixed));
  fixed[YMO_REQ_AT_flags - YMO_REQ_AT_http_major] &= (uint8_t)~REQF_STREAM;
  p->hash = fnv(p->hash, fixed, sizeof(fixed));
  p->hash = fnv(p->hash, method, method_len + url_len + headers_len);
  p->hashes[p->n_reqs] = p->hash;
  p->hash = fnv(p->hash, url + url_len + headers_len, body_len);
  p->body_total = body_len;
  req_info_t *r = &p->reqs[p->n_reqs];
  size_t index = p->n_reqs++;
  /* The kind comes from the target's last byte, so the fuzzer picks it. */
  r->kind = url_len > 0 ? url[url_len - 1] % N_KINDS : KIND_OK;
  r->head = flags & YMO_REQF_HEAD;
  r->http10 = major == 1 && minor == 0; /* As the server decides. */
  r->keepalive = flags & YMO_REQF_KEEPALIVE;
  r->upgrade = connect || (upgrade_field && connection_upgrade);
  r->streamed = flags & REQF_STREAM;
  r->ended = false;

  /* With stream_early_close known, a streamed request is answered only
   * once its body has come in whole (see handle_body). */
  if (known_on[KNOWN_stream_early_close] && (flags & REQF_STREAM)) {
    known_hits[KNOWN_stream_early_close]++;
    p->deferred = true;
    p->deferred_id = id;
    p->deferred_gen = gen;
    p->deferred_index = index;
    return;
  }
  answer(p, id, gen, index);
}

/* A body record of a streamed request (ymo.h, YMO_REQF_BODY): its bytes
 * continue the body of the last request handed over. */
static void handle_body(play_t *p, const uint8_t *rec, size_t size) {
  size_t padding = REC_FIELD(rec, body_padding);
  CHECK(size >= YMO_REQ_ABORT_SIZE + padding,
        "body record of %zu bytes, padding %zu", size, padding);
  CHECK(p->n_reqs > 0, "a body record before any request");
  size_t n = size - YMO_REQ_ABORT_SIZE - padding;
  p->body_total += n;
  CHECK(p->body_total <= LIMIT_BODY, "body of %zu bytes handed over (limit %d)",
        p->body_total, LIMIT_BODY);
  p->hash = fnv(p->hash, rec + YMO_REQ_ABORT_SIZE, n);
  bool end = REC_FIELD(rec, flags) & REQF_END;
  if (end) p->reqs[p->n_reqs - 1].ended = true;
  if (p->deferred && end && REC_FIELD(rec, id) == p->deferred_id &&
      REC_FIELD(rec, gen) == p->deferred_gen) {
    p->deferred = false;
    answer(p, p->deferred_id, p->deferred_gen, p->deferred_index);
  }
#ifdef YMO_REQF_BODY
  /* As the JS side does once it has read them (the exchange may already be
   * finished: then the handle is stale, which is fine). */
  if (n > 0)
    ymo_worker_body_ack(worker, REC_FIELD(rec, id), REC_FIELD(rec, gen),
                        (int32_t)n);
#endif
}

/* Takes every queued record and answers it. Returns true if any came. */
static bool serve_queue(play_t *p) {
  bool any = false;
  for (;;) {
    int32_t n = ymo_worker_take(worker, take_buf, (int32_t)take_cap);
    if (n == 0) return any;
    if (n < 0) {
      CHECK(n < -1, "take() returned %d", n);
      while (take_cap < (size_t)-n) take_cap *= 2;
      take_buf = realloc(take_buf, take_cap);
      if (take_buf == NULL) abort();
      continue;
    }
    any = true;
    size_t off = 0;
    while (off < (size_t)n) {
      CHECK((size_t)n - off >= YMO_REQ_ABORT_SIZE,
            "truncated record in take()");
      size_t size = REC_FIELD(take_buf + off, record_len);
      CHECK(size >= YMO_REQ_ABORT_SIZE && off + size <= (size_t)n,
            "record of %zu bytes at %zu of %d", size, off, n);
      /* The harness answers at once, so the server never has to tell it a
       * client went away; an abort record may still come for an exchange
       * the harness has finished, and must then refer to no live slot. */
      uint8_t flags = (uint8_t)REC_FIELD(take_buf + off, flags);
      if (flags & REQF_BODY)
        handle_body(p, take_buf + off, size);
      else if (!(flags & (YMO_REQF_ABORT | REQF_DRAIN)))
        handle_record(p, take_buf + off, size);
      off += size;
    }
  }
}

/* Reads what the server wrote. Returns true if anything (or EOF) came. */
static bool read_replies(play_t *p, int fd) {
  bool any = false;
  uint8_t buf[16384];
  while (!p->eof) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      out_append(p, buf, (size_t)n);
      any = true;
    } else if (n == 0) {
      p->eof = true;
      any = true;
    } else {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) {
        p->eof = true;
        any = true;
      }
      break;
    }
  }
  return any;
}

/* Runs the loop, the worker and the client's reads until nothing moves. */
static void pump(play_t *p, int fd) {
  int quiet = 0;
  for (int round = 0; round < MAX_ROUNDS; round++) {
    ev_run(server->loop, EVRUN_NOWAIT);
    bool moved = serve_queue(p);
    moved |= read_replies(p, fd);
    if (moved)
      quiet = 0;
    else if (++quiet >= 3)
      return;
  }
  fail("the session still makes progress after %d loop turns", MAX_ROUNDS);
}

/* Writes data to the client end, pumping whenever the socket is full. */
static void send_all(play_t *p, int fd, const uint8_t *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      size_t before = p->out_len;
      bool was_eof = p->eof;
      pump(p, fd);
      /* The server reads nothing more (it answered an error, or is paused
       * behind responses the harness has given): the rest is dropped, as a
       * real client's would be. */
      if (p->out_len == before && p->eof == was_eof) {
        ssize_t again = write(fd, data, len);
        if (again < 0) return;
        data += again;
        len -= (size_t)again;
      }
    } else {
      return; /* EPIPE: the server closed. */
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Checking the reply.                                                      */

typedef struct {
  const uint8_t *p, *end;
} cursor_t;

/* Finds CRLF from c->p; returns the line length or -1. */
static long line_len(const cursor_t *c) {
  for (const uint8_t *q = c->p; q + 1 < c->end; q++)
    if (q[0] == '\r' && q[1] == '\n') return q - c->p;
  return -1;
}

typedef struct {
  int status;
  bool date, close, chunked, has_length;
  bool from_route; /* X-Static: a static route's answer, made by L. */
  uint64_t length;
  const uint8_t *body;
  size_t body_len;
  uint8_t body_copy[64]; /* A chunked body, reassembled (first bytes). */
} response_t;

static bool parse_uint(const uint8_t *s, size_t n, int base, uint64_t *out) {
  if (n == 0 || n > 15) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    int d;
    uint8_t ch = s[i];
    if (ch >= '0' && ch <= '9')
      d = ch - '0';
    else if (base == 16 && ch >= 'a' && ch <= 'f')
      d = ch - 'a' + 10;
    else if (base == 16 && ch >= 'A' && ch <= 'F')
      d = ch - 'A' + 10;
    else
      return false;
    v = v * (uint64_t)base + (uint64_t)d;
  }
  *out = v;
  return true;
}

/* Parses one response head at c; the caller frames the body. */
static void parse_head(cursor_t *c, response_t *r, size_t index) {
  memset(r, 0, sizeof(*r));
  long n = line_len(c);
  CHECK(n >= 0, "response %zu: no complete status line", index);
  CHECK(n >= 12 && memcmp(c->p, "HTTP/1.1 ", 9) == 0 && c->p[12] == ' ' &&
            c->p[9] >= '1' && c->p[9] <= '5' && c->p[10] >= '0' &&
            c->p[10] <= '9' && c->p[11] >= '0' && c->p[11] <= '9',
        "response %zu: bad status line \"%.*s\"", index, (int)(n < 80 ? n : 80),
        c->p);
  r->status = (c->p[9] - '0') * 100 + (c->p[10] - '0') * 10 + (c->p[11] - '0');
  c->p += n + 2;
  for (;;) {
    n = line_len(c);
    CHECK(n >= 0, "response %zu: head not terminated", index);
    if (n == 0) {
      c->p += 2;
      break;
    }
    const uint8_t *line = c->p, *colon = memchr(line, ':', (size_t)n);
    CHECK(colon != NULL && colon > line, "response %zu: bad header \"%.*s\"",
          index, (int)(n < 80 ? n : 80), line);
    for (const uint8_t *q = line; q < colon; q++)
      CHECK(is_tchar(*q), "response %zu: bad header name", index);
    size_t nl = (size_t)(colon - line);
    const uint8_t *v = colon + 1, *v_end = line + n;
    while (v < v_end && (*v == ' ' || *v == '\t')) v++;
    size_t vl = (size_t)(v_end - v);
    if (nl == 8 && strncasecmp((const char *)line, "x-static", 8) == 0)
      r->from_route = true;
    if (nl == 4 && strncasecmp((const char *)line, "date", 4) == 0) {
      CHECK(!r->date, "response %zu: two Date fields", index);
      /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
      CHECK(vl == 29 && memcmp(v + 25, " GMT", 4) == 0,
            "response %zu: bad Date \"%.*s\"", index, (int)vl, v);
      r->date = true;
    } else if (nl == 10 &&
               strncasecmp((const char *)line, "connection", 10) == 0) {
      if (vl == 5 && strncasecmp((const char *)v, "close", 5) == 0)
        r->close = true;
    } else if (nl == 14 &&
               strncasecmp((const char *)line, "content-length", 14) == 0) {
      CHECK(!r->has_length, "response %zu: two Content-Length fields", index);
      CHECK(parse_uint(v, vl, 10, &r->length),
            "response %zu: bad Content-Length", index);
      r->has_length = true;
    } else if (nl == 17 &&
               strncasecmp((const char *)line, "transfer-encoding", 17) == 0) {
      CHECK(vl == 7 && strncasecmp((const char *)v, "chunked", 7) == 0,
            "response %zu: Transfer-Encoding \"%.*s\"", index, (int)vl, v);
      r->chunked = true;
    }
    c->p += n + 2;
  }
  CHECK(r->date || r->status < 200, "response %zu (status %d) has no Date",
        index, r->status);
  CHECK(!(r->chunked && r->has_length),
        "response %zu has both Content-Length and Transfer-Encoding", index);
}

/* Frames the body of r; returns false if it runs past the bytes received. */
static void frame_body(cursor_t *c, response_t *r, bool no_body, bool eof,
                       size_t index) {
  r->body = c->p;
  r->body_len = 0;
  if (no_body) {
    if (r->status == 204)
      CHECK(!r->has_length && !r->chunked,
            "response %zu: 204 with Content-Length or Transfer-Encoding",
            index);
    return;
  }
  if (r->has_length) {
    CHECK((uint64_t)(c->end - c->p) >= r->length,
          "response %zu: %zu of %llu body bytes", index,
          (size_t)(c->end - c->p), (unsigned long long)r->length);
    r->body_len = (size_t)r->length;
    c->p += r->length;
    return;
  }
  if (r->chunked) {
    size_t total = 0;
    for (;;) {
      long n = line_len(c);
      CHECK(n >= 0, "response %zu: chunk size line missing", index);
      uint64_t size;
      CHECK(parse_uint(c->p, (size_t)n, 16, &size),
            "response %zu: bad chunk size \"%.*s\"", index,
            (int)(n < 40 ? n : 40), c->p);
      c->p += n + 2;
      if (size == 0) {
        CHECK(c->end - c->p >= 2 && c->p[0] == '\r' && c->p[1] == '\n',
              "response %zu: no CRLF after the last chunk", index);
        c->p += 2;
        break;
      }
      CHECK(size > 0 && (uint64_t)(c->end - c->p) >= size + 2 &&
                c->p[size] == '\r' && c->p[size + 1] == '\n',
            "response %zu: chunk of %llu bytes badly framed", index,
            (unsigned long long)size);
      for (size_t i = 0; i < size && total < sizeof(r->body_copy); i++)
        r->body_copy[total++] = c->p[i];
      c->p += size + 2;
    }
    r->body = r->body_copy;
    r->body_len = total;
    return;
  }
  /* Delimited by the close. */
  CHECK(eof, "response %zu: no length and the connection stays open", index);
  r->body_len = (size_t)(c->end - c->p);
  c->p = c->end;
}

static void check_reply(play_t *p) {
  static const uint8_t none[1];
  const uint8_t *out = p->out != NULL ? p->out : none;
  cursor_t c = {out, out + p->out_len};
  size_t answered = 0, index = 0;
  bool closed_by_response = false;
  p->error_status = 0;
  p->first_close = SIZE_MAX;
  while (c.p < c.end) {
    CHECK(!closed_by_response,
          "%zu bytes after the response that closed the connection",
          (size_t)(c.end - c.p));
    response_t r;
    parse_head(&c, &r, index);
    if (r.status == 100) {
      CHECK(!r.has_length && !r.chunked, "100 Continue with a body");
      index++;
      continue;
    }
    if (r.from_route) {
      /* A static route's answer (GET or HEAD of /s or /z): the request was
       * never handed over, so whether it was HEAD shows in the bytes. */
      CHECK(r.status == 200 || r.status == 204,
            "response %zu: static route status %d", index, r.status);
      if (r.status == 204) {
        CHECK(!r.has_length && !r.chunked,
              "response %zu: 204 with Content-Length or Transfer-Encoding",
              index);
      } else {
        CHECK(r.has_length && r.length == 6 && !r.chunked,
              "response %zu: static route framing", index);
        if (c.end - c.p >= 6 && memcmp(c.p, "static", 6) == 0) c.p += 6;
      }
      if (r.close) closed_by_response = true;
      index++;
      continue;
    }
    bool held = p->deferred && p->deferred_index == answered;
    if (answered < p->n_reqs && !(held && r.status >= 400)) {
      /* The answer to request `answered`, made by the harness. */
      const req_info_t *q = &p->reqs[answered];
      static const int want_status[N_KINDS] = {200, 204, 200, 200, 304, 500};
      CHECK(r.status == want_status[q->kind],
            "response %zu: status %d for request %zu, want %d", index, r.status,
            answered, want_status[q->kind]);
      bool no_body = q->head || r.status == 204 || r.status == 304;
      frame_body(&c, &r, no_body, p->eof, index);
      if (no_body) {
        CHECK(r.body_len == 0, "response %zu has a body", index);
      } else if (q->kind == KIND_OK || q->kind == KIND_CLOSE) {
        char want[32];
        int wn = snprintf(want, sizeof(want), "r%zu", answered);
        CHECK(r.body_len == (size_t)wn && memcmp(r.body, want, wn) == 0,
              "response %zu: body is not \"%s\" (out of order?)", index, want);
      } else if (q->kind == KIND_STREAM) {
        CHECK(r.body_len == 4 && memcmp(r.body, "abcd", 4) == 0,
              "response %zu: streamed body is not \"abcd\"", index);
        CHECK(q->http10 ? !r.chunked && !r.has_length && r.close : r.chunked,
              "response %zu: streamed body badly framed for HTTP/1.%d", index,
              q->http10 ? 0 : 1);
      }
      bool must_close = q->kind == KIND_CLOSE || q->kind == KIND_RELEASE ||
                        !q->keepalive ||
                        (q->kind == KIND_STREAM && q->http10 && !q->head);
      if (must_close)
        CHECK(r.close, "response %zu should say Connection: close", index);
      if (r.close) {
        closed_by_response = true;
        p->first_close = answered;
      }
      answered++;
      /* After an upgrade request the server may close without saying so. */
      if (q->upgrade && c.p == c.end && p->eof) {
        closed_by_response = true;
        p->first_close = answered - 1;
      }
    } else {
      /* A response the server made itself (also in the place of a streamed
       * request the harness holds back, when its body goes wrong). */
      CHECK(r.status >= 400 && r.status != 500,
            "response %zu: status %d with no request to answer", index,
            r.status);
      CHECK(r.close, "error response %d without Connection: close", r.status);
      CHECK(r.has_length, "error response %d without Content-Length", r.status);
      frame_body(&c, &r, false, p->eof, index);
      p->error_status = r.status;
      closed_by_response = true;
    }
    index++;
  }
  if (closed_by_response) {
    CHECK(p->eof, "the connection stays open after a closing response");
  } else {
    /* A streamed request whose body broke off (an error in it, after the
     * harness answered) can only end with the close. */
    bool broken = answered > 0 && p->reqs[answered - 1].streamed &&
                  !p->reqs[answered - 1].ended;
    /* After a half-close the server closes once all is answered. */
    CHECK(!p->eof || broken || p->half_closed,
          "the server closed the connection without saying so");
    /* A streamed request held back while its body is incomplete. */
    size_t held = p->deferred ? 1 : 0;
    CHECK(answered + held == p->n_reqs, "%zu of %zu requests answered",
          answered, p->n_reqs);
  }
}

/* ------------------------------------------------------------------------ */
/* One play.                                                                */

static void play(play_t *p, const uint8_t *data, size_t size,
                 const size_t *cuts, size_t n_cuts, bool half_close,
                 const char *mode) {
  cur_mode = mode;
  p->n_reqs = 0;
  p->hash = 0xcbf29ce484222325ULL;
  p->deferred = false;
  p->out_len = 0;
  p->eof = false;
  p->half_closed = half_close;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) !=
      0)
    abort();
  struct sockaddr_storage peer;
  memset(&peer, 0, sizeof(peer));
  struct sockaddr_in *in = (struct sockaddr_in *)&peer;
  in->sin_family = AF_INET;
  in->sin_port = htons(40000);
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ymo__conn_start(&server->conns, fds[0], &peer);
  CHECK(ymo_server_connections(server) == 1, "session did not start");

  size_t at = 0;
  for (size_t i = 0; i <= n_cuts; i++) {
    size_t end = i < n_cuts ? cuts[i] : size;
    if (end > at) send_all(p, fds[1], data + at, end - at);
    at = end;
    pump(p, fds[1]);
  }
  if (half_close) {
    /* RFC 9112 9.6: the client sends no more but still reads. Every
     * request read so far is answered, and then (or at once, when the last
     * request was cut short) the server closes. */
    shutdown(fds[1], SHUT_WR);
    pump(p, fds[1]);
    CHECK(p->eof || p->deferred,
          "a half-closed connection stays open with nothing to answer");
  }
  if (debug)
    fprintf(stderr, "[%s] reply (%s): \"%.*s\"\n", cur_mode,
            p->eof ? "closed" : "open", (int)p->out_len,
            p->out != NULL ? (const char *)p->out : "");
  check_reply(p);

  /* The client goes away; the session must close and be freed. */
  close(fds[1]);
  for (int i = 0; i < 16 && ymo_server_connections(server) != 0; i++) {
    ev_run(server->loop, EVRUN_NOWAIT);
    serve_queue(p);
  }
  CHECK(ymo_server_connections(server) == 0,
        "the session outlives its client (a stuck connection)");
  ev_run(server->loop, EVRUN_NOWAIT); /* The reaper frees it. */
  serve_queue(p);                     /* Abort notices, if any. */
}

/* Same requests and the same outcome, up to the first closing response
 * (after which how far the server had read ahead depends on timing). */
/* Whether the input holds an obs-fold (CRLF then SP or HTAB). */
static bool has_fold(void) {
  for (size_t i = 0; i + 2 < cur_size; i++)
    if (cur_data[i] == '\r' && cur_data[i + 1] == '\n' &&
        (cur_data[i + 2] == ' ' || cur_data[i + 2] == '\t'))
      return true;
  return false;
}

/* Whether the input holds a bare LF (one not preceded by CR). */
static bool has_bare_lf(void) {
  for (size_t i = 0; i < cur_size; i++)
    if (cur_data[i] == '\n' && (i == 0 || cur_data[i - 1] != '\r')) return true;
  return false;
}

/* Requests before the first streamed one whose body never ended: after it,
 * what was handed over depends on the reads (a body that goes wrong is
 * refused before anything is handed over when it comes in one read, and
 * after the head was streamed when it comes in several). */
static size_t stable_prefix(const play_t *p) {
  for (size_t i = 0; i < p->n_reqs; i++)
    if (p->reqs[i].streamed && !p->reqs[i].ended) return i;
  return p->n_reqs;
}

static uint64_t hash_before(const play_t *p, size_t k) {
  return k < p->n_reqs ? p->before[k] : p->hash;
}

/* Why two plays of one input disagree, or NULL if they agree. */
static const char *disagreement(const play_t *a, const play_t *b) {
  static char why[160];
  size_t pa = stable_prefix(a), pb = stable_prefix(b);
  if (pa < a->n_reqs || pb < b->n_reqs) {
    size_t k = pa < pb ? pa : pb;
    if (hash_before(a, k) == hash_before(b, k)) return NULL;
    return "the requests before a broken-off streamed body differ";
  }
  size_t limit_a = a->first_close, limit_b = b->first_close;
  if (limit_a != SIZE_MAX || limit_b != SIZE_MAX) {
    /* Both closed at the same request; after it the reads may differ. */
    if (limit_a != limit_b) {
      snprintf(why, sizeof(why),
               "first closing response at request %zd in one write, %zd here",
               (ssize_t)limit_a, (ssize_t)limit_b);
      return why;
    }
    if (a->hashes[limit_a] != b->hashes[limit_b])
      return "the requests differ when the input is split into reads";
    return NULL;
  }
  if (a->n_reqs != b->n_reqs) {
    snprintf(why, sizeof(why), "%zu requests in one write, %zu when split",
             a->n_reqs, b->n_reqs);
    return why;
  }
  if (a->hash != b->hash)
    return "the requests differ when the input is split into reads";
  /* A request wrong in two ways may get either status (a target that is
   * too long and holds a NUL: 414 if a read ends inside it, else 400). */
  if ((a->error_status != 0) != (b->error_status != 0)) {
    snprintf(why, sizeof(why), "error %d in one write, %d when split",
             a->error_status, b->error_status);
    return why;
  }
  return NULL;
}

static void compare(const play_t *a, const play_t *b, const char *mode) {
  cur_mode = mode;
  const char *why = disagreement(a, b);
  if (why == NULL) return;
  if (known_on[KNOWN_obs_fold_split] && has_fold()) {
    known_hits[KNOWN_obs_fold_split]++;
    return;
  }
  if (known_on[KNOWN_bare_lf_split] && has_bare_lf()) {
    known_hits[KNOWN_bare_lf_split]++;
    return;
  }
  fail("%s", why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (server == NULL) setup();
  cur_data = data;
  cur_size = size;
  play(&plays[0], data, size, NULL, 0, false, "one write");
  play(&plays[3], data, size, NULL, 0, true, "one write, half-closed");
  /* The same reads: the same requests handed over, and an error response
   * in both or in neither; only when the connection closes may differ. */
  CHECK(plays[3].n_reqs == plays[0].n_reqs && plays[3].hash == plays[0].hash,
        "%zu requests without the half-close, %zu with it", plays[0].n_reqs,
        plays[3].n_reqs);
  CHECK((plays[3].error_status != 0) == (plays[0].error_status != 0),
        "error %d without the half-close, %d with it", plays[0].error_status,
        plays[3].error_status);
  if (size < 2) return 0;
  uint64_t h = fnv(0xcbf29ce484222325ULL, data, size);
  size_t cuts[2] = {(size_t)(h % size), (size_t)((h >> 32) % size)};
  if (cuts[0] > cuts[1]) {
    size_t t = cuts[0];
    cuts[0] = cuts[1];
    cuts[1] = t;
  }
  play(&plays[1], data, size, cuts, 2, false, "three writes");
  compare(&plays[0], &plays[1], "three writes");
  if (size <= 96) {
    size_t every[96];
    for (size_t i = 0; i + 1 < size; i++) every[i] = i + 1;
    play(&plays[2], data, size, every, size - 1, false, "byte by byte");
    compare(&plays[0], &plays[2], "byte by byte");
  }
  return 0;
}
