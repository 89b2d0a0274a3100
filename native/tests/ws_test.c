/* The WebSocket core (ws.c, ws_handshake.c, sha1.c), alone: no server, no
 * sockets. Every parser case is played several times, the input fed whole,
 * one byte per call, and in two uneven splits, and the events (with the
 * stream offset each came at) must be the same every time.
 *
 *   ws_test handshake   SHA-1 (RFC 3174's vectors), Sec-WebSocket-Accept
 *                       (RFC 6455's example), the header checks, the
 *                       permessage-deflate negotiation;
 *   ws_test utf8        the validator, its fail-fast points, close codes;
 *   ws_test frames      the parser: length forms, masking, RSV bits,
 *                       opcodes, control frames, fragmentation with
 *                       interleaved control frames, the size limit, UTF-8
 *                       across fragments, close frames;
 *   ws_test deflate     permessage-deflate: round trips with and without
 *                       context takeover both ways, fragmented compressed
 *                       messages, a final block, a zip bomb against the
 *                       limit, bad compressed data;
 *   ws_test writer      frame headers, close, ping and pong frames;
 *   ws_test enomem      every allocation failing in turn (not under the
 *                       sanitizers, which own malloc). */
#include <zlib.h>

#include "sha1.h"
#include "test_util.h"
#include "ws.h"

/* ------------------------------------------------------------------------ */
/* Allocation failure injection: the test's own malloc, calloc and realloc
 * forward to glibc's and fail once a countdown reaches zero. Left out under
 * ASan and TSan, whose runtimes define these functions themselves. */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FAULTS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define FAULTS 0
#endif
#endif
#ifndef FAULTS
#define FAULTS 1
#endif

#if FAULTS
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
/* Allocations left before one fails; -1: none fails. */
static long fault_countdown = -1;
static bool fault_hit(void) {
  if (fault_countdown < 0) return false;
  if (fault_countdown-- == 0) return true;
  return false;
}
void *malloc(size_t n) { return fault_hit() ? NULL : __libc_malloc(n); }
void *calloc(size_t a, size_t b) {
  return fault_hit() ? NULL : __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  return fault_hit() ? NULL : __libc_realloc(p, n);
}
#endif

/* ------------------------------------------------------------------------ */
/* Building client frames.                                                  */

enum { LEN_SHORTEST, LEN_16, LEN_64 };

#define FIN 0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10

static unsigned mask_seed = 1;

/* Appends a frame: first byte b0, payload pl, the length in form, masked
 * with a key that changes from frame to frame (or not masked). */
static void put_frame_ex(dbuf_t *b, int b0, const void *pl, size_t len,
                         int form, bool masked) {
  uint8_t h[14];
  size_t n = 0;
  h[n++] = (uint8_t)b0;
  uint8_t m = masked ? 0x80 : 0;
  if (form == LEN_SHORTEST && len <= 125) {
    h[n++] = m | (uint8_t)len;
  } else if (form != LEN_64 && len <= 0xffff) {
    h[n++] = m | 126;
    h[n++] = (uint8_t)(len >> 8);
    h[n++] = (uint8_t)len;
  } else {
    h[n++] = m | 127;
    for (int k = 0; k < 8; k++)
      h[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * k));
  }
  uint8_t key[4];
  mask_seed = mask_seed * 1103515245u + 12345u;
  for (int k = 0; k < 4; k++) key[k] = (uint8_t)(mask_seed >> (8 * k));
  if (masked) {
    memcpy(h + n, key, 4);
    n += 4;
  }
  db_put(b, h, n);
  db_reserve(b, len + 1);
  const uint8_t *src = pl;
  for (size_t i = 0; i < len; i++)
    b->p[b->len + i] = masked ? src[i] ^ key[i & 3] : src[i];
  b->len += len;
}

static void put_frame(dbuf_t *b, int b0, const void *pl, size_t len) {
  put_frame_ex(b, b0, pl, len, LEN_SHORTEST, true);
}

static void put_str(dbuf_t *b, int b0, const char *s) {
  put_frame(b, b0, s, strlen(s));
}

/* A close frame's payload: code and reason. */
static void put_close(dbuf_t *b, int code, const char *reason, size_t rlen) {
  uint8_t pl[200];
  pl[0] = (uint8_t)(code >> 8);
  pl[1] = (uint8_t)code;
  memcpy(pl + 2, reason, rlen);
  put_frame(b, FIN | YMO_WS_OP_CLOSE, pl, 2 + rlen);
}

/* ------------------------------------------------------------------------ */
/* Playing a stream through the parser.                                     */

typedef struct wsrec {
  int type, code;
  uint8_t *data;
  size_t len;
  size_t at; /* Stream offset just past the event's last byte. */
} wsrec_t;

#define MAX_RECS 64

typedef struct trace {
  wsrec_t ev[MAX_RECS];
  int n;
} trace_t;

typedef struct cfg {
  size_t max;
  ymo_ws_deflate_params_t pmd;
} cfg_t;

static const cfg_t plain = {1 << 20, {false, false, false, 15}};

static void trace_free(trace_t *t) {
  for (int i = 0; i < t->n; i++) free(t->ev[i].data);
  t->n = 0;
}

/* Feeds in to a fresh parser in pieces of step bytes (0: whole; a step
 * above 1000 picks piece sizes from a small pattern instead). Stops at an
 * ERROR, having checked that it sticks; after a CLOSE feeds the rest, which
 * must make no event. */
static void feed(const cfg_t *cfg, const uint8_t *in, size_t len, size_t step,
                 trace_t *t) {
  static const size_t pattern[] = {3, 1, 17, 2, 64, 5, 1, 1, 300, 9};
  ymo_ws_parser_t p;
  ymo__ws_parser_init(&p, cfg->max, &cfg->pmd);
  t->n = 0;
  size_t off = 0;
  int piece = 0;
  bool closed = false;
  while (off < len || (len == 0 && piece == 0)) {
    size_t n = len - off;
    if (step > 1000)
      n = pattern[(piece + step) % 10];
    else if (step > 0)
      n = step;
    if (n > len - off) n = len - off;
    piece++;
    size_t pos = 0;
    for (;;) {
      size_t used = 12345;
      ymo_ws_event_t ev;
      int type = ymo__ws_parse(&p, in + off + pos, n - pos, &used, &ev);
      CHECK(used <= n - pos);
      CHECK_EQ(type, ev.type);
      CHECK(ev.data != NULL);
      pos += used;
      if (type == YMO_WS_EV_NEED_MORE) {
        CHECK_EQ(pos, n);
        break;
      }
      CHECKF(!closed, "an event after CLOSE");
      CHECK(t->n < MAX_RECS);
      wsrec_t *r = &t->ev[t->n++];
      r->type = type;
      r->code = ev.code;
      r->len = ev.len;
      r->data = malloc(ev.len + 1);
      CHECK(r->data != NULL);
      memcpy(r->data, ev.data, ev.len);
      r->data[ev.len] = 0;
      r->at = off + pos;
      if (type == YMO_WS_EV_ERROR) {
        /* Sticky: the same error again, nothing consumed. */
        ymo_ws_event_t again;
        size_t used2 = 1;
        CHECK_EQ(ymo__ws_parse(&p, in, len, &used2, &again), YMO_WS_EV_ERROR);
        CHECK_EQ(again.code, ev.code);
        CHECK_EQ(used2, 0);
        ymo__ws_parser_free(&p);
        return;
      }
      if (type == YMO_WS_EV_CLOSE) closed = true;
    }
    off += n;
    if (len == 0) break;
  }
  ymo__ws_parser_free(&p);
}

static void print_trace(const char *what, const trace_t *t) {
  fprintf(stderr, "%s: %d events\n", what, t->n);
  for (int i = 0; i < t->n; i++) {
    fprintf(stderr, "  type %d code %d len %zu at %zu: ", t->ev[i].type,
            t->ev[i].code, t->ev[i].len, t->ev[i].at);
    print_escaped(stderr, t->ev[i].data, t->ev[i].len, 60);
  }
}

static bool same_trace(const trace_t *a, const trace_t *b, bool exact_at) {
  if (a->n != b->n) return false;
  for (int i = 0; i < a->n; i++) {
    const wsrec_t *x = &a->ev[i], *y = &b->ev[i];
    if (x->type != y->type || x->code != y->code || x->len != y->len ||
        memcmp(x->data, y->data, x->len) != 0)
      return false;
    /* A compressed message's error comes at the end of the piece zlib was
     * given, which depends on the split. */
    if (x->at != y->at && (exact_at || x->type != YMO_WS_EV_ERROR))
      return false;
  }
  return true;
}

/* Plays in whole, byte by byte and split two more ways; every play must
 * give the same events. Returns the whole play's. */
static void play(const cfg_t *cfg, const dbuf_t *in, trace_t *out) {
  static const size_t steps[] = {1, 7, 1001, 1004};
  feed(cfg, in->p, in->len, 0, out);
  bool exact_at = !cfg->pmd.enabled;
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    if (steps[i] == 1 && in->len > 400000) continue; /* Slow; no news. */
    trace_t t;
    feed(cfg, in->p, in->len, steps[i], &t);
    if (!same_trace(out, &t, exact_at)) {
      print_trace("whole", out);
      print_trace("split", &t);
      test_fail(__FILE__, __LINE__, "split %zu gave other events", steps[i]);
    }
    trace_free(&t);
  }
}

#define EXPECT_N(t, count)                                       \
  do {                                                           \
    if ((t)->n != (count)) {                                     \
      print_trace("got", (t));                                   \
      test_fail(__FILE__, __LINE__, "expected %d events", (count)); \
    }                                                            \
  } while (0)

static void expect_ev(const trace_t *t, int i, int type, const void *data,
                      size_t len, int line) {
  if (i >= t->n || t->ev[i].type != type || t->ev[i].len != len ||
      (len > 0 && memcmp(t->ev[i].data, data, len) != 0)) {
    print_trace("got", t);
    test_fail(__FILE__, line, "event %d: expected type %d, %zu bytes", i,
              type, len);
  }
}
#define EXPECT_EV(t, i, type, data, len) \
  expect_ev((t), (i), (type), (data), (len), __LINE__)
#define EXPECT_STR(t, i, type, s) EXPECT_EV(t, i, type, s, strlen(s))

/* The last event is an ERROR with code, at stream offset at (0: any). */
static void expect_error(const trace_t *t, int code, size_t at, int line) {
  const wsrec_t *r = t->n > 0 ? &t->ev[t->n - 1] : NULL;
  if (r == NULL || r->type != YMO_WS_EV_ERROR || r->code != code ||
      (at != 0 && r->at != at)) {
    print_trace("got", t);
    test_fail(__FILE__, line, "expected ERROR %d at %zu", code, at);
  }
}
#define EXPECT_ERROR(t, code, at) expect_error((t), (code), (at), __LINE__)

/* Plays one stream and expects only an ERROR with code, at at. */
static void expect_only_error(const cfg_t *cfg, const dbuf_t *in, int code,
                              size_t at, int line) {
  trace_t t;
  play(cfg, in, &t);
  if (t.n != 1) {
    print_trace("got", &t);
    test_fail(__FILE__, line, "expected one event");
  }
  expect_error(&t, code, at, line);
  trace_free(&t);
}
#define EXPECT_ONLY_ERROR(cfg, in, code, at) \
  expect_only_error((cfg), (in), (code), (at), __LINE__)

/* ------------------------------------------------------------------------ */
/* Handshake.                                                               */

static void hex(const uint8_t *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha1(void) {
  static const struct {
    const char *data;
    int repeat;
    const char *digest;
  } cases[] = {
      /* RFC 3174 section 7.3, TEST1 to TEST4. */
      {"abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
       "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
      {"a", 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
      {"01234567012345670123456701234567"
       "01234567012345670123456701234567",
       10, "dea356a2cddd90c7a7ecedc5ebb563934f460452"},
      /* The empty message, and lengths around the padding's block edge. */
      {"", 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ymo_sha1_t c;
    uint8_t d[20];
    char h[41];
    ymo__sha1_init(&c);
    for (int r = 0; r < cases[i].repeat; r++)
      ymo__sha1_update(&c, cases[i].data, strlen(cases[i].data));
    ymo__sha1_final(&c, d);
    hex(d, 20, h);
    CHECKF(strcmp(h, cases[i].digest) == 0, "SHA-1 case %zu: %s", i, h);
  }
  /* Any split of the input gives the one-shot digest; lengths 0..200 cross
   * the 55/56/64-byte padding edges. */
  uint8_t data[200];
  for (int i = 0; i < 200; i++) data[i] = (uint8_t)(i * 7 + 3);
  for (size_t len = 0; len <= 200; len++) {
    uint8_t one[20], split[20];
    ymo__sha1(data, len, one);
    ymo_sha1_t c;
    ymo__sha1_init(&c);
    for (size_t at = 0; at < len;) {
      size_t n = (at % 5) + 1;
      if (n > len - at) n = len - at;
      ymo__sha1_update(&c, data + at, n);
      at += n;
    }
    ymo__sha1_final(&c, split);
    CHECK(memcmp(one, split, 20) == 0);
  }
  /* 56 bytes: "abcdbcde...nopq" from above is exactly that case. */
}

static void test_accept(void) {
  /* RFC 6455 section 1.3's example (also what Python's hashlib and base64
   * make of it). */
  char out[YMO_WS_ACCEPT_LEN + 1];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
  CHECK_OK(ymo__ws_accept(key, strlen(key), out));
  CHECKF(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "accept %s", out);
  CHECK_EQ(strlen(out), YMO_WS_ACCEPT_LEN);
  const char *padded = " dGhlIHNhbXBsZSBub25jZQ==\t";
  CHECK_OK(ymo__ws_accept(padded, strlen(padded), out));
  CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
  CHECK_EQ(ymo__ws_accept("abc", 3, out), YMO_EINVAL);
}

static void test_header_checks(void) {
  static const struct {
    const char *v;
    bool conn, upgrade;
  } lists[] = {
      {"Upgrade", true, false},
      {"upgrade", true, false},
      {"UPGRADE", true, false},
      {"keep-alive, Upgrade", true, false},
      {"keep-alive ,\tupgrade ", true, false},
      {",,upgrade,,", true, false},
      {"upgrade-insecure", false, false},
      {"upgrades", false, false},
      {"up grade", false, false},
      {"keep-alive", false, false},
      {"", false, false},
      {"websocket", false, true},
      {"WebSocket", false, true},
      {"h2c, websocket", false, true},
      {" websocket ", false, true},
      {"websocket/13", false, false},
      {"websockets", false, false},
      {"web socket", false, false},
  };
  for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
    const char *v = lists[i].v;
    CHECKF(ymo__ws_check_connection(v, strlen(v)) == lists[i].conn,
           "Connection '%s'", v);
    CHECKF(ymo__ws_check_upgrade(v, strlen(v)) == lists[i].upgrade,
           "Upgrade '%s'", v);
  }
  /* The length bounds the value: a token past it is not seen. */
  CHECK(!ymo__ws_check_connection("keep-alive, upgrade", 11));

  static const struct {
    const char *v;
    bool ok;
  } versions[] = {{"13", true},  {" 13\t", true}, {"12", false},
                  {"13, 8", false}, {"013", false}, {"", false},
                  {"1 3", false}, {"8", false}},
    keys[] = {
        {"dGhlIHNhbXBsZSBub25jZQ==", true},
        {"AAAAAAAAAAAAAAAAAAAAAA==", true},
        {"/+/+/+/+/+/+/+/+/+/+/w==", true},
        {" dGhlIHNhbXBsZSBub25jZQ== ", true},
        {"dGhlIHNhbXBsZSBub25jZR==", false}, /* Stray low bits. */
        {"dGhlIHNhbXBsZSBub25jZQ=", false},
        {"dGhlIHNhbXBsZSBub25jZQ===", false},
        {"dGhlIHNhbXBsZSBub25jZQAA", false},
        {"dGhlIHNhbXBsZSBub25j=Q==", false},
        {"dGhlIHNhbXBsZSBub25jZ!==", false},
        {"dGhlIHNhbXBsZSBub25jZQ", false},
        {"dGhlIHNhbXBsZSBub25jZSB4eHh4", false}, /* 21 bytes. */
        {"", false},
    };
  for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
    CHECKF(ymo__ws_check_version(versions[i].v, strlen(versions[i].v)) ==
               versions[i].ok,
           "version '%s'", versions[i].v);
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
    CHECKF(ymo__ws_check_key(keys[i].v, strlen(keys[i].v)) == keys[i].ok,
           "key '%s'", keys[i].v);
}

static void test_negotiation(void) {
  static const struct {
    const char *offer;
    unsigned flags;
    const char *resp; /* NULL: declined. */
    bool snct, cnct;
    int bits;
  } cases[] = {
      {"permessage-deflate", 0, "permessage-deflate", false, false, 15},
      {"PerMessage-Deflate", 0, "permessage-deflate", false, false, 15},
      /* What browsers send. */
      {"permessage-deflate; client_max_window_bits", 0, "permessage-deflate",
       false, false, 15},
      {"permessage-deflate; client_max_window_bits=10", 0,
       "permessage-deflate", false, false, 15},
      {"permessage-deflate;server_no_context_takeover", 0,
       "permessage-deflate; server_no_context_takeover", true, false, 15},
      {"permessage-deflate; client_no_context_takeover", 0,
       "permessage-deflate; client_no_context_takeover", false, true, 15},
      {"permessage-deflate; server_max_window_bits=10", 0,
       "permessage-deflate; server_max_window_bits=10", false, false, 10},
      {"permessage-deflate; server_max_window_bits=\"12\"", 0,
       "permessage-deflate; server_max_window_bits=12", false, false, 12},
      /* A quoted-pair unescapes to its character. */
      {"permessage-deflate; server_max_window_bits=\"1\\3\"", 0,
       "permessage-deflate; server_max_window_bits=13", false, false, 13},
      {"permessage-deflate; server_max_window_bits=\"1\\", 0, NULL, false,
       false, 0},
      {"permessage-deflate; server_max_window_bits=\"\"", 0, NULL, false,
       false, 0},
      {"permessage-deflate ; server_max_window_bits = 9 ; "
       "client_no_context_takeover ; server_no_context_takeover",
       0,
       "permessage-deflate; server_no_context_takeover; "
       "client_no_context_takeover; server_max_window_bits=9",
       true, true, 9},
      /* The server's own wish. */
      {"permessage-deflate", YMO_WS_DEFLATE_NO_CONTEXT,
       "permessage-deflate; server_no_context_takeover; "
       "client_no_context_takeover",
       true, true, 15},
      /* Declined offers, and fallbacks after them. */
      {"permessage-deflate; server_max_window_bits=8", 0, NULL, false, false,
       0},
      {"permessage-deflate; server_max_window_bits=8, permessage-deflate", 0,
       "permessage-deflate", false, false, 15},
      {"permessage-deflate; server_max_window_bits", 0, NULL, false, false,
       0},
      {"permessage-deflate; server_max_window_bits=16", 0, NULL, false, false,
       0},
      {"permessage-deflate; server_max_window_bits=010", 0, NULL, false,
       false, 0},
      {"permessage-deflate; server_max_window_bits=7", 0, NULL, false, false,
       0},
      {"permessage-deflate; client_max_window_bits=8", 0,
       "permessage-deflate", false, false, 15},
      {"permessage-deflate; client_max_window_bits=16", 0, NULL, false, false,
       0},
      {"permessage-deflate; client_max_window_bits=\"1 0\"", 0, NULL, false,
       false, 0},
      {"permessage-deflate; server_no_context_takeover; "
       "server_no_context_takeover",
       0, NULL, false, false, 0},
      {"permessage-deflate; client_max_window_bits; client_max_window_bits",
       0, NULL, false, false, 0},
      {"permessage-deflate; server_no_context_takeover=1", 0, NULL, false,
       false, 0},
      {"permessage-deflate; unknown", 0, NULL, false, false, 0},
      {"permessage-deflate; unknown, permessage-deflate; "
       "client_no_context_takeover",
       0, "permessage-deflate; client_no_context_takeover", false, true, 15},
      {"permessage-deflate; server_max_window_bits=10; unknown=\"x\", "
       "permessage-deflate; server_max_window_bits=11",
       0, "permessage-deflate; server_max_window_bits=11", false, false, 11},
      /* Other extensions are skipped, quoted commas and all. */
      {"x-webkit-deflate-frame, permessage-deflate", 0, "permessage-deflate",
       false, false, 15},
      {"foo; a=\"x, y;z\"; b, permessage-deflate", 0, "permessage-deflate",
       false, false, 15},
      {" , ,permessage-deflate", 0, "permessage-deflate", false, false, 15},
      {"foo", 0, NULL, false, false, 0},
      {"", 0, NULL, false, false, 0},
      {"permessage-deflate-x", 0, NULL, false, false, 0},
      /* Unreadable syntax stops the reading. */
      {"foo; a=\"unterminated, permessage-deflate", 0, NULL, false, false, 0},
      {"foo bar, permessage-deflate", 0, NULL, false, false, 0},
      {"permessage-deflate;", 0, NULL, false, false, 0},
      {"permessage-deflate; =1", 0, NULL, false, false, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ymo_ws_deflate_params_t pmd;
    char resp[YMO_WS_EXTENSIONS_MAX];
    memset(resp, 'x', sizeof(resp));
    const char *o = cases[i].offer;
    bool ok = ymo__ws_negotiate_deflate(o, strlen(o), cases[i].flags, &pmd,
                                        resp);
    CHECKF(ok == (cases[i].resp != NULL), "offer '%s': %s", o,
           ok ? "accepted" : "declined");
    CHECK_EQ(pmd.enabled, ok);
    if (!ok) {
      CHECK(resp[0] == '\0');
      continue;
    }
    CHECKF(strcmp(resp, cases[i].resp) == 0, "offer '%s': response '%s'", o,
           resp);
    CHECK_EQ(pmd.server_no_context_takeover, cases[i].snct);
    CHECK_EQ(pmd.client_no_context_takeover, cases[i].cnct);
    CHECK_EQ(pmd.server_max_window_bits, cases[i].bits);
  }
  /* The longest response fits, NUL and all. */
  const char *all =
      "permessage-deflate; server_max_window_bits=15; "
      "server_no_context_takeover; client_no_context_takeover; "
      "client_max_window_bits=15";
  ymo_ws_deflate_params_t pmd;
  char resp[YMO_WS_EXTENSIONS_MAX];
  CHECK(ymo__ws_negotiate_deflate(all, strlen(all), YMO_WS_DEFLATE_NO_CONTEXT,
                                  &pmd, resp));
  CHECK(strlen(resp) < sizeof(resp) - 1);
}

/* ------------------------------------------------------------------------ */
/* UTF-8 and close codes.                                                   */

static void test_utf8(void) {
  static const struct {
    const char *s;
    size_t len;
    size_t bad; /* Offset of the first bad byte; len: none. */
    bool complete;
  } cases[] = {
#define U(lit, bad, complete) {lit, sizeof(lit) - 1, bad, complete}
      U("", 0, true),
      U("hello, world", 12, true),
      U("\x7f", 1, true),
      U("\xc2\x80", 2, true),             /* U+0080 */
      U("\xdf\xbf", 2, true),             /* U+07FF */
      U("\xe0\xa0\x80", 3, true),         /* U+0800 */
      U("\xed\x9f\xbf", 3, true),         /* U+D7FF */
      U("\xee\x80\x80", 3, true),         /* U+E000 */
      U("\xef\xbf\xbf", 3, true),         /* U+FFFF */
      U("\xf0\x90\x80\x80", 4, true),     /* U+10000 */
      U("\xf4\x8f\xbf\xbf", 4, true),     /* U+10FFFF */
      U("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, true),
      U("\xe2\x82", 2, false),            /* Cut short: not yet wrong. */
      U("\xf0\x9f\x98", 3, false),
      U("\x80", 0, false),                /* A lone continuation byte. */
      U("a\xbf", 1, false),
      U("\xc0\xaf", 0, false),            /* Overlong, C0 and C1. */
      U("\xc1\xbf", 0, false),
      U("\xe0\x9f\xbf", 1, false),        /* Overlong 3-byte. */
      U("\xf0\x8f\xbf\xbf", 1, false),    /* Overlong 4-byte. */
      U("\xed\xa0\x80", 1, false),        /* U+D800 */
      U("\xed\xbf\xbf", 1, false),        /* U+DFFF */
      U("\xf4\x90\x80\x80", 1, false),    /* U+110000 */
      U("\xf5\x80\x80\x80", 0, false),
      U("\xff", 0, false),
      U("\xfe", 0, false),
      U("\xc2\x41", 1, false),            /* A lead byte, then ASCII. */
      U("\xe2\x82\xc2", 2, false),
      U("abcdefgh\xc2", 9, false),        /* Past the 8-byte fast path. */
      U("abcdefghijklmnopq\xed\xa0", 18, false),
#undef U
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const uint8_t *p = (const uint8_t *)cases[i].s;
    size_t len = cases[i].len;
    ymo_ws_utf8_t u;
    ymo__ws_utf8_init(&u);
    size_t bad = ymo__ws_utf8_feed(&u, p, len);
    CHECKF(bad == cases[i].bad, "case %zu: bad at %zu", i, bad);
    if (bad == len)
      CHECKF(ymo__ws_utf8_complete(&u) == cases[i].complete, "case %zu", i);
    CHECK_EQ(ymo__ws_utf8_valid(p, len), bad == len && cases[i].complete);
    /* Byte by byte: the same point. */
    ymo__ws_utf8_init(&u);
    size_t at = 0;
    while (at < len && ymo__ws_utf8_feed(&u, p + at, 1) == 1) at++;
    CHECKF(at == cases[i].bad, "case %zu byte by byte: %zu", i, at);
  }
  /* Every code point round trips, and every surrogate fails. */
  for (uint32_t cp = 0; cp <= 0x10ffff; cp += (cp < 0x20000 ? 1 : 97)) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
      b[0] = (uint8_t)cp;
      n = 1;
    } else if (cp < 0x800) {
      b[0] = (uint8_t)(0xc0 | cp >> 6);
      b[1] = (uint8_t)(0x80 | (cp & 63));
      n = 2;
    } else if (cp < 0x10000) {
      b[0] = (uint8_t)(0xe0 | cp >> 12);
      b[1] = (uint8_t)(0x80 | ((cp >> 6) & 63));
      b[2] = (uint8_t)(0x80 | (cp & 63));
      n = 3;
    } else {
      b[0] = (uint8_t)(0xf0 | cp >> 18);
      b[1] = (uint8_t)(0x80 | ((cp >> 12) & 63));
      b[2] = (uint8_t)(0x80 | ((cp >> 6) & 63));
      b[3] = (uint8_t)(0x80 | (cp & 63));
      n = 4;
    }
    bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
    CHECKF(ymo__ws_utf8_valid(b, n) == !surrogate, "U+%04X", (unsigned)cp);
  }
}

static void test_close_codes(void) {
  for (int code = 0; code < 70000; code++) {
    bool ok = (code >= 1000 && code <= 1003) ||
              (code >= 1007 && code <= 1014) ||
              (code >= 3000 && code <= 4999);
    CHECKF(ymo__ws_close_code_valid(code) == ok, "code %d", code);
  }
  CHECK(!ymo__ws_close_code_valid(-1));
}

/* ------------------------------------------------------------------------ */
/* Frames.                                                                  */

static void test_lengths(void) {
  /* Every length form, shortest and not, for a text and a binary message. */
  static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
  static const int forms[] = {LEN_SHORTEST, LEN_16, LEN_64};
  for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
    uint8_t *pl = malloc(sizes[s] + 1);
    CHECK(pl != NULL);
    for (size_t i = 0; i < sizes[s]; i++) pl[i] = (uint8_t)('a' + i % 26);
    for (size_t f = 0; f < 3; f++) {
      if (forms[f] == LEN_16 && sizes[s] > 0xffff) continue;
      dbuf_t in = {0};
      put_frame_ex(&in, FIN | YMO_WS_OP_TEXT, pl, sizes[s], forms[f], true);
      put_frame_ex(&in, FIN | YMO_WS_OP_BINARY, pl, sizes[s], forms[f], true);
      trace_t t;
      play(&plain, &in, &t);
      EXPECT_N(&t, 2);
      EXPECT_EV(&t, 0, YMO_WS_EV_TEXT, pl, sizes[s]);
      EXPECT_EV(&t, 1, YMO_WS_EV_BINARY, pl, sizes[s]);
      size_t header = forms[f] == LEN_64 || sizes[s] > 0xffff ? 14
                      : forms[f] == LEN_16 || sizes[s] > 125  ? 8
                                                              : 6;
      CHECK_EQ(t.ev[0].at, header + sizes[s]);
      CHECK_EQ(t.ev[1].at, in.len);
      trace_free(&t);
      db_free(&in);
    }
    free(pl);
  }

  /* A 64-bit length with its top bit set: 1002 at the last length byte. */
  dbuf_t in = {0};
  uint8_t bad64[] = {FIN | YMO_WS_OP_BINARY, 0x80 | 127, 0x80, 0, 0, 0, 0,
                     0, 0, 1, 1, 2, 3, 4};
  db_put(&in, bad64, sizeof(bad64));
  EXPECT_ONLY_ERROR(&plain, &in, 1002, 10);
  /* Top bit clear but larger than any limit: 1009 at the same byte. */
  in.p[2] = 0x7f;
  EXPECT_ONLY_ERROR(&plain, &in, 1009, 10);
  db_free(&in);

  /* An unmasked client frame: 1002 at the second byte. */
  put_frame_ex(&in, FIN | YMO_WS_OP_TEXT, "hi", 2, LEN_SHORTEST, false);
  EXPECT_ONLY_ERROR(&plain, &in, 1002, 2);
  db_free(&in);
  put_frame_ex(&in, FIN | YMO_WS_OP_PING, "", 0, LEN_SHORTEST, false);
  EXPECT_ONLY_ERROR(&plain, &in, 1002, 2);
  db_free(&in);
}

static void test_header_bits(void) {
  cfg_t deflate = plain;
  deflate.pmd.enabled = true;
  dbuf_t in = {0};
  /* RSV bits. */
  static const struct {
    int b0;
    bool with_deflate;
    int code; /* 0: accepted. */
  } cases[] = {
      {FIN | RSV1 | YMO_WS_OP_TEXT, false, 1002},
      {FIN | RSV2 | YMO_WS_OP_TEXT, false, 1002},
      {FIN | RSV3 | YMO_WS_OP_TEXT, false, 1002},
      {FIN | RSV2 | YMO_WS_OP_TEXT, true, 1002},
      {FIN | RSV3 | YMO_WS_OP_BINARY, true, 1002},
      {FIN | RSV1 | RSV2 | RSV3 | YMO_WS_OP_BINARY, true, 1002},
      {FIN | RSV1 | YMO_WS_OP_PING, true, 1002},
      {FIN | RSV1 | YMO_WS_OP_PONG, true, 1002},
      {FIN | RSV1 | YMO_WS_OP_CLOSE, true, 1002},
      {FIN | RSV2 | YMO_WS_OP_PING, false, 1002},
      /* Reserved opcodes. */
      {FIN | 0x3, false, 1002},
      {FIN | 0x4, false, 1002},
      {FIN | 0x5, false, 1002},
      {FIN | 0x6, false, 1002},
      {FIN | 0x7, false, 1002},
      {FIN | 0xb, false, 1002},
      {FIN | 0xc, false, 1002},
      {FIN | 0xd, false, 1002},
      {FIN | 0xe, false, 1002},
      {FIN | 0xf, false, 1002},
      {0x3, false, 1002},
      /* Control frames must not be fragmented. */
      {YMO_WS_OP_PING, false, 1002},
      {YMO_WS_OP_PONG, false, 1002},
      {YMO_WS_OP_CLOSE, false, 1002},
      /* A continuation with nothing to continue. */
      {FIN | YMO_WS_OP_CONTINUATION, false, 1002},
      {YMO_WS_OP_CONTINUATION, false, 1002},
      /* Accepted. */
      {FIN | YMO_WS_OP_PING, false, 0},
      {FIN | YMO_WS_OP_BINARY, false, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    db_clear(&in);
    put_frame(&in, cases[i].b0, "abc", 3);
    trace_t t;
    play(cases[i].with_deflate ? &deflate : &plain, &in, &t);
    if (cases[i].code != 0) {
      EXPECT_N(&t, 1);
      EXPECT_ERROR(&t, cases[i].code, 1); /* At the first byte. */
    } else {
      EXPECT_N(&t, 1);
      CHECK(t.ev[0].type != YMO_WS_EV_ERROR);
    }
    trace_free(&t);
  }

  /* RSV1 on a continuation, with deflate negotiated: 1002 at that frame's
   * first byte. */
  db_clear(&in);
  put_frame(&in, RSV1 | YMO_WS_OP_BINARY, "\x02\x00", 2);
  size_t second = in.len;
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_CONTINUATION, "\x00", 1);
  EXPECT_ONLY_ERROR(&deflate, &in, 1002, second + 1);

  /* Control payloads: 125 is fine, 126 (in any form) is 1002 at byte 2. */
  uint8_t big[126];
  memset(big, 'p', sizeof(big));
  db_clear(&in);
  put_frame(&in, FIN | YMO_WS_OP_PING, big, 125);
  put_frame(&in, FIN | YMO_WS_OP_PONG, big, 125);
  trace_t t;
  play(&plain, &in, &t);
  EXPECT_N(&t, 2);
  EXPECT_EV(&t, 0, YMO_WS_EV_PING, big, 125);
  EXPECT_EV(&t, 1, YMO_WS_EV_PONG, big, 125);
  trace_free(&t);
  db_clear(&in);
  put_frame(&in, FIN | YMO_WS_OP_PING, big, 126);
  EXPECT_ONLY_ERROR(&plain, &in, 1002, 2);
  db_clear(&in);
  put_frame_ex(&in, FIN | YMO_WS_OP_PONG, big, 5, LEN_16, true);
  EXPECT_ONLY_ERROR(&plain, &in, 1002, 2);
  db_clear(&in);
  put_frame_ex(&in, FIN | YMO_WS_OP_CLOSE, big, 5, LEN_64, true);
  EXPECT_ONLY_ERROR(&plain, &in, 1002, 2);

  /* Empty control frames. */
  db_clear(&in);
  put_frame(&in, FIN | YMO_WS_OP_PING, "", 0);
  put_frame(&in, FIN | YMO_WS_OP_PONG, "", 0);
  play(&plain, &in, &t);
  EXPECT_N(&t, 2);
  EXPECT_EV(&t, 0, YMO_WS_EV_PING, "", 0);
  EXPECT_EV(&t, 1, YMO_WS_EV_PONG, "", 0);
  CHECK_EQ(t.ev[0].at, 6);
  trace_free(&t);
  db_free(&in);
}

static void test_fragments(void) {
  dbuf_t in = {0};
  trace_t t;
  /* Text in three fragments, with a ping, a pong and an empty continuation
   * between them: the control frames come out at once, the message whole
   * at its end. */
  put_str(&in, YMO_WS_OP_TEXT, "Hel");
  put_str(&in, FIN | YMO_WS_OP_PING, "p1");
  put_str(&in, YMO_WS_OP_CONTINUATION, "lo, ");
  put_str(&in, FIN | YMO_WS_OP_PONG, "p2");
  put_frame(&in, YMO_WS_OP_CONTINUATION, "", 0);
  put_str(&in, FIN | YMO_WS_OP_PING, "");
  put_str(&in, FIN | YMO_WS_OP_CONTINUATION, "world");
  put_str(&in, FIN | YMO_WS_OP_BINARY, "next");
  play(&plain, &in, &t);
  EXPECT_N(&t, 5);
  EXPECT_STR(&t, 0, YMO_WS_EV_PING, "p1");
  EXPECT_STR(&t, 1, YMO_WS_EV_PONG, "p2");
  EXPECT_STR(&t, 2, YMO_WS_EV_PING, "");
  EXPECT_STR(&t, 3, YMO_WS_EV_TEXT, "Hello, world");
  EXPECT_STR(&t, 4, YMO_WS_EV_BINARY, "next");
  trace_free(&t);

  /* A new data frame inside a fragmented message: 1002 at its first byte. */
  db_clear(&in);
  put_str(&in, YMO_WS_OP_BINARY, "abc");
  size_t at = in.len;
  put_str(&in, FIN | YMO_WS_OP_TEXT, "def");
  EXPECT_ONLY_ERROR(&plain, &in, 1002, at + 1);
  db_clear(&in);
  put_str(&in, YMO_WS_OP_TEXT, "abc");
  put_str(&in, FIN | YMO_WS_OP_PING, "x");
  at = in.len;
  put_str(&in, YMO_WS_OP_BINARY, "def");
  play(&plain, &in, &t);
  EXPECT_N(&t, 2);
  EXPECT_STR(&t, 0, YMO_WS_EV_PING, "x");
  EXPECT_ERROR(&t, 1002, at + 1);
  trace_free(&t);

  /* A continuation after a finished message. */
  db_clear(&in);
  put_str(&in, FIN | YMO_WS_OP_TEXT, "one");
  at = in.len;
  put_str(&in, FIN | YMO_WS_OP_CONTINUATION, "two");
  play(&plain, &in, &t);
  EXPECT_N(&t, 2);
  EXPECT_STR(&t, 0, YMO_WS_EV_TEXT, "one");
  EXPECT_ERROR(&t, 1002, at + 1);
  trace_free(&t);

  /* A close between fragments ends the stream; later bytes are ignored. */
  db_clear(&in);
  put_str(&in, YMO_WS_OP_TEXT, "abc");
  put_close(&in, 1000, "bye", 3);
  put_str(&in, FIN | YMO_WS_OP_CONTINUATION, "def");
  db_puts(&in, "\xff\xff garbage");
  play(&plain, &in, &t);
  EXPECT_N(&t, 1);
  EXPECT_STR(&t, 0, YMO_WS_EV_CLOSE, "bye");
  CHECK_EQ(t.ev[0].code, 1000);
  trace_free(&t);

  /* Many messages back to back, the parser's buffer reused. */
  db_clear(&in);
  for (int i = 0; i < 40; i++) {
    char msg[32];
    snprintf(msg, sizeof(msg), "message %d", i);
    put_str(&in, FIN | (i % 2 ? YMO_WS_OP_BINARY : YMO_WS_OP_TEXT), msg);
  }
  play(&plain, &in, &t);
  EXPECT_N(&t, 40);
  for (int i = 0; i < 40; i++) {
    char msg[32];
    snprintf(msg, sizeof(msg), "message %d", i);
    EXPECT_STR(&t, i, i % 2 ? YMO_WS_EV_BINARY : YMO_WS_EV_TEXT, msg);
  }
  trace_free(&t);
  db_free(&in);
}

static void test_limit(void) {
  cfg_t small = plain;
  small.max = 10;
  dbuf_t in = {0};
  trace_t t;
  /* Exactly the limit, whole and in fragments. */
  put_str(&in, FIN | YMO_WS_OP_TEXT, "0123456789");
  put_str(&in, YMO_WS_OP_BINARY, "01234");
  put_str(&in, FIN | YMO_WS_OP_PING, "ping is not counted");
  put_str(&in, FIN | YMO_WS_OP_CONTINUATION, "56789");
  play(&small, &in, &t);
  EXPECT_N(&t, 3);
  EXPECT_STR(&t, 0, YMO_WS_EV_TEXT, "0123456789");
  EXPECT_STR(&t, 2, YMO_WS_EV_BINARY, "0123456789");
  trace_free(&t);
  /* One byte over: 1009 at the length byte, before any payload. */
  db_clear(&in);
  put_str(&in, FIN | YMO_WS_OP_TEXT, "0123456789A");
  EXPECT_ONLY_ERROR(&small, &in, 1009, 2);
  /* Over in the running total of the fragments: at the third frame. */
  db_clear(&in);
  put_str(&in, YMO_WS_OP_BINARY, "0123");
  put_str(&in, YMO_WS_OP_CONTINUATION, "4567");
  size_t at = in.len;
  put_str(&in, FIN | YMO_WS_OP_CONTINUATION, "89A");
  EXPECT_ONLY_ERROR(&small, &in, 1009, at + 2);
  /* In a 16-bit length: at its last byte. */
  db_clear(&in);
  put_frame_ex(&in, FIN | YMO_WS_OP_BINARY, "0123456789A", 11, LEN_16, true);
  EXPECT_ONLY_ERROR(&small, &in, 1009, 4);
  /* A limit of 0 allows only empty messages. */
  small.max = 0;
  db_clear(&in);
  put_frame(&in, FIN | YMO_WS_OP_TEXT, "", 0);
  put_str(&in, FIN | YMO_WS_OP_PING, "ok");
  at = in.len;
  put_str(&in, FIN | YMO_WS_OP_BINARY, "x");
  play(&small, &in, &t);
  EXPECT_N(&t, 3);
  EXPECT_STR(&t, 0, YMO_WS_EV_TEXT, "");
  EXPECT_ERROR(&t, 1009, at + 2);
  trace_free(&t);
  db_free(&in);
}

static void test_text(void) {
  dbuf_t in = {0};
  trace_t t;
  /* A character split across fragments (and a control frame between the
   * halves) is fine. */
  put_str(&in, YMO_WS_OP_TEXT, "caf\xc3");
  put_str(&in, FIN | YMO_WS_OP_PING, "");
  put_str(&in, YMO_WS_OP_CONTINUATION, "\xa9 \xf0\x9f");
  put_str(&in, FIN | YMO_WS_OP_CONTINUATION, "\x98\x80!");
  play(&plain, &in, &t);
  EXPECT_N(&t, 2);
  EXPECT_STR(&t, 1, YMO_WS_EV_TEXT, "caf\xc3\xa9 \xf0\x9f\x98\x80!");
  trace_free(&t);

  /* Fail fast: the error comes at the byte after which no text could be
   * valid (the second of a surrogate), not at the end of the frame. */
  db_clear(&in);
  put_str(&in, FIN | YMO_WS_OP_TEXT, "hello \xed\xa0\x80 world, and more");
  EXPECT_ONLY_ERROR(&plain, &in, 1007, 6 + 8);
  /* In the second fragment, at its first byte, when the first ended on an
   * unfinished character. */
  db_clear(&in);
  put_str(&in, YMO_WS_OP_TEXT, "ab\xe2\x82");
  size_t at = in.len;
  put_str(&in, FIN | YMO_WS_OP_CONTINUATION, "(no euro)");
  EXPECT_ONLY_ERROR(&plain, &in, 1007, at + 6 + 1);
  /* Overlong and beyond U+10FFFF. */
  db_clear(&in);
  put_str(&in, FIN | YMO_WS_OP_TEXT, "\xc0\x80");
  EXPECT_ONLY_ERROR(&plain, &in, 1007, 6 + 1);
  db_clear(&in);
  put_str(&in, FIN | YMO_WS_OP_TEXT, "x\xf4\x90\x80\x80");
  EXPECT_ONLY_ERROR(&plain, &in, 1007, 6 + 3);
  /* A message that ends inside a character: 1007 at its last frame's end. */
  db_clear(&in);
  put_str(&in, YMO_WS_OP_TEXT, "ab");
  put_str(&in, FIN | YMO_WS_OP_CONTINUATION, "\xf0\x9f\x98");
  EXPECT_ONLY_ERROR(&plain, &in, 1007, in.len);
  /* Binary messages are not checked. */
  db_clear(&in);
  put_str(&in, FIN | YMO_WS_OP_BINARY, "\xed\xa0\x80\xff");
  play(&plain, &in, &t);
  EXPECT_N(&t, 1);
  EXPECT_STR(&t, 0, YMO_WS_EV_BINARY, "\xed\xa0\x80\xff");
  trace_free(&t);
  /* The validator restarts with each message. */
  db_clear(&in);
  put_str(&in, FIN | YMO_WS_OP_BINARY, "\xe2\x82");
  put_str(&in, FIN | YMO_WS_OP_TEXT, "\xac");
  play(&plain, &in, &t);
  EXPECT_N(&t, 2);
  EXPECT_ERROR(&t, 1007, in.len);
  trace_free(&t);
  db_free(&in);
}

static void test_close(void) {
  dbuf_t in = {0};
  trace_t t;
  /* Empty: no status, reported as 1005. */
  put_frame(&in, FIN | YMO_WS_OP_CLOSE, "", 0);
  play(&plain, &in, &t);
  EXPECT_N(&t, 1);
  EXPECT_STR(&t, 0, YMO_WS_EV_CLOSE, "");
  CHECK_EQ(t.ev[0].code, 1005);
  trace_free(&t);
  /* One byte: 1002. */
  db_clear(&in);
  put_frame(&in, FIN | YMO_WS_OP_CLOSE, "\x03", 1);
  EXPECT_ONLY_ERROR(&plain, &in, 1002, in.len);
  /* Codes. */
  static const int good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                             1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
  static const int bad[] = {0,    999,  1004, 1005, 1006, 1015, 1016,
                            1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    db_clear(&in);
    put_close(&in, good[i], "", 0);
    play(&plain, &in, &t);
    EXPECT_N(&t, 1);
    EXPECT_STR(&t, 0, YMO_WS_EV_CLOSE, "");
    CHECK_EQ(t.ev[0].code, good[i]);
    trace_free(&t);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    db_clear(&in);
    put_close(&in, bad[i], "why", 3);
    EXPECT_ONLY_ERROR(&plain, &in, 1002, in.len);
  }
  /* A reason: valid UTF-8 up to 123 bytes; invalid is 1007. */
  char reason[124];
  memset(reason, 'r', 123);
  memcpy(reason + 119, "\xe2\x82\xac", 3);
  db_clear(&in);
  put_close(&in, 4000, reason, 123);
  play(&plain, &in, &t);
  EXPECT_N(&t, 1);
  EXPECT_EV(&t, 0, YMO_WS_EV_CLOSE, reason, 123);
  CHECK_EQ(t.ev[0].code, 4000);
  trace_free(&t);
  db_clear(&in);
  put_close(&in, 1000, "bad \xed\xa0\x80", 7);
  EXPECT_ONLY_ERROR(&plain, &in, 1007, in.len);
  db_clear(&in);
  put_close(&in, 1000, "cut \xe2\x82", 6);
  EXPECT_ONLY_ERROR(&plain, &in, 1007, in.len);
  /* Nothing after a close makes an event, not even a protocol error. */
  db_clear(&in);
  put_close(&in, 1001, "", 0);
  size_t at = in.len;
  db_puts(&in, "\x0f\x00 not a frame");
  play(&plain, &in, &t);
  EXPECT_N(&t, 1);
  CHECK_EQ(t.ev[0].at, at);
  trace_free(&t);
  db_free(&in);
}

/* ------------------------------------------------------------------------ */
/* permessage-deflate.                                                      */

/* A client's compressor, made with zlib directly (as a browser would), so
 * the parser is not only tested against ymo's own deflater. */
typedef struct client_z {
  z_stream z;
  bool no_context;
} client_z_t;

static void client_z_init(client_z_t *c, bool no_context) {
  memset(c, 0, sizeof(*c));
  c->no_context = no_context;
  CHECK(deflateInit2(&c->z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) ==
        Z_OK);
}

/* Compresses a message: sync flush, trailing 00 00 ff ff removed. */
static void client_z_message(client_z_t *c, const void *data, size_t len,
                             dbuf_t *out) {
  db_clear(out);
  db_reserve(out, deflateBound(&c->z, len) + 64);
  c->z.next_in = (Bytef *)data;
  c->z.avail_in = (uInt)len;
  for (;;) {
    db_reserve(out, 1024);
    c->z.next_out = out->p + out->len;
    c->z.avail_out = (uInt)(out->cap - out->len - 1);
    uInt before = c->z.avail_out;
    int rc = deflate(&c->z, Z_SYNC_FLUSH);
    CHECK(rc == Z_OK || rc == Z_BUF_ERROR);
    out->len += before - c->z.avail_out;
    if (c->z.avail_out > 0) break;
  }
  CHECK(out->len >= 4 && memcmp(out->p + out->len - 4, "\0\0\xff\xff", 4) == 0);
  out->len -= 4;
  if (c->no_context) CHECK(deflateReset(&c->z) == Z_OK);
}

static void client_z_end(client_z_t *c) { deflateEnd(&c->z); }

static uint8_t *sample(size_t len, unsigned seed) {
  /* Words from a small vocabulary: compressible, and text. */
  static const char *const words[] = {"socket ", "frame ", "deflate ",
                                      "message ", "ymo ", "loop ",
                                      "w\xc3\xb6rd ", "\xe2\x82\xac "};
  uint8_t *p = malloc(len + 16);
  CHECK(p != NULL);
  size_t n = 0;
  while (n < len) {
    seed = seed * 1103515245u + 12345u;
    const char *w = words[(seed >> 16) % 8];
    size_t wl = strlen(w);
    memcpy(p + n, w, wl);
    n += wl;
  }
  /* Cut back to a character boundary at or below len. */
  n = len;
  while (n > 0 && (p[n] & 0xc0) == 0x80) n--;
  memset(p + n, ' ', len - n);
  return p;
}

/* Random printable ASCII: text that only a repeat makes compressible. */
static uint8_t *noise(size_t len, unsigned seed) {
  uint8_t *p = malloc(len + 1);
  CHECK(p != NULL);
  for (size_t i = 0; i < len; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(' ' + (seed >> 16) % 95);
  }
  return p;
}

static void test_deflate_client(void) {
  for (int mode = 0; mode < 2; mode++) {
    bool no_context = mode == 1;
    cfg_t cfg = plain;
    cfg.pmd.enabled = true;
    cfg.pmd.client_no_context_takeover = no_context;
    client_z_t cz;
    client_z_init(&cz, no_context);
    dbuf_t in = {0}, z = {0};
    static const size_t sizes[] = {0, 1, 10, 300, 100000, 5000, 5000};
    uint8_t *msgs[7];
    size_t wire[7];
    for (int i = 0; i < 7; i++) {
      msgs[i] = sample(sizes[i], (unsigned)(i == 6 ? 5 : i));
      client_z_message(&cz, msgs[i], sizes[i], &z);
      wire[i] = z.len;
      put_frame(&in, FIN | RSV1 | (i % 2 ? YMO_WS_OP_BINARY : YMO_WS_OP_TEXT),
                z.p, z.len);
      /* An uncompressed message between compressed ones. */
      if (i == 3) put_str(&in, FIN | YMO_WS_OP_TEXT, "plain");
    }
    /* With context takeover the repeat of message 5 costs almost nothing. */
    if (!no_context)
      CHECKF(wire[6] < wire[5] / 4, "takeover: %zu vs %zu", wire[6], wire[5]);
    else
      CHECK_EQ(wire[6], wire[5]);
    /* Then a compressed message in three fragments with a ping between
     * them; RSV1 on the first only. */
    uint8_t *m = sample(3000, 9);
    client_z_message(&cz, m, 3000, &z);
    CHECK(z.len > 10);
    put_frame(&in, RSV1 | YMO_WS_OP_TEXT, z.p, 5);
    put_str(&in, FIN | YMO_WS_OP_PING, "between");
    put_frame(&in, YMO_WS_OP_CONTINUATION, z.p + 5, z.len - 10);
    put_frame(&in, FIN | YMO_WS_OP_CONTINUATION, z.p + z.len - 5, 5);
    trace_t t;
    play(&cfg, &in, &t);
    EXPECT_N(&t, 10);
    for (int i = 0, e = 0; i < 7; i++, e++) {
      EXPECT_EV(&t, e, i % 2 ? YMO_WS_EV_BINARY : YMO_WS_EV_TEXT, msgs[i],
                sizes[i]);
      if (i == 3) EXPECT_STR(&t, ++e, YMO_WS_EV_TEXT, "plain");
    }
    EXPECT_STR(&t, 8, YMO_WS_EV_PING, "between");
    EXPECT_EV(&t, 9, YMO_WS_EV_TEXT, m, 3000);
    trace_free(&t);
    free(m);

    for (int i = 0; i < 7; i++) free(msgs[i]);
    client_z_end(&cz);
    db_free(&in);
    db_free(&z);
  }
}

/* Inflates a raw DEFLATE stream (tail appended) with a fresh zlib. */
static bool raw_inflate(const uint8_t *in, size_t len, dbuf_t *out) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  CHECK(inflateInit2(&z, -15) == Z_OK);
  dbuf_t src = {0};
  db_put(&src, in, len);
  db_put(&src, "\0\0\xff\xff", 4);
  db_clear(out);
  z.next_in = src.p;
  z.avail_in = (uInt)src.len;
  int rc;
  do {
    db_reserve(out, 4096);
    z.next_out = out->p + out->len;
    z.avail_out = (uInt)(out->cap - out->len - 1);
    uInt before = z.avail_out;
    rc = inflate(&z, Z_SYNC_FLUSH);
    out->len += before - z.avail_out;
  } while (rc == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
  inflateEnd(&z);
  db_free(&src);
  return rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END;
}

static void test_deflater(void) {
  for (int mode = 0; mode < 4; mode++) {
    ymo_ws_deflate_params_t pmd = {true, mode & 1, false, mode & 2 ? 9 : 15};
    ymo_ws_deflater_t *d = ymo__ws_deflater_new(&pmd);
    CHECK(d != NULL);
    cfg_t cfg = plain;
    cfg.pmd = pmd;
    /* What the server sends is a stream of frames; a client parses them as
     * the server parses a client's (the parser wants masks, which the test
     * adds, so it stands in for the client). */
    dbuf_t in = {0};
    static const size_t sizes[] = {0, 20, 70000, 4000, 4000, 1};
    uint8_t *msgs[6];
    size_t out_sizes[6];
    const uint8_t *out;
    size_t out_len;
    for (int i = 0; i < 6; i++) {
      /* Level 1 finds a repeat only where nothing nearer matches. */
      msgs[i] = i >= 3 && i <= 4 ? noise(sizes[i], 3)
                                 : sample(sizes[i], (unsigned)i);
      CHECK_OK(ymo__ws_deflate(d, msgs[i], sizes[i], true, &out, &out_len));
      out_sizes[i] = out_len;
      /* The tail is gone: 00 00 ff ff never ends a message. */
      CHECK(out_len < 4 || memcmp(out + out_len - 4, "\0\0\xff\xff", 4) != 0);
      if (mode & 1) {
        /* No context takeover: each message decodes alone. */
        dbuf_t plain_out = {0};
        CHECK(raw_inflate(out, out_len, &plain_out));
        CHECK_EQ(plain_out.len, sizes[i]);
        CHECK(sizes[i] == 0 || memcmp(plain_out.p, msgs[i], sizes[i]) == 0);
        db_free(&plain_out);
      }
      put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, out, out_len);
    }
    /* Message 4 repeats message 3: with takeover and a window that holds
     * it, it is nearly free. */
    if (mode & 1)
      CHECK_EQ(out_sizes[4], out_sizes[3]);
    else if (!(mode & 2))
      CHECKF(out_sizes[4] < out_sizes[3] / 4, "%zu vs %zu", out_sizes[4],
             out_sizes[3]);
    /* A message in pieces: each piece's output is one frame. */
    uint8_t *big = sample(9000, 7);
    size_t at = 0;
    for (int piece = 0; piece < 4; piece++) {
      size_t n = piece < 3 ? 2000 : 9000 - at;
      bool fin = piece == 3;
      CHECK_OK(ymo__ws_deflate(d, big + at, n, fin, &out, &out_len));
      put_frame(&in,
                (fin ? FIN : 0) |
                    (piece == 0 ? RSV1 | YMO_WS_OP_BINARY
                                : YMO_WS_OP_CONTINUATION),
                out, out_len);
      at += n;
    }
    /* And an empty final piece after a non-empty one. */
    CHECK_OK(ymo__ws_deflate(d, big, 100, false, &out, &out_len));
    put_frame(&in, RSV1 | YMO_WS_OP_BINARY, out, out_len);
    CHECK_OK(ymo__ws_deflate(d, NULL, 0, true, &out, &out_len));
    CHECK_EQ(out_len, 1); /* See ymo__ws_deflate. */
    put_frame(&in, FIN | YMO_WS_OP_CONTINUATION, out, out_len);
    /* The stream goes on after it. */
    CHECK_OK(ymo__ws_deflate(d, msgs[3], sizes[3], true, &out, &out_len));
    put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, out, out_len);
    trace_t t;
    play(&cfg, &in, &t);
    EXPECT_N(&t, 9);
    EXPECT_EV(&t, 8, YMO_WS_EV_TEXT, msgs[3], sizes[3]);
    for (int i = 0; i < 6; i++)
      EXPECT_EV(&t, i, YMO_WS_EV_TEXT, msgs[i], sizes[i]);
    EXPECT_EV(&t, 6, YMO_WS_EV_BINARY, big, 9000);
    EXPECT_EV(&t, 7, YMO_WS_EV_BINARY, big, 100);
    trace_free(&t);
    ymo__ws_deflater_trim(d);
    CHECK_OK(ymo__ws_deflate(d, msgs[2], sizes[2], true, &out, &out_len));
    for (int i = 0; i < 6; i++) free(msgs[i]);
    free(big);
    db_free(&in);
    ymo__ws_deflater_free(d);
  }
  ymo__ws_deflater_free(NULL);
}

static void test_deflate_edges(void) {
  cfg_t cfg = plain;
  cfg.pmd.enabled = true;
  dbuf_t in = {0}, z = {0};
  trace_t t;
  /* An empty payload with RSV1, and the one-byte empty block browsers
   * send, are both empty messages. */
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, "", 0);
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_BINARY, "\x00", 1);
  put_frame(&in, RSV1 | YMO_WS_OP_BINARY, "", 0);
  put_frame(&in, FIN | YMO_WS_OP_CONTINUATION, "", 0);
  play(&cfg, &in, &t);
  EXPECT_N(&t, 3);
  EXPECT_STR(&t, 0, YMO_WS_EV_TEXT, "");
  EXPECT_STR(&t, 1, YMO_WS_EV_BINARY, "");
  EXPECT_STR(&t, 2, YMO_WS_EV_BINARY, "");
  trace_free(&t);

  /* A message that ends its stream with a final block (RFC 7692 section
   * 7.2.3.5), then one that refers back to it: with context takeover the
   * window is carried into the new stream. */
  static const char first[] = "the quick brown fox jumps over the lazy dog";
  for (int takeover = 0; takeover < 2; takeover++) {
    cfg.pmd.client_no_context_takeover = !takeover;
    z_stream c;
    memset(&c, 0, sizeof(c));
    CHECK(deflateInit2(&c, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    uint8_t out1[256], out2[256];
    c.next_in = (Bytef *)first;
    c.avail_in = sizeof(first) - 1;
    c.next_out = out1;
    c.avail_out = sizeof(out1);
    CHECK(deflate(&c, Z_FINISH) == Z_STREAM_END);
    size_t n1 = sizeof(out1) - c.avail_out;
    CHECK(deflateReset(&c) == Z_OK);
    if (takeover)
      CHECK(deflateSetDictionary(&c, (const Bytef *)first,
                                 sizeof(first) - 1) == Z_OK);
    c.next_in = (Bytef *)first;
    c.avail_in = sizeof(first) - 1;
    c.next_out = out2;
    c.avail_out = sizeof(out2);
    CHECK(deflate(&c, Z_SYNC_FLUSH) == Z_OK);
    size_t n2 = sizeof(out2) - c.avail_out - 4;
    deflateEnd(&c);
    if (takeover) CHECK(n2 < 10); /* All of it a back-reference. */
    db_clear(&in);
    put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, out1, n1);
    put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, out2, n2);
    play(&cfg, &in, &t);
    EXPECT_N(&t, 2);
    EXPECT_STR(&t, 0, YMO_WS_EV_TEXT, first);
    EXPECT_STR(&t, 1, YMO_WS_EV_TEXT, first);
    trace_free(&t);
    /* Bytes after the final block, in the same message: 1007. */
    db_clear(&in);
    db_clear(&z);
    db_put(&z, out1, n1);
    db_put(&z, "\x00", 1);
    put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, z.p, z.len);
    EXPECT_ONLY_ERROR(&cfg, &in, 1007, 0);
  }
  /* A client that agreed to client_no_context_takeover but refers back to
   * an earlier message anyway: the server's decompressor was reset, so the
   * reference points before its start: 1007. */
  {
    client_z_t keeps;
    client_z_init(&keeps, false);
    uint8_t *m = noise(2000, 8);
    db_clear(&in);
    client_z_message(&keeps, m, 2000, &z);
    put_frame(&in, FIN | RSV1 | YMO_WS_OP_BINARY, z.p, z.len);
    client_z_message(&keeps, m, 2000, &z);
    CHECK(z.len < 100);
    put_frame(&in, FIN | RSV1 | YMO_WS_OP_BINARY, z.p, z.len);
    cfg.pmd.client_no_context_takeover = true;
    play(&cfg, &in, &t);
    EXPECT_N(&t, 2);
    EXPECT_EV(&t, 0, YMO_WS_EV_BINARY, m, 2000);
    EXPECT_ERROR(&t, 1007, 0);
    trace_free(&t);
    cfg.pmd.client_no_context_takeover = false;
    play(&cfg, &in, &t);
    EXPECT_N(&t, 2);
    EXPECT_EV(&t, 1, YMO_WS_EV_BINARY, m, 2000);
    trace_free(&t);
    free(m);
    client_z_end(&keeps);
  }

  /* Not DEFLATE at all: 1007. */
  db_clear(&in);
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_BINARY, "\xff\xff\xff\xff", 4);
  EXPECT_ONLY_ERROR(&cfg, &in, 1007, 0);
  /* Compressed text that inflates to invalid UTF-8: 1007. */
  client_z_t cz;
  client_z_init(&cz, true);
  client_z_message(&cz, "ok \xed\xa0\x80", 6, &z);
  db_clear(&in);
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, z.p, z.len);
  EXPECT_ONLY_ERROR(&cfg, &in, 1007, 0);
  /* ... or ends inside a character. */
  client_z_message(&cz, "ok \xe2\x82", 5, &z);
  db_clear(&in);
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, z.p, z.len);
  EXPECT_ONLY_ERROR(&cfg, &in, 1007, in.len);
  /* The limit on inflated size: exactly the limit is fine, one more is
   * 1009; and the wire size counts too. */
  uint8_t *m = sample(1000, 3);
  cfg.max = 1000;
  client_z_message(&cz, m, 1000, &z);
  db_clear(&in);
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, z.p, z.len);
  play(&cfg, &in, &t);
  EXPECT_N(&t, 1);
  EXPECT_EV(&t, 0, YMO_WS_EV_TEXT, m, 1000);
  trace_free(&t);
  cfg.max = 999;
  EXPECT_ONLY_ERROR(&cfg, &in, 1009, 0);
  cfg.max = z.len - 1;
  EXPECT_ONLY_ERROR(&cfg, &in, 1009, 2 + (z.len > 125 ? 2 : 0));
  free(m);
  client_z_end(&cz);
  db_free(&in);
  db_free(&z);
}

/* A zip bomb: 64 MiB of zeros compress to about 64 KiB; the parser must
 * stop at the limit without inflating (or allocating) the rest. */
static void test_zip_bomb(void) {
  const size_t bomb = 64u << 20, limit = 1u << 20;
  uint8_t *zeros = calloc(1, bomb);
  CHECK(zeros != NULL);
  client_z_t cz;
  client_z_init(&cz, false);
  dbuf_t z = {0}, in = {0};
  client_z_message(&cz, zeros, bomb, &z);
  free(zeros);
  CHECKF(z.len < 128 * 1024, "bomb is %zu bytes", z.len);
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_BINARY, z.p, z.len);
  cfg_t cfg = plain;
  cfg.max = limit;
  cfg.pmd.enabled = true;
  for (int text = 0; text < 2; text++) {
    in.p[0] = FIN | RSV1 | (text ? YMO_WS_OP_TEXT : YMO_WS_OP_BINARY);
    /* Whole, and in 1 KiB reads as a socket would give them. */
    for (int split = 0; split < 2; split++) {
      ymo_ws_parser_t p;
      ymo__ws_parser_init(&p, cfg.max, &cfg.pmd);
      size_t off = 0, used;
      ymo_ws_event_t ev;
      int type = YMO_WS_EV_NEED_MORE;
      while (off < in.len && type == YMO_WS_EV_NEED_MORE) {
        size_t n = split ? 1024 : in.len;
        if (n > in.len - off) n = in.len - off;
        type = ymo__ws_parse(&p, in.p + off, n, &used, &ev);
        off += used;
        CHECK(p.cap <= limit + 1);
      }
      CHECK_EQ(type, YMO_WS_EV_ERROR);
      CHECK_EQ(ev.code, 1009);
      /* It stopped early: at most a little past the first MiB's input. */
      CHECKF(off < in.len / 8, "read %zu of %zu", off, in.len);
      ymo__ws_parser_free(&p);
    }
  }
  client_z_end(&cz);
  db_free(&z);
  db_free(&in);
}

static void test_trim(void) {
  /* A large message's buffer is given back once the next call comes; a
   * small one's is kept. */
  ymo_ws_parser_t p;
  ymo__ws_parser_init(&p, 1 << 20, NULL);
  dbuf_t in = {0};
  uint8_t *big = sample(200000, 1);
  put_frame(&in, FIN | YMO_WS_OP_BINARY, big, 200000);
  put_frame(&in, FIN | YMO_WS_OP_BINARY, "small", 5);
  size_t used;
  ymo_ws_event_t ev;
  CHECK_EQ(ymo__ws_parse(&p, in.p, in.len, &used, &ev), YMO_WS_EV_BINARY);
  CHECK_EQ(ev.len, 200000);
  CHECK(p.cap >= 200000);
  CHECK_EQ(ymo__ws_parse(&p, in.p + used, in.len - used, &used, &ev),
           YMO_WS_EV_BINARY);
  CHECK_EQ(ev.len, 5);
  CHECK(p.cap < 64 * 1024);
  size_t cap = p.cap;
  CHECK_EQ(ymo__ws_parse(&p, in.p, 0, &used, &ev), YMO_WS_EV_NEED_MORE);
  CHECK_EQ(p.cap, cap);
  ymo__ws_parser_trim(&p);
  CHECK_EQ(p.cap, 0);
  ymo__ws_parser_free(&p);

  /* With client_no_context_takeover the decompressor goes too, and comes
   * back for the next compressed message; with takeover it stays. Trim
   * inside a fragmented message keeps everything. */
  for (int no_context = 0; no_context < 2; no_context++) {
    ymo_ws_deflate_params_t pmd = {true, false, no_context, 15};
    ymo__ws_parser_init(&p, 1 << 20, &pmd);
    client_z_t cz;
    client_z_init(&cz, no_context);
    dbuf_t z = {0};
    for (int round = 0; round < 2; round++) {
      db_clear(&in);
      client_z_message(&cz, big, 1000, &z);
      put_frame(&in, FIN | RSV1 | YMO_WS_OP_BINARY, z.p, z.len);
      put_frame(&in, YMO_WS_OP_BINARY, "ab", 2);
      CHECK_EQ(ymo__ws_parse(&p, in.p, in.len, &used, &ev),
               YMO_WS_EV_BINARY);
      CHECK(ev.len == 1000 && memcmp(ev.data, big, 1000) == 0);
      CHECK(p.z != NULL);
      ymo__ws_parser_trim(&p);
      CHECK_EQ(p.cap, 0);
      CHECK_EQ(p.z == NULL, no_context);
      size_t rest = in.len - used;
      CHECK_EQ(ymo__ws_parse(&p, in.p + used, rest, &used, &ev),
               YMO_WS_EV_NEED_MORE);
      ymo__ws_parser_trim(&p); /* Inside a message: nothing happens. */
      CHECK(p.cap > 0);
      db_clear(&in);
      put_frame(&in, FIN | YMO_WS_OP_CONTINUATION, "c", 1);
      CHECK_EQ(ymo__ws_parse(&p, in.p, in.len, &used, &ev),
               YMO_WS_EV_BINARY);
      CHECK(ev.len == 3 && memcmp(ev.data, "abc", 3) == 0);
    }
    ymo__ws_parser_free(&p);
    client_z_end(&cz);
    db_free(&z);
  }
  free(big);
  db_free(&in);
}

/* ------------------------------------------------------------------------ */
/* The writer.                                                              */

static void test_writer(void) {
  uint8_t h[YMO_WS_HEADER_MAX];
  CHECK_EQ(ymo__ws_frame_header(h, YMO_WS_OP_TEXT, true, false, 0), 2);
  CHECK(h[0] == 0x81 && h[1] == 0);
  CHECK_EQ(ymo__ws_frame_header(h, YMO_WS_OP_BINARY, true, true, 125), 2);
  CHECK(h[0] == 0xc2 && h[1] == 125);
  CHECK_EQ(ymo__ws_frame_header(h, YMO_WS_OP_CONTINUATION, false, false, 126),
           4);
  CHECK(h[0] == 0x00 && h[1] == 126 && h[2] == 0 && h[3] == 126);
  CHECK_EQ(ymo__ws_frame_header(h, YMO_WS_OP_TEXT, false, true, 65535), 4);
  CHECK(h[0] == 0x41 && h[1] == 126 && h[2] == 0xff && h[3] == 0xff);
  CHECK_EQ(ymo__ws_frame_header(h, YMO_WS_OP_BINARY, true, false, 65536), 10);
  static const uint8_t l65536[] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0};
  CHECK(memcmp(h, l65536, 10) == 0);
  CHECK_EQ(ymo__ws_frame_header(h, YMO_WS_OP_BINARY, true, false,
                                0x0102030405060708ull),
           10);
  static const uint8_t lbig[] = {0x82, 127, 1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(memcmp(h, lbig, 10) == 0);

  /* Close frames. */
  uint8_t f[YMO_WS_CONTROL_FRAME_MAX];
  CHECK_EQ(ymo__ws_close_frame(f, 1000, "", 0), 4);
  CHECK(memcmp(f, "\x88\x02\x03\xe8", 4) == 0);
  CHECK_EQ(ymo__ws_close_frame(f, 0, "", 0), 2);
  CHECK(memcmp(f, "\x88\x00", 2) == 0);
  CHECK_EQ(ymo__ws_close_frame(f, 0, "x", 1), YMO_EINVAL);
  CHECK_EQ(ymo__ws_close_frame(f, 4999, "bye", 3), 7);
  CHECK(memcmp(f, "\x88\x05\x13\x87" "bye", 7) == 0);
  static const int unsendable[] = {999, 1004, 1005, 1006, 1015, 2000, 5000};
  for (size_t i = 0; i < sizeof(unsendable) / sizeof(int); i++)
    CHECK_EQ(ymo__ws_close_frame(f, unsendable[i], "", 0), YMO_EINVAL);
  CHECK_EQ(ymo__ws_close_frame(f, 1000, "\xff", 1), YMO_EINVAL);
  /* The reason is cut at 123 bytes, never inside a character. */
  char reason[200];
  memset(reason, 'a', sizeof(reason));
  CHECK_EQ(ymo__ws_close_payload(f, 1001, reason, 123), 125);
  CHECK_EQ(ymo__ws_close_payload(f, 1001, reason, 200), 125);
  memcpy(reason + 121, "\xc3\xa9", 2); /* Ends exactly at 123. */
  CHECK_EQ(ymo__ws_close_payload(f, 1001, reason, 123), 125);
  CHECK_EQ(ymo__ws_close_payload(f, 1001, reason, 150), 125);
  memset(reason, 'a', sizeof(reason));
  memcpy(reason + 122, "\xc3\xa9", 2); /* Straddles 123: dropped. */
  CHECK_EQ(ymo__ws_close_payload(f, 1001, reason, 124), 124);
  CHECK(f[2 + 121] == 'a');
  memcpy(reason + 120, "\xf0\x9f\x98\x80", 4); /* Bytes 120-123. */
  CHECK_EQ(ymo__ws_close_payload(f, 1001, reason, 124), 122);
  /* What the writer makes, the parser reads back (after masking). */
  int n = ymo__ws_close_frame(f, 3001, reason, 124);
  CHECK_EQ(n, 124);
  dbuf_t in = {0};
  put_frame(&in, f[0], f + 2, (size_t)(n - 2));
  trace_t t;
  play(&plain, &in, &t);
  EXPECT_N(&t, 1);
  EXPECT_EV(&t, 0, YMO_WS_EV_CLOSE, reason, 120);
  CHECK_EQ(t.ev[0].code, 3001);
  trace_free(&t);
  db_free(&in);

  /* Ping and pong. */
  CHECK_EQ(ymo__ws_control_frame(f, YMO_WS_OP_PING, (const uint8_t *)"hi", 2),
           4);
  CHECK(memcmp(f, "\x89\x02hi", 4) == 0);
  CHECK_EQ(ymo__ws_control_frame(f, YMO_WS_OP_PONG, NULL, 0), 2);
  CHECK(memcmp(f, "\x8a\x00", 2) == 0);
  uint8_t pl[126] = {0};
  CHECK_EQ(ymo__ws_control_frame(f, YMO_WS_OP_PONG, pl, 125), 127);
  CHECK_EQ(ymo__ws_control_frame(f, YMO_WS_OP_PONG, pl, 126), YMO_EINVAL);
  CHECK_EQ(ymo__ws_control_frame(f, YMO_WS_OP_CLOSE, pl, 2), YMO_EINVAL);
  CHECK_EQ(ymo__ws_control_frame(f, YMO_WS_OP_TEXT, pl, 2), YMO_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Allocation failures.                                                     */

static void test_enomem(void) {
#if FAULTS
  /* A stream that needs every allocation the parser makes: a message
   * buffer, its growth, the inflater, and the window carried over a final
   * block. */
  dbuf_t in = {0}, z = {0};
  client_z_t cz;
  client_z_init(&cz, false);
  uint8_t *m = sample(20000, 5);
  client_z_message(&cz, m, 20000, &z);
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, z.p, z.len);
  uint8_t *m2 = sample(40000, 6); /* Larger: the buffer grows again. */
  put_frame(&in, FIN | YMO_WS_OP_BINARY, m2, 40000);
  free(m2);
  z_stream c;
  memset(&c, 0, sizeof(c));
  CHECK(deflateInit2(&c, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  uint8_t fin[128];
  c.next_in = (Bytef *)"final";
  c.avail_in = 5;
  c.next_out = fin;
  c.avail_out = sizeof(fin);
  CHECK(deflate(&c, Z_FINISH) == Z_STREAM_END);
  put_frame(&in, FIN | RSV1 | YMO_WS_OP_TEXT, fin, sizeof(fin) - c.avail_out);
  deflateEnd(&c);
  ymo_ws_deflate_params_t pmd = {true, false, false, 15};
  int failures = 0;
  for (long k = 0;; k++) {
    ymo_ws_parser_t p;
    ymo__ws_parser_init(&p, 1 << 20, &pmd);
    int got = 0;
    bool failed = false;
    size_t off = 0, used;
    ymo_ws_event_t ev;
    fault_countdown = k;
    while (off < in.len) {
      int type = ymo__ws_parse(&p, in.p + off, in.len - off, &used, &ev);
      off += used;
      if (type == YMO_WS_EV_ERROR) {
        CHECK_EQ(ev.code, 1011);
        failed = true;
        break;
      }
      if (type != YMO_WS_EV_NEED_MORE) got++;
    }
    fault_countdown = -1;
    ymo__ws_parser_free(&p);
    if (!failed) {
      CHECK_EQ(got, 3);
      break;
    }
    failures++;
    CHECK(k < 1000);
  }
  CHECKF(failures >= 3, "only %d allocations could fail", failures);
  /* The deflater: NULL or YMO_ENOMEM, then fine once memory is back. */
  for (long k = 0;; k++) {
    fault_countdown = k;
    ymo_ws_deflater_t *d = ymo__ws_deflater_new(&pmd);
    int rc = YMO_ENOMEM;
    const uint8_t *out;
    size_t out_len;
    if (d != NULL) rc = ymo__ws_deflate(d, m, 20000, true, &out, &out_len);
    fault_countdown = -1;
    ymo__ws_deflater_free(d);
    if (rc == 0) break;
    CHECK_EQ(rc, YMO_ENOMEM);
    CHECK(k < 1000);
  }
  free(m);
  client_z_end(&cz);
  db_free(&in);
  db_free(&z);
  puts("ws_test: allocation failures injected");
#else
  puts("ws_test: allocation failures not injected under a sanitizer");
#endif
}

int main(int argc, char **argv) {
  test_deadline(120);
  const char *what = argc > 1 ? argv[1] : "all";
  bool all = strcmp(what, "all") == 0;
  bool ran = false;
  if (all || strcmp(what, "handshake") == 0) {
    test_sha1();
    test_accept();
    test_header_checks();
    test_negotiation();
    ran = true;
  }
  if (all || strcmp(what, "utf8") == 0) {
    test_utf8();
    test_close_codes();
    ran = true;
  }
  if (all || strcmp(what, "frames") == 0) {
    test_lengths();
    test_header_bits();
    test_fragments();
    test_limit();
    test_text();
    test_close();
    test_trim();
    ran = true;
  }
  if (all || strcmp(what, "deflate") == 0) {
    test_deflate_client();
    test_deflater();
    test_deflate_edges();
    test_zip_bomb();
    ran = true;
  }
  if (all || strcmp(what, "writer") == 0) {
    test_writer();
    ran = true;
  }
  if (all || strcmp(what, "enomem") == 0) {
    test_enomem();
    ran = true;
  }
  CHECKF(ran, "unknown group '%s'", what);
  printf("ws_test %s: ok\n", what);
  return 0;
}
