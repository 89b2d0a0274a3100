/* Layer 3: automatic response compression (see compress.h): Accept-Encoding
 * negotiation, the per-response plan and header rewrite, and the coders:
 * libdeflate for whole gzip and deflate bodies, zlib for streamed ones (it
 * can flush mid-stream; libdeflate cannot), brotli for br. Runs on whichever
 * thread builds the response. */
#include <brotli/encode.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "compress.h"

/* Level 1 and brotli quality 5, window 2^20: the fast end, as for
 * on-the-fly compression elsewhere (Deno uses gzip level 1), since this
 * runs for every compressible response on the JS thread. On a 16 KiB JSON
 * body libdeflate's level 1 takes 22 us where zlib's takes 30, and its
 * output is 12% smaller. A static route is compressed once, at start, so
 * it gets libdeflate's default level, 6 (2,362 bytes for that JSON). */
#define ZLIB_LEVEL 1
#define LIBDEFLATE_LEVEL 1
#define LIBDEFLATE_STATIC_LEVEL 6
#define BROTLI_QUALITY 5
#define BROTLI_WINDOW 20

static const char *const coding_names[YMO__N_CODINGS] = {"", "br", "gzip",
                                                         "deflate"};

const char *ymo__coding_name(int coding) {
  return coding > 0 && coding < YMO__N_CODINGS ? coding_names[coding] : "";
}

/* ------------------------------------------------------------------------ */
/* Negotiation.                                                             */

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static bool token_is(const char *s, size_t len, const char *word) {
  return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* A qvalue ("0", "0.5", "1.000") in thousandths, or -1 when malformed. */
static int parse_q(const char *s, size_t len) {
  if (len == 0 || (s[0] != '0' && s[0] != '1')) return -1;
  int q = (s[0] - '0') * 1000;
  if (len == 1) return q;
  if (s[1] != '.' || len > 5) return -1;
  int scale = 100;
  for (size_t i = 2; i < len; i++, scale /= 10) {
    if (s[i] < '0' || s[i] > '9') return -1;
    q += (s[i] - '0') * scale;
  }
  return q > 1000 ? -1 : q;
}

void ymo__accept_init(ymo_accept_t *a) {
  for (int i = 0; i < YMO__N_CODINGS; i++) a->q[i] = -1;
  a->q_star = -1;
  a->seen = false;
}

/* One element: "coding" or "coding;q=0.5" (other parameters ignored). */
static void add_element(ymo_accept_t *a, const char *s, size_t len) {
  size_t name_len = 0;
  while (name_len < len && s[name_len] != ';' && !is_ows(s[name_len]))
    name_len++;
  if (name_len == 0) return;
  int q = 1000;
  const char *p = s + name_len, *end = s + len;
  while (p < end) {
    while (p < end && (is_ows(*p) || *p == ';')) p++;
    const char *param = p;
    while (p < end && *p != ';') p++;
    const char *param_end = p;
    while (param_end > param && is_ows(param_end[-1])) param_end--;
    if (param_end - param >= 2 && (param[0] == 'q' || param[0] == 'Q')) {
      const char *v = param + 1;
      while (v < param_end && is_ows(*v)) v++;
      if (v < param_end && *v == '=') {
        v++;
        while (v < param_end && is_ows(*v)) v++;
        q = parse_q(v, (size_t)(param_end - v));
        if (q < 0) return; /* A malformed element says nothing. */
      }
    }
  }
  int *slot = NULL;
  if (token_is(s, name_len, "*"))
    slot = &a->q_star;
  else if (token_is(s, name_len, "identity"))
    slot = &a->q[YMO__CODING_NONE];
  else if (token_is(s, name_len, "br"))
    slot = &a->q[YMO__CODING_BR];
  else if (token_is(s, name_len, "gzip") || token_is(s, name_len, "x-gzip"))
    slot = &a->q[YMO__CODING_GZIP];
  else if (token_is(s, name_len, "deflate"))
    slot = &a->q[YMO__CODING_DEFLATE];
  /* Named twice: the most favourable mention counts. */
  if (slot != NULL && q > *slot) *slot = q;
}

void ymo__accept_add(ymo_accept_t *a, const char *value, size_t len) {
  a->seen = true;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && value[i] != ',') continue;
    size_t b = start, e = i;
    while (b < e && is_ows(value[b])) b++;
    while (e > b && is_ows(value[e - 1])) e--;
    if (e > b) add_element(a, value + b, e - b);
    start = i + 1;
  }
}

int ymo__accept_pick(const ymo_accept_t *a) {
  if (!a->seen) return YMO__CODING_NONE;
  int best = YMO__CODING_NONE, best_q = 0;
  for (int c = YMO__CODING_BR; c < YMO__N_CODINGS; c++) {
    int q = a->q[c] >= 0 ? a->q[c] : a->q_star >= 0 ? a->q_star : 0;
    if (q > best_q) {
      best = c;
      best_q = q;
    }
  }
  /* identity is acceptable unless refused by name or by "*;q=0"; a client
   * that prefers it outright gets it. */
  int q_identity = a->q[YMO__CODING_NONE] >= 0 ? a->q[YMO__CODING_NONE]
                   : a->q_star >= 0           ? a->q_star
                                              : 1;
  if (best != YMO__CODING_NONE && q_identity > best_q) return YMO__CODING_NONE;
  return best;
}

int ymo__compress_request_coding(const ymo_exchange_t *ex) {
  ymo_accept_t accept;
  ymo__accept_init(&accept);
  for (size_t at = ymo__record_field_next(ex, 0); at != 0;
       at = ymo__record_field_next(ex, at)) {
    const char *name, *value;
    uint32_t name_len, value_len;
    ymo__record_field_get(ex, at, &name, &name_len, &value, &value_len);
    if (token_is(name, name_len, "accept-encoding"))
      ymo__accept_add(&accept, value, value_len);
  }
  return ymo__accept_pick(&accept);
}

/* ------------------------------------------------------------------------ */
/* The plan.                                                                */

/* Media types Deno's list (from jshttp/mime-db) marks compressible: its
 * text/ types, the common application/ and other ones below, and, by
 * pattern, structured +json and +xml types (mime-db names most of those one
 * by one; ymo takes the suffix for all of them). Other text/ types (an
 * event stream, or an unknown one) are left alone, as Deno leaves them. */
static const char *const compressible_types[] = {
    "text/cache-manifest", "text/calender", "text/cmd", "text/css",
    "text/csv", "text/html", "text/javascript", "text/jsx", "text/less",
    "text/markdown", "text/mdx", "text/n3", "text/plain", "text/richtext",
    "text/rtf", "text/tab-separated-values", "text/uri-list", "text/vcard",
    "text/vtt", "text/x-gwt-rpc", "text/x-jquery-tmpl", "text/x-markdown",
    "text/x-org", "text/x-processing", "text/x-suse-ymp", "text/xml",
    "text/yaml",
    "application/json", "application/javascript",
    "application/x-javascript", "application/ecmascript", "application/xml",
    "application/xml-dtd", "application/wasm",
    "application/x-www-form-urlencoded", "application/rtf",
    "application/toml", "application/postscript", "application/x-sh",
    "application/tar", "application/x-tar", "application/dart",
    "application/vnd.dart", "application/x-httpd-php",
    "application/x-ns-proxy-autoconfig", "application/raml+yaml",
    "application/vnd.ms-fontobject", "application/vnd.ms-opentype",
    "font/otf", "font/ttf", "image/bmp", "image/x-icon", "image/x-ms-bmp",
    "image/vnd.adobe.photoshop", "message/rfc822", "model/gltf-binary",
    "x-shader/x-fragment", "x-shader/x-vertex",
};

static bool type_compressible(const char *v, size_t len) {
  size_t n = 0;
  while (n < len && v[n] != ';' && !is_ows(v[n])) n++;
  if ((n > 5 && strncasecmp(v + n - 5, "+json", 5) == 0) ||
      (n > 4 && strncasecmp(v + n - 4, "+xml", 4) == 0))
    return true;
  for (size_t i = 0; i < sizeof(compressible_types) / sizeof(char *); i++)
    if (token_is(v, n, compressible_types[i])) return true;
  return false;
}

/* Whether a comma-separated value holds `word` as one element (or its
 * first token, for "no-transform" in "no-transform, max-age=1"). */
static bool list_has(const char *v, size_t len, const char *word) {
  size_t wlen = strlen(word), start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && v[i] != ',') continue;
    size_t b = start, e = i;
    while (b < e && is_ows(v[b])) b++;
    while (e > b && is_ows(v[e - 1])) e--;
    size_t t = b;
    while (t < e && v[t] != '=' && v[t] != ';' && !is_ows(v[t])) t++;
    if (t - b == wlen && strncasecmp(v + b, word, wlen) == 0) return true;
    start = i + 1;
  }
  return false;
}

/* One "Name: value\r\n" line of a header block: its name, its value
 * (trimmed), and the line's span. */
typedef struct {
  const char *name, *value;
  size_t name_len, value_len;
  size_t start, end; /* The whole line, CRLF included. */
} line_t;

static bool next_line(const uint8_t *fields, size_t len, size_t *at,
                      line_t *l) {
  if (*at >= len) return false;
  const char *s = (const char *)fields;
  size_t start = *at, i = start;
  while (i < len && s[i] != '\n') i++;
  size_t end = i < len ? i + 1 : len;
  size_t content_end = i;
  if (content_end > start && s[content_end - 1] == '\r') content_end--;
  size_t colon = start;
  while (colon < content_end && s[colon] != ':') colon++;
  l->name = s + start;
  l->name_len = colon - start;
  size_t vb = colon < content_end ? colon + 1 : content_end;
  while (vb < content_end && is_ows(s[vb])) vb++;
  size_t ve = content_end;
  while (ve > vb && is_ows(s[ve - 1])) ve--;
  l->value = s + vb;
  l->value_len = ve - vb;
  l->start = start;
  l->end = end;
  *at = end;
  return true;
}

void ymo__compress_plan(ymo_compress_plan_t *plan, int status,
                        const uint8_t *fields, size_t len) {
  bool typed = false, ok = status != 206;
  plan->vary_has = false;
  size_t at = 0;
  line_t l;
  while (next_line(fields, len, &at, &l)) {
    if (token_is(l.name, l.name_len, "content-type"))
      typed = type_compressible(l.value, l.value_len);
    else if (token_is(l.name, l.name_len, "content-encoding") ||
             token_is(l.name, l.name_len, "content-range"))
      ok = false;
    else if (token_is(l.name, l.name_len, "cache-control") &&
             list_has(l.value, l.value_len, "no-transform"))
      ok = false;
    else if (token_is(l.name, l.name_len, "vary") &&
             (list_has(l.value, l.value_len, "accept-encoding") ||
              list_has(l.value, l.value_len, "*")))
      plan->vary_has = true;
  }
  plan->eligible = ok && typed;
}

static const char vary_line[] = "Vary: Accept-Encoding\r\n";
static const char vary_prefix[] = "Vary: Accept-Encoding, ";

uint8_t *ymo__compress_fields(const uint8_t *fields, size_t len, int coding,
                              bool vary_has, size_t *out_len) {
  /* At most: a merged or new Vary, a W/ on one ETag, a Content-Encoding. */
  size_t cap = len + sizeof(vary_prefix) + 2 + 40;
  uint8_t *out = malloc(cap);
  if (out == NULL) return NULL;
  size_t n = 0, at = 0;
  bool vary_done = vary_has, etag_done = coding == YMO__CODING_NONE;
  line_t l;
  while (next_line(fields, len, &at, &l)) {
    if (!vary_done && token_is(l.name, l.name_len, "vary")) {
      memcpy(out + n, vary_prefix, sizeof(vary_prefix) - 1);
      n += sizeof(vary_prefix) - 1;
      memcpy(out + n, l.value, l.value_len);
      n += l.value_len;
      memcpy(out + n, "\r\n", 2);
      n += 2;
      vary_done = true;
      continue;
    }
    /* A length the app gave (for a HEAD, say) is the identity body's. */
    if (coding != YMO__CODING_NONE &&
        token_is(l.name, l.name_len, "content-length"))
      continue;
    if (!etag_done && token_is(l.name, l.name_len, "etag") &&
        !(l.value_len >= 2 && l.value[0] == 'W' && l.value[1] == '/')) {
      static const char etag[] = "ETag: W/";
      memcpy(out + n, etag, sizeof(etag) - 1);
      n += sizeof(etag) - 1;
      memcpy(out + n, l.value, l.value_len);
      n += l.value_len;
      memcpy(out + n, "\r\n", 2);
      n += 2;
      etag_done = true; /* A response has one ETag. */
      continue;
    }
    memcpy(out + n, fields + l.start, l.end - l.start);
    n += l.end - l.start;
  }
  if (!vary_done) {
    memcpy(out + n, vary_line, sizeof(vary_line) - 1);
    n += sizeof(vary_line) - 1;
  }
  if (coding != YMO__CODING_NONE) {
    static const char ce[] = "Content-Encoding: ";
    const char *name = ymo__coding_name(coding);
    memcpy(out + n, ce, sizeof(ce) - 1);
    n += sizeof(ce) - 1;
    memcpy(out + n, name, strlen(name));
    n += strlen(name);
    memcpy(out + n, "\r\n", 2);
    n += 2;
  }
  *out_len = n;
  return out;
}

/* ------------------------------------------------------------------------ */
/* The coders.                                                              */

struct ymo_compressor {
  int coding;
  bool ended;
  /* z or br is set up: on the first ymo__compressor_run(), since a coder
   * for whole bodies never streams (zlib's state alone is 256 KiB). */
  bool streaming;
  z_stream z;                /* gzip and deflate, streamed. */
  struct libdeflate_compressor *whole; /* gzip and deflate, whole bodies. */
  BrotliEncoderState *br;    /* br. */
  uint8_t *buf;              /* The last output. */
  size_t cap;
};

/* zlib's windowBits: 15, plus 16 for the gzip wrapper; deflate is the
 * zlib format, which is what HTTP's "deflate" coding means. */
static int zlib_init(z_stream *z, int coding) {
  memset(z, 0, sizeof(*z));
  int bits = coding == YMO__CODING_GZIP ? 15 + 16 : 15;
  return deflateInit2(z, ZLIB_LEVEL, Z_DEFLATED, bits, 8,
                      Z_DEFAULT_STRATEGY) == Z_OK
             ? 0
             : YMO_ENOMEM;
}

static BrotliEncoderState *brotli_new(size_t size_hint) {
  BrotliEncoderState *br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
  if (br == NULL) return NULL;
  BrotliEncoderSetParameter(br, BROTLI_PARAM_QUALITY, BROTLI_QUALITY);
  BrotliEncoderSetParameter(br, BROTLI_PARAM_LGWIN, BROTLI_WINDOW);
  if (size_hint > 0)
    BrotliEncoderSetParameter(br, BROTLI_PARAM_SIZE_HINT,
                              size_hint > (1u << 30) ? 1u << 30
                                                     : (uint32_t)size_hint);
  return br;
}

/* Grows *buf (cap *cap) to hold at least need bytes. */
static bool grow(uint8_t **buf, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t n = *cap ? *cap : 1024;
  while (n < need) n *= 2;
  uint8_t *b = realloc(*buf, n);
  if (b == NULL) return false;
  *buf = b;
  *cap = n;
  return true;
}

/* Runs the zlib stream over in with flush; output appended at *buf + *n. */
static int zlib_run(z_stream *z, const uint8_t *in, size_t len, int flush,
                    uint8_t **buf, size_t *cap, size_t *n) {
  z->next_in = (Bytef *)in;
  z->avail_in = (uInt)len;
  for (;;) {
    if (!grow(buf, cap, *n + len / 2 + 64)) return YMO_ENOMEM;
    z->next_out = *buf + *n;
    z->avail_out = (uInt)(*cap - *n);
    int rc = deflate(z, flush);
    *n = (size_t)(z->next_out - *buf);
    if (rc == Z_STREAM_END) return 0;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return YMO_EINVAL;
    /* Done when all input is in and zlib did not fill the output. */
    if (z->avail_in == 0 && z->avail_out > 0 && flush != Z_FINISH) return 0;
    if (z->avail_out == 0 && !grow(buf, cap, *cap * 2)) return YMO_ENOMEM;
  }
}

/* Runs the brotli stream over in with op; output appended at *buf + *n. */
static int brotli_run(BrotliEncoderState *br, const uint8_t *in, size_t len,
                      BrotliEncoderOperation op, uint8_t **buf, size_t *cap,
                      size_t *n) {
  size_t avail_in = len;
  const uint8_t *next_in = in;
  for (;;) {
    if (!grow(buf, cap, *n + len / 2 + 64)) return YMO_ENOMEM;
    size_t avail_out = *cap - *n;
    uint8_t *next_out = *buf + *n;
    if (!BrotliEncoderCompressStream(br, op, &avail_in, &next_in, &avail_out,
                                     &next_out, NULL))
      return YMO_EINVAL;
    *n = (size_t)(next_out - *buf);
    bool more = BrotliEncoderHasMoreOutput(br);
    if (avail_in == 0 && !more &&
        (op != BROTLI_OPERATION_FINISH || BrotliEncoderIsFinished(br)))
      return 0;
    if (avail_out == 0 && !grow(buf, cap, *cap * 2)) return YMO_ENOMEM;
  }
}

/* Compresses a whole body with libdeflate into *buf (grown to the bound),
 * in the gzip or zlib ("deflate") format; the length in *n. */
static int deflate_whole(struct libdeflate_compressor *ld, int coding,
                         const uint8_t *in, size_t len, uint8_t **buf,
                         size_t *cap, size_t *n) {
  bool gzip = coding == YMO__CODING_GZIP;
  size_t bound = gzip ? libdeflate_gzip_compress_bound(ld, len)
                      : libdeflate_zlib_compress_bound(ld, len);
  if (!grow(buf, cap, bound)) return YMO_ENOMEM;
  *n = gzip ? libdeflate_gzip_compress(ld, in, len, *buf, *cap)
            : libdeflate_zlib_compress(ld, in, len, *buf, *cap);
  return *n == 0 ? YMO_EINVAL : 0;
}

uint8_t *ymo__compress_all(int coding, const uint8_t *in, size_t len,
                           size_t *out_len) {
  uint8_t *buf = NULL;
  size_t cap = 0, n = 0;
  int err = YMO_EINVAL;
  if (coding == YMO__CODING_BR) {
    BrotliEncoderState *br = brotli_new(len);
    if (br == NULL) return NULL;
    if (grow(&buf, &cap, BrotliEncoderMaxCompressedSize(len) + 16))
      err = brotli_run(br, in, len, BROTLI_OPERATION_FINISH, &buf, &cap, &n);
    else
      err = YMO_ENOMEM;
    BrotliEncoderDestroyInstance(br);
  } else if (coding == YMO__CODING_GZIP || coding == YMO__CODING_DEFLATE) {
    struct libdeflate_compressor *ld =
        libdeflate_alloc_compressor(LIBDEFLATE_STATIC_LEVEL);
    if (ld == NULL) return NULL;
    err = deflate_whole(ld, coding, in, len, &buf, &cap, &n);
    libdeflate_free_compressor(ld);
  }
  if (err != 0) {
    free(buf);
    return NULL;
  }
  *out_len = n;
  return buf;
}

ymo_compressor_t *ymo__compressor_new(int coding) {
  ymo_compressor_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  if (coding != YMO__CODING_BR && coding != YMO__CODING_GZIP &&
      coding != YMO__CODING_DEFLATE) {
    free(c);
    return NULL;
  }
  c->coding = coding;
  return c;
}

/* Sets up the stream state on first use. */
static int start_stream(ymo_compressor_t *c) {
  if (c->streaming) return 0;
  if (c->coding == YMO__CODING_BR) {
    if ((c->br = brotli_new(0)) == NULL) return YMO_ENOMEM;
  } else if (zlib_init(&c->z, c->coding) != 0) {
    return YMO_ENOMEM;
  }
  c->streaming = true;
  return 0;
}

int ymo__compressor_run(ymo_compressor_t *c, const uint8_t *in, size_t len,
                        bool last, const uint8_t **out, size_t *out_len) {
  if (c->ended) return YMO_EINVAL;
  size_t n = 0;
  int err = start_stream(c);
  if (err != 0) return err;
  if (c->coding == YMO__CODING_BR)
    err = brotli_run(c->br, in, len,
                     last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH,
                     &c->buf, &c->cap, &n);
  else
    err = zlib_run(&c->z, in, len, last ? Z_FINISH : Z_SYNC_FLUSH, &c->buf,
                   &c->cap, &n);
  if (err != 0) return err;
  c->ended = last;
  *out = c->buf;
  *out_len = n;
  return 0;
}

int ymo__compressor_once(ymo_compressor_t *c, const uint8_t *in, size_t len,
                         const uint8_t **out, size_t *out_len) {
  size_t n = 0;
  if (c->coding == YMO__CODING_BR) {
    /* One call, its state freed before it returns: nothing to keep. */
    n = BrotliEncoderMaxCompressedSize(len);
    if (n == 0 || !grow(&c->buf, &c->cap, n)) return YMO_ENOMEM;
    if (!BrotliEncoderCompress(BROTLI_QUALITY, BROTLI_WINDOW,
                               BROTLI_MODE_GENERIC, len, in, &n, c->buf))
      return YMO_EINVAL;
  } else {
    if (c->whole == NULL &&
        (c->whole = libdeflate_alloc_compressor(LIBDEFLATE_LEVEL)) == NULL)
      return YMO_ENOMEM;
    int err = deflate_whole(c->whole, c->coding, in, len, &c->buf, &c->cap, &n);
    if (err != 0) return err;
  }
  c->ended = false;
  *out = c->buf;
  *out_len = n;
  return 0;
}

void ymo__compressor_trim(ymo_compressor_t *c) {
  if (c != NULL && c->cap > 256 * 1024) {
    free(c->buf);
    c->buf = NULL;
    c->cap = 0;
  }
}

void ymo__compressor_free(ymo_compressor_t *c) {
  if (c == NULL) return;
  if (c->streaming && c->coding == YMO__CODING_BR)
    BrotliEncoderDestroyInstance(c->br);
  else if (c->streaming)
    deflateEnd(&c->z);
  if (c->whole != NULL) libdeflate_free_compressor(c->whole);
  free(c->buf);
  free(c);
}
