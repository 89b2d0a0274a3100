/* Layer 3, beside the response builder: automatic response compression
 * (the server option YMO_OPT_COMPRESSION). Three parts, each usable alone:
 *
 *  - negotiation: an Accept-Encoding value (or several) to one coding, with
 *    q-values, `identity` and `*` (RFC 9110 section 12.5.3);
 *  - the plan: whether a response may be compressed, read off its header
 *    lines (type, Content-Encoding, Content-Range, Cache-Control), and the
 *    header lines it then goes out with (Content-Encoding, Vary, a weak
 *    ETag);
 *  - the coders: gzip and deflate with zlib, br with the system brotli
 *    library, one-shot for a fixed body and flushed piece by piece for a
 *    streamed one.
 *
 * Nothing here knows threads: the worker (layer 4) calls it on the JS
 * thread inside respond/append, the static routes (layer 5) at start and
 * on L; an exchange is only read, for its request's Accept-Encoding. */
#ifndef YMO_COMPRESS_H
#define YMO_COMPRESS_H

#include "exchange.h"

/* Content codings, in the order preferred at equal q. */
enum ymo_coding {
  YMO__CODING_NONE = 0,
  YMO__CODING_BR = 1,
  YMO__CODING_GZIP = 2,
  YMO__CODING_DEFLATE = 3,
};
#define YMO__N_CODINGS 4

/* Fixed bodies shorter than this are sent as they are (Deno's threshold:
 * the coding's own framing and headers eat what little it would save). */
#define YMO__COMPRESS_MIN 64

/* The token for a coding ("br", "gzip", "deflate"), or "" for none. */
const char *ymo__coding_name(int coding);

/* What the Accept-Encoding fields of one request say, gathered field by
 * field: the q-value (in thousandths) of each coding named, of `identity`,
 * and of `*`; -1 where not named. */
typedef struct ymo_accept {
  int q[YMO__N_CODINGS]; /* Index YMO__CODING_*; [0] is identity. */
  int q_star;
  bool seen;             /* At least one Accept-Encoding field. */
} ymo_accept_t;

void ymo__accept_init(ymo_accept_t *a);
/* Adds one Accept-Encoding field value. */
void ymo__accept_add(ymo_accept_t *a, const char *value, size_t len);
/* The coding to use: the acceptable one (q > 0) with the highest q, br
 * before gzip before deflate at equal q, unless identity is preferred to
 * it; YMO__CODING_NONE when none is acceptable or no field was seen. */
int ymo__accept_pick(const ymo_accept_t *a);

/* The coding the Accept-Encoding fields of ex's request ask for. Reads
 * the request record, which is complete once the head has been parsed. */
int ymo__compress_request_coding(const ymo_exchange_t *ex);

/* What a response's header lines say about compressing it. */
typedef struct ymo_compress_plan {
  bool eligible;   /* A compressible type, no Content-Encoding, no range,
                      no Cache-Control: no-transform. */
  bool vary_has;   /* Some Vary already names Accept-Encoding (or *). */
} ymo_compress_plan_t;

/* Reads the header lines ("Name: value\r\n" each) of a response with
 * status. */
void ymo__compress_plan(ymo_compress_plan_t *plan, int status,
                        const uint8_t *fields, size_t len);

/* The header lines a response goes out with: fields, with Vary naming
 * Accept-Encoding (merged into the first Vary, or added), and when coding
 * is not NONE a Content-Encoding line, the ETag made weak, and any
 * Content-Length line left out (it would be the identity body's). Returns a
 * malloc'd block and its length in *out_len, or NULL when out of memory. */
uint8_t *ymo__compress_fields(const uint8_t *fields, size_t len, int coding,
                              bool vary_has, size_t *out_len);

/* Compresses a whole body in one go into a malloc'd buffer; returns it
 * with its length in *out_len, or NULL when out of memory or on a coder
 * error. */
uint8_t *ymo__compress_all(int coding, const uint8_t *in, size_t len,
                           size_t *out_len);

/* A coder for a streamed body: each piece is compressed and flushed, so
 * what was appended reaches the client at once; the last piece ends the
 * stream. One per streamed response; freed at its end or abort. */
typedef struct ymo_compressor ymo_compressor_t;

ymo_compressor_t *ymo__compressor_new(int coding);
/* Compresses len bytes of in (and with last, ends the stream); the output
 * stays in the compressor's buffer, *out, until the next call. Returns 0,
 * YMO_ENOMEM, or YMO_EINVAL on a coder error or after the end. */
int ymo__compressor_run(ymo_compressor_t *c, const uint8_t *in, size_t len,
                        bool last, const uint8_t **out, size_t *out_len);
/* Compresses a whole body with c, made by ymo__compressor_new(), so one
 * coder serves body after body without per-body setup (gzip and deflate go
 * through libdeflate, whose compressor is allocated once per coder; zlib
 * with deflateInit/End per body cost 129 us on 16 KiB of JSON against 49
 * with deflateReset). The output stays in c's buffer, *out, until the next
 * call or ymo__compressor_trim(). Returns 0, YMO_ENOMEM or YMO_EINVAL. */
int ymo__compressor_once(ymo_compressor_t *c, const uint8_t *in, size_t len,
                         const uint8_t **out, size_t *out_len);
/* Gives back c's output buffer when a large body left it large. */
void ymo__compressor_trim(ymo_compressor_t *c);
void ymo__compressor_free(ymo_compressor_t *c);

#endif /* YMO_COMPRESS_H */
