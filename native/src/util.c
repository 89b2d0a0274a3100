/* Error strings, the version, status reasons and the Date header cache. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ymo_internal.h"

const char *ymo_strerror(int err) {
  switch (err) {
    case 0:
      return "success";
#define YMO__ERR_CASE(name, value, text) \
  case value:                            \
    return text;
    YMO_ERRNO_MAP(YMO__ERR_CASE)
#undef YMO__ERR_CASE
    default:
      return "unknown error";
  }
}

const char *ymo_version(void) { return YMO_VERSION_STRING; }

/* Reason phrases (RFC 9110 section 15) for the codes handlers commonly use;
 * any other code gets an empty phrase, which RFC 9112 allows. */
#define YMO_STATUS_MAP(X)                        \
  X(100, "Continue")                             \
  X(101, "Switching Protocols")                  \
  X(200, "OK")                                   \
  X(201, "Created")                              \
  X(202, "Accepted")                             \
  X(203, "Non-Authoritative Information")        \
  X(204, "No Content")                           \
  X(205, "Reset Content")                        \
  X(206, "Partial Content")                      \
  X(300, "Multiple Choices")                     \
  X(301, "Moved Permanently")                    \
  X(302, "Found")                                \
  X(303, "See Other")                            \
  X(304, "Not Modified")                         \
  X(307, "Temporary Redirect")                   \
  X(308, "Permanent Redirect")                   \
  X(400, "Bad Request")                          \
  X(401, "Unauthorized")                         \
  X(403, "Forbidden")                            \
  X(404, "Not Found")                            \
  X(405, "Method Not Allowed")                   \
  X(406, "Not Acceptable")                       \
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
  X(422, "Unprocessable Content")                \
  X(426, "Upgrade Required")                     \
  X(429, "Too Many Requests")                    \
  X(431, "Request Header Fields Too Large")      \
  X(500, "Internal Server Error")                \
  X(501, "Not Implemented")                      \
  X(502, "Bad Gateway")                          \
  X(503, "Service Unavailable")                  \
  X(504, "Gateway Timeout")                      \
  X(505, "HTTP Version Not Supported")

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

size_t ymo__date_line(time_t *cached_sec, char cache[40]) {
  time_t now = time(NULL);
  if (now != *cached_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(cache, 40, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    *cached_sec = now;
  }
  return strlen(cache);
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

/* By hand rather than snprintf: this runs for every response, on the JS
 * thread, and printf's machinery showed in its profile. */
size_t ymo__format_head(char *buf, size_t cap, int status, const char *date,
                        size_t date_len, int64_t content_length,
                        bool chunked, bool close, bool keepalive_10) {
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
  return ok ? at : 0;
}
