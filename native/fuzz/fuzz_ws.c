/* libFuzzer target for the WebSocket core (ws.c): client bytes in, events
 * out. No server, no sockets: the parser is a pure function of its input.
 *
 * The first byte of an input picks the setup:
 *
 *   bit 0     permessage-deflate negotiated
 *   bit 1     ... with client_no_context_takeover
 *   bit 2     structured: the rest is a list of frame recipes, which the
 *             harness turns into masked frames (compressing payloads with
 *             ymo's own deflater when asked), so the fuzzer reaches deep
 *             states without having to learn masking and DEFLATE; else the
 *             rest is the raw byte stream
 *   bits 3-4  the message limit: 64, 1000, 70000 or 1 MiB
 *   bits 5-7  mixed into the seed of the random splits
 *
 * A recipe is [ctl][len][payload...]: ctl's low nibble is the opcode, 0x10
 * FIN, 0x20 flips RSV1 (which is otherwise set on the first frame of a
 * compressed message), 0x40 compresses the payload, 0x80 leaves the frame
 * unmasked; len 255 takes two more bytes as a big-endian length; lengths
 * past the input are cut.
 *
 * The stream is played whole, one byte per call (up to 4 KiB), in pieces
 * whose sizes come from a generator seeded by the input, and in pieces
 * whose sizes are the input's own bytes. Checked after each play:
 *
 *  1. Every play gives the same events: type, code, length, bytes, and the
 *     stream offset each ends at (an ERROR inside a compressed message may
 *     come at the end of a different piece, so its offset is not compared).
 *  2. ERROR codes are 1002, 1007 or 1009 (1011, out of memory, never
 *     happens here); after an ERROR the parser repeats it and consumes
 *     nothing; after a CLOSE nothing more comes.
 *  3. Messages are within the limit and text is valid UTF-8 (checked by a
 *     decoder written independently here); pings and pongs carry at most
 *     125 bytes; a CLOSE has a valid code (or 1005 and no reason) and a
 *     valid UTF-8 reason of at most 123 bytes; the message buffer never
 *     exceeds the limit plus one byte.
 *
 * And for each input, independently of the setup: the input compressed by
 * ymo's deflater (in one to three pieces, with and without context
 * takeover) and framed comes back unchanged from the parser, as text when
 * it is UTF-8; the writer's close frame for it (reason cut to fit) parses
 * back to its code and reason.
 *
 * A violation aborts with a message naming the invariant; ASan and UBSan
 * reports abort too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

static void violation(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_ws: invariant violated: %s (%s)\n", what, detail);
  abort();
}
#define REQUIRE(cond, what) \
  do {                      \
    if (!(cond)) violation(what, #cond); \
  } while (0)

/* ------------------------------------------------------------------------ */
/* An independent UTF-8 check: decode each code point, then judge it. */

static bool utf8_ok(const uint8_t *p, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint32_t c = p[i], cp;
    size_t n;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (len - i <= n) return false;
    for (size_t k = 1; k <= n; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (p[i + k] & 0x3f);
    }
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

/* ------------------------------------------------------------------------ */
/* A growable byte buffer. */

typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *data, size_t len) {
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + len) cap *= 2;
    b->p = realloc(b->p, cap);
    if (b->p == NULL) abort();
    b->cap = cap;
  }
  if (len > 0) memcpy(b->p + b->len, data, len);
  b->len += len;
}

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Appends a client frame, masked with a key from *rng (or not masked). */
static void put_frame(buf_t *b, int b0, const uint8_t *pl, size_t len,
                      bool masked, bool long_form, uint64_t *rng) {
  uint8_t h[14];
  size_t n = 0;
  uint8_t m = masked ? 0x80 : 0;
  h[n++] = (uint8_t)b0;
  if (len <= 125 && !long_form) {
    h[n++] = m | (uint8_t)len;
  } else if (len <= 0xffff) {
    h[n++] = m | 126;
    h[n++] = (uint8_t)(len >> 8);
    h[n++] = (uint8_t)len;
  } else {
    h[n++] = m | 127;
    for (int k = 0; k < 8; k++)
      h[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * k));
  }
  uint8_t key[4] = {0};
  if (masked) {
    uint64_t r = rng_next(rng);
    memcpy(key, &r, 4);
    memcpy(h + n, key, 4);
    n += 4;
  }
  put(b, h, n);
  size_t at = b->len;
  put(b, pl, len);
  if (masked)
    for (size_t i = 0; i < len; i++) b->p[at + i] ^= key[i & 3];
}

/* ------------------------------------------------------------------------ */
/* Plays. */

typedef struct ev_rec {
  int type, code;
  size_t len, at;
  uint64_t hash;
} ev_rec_t;

#define MAX_EVENTS 4096

typedef struct play {
  ev_rec_t ev[MAX_EVENTS];
  size_t n;
  bool truncated; /* More events than recorded. */
} play_t;

static uint64_t fnv(const uint8_t *p, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static const size_t limits[4] = {64, 1000, 70000, 1u << 20};

/* The sizes of the pieces a play cuts the stream into. */
enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM, SPLIT_INPUT };

static void run_play(const ymo_ws_deflate_params_t *pmd, size_t limit,
                     const uint8_t *in, size_t len, int split, uint64_t seed,
                     const uint8_t *sizes, size_t n_sizes, play_t *out) {
  ymo_ws_parser_t p;
  ymo__ws_parser_init(&p, limit, pmd);
  out->n = 0;
  out->truncated = false;
  size_t off = 0, piece = 0;
  bool closed = false;
  while (off < len) {
    size_t n = len - off;
    if (split == SPLIT_BYTES) {
      n = 1;
    } else if (split == SPLIT_RANDOM) {
      uint64_t r = rng_next(&seed);
      n = 1 + (size_t)((r >> 8) % ((size_t)1 << (r % 13)));
    } else if (split == SPLIT_INPUT && n_sizes > 0) {
      n = 1 + sizes[piece % n_sizes] % 97;
    }
    if (n > len - off) n = len - off;
    piece++;
    size_t pos = 0;
    for (;;) {
      size_t used = (size_t)-1;
      ymo_ws_event_t ev;
      int type = ymo__ws_parse(&p, in + off + pos, n - pos, &used, &ev);
      REQUIRE(used <= n - pos, "consumed at most what was given");
      REQUIRE(type == ev.type && ev.data != NULL, "event filled in");
      REQUIRE(p.cap <= limit + 1, "message buffer within the limit");
      pos += used;
      if (type == YMO_WS_EV_NEED_MORE) {
        REQUIRE(pos == n, "NEED_MORE consumes everything");
        break;
      }
      REQUIRE(!closed, "no event after CLOSE");
      switch (type) {
        case YMO_WS_EV_TEXT:
          REQUIRE(utf8_ok(ev.data, ev.len), "text is UTF-8");
          /* Fall through. */
        case YMO_WS_EV_BINARY:
          REQUIRE(ev.len <= limit, "message within the limit");
          break;
        case YMO_WS_EV_PING:
        case YMO_WS_EV_PONG:
          REQUIRE(ev.len <= YMO_WS_CONTROL_MAX, "control payload <= 125");
          break;
        case YMO_WS_EV_CLOSE:
          REQUIRE(ymo__ws_close_code_valid(ev.code) ||
                      (ev.code == YMO_WS_CLOSE_NO_STATUS && ev.len == 0),
                  "close code valid");
          REQUIRE(ev.len <= YMO_WS_CONTROL_MAX - 2 && utf8_ok(ev.data, ev.len),
                  "close reason UTF-8, <= 123 bytes");
          closed = true;
          break;
        case YMO_WS_EV_ERROR:
          REQUIRE(ev.code == YMO_WS_CLOSE_PROTOCOL ||
                      ev.code == YMO_WS_CLOSE_INVALID_DATA ||
                      ev.code == YMO_WS_CLOSE_TOO_BIG,
                  "error code 1002, 1007 or 1009");
          break;
        default:
          violation("known event type", "type");
      }
      if (out->n < MAX_EVENTS) {
        ev_rec_t *r = &out->ev[out->n++];
        r->type = type;
        r->code = ev.code;
        r->len = ev.len;
        r->at = off + pos;
        r->hash = fnv(ev.data, ev.len);
      } else {
        out->truncated = true;
      }
      if (type == YMO_WS_EV_ERROR) {
        ymo_ws_event_t again;
        size_t used2 = 1;
        int t2 = ymo__ws_parse(&p, in, len, &used2, &again);
        REQUIRE(t2 == YMO_WS_EV_ERROR && again.code == ev.code && used2 == 0,
                "ERROR sticks");
        ymo__ws_parser_free(&p);
        return;
      }
    }
    off += n;
  }
  ymo__ws_parser_free(&p);
}

static void compare(const play_t *a, const play_t *b, bool exact_error_at,
                    const char *which) {
  if (a->truncated || b->truncated) return;
  if (a->n != b->n) violation("same events for every split (count)", which);
  for (size_t i = 0; i < a->n; i++) {
    const ev_rec_t *x = &a->ev[i], *y = &b->ev[i];
    if (x->type != y->type || x->code != y->code || x->len != y->len ||
        x->hash != y->hash)
      violation("same events for every split", which);
    if (x->at != y->at && (exact_error_at || x->type != YMO_WS_EV_ERROR))
      violation("same event offsets for every split", which);
  }
}

/* ------------------------------------------------------------------------ */
/* Structured inputs. */

static void build_frames(const uint8_t *d, size_t len,
                         const ymo_ws_deflate_params_t *pmd, uint64_t seed,
                         buf_t *out) {
  ymo_ws_deflater_t *def = NULL;
  if (pmd->enabled) {
    def = ymo__ws_deflater_new(pmd);
    if (def == NULL) abort();
  }
  size_t i = 0;
  int frames = 0;
  while (i + 2 <= len && frames++ < 512) {
    uint8_t ctl = d[i], l = d[i + 1];
    i += 2;
    size_t n = l;
    if (l == 255 && i + 2 <= len) {
      n = (size_t)d[i] << 8 | d[i + 1];
      i += 2;
    }
    if (n > len - i) n = len - i;
    const uint8_t *pl = d + i;
    i += n;
    int op = ctl & 0x0f;
    bool fin = (ctl & 0x10) != 0;
    bool compress = (ctl & 0x40) != 0 && def != NULL;
    bool rsv1 = compress && (op == 1 || op == 2);
    if (ctl & 0x20) rsv1 = !rsv1;
    const uint8_t *payload = pl;
    size_t plen = n;
    if (compress) {
      if (ymo__ws_deflate(def, pl, n, fin, &payload, &plen) != 0) abort();
    }
    put_frame(out, (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | op, payload, plen,
              !(ctl & 0x80), n % 31 == 7, &seed);
  }
  ymo__ws_deflater_free(def);
}

/* ------------------------------------------------------------------------ */
/* Round trips through the deflater and the writer. */

static void round_trip(const uint8_t *d, size_t len, uint64_t seed) {
  bool text = utf8_ok(d, len);
  for (int mode = 0; mode < 2; mode++) {
    ymo_ws_deflate_params_t pmd = {true, mode == 1, mode == 1,
                                   mode == 1 ? 9 : 15};
    ymo_ws_deflater_t *def = ymo__ws_deflater_new(&pmd);
    if (def == NULL) abort();
    buf_t wire = {0};
    /* The message twice (the second may refer to the first), each in up to
     * three pieces. */
    for (int copy = 0; copy < 2; copy++) {
      size_t cut1 = len > 0 ? (size_t)(rng_next(&seed) % (len + 1)) : 0;
      size_t cut2 = cut1 + (len > cut1 ? (size_t)(rng_next(&seed) %
                                                  (len - cut1 + 1))
                                       : 0);
      size_t cuts[4] = {0, cut1, cut2, len};
      for (int k = 0; k < 3; k++) {
        const uint8_t *out;
        size_t out_len;
        bool fin = k == 2;
        if (ymo__ws_deflate(def, d + cuts[k], cuts[k + 1] - cuts[k], fin, &out,
                            &out_len) != 0)
          violation("deflate succeeds", "rc");
        int b0 = (fin ? 0x80 : 0) |
                 (k == 0 ? 0x40 | (text ? 1 : 2) : 0);
        put_frame(&wire, b0, out, out_len, true, false, &seed);
      }
    }
    ymo__ws_deflater_free(def);
    ymo_ws_parser_t p;
    /* Room for what DEFLATE adds to incompressible data (the wire size
     * counts against the limit too): with a 512-byte window zlib cannot
     * fall back to stored blocks, and Huffman codes of up to 9 bits per
     * byte make up to an eighth more. */
    ymo__ws_parser_init(&p, len + len / 8 + 256, &pmd);
    size_t off = 0;
    int got = 0;
    while (off < wire.len) {
      size_t used;
      ymo_ws_event_t ev;
      int type = ymo__ws_parse(&p, wire.p + off, wire.len - off, &used, &ev);
      off += used;
      if (type == YMO_WS_EV_NEED_MORE) break;
      if (type != (text ? YMO_WS_EV_TEXT : YMO_WS_EV_BINARY))
        fprintf(stderr, "fuzz_ws: round trip (mode %d) got event %d, code %d\n",
                mode, type, ev.code);
      REQUIRE(type == (text ? YMO_WS_EV_TEXT : YMO_WS_EV_BINARY),
              "round trip: the message comes back");
      REQUIRE(ev.len == len && (len == 0 || memcmp(ev.data, d, len) == 0),
              "round trip: the same bytes");
      got++;
    }
    REQUIRE(got == 2, "round trip: both messages");
    ymo__ws_parser_free(&p);
    free(wire.p);
  }

  /* The close frame: code from the input, reason the input cut to fit. */
  if (text) {
    int code = 3000 + (int)(seed % 2000);
    uint8_t f[YMO_WS_CONTROL_FRAME_MAX];
    int n = ymo__ws_close_frame(f, code, (const char *)d, len);
    REQUIRE(n >= 4 && n <= YMO_WS_CONTROL_FRAME_MAX, "close frame built");
    size_t reason = (size_t)n - 4;
    REQUIRE(len <= 123 ? reason == len : reason >= 120 && reason <= 123,
            "reason cut only as far as needed, at a character boundary");
    buf_t wire = {0};
    put_frame(&wire, f[0], f + 2, (size_t)n - 2, true, false, &seed);
    ymo_ws_parser_t p;
    ymo__ws_parser_init(&p, 0, NULL);
    size_t used;
    ymo_ws_event_t ev;
    int type = ymo__ws_parse(&p, wire.p, wire.len, &used, &ev);
    REQUIRE(type == YMO_WS_EV_CLOSE && ev.code == code &&
                ev.len == reason && memcmp(ev.data, d, reason) == 0,
            "close frame parses back");
    ymo__ws_parser_free(&p);
    free(wire.p);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t cfg = data[0];
  const uint8_t *d = data + 1;
  size_t len = size - 1;
  ymo_ws_deflate_params_t pmd = {(cfg & 1) != 0, false, (cfg & 2) != 0, 15};
  size_t limit = limits[(cfg >> 3) & 3];
  uint64_t seed = fnv(data, size) ^ (uint64_t)(cfg >> 5);

  buf_t built = {0};
  const uint8_t *stream = d;
  size_t stream_len = len;
  if (cfg & 4) {
    build_frames(d, len, &pmd, seed, &built);
    stream = built.p;
    stream_len = built.len;
  }

  static play_t whole, other;
  bool exact = !pmd.enabled;
  run_play(&pmd, limit, stream, stream_len, SPLIT_WHOLE, 0, NULL, 0, &whole);
  if (stream_len <= 4096) {
    run_play(&pmd, limit, stream, stream_len, SPLIT_BYTES, 0, NULL, 0, &other);
    compare(&whole, &other, exact, "one byte per call");
  }
  run_play(&pmd, limit, stream, stream_len, SPLIT_RANDOM, seed, NULL, 0,
           &other);
  compare(&whole, &other, exact, "random pieces");
  run_play(&pmd, limit, stream, stream_len, SPLIT_INPUT, 0, d, len, &other);
  compare(&whole, &other, exact, "pieces sized by the input");
  free(built.p);

  if (len <= 65536) round_trip(d, len, seed);
  return 0;
}
