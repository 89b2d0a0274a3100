/* Layer 3: response building, the one place a response's bytes are laid
 * out: reason phrases (one X-macro table), the Date line cache, the head
 * with its framing, chunk framing, and the canned plain-text pages. Runs on
 * whichever thread builds the response (a JS thread, or L for static routes
 * and error pages), with that thread's Date cache. */
#include <string.h>

#include "response.h"

/* Reason phrases: every code in the IANA HTTP Status Code Registry (RFC
 * 9110 section 15 and the RFCs the registry cites), and 418 as Deno.serve
 * sends it. Any other code gets an empty phrase, which RFC 9112 section 4
 * allows. */
#define YMO_STATUS_MAP(X)                        \
  X(100, "Continue")                             \
  X(101, "Switching Protocols")                  \
  X(102, "Processing")                           \
  X(103, "Early Hints")                          \
  X(200, "OK")                                   \
  X(201, "Created")                              \
  X(202, "Accepted")                             \
  X(203, "Non-Authoritative Information")        \
  X(204, "No Content")                           \
  X(205, "Reset Content")                        \
  X(206, "Partial Content")                      \
  X(207, "Multi-Status")                         \
  X(208, "Already Reported")                     \
  X(226, "IM Used")                              \
  X(300, "Multiple Choices")                     \
  X(301, "Moved Permanently")                    \
  X(302, "Found")                                \
  X(303, "See Other")                            \
  X(304, "Not Modified")                         \
  X(305, "Use Proxy")                            \
  X(307, "Temporary Redirect")                   \
  X(308, "Permanent Redirect")                   \
  X(400, "Bad Request")                          \
  X(401, "Unauthorized")                         \
  X(402, "Payment Required")                     \
  X(403, "Forbidden")                            \
  X(404, "Not Found")                            \
  X(405, "Method Not Allowed")                   \
  X(406, "Not Acceptable")                       \
  X(407, "Proxy Authentication Required")        \
  X(408, "Request Timeout")                      \
  X(409, "Conflict")                             \
  X(410, "Gone")                                 \
  X(411, "Length Required")                      \
  X(412, "Precondition Failed")                  \
  X(413, "Content Too Large")                    \
  X(414, "URI Too Long")                         \
  X(415, "Unsupported Media Type")               \
  X(416, "Range Not Satisfiable")                \
  X(417, "Expectation Failed")                   \
  X(418, "I'm a teapot")                         \
  X(421, "Misdirected Request")                  \
  X(422, "Unprocessable Content")                \
  X(423, "Locked")                               \
  X(424, "Failed Dependency")                    \
  X(425, "Too Early")                            \
  X(426, "Upgrade Required")                     \
  X(428, "Precondition Required")                \
  X(429, "Too Many Requests")                    \
  X(431, "Request Header Fields Too Large")      \
  X(451, "Unavailable For Legal Reasons")        \
  X(500, "Internal Server Error")                \
  X(501, "Not Implemented")                      \
  X(502, "Bad Gateway")                          \
  X(503, "Service Unavailable")                  \
  X(504, "Gateway Timeout")                      \
  X(505, "HTTP Version Not Supported")           \
  X(506, "Variant Also Negotiates")              \
  X(507, "Insufficient Storage")                 \
  X(508, "Loop Detected")                        \
  X(510, "Not Extended")                         \
  X(511, "Network Authentication Required")

const char *ymo__reason(int status) {
  switch (status) {
#define YMO__STATUS_CASE(code, text) \
  case code:                         \
    return text;
    YMO_STATUS_MAP(YMO__STATUS_CASE)
#undef YMO__STATUS_CASE
    default:
      return "";
  }
}

static size_t date_line(ymo_date_t *d) {
  time_t now = time(NULL);
  if (now != d->sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(d->line, sizeof(d->line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n",
             &tm);
    d->sec = now;
  }
  return strlen(d->line);
}

/* Appends `len` bytes to buf[*at, cap); false when they do not fit. */
static bool put(char *buf, size_t cap, size_t *at, const char *s, size_t len) {
  if (len > cap - *at) return false;
  memcpy(buf + *at, s, len);
  *at += len;
  return true;
}

#define PUT_LITERAL(buf, cap, at, s) put(buf, cap, at, s, sizeof(s) - 1)

/* Decimal digits of `v` at the end of `tmp`; returns where they start. */
static char *digits(char tmp[24], unsigned long long v) {
  char *p = tmp + 24;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  return p;
}

/* The status line and the header fields ymo owns, into buf (cap bytes);
 * returns the length, or 0 when it does not fit. By hand rather than
 * snprintf: this runs for every response, on the JS thread, and printf's
 * machinery showed in its profile. */
static size_t format_head(char *buf, size_t cap, int status, const char *date,
                          size_t date_len, int64_t content_length,
                          bool chunked, bool close, bool keepalive_10,
                          int64_t keepalive_s) {
  size_t at = 0;
  char tmp[24];
  char *num = digits(tmp, (unsigned long long)(status < 0 ? 0 : status));
  const char *reason = ymo__reason(status);
  bool ok = PUT_LITERAL(buf, cap, &at, "HTTP/1.1 ") &&
            put(buf, cap, &at, num, (size_t)(tmp + 24 - num)) &&
            PUT_LITERAL(buf, cap, &at, " ") &&
            put(buf, cap, &at, reason, strlen(reason)) &&
            PUT_LITERAL(buf, cap, &at, "\r\n") &&
            put(buf, cap, &at, date, date_len);
  if (ok && content_length >= 0) {
    num = digits(tmp, (unsigned long long)content_length);
    ok = PUT_LITERAL(buf, cap, &at, "Content-Length: ") &&
         put(buf, cap, &at, num, (size_t)(tmp + 24 - num)) &&
         PUT_LITERAL(buf, cap, &at, "\r\n");
  } else if (ok && chunked) {
    ok = PUT_LITERAL(buf, cap, &at, "Transfer-Encoding: chunked\r\n");
  }
  if (ok && close)
    ok = PUT_LITERAL(buf, cap, &at, "Connection: close\r\n");
  else if (ok && keepalive_10)
    ok = PUT_LITERAL(buf, cap, &at, "Connection: keep-alive\r\n");
  if (ok && !close && keepalive_s > 0) {
    num = digits(tmp, (unsigned long long)keepalive_s);
    ok = PUT_LITERAL(buf, cap, &at, "Keep-Alive: timeout=") &&
         put(buf, cap, &at, num, (size_t)(tmp + 24 - num)) &&
         PUT_LITERAL(buf, cap, &at, "\r\n");
  }
  return ok ? at : 0;
}

/* Frames len bytes of body as one chunk at dst; returns the bytes written
 * (at most len + CHUNK_OVERHEAD). */
#define CHUNK_OVERHEAD 20
static size_t chunk_frame(uint8_t *dst, const uint8_t *body, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t n = 0;
  int shift = 60;
  while (shift > 0 && (len >> shift) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) dst[n++] = (uint8_t)hex[(len >> shift) & 15];
  dst[n++] = '\r';
  dst[n++] = '\n';
  memcpy(dst + n, body, len);
  memcpy(dst + n + len, "\r\n", 2);
  return n + len + 2;
}

static const char last_chunk[] = "0\r\n\r\n";

void ymo__response_canned(ymo_response_t *r, int status) {
  static const char type[] = "Content-Type: text/plain;charset=UTF-8\r\n";
  const char *reason = ymo__reason(status);
  r->status = status;
  r->fields = (const uint8_t *)type;
  r->fields_len = sizeof(type) - 1;
  r->body = (const uint8_t *)reason;
  r->body_len = strlen(reason);
}

int ymo__response_start(ymo_response_t *r, ymo_date_t *date,
                        ymo_exchange_t *ex, ymo_out_t **out) {
  bool no_body_status = r->status == 204 || r->status == 304;
  r->no_body = r->head || no_body_status;
  r->chunked = false;
  int64_t content_length = -1;
  if (r->done && r->head && r->own_length) {
    /* The app's Content-Length is among the fields: framing is settled. */
  } else if (r->done) {
    if (!no_body_status) content_length = (int64_t)r->body_len;
  } else if (!r->no_body) {
    if (r->http10)
      r->close = true; /* The end of the body is the end of the connection. */
    else
      r->chunked = true;
  }
  size_t date_len = date_line(date);
  /* The hint is in whole seconds, rounded down so a client never keeps a
   * connection past the server's timeout, but at least 1 (0 would tell the
   * client to drop it at once). */
  int64_t keepalive_s = 0;
  if (r->keepalive_ms > 0)
    keepalive_s = r->keepalive_ms < 1000 ? 1 : r->keepalive_ms / 1000;
  char head[256];
  size_t head_len = format_head(head, sizeof(head), r->status, date->line,
                                date_len, content_length, r->chunked,
                                r->close, r->http10 && !r->close, keepalive_s);
  if (head_len == 0) return YMO_EINVAL;
  size_t send_body = r->no_body ? 0 : r->body_len;
  size_t body_bytes = send_body;
  if (r->chunked && send_body > 0) body_bytes += CHUNK_OVERHEAD;
  size_t total = head_len + r->fields_len + 2 + body_bytes;
  ymo_out_t *o = ymo__out_new(ex, total, (r->done ? YMO_RESP_DONE : 0) |
                                             (r->close ? YMO_RESP_CLOSE : 0));
  if (o == NULL) return YMO_ENOMEM;
  uint8_t *p = o->data;
  memcpy(p, head, head_len);
  p += head_len;
  if (r->fields_len > 0) memcpy(p, r->fields, r->fields_len);
  p += r->fields_len;
  memcpy(p, "\r\n", 2);
  p += 2;
  if (r->chunked && send_body > 0) {
    p += chunk_frame(p, r->body, send_body);
  } else if (send_body > 0) {
    memcpy(p, r->body, send_body);
    p += send_body;
  }
  o->len = (size_t)(p - o->data);
  *out = o;
  return 0;
}

ymo_out_t *ymo__response_more(ymo_exchange_t *ex, const uint8_t *body,
                              size_t len, bool chunked, bool last, int flags) {
  size_t cap = len + (chunked ? CHUNK_OVERHEAD + sizeof(last_chunk) - 1 : 0);
  ymo_out_t *out = ymo__out_new(ex, cap, flags);
  if (out == NULL) return NULL;
  uint8_t *p = out->data;
  if (chunked) {
    if (len > 0) p += chunk_frame(p, body, len);
    if (last) {
      memcpy(p, last_chunk, sizeof(last_chunk) - 1);
      p += sizeof(last_chunk) - 1;
    }
  } else if (len > 0) {
    memcpy(p, body, len);
    p += len;
  }
  out->len = (size_t)(p - out->data);
  return out;
}
