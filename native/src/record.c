/* Layer 2: the request-record writer. L builds a request's record in its
 * exchange while parsing (ymo__record_append and the header entries) and
 * fills the fixed part once the head is complete; ymo_worker_take() copies
 * records out and writes the short notice records. Every field's place and
 * width comes from YMO_RECORD_MAP in ymo.h, through PUT and GET below. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "exchange.h"

/* Little-endian integers of 1, 2 or 4 bytes. */
static void put_le(uint8_t *p, size_t width, uint32_t v) {
  for (size_t i = 0; i < width; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le(const uint8_t *p, size_t width) {
  uint32_t v = 0;
  for (size_t i = 0; i < width; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}

/* Field `name` of YMO_RECORD_MAP, in the record (or entry) at `rec`. */
#define PUT(rec, name, v) \
  put_le((rec) + YMO_REQ_AT_##name, YMO_REQ_WIDTH_##name, (uint32_t)(v))
#define GET(rec, name) get_le((rec) + YMO_REQ_AT_##name, YMO_REQ_WIDTH_##name)

static bool reserve(ymo_exchange_t *ex, size_t more) {
  if (ex->req_len + more <= ex->req_cap) return true;
  size_t cap = ex->req_cap * 2;
  while (cap < ex->req_len + more) cap *= 2;
  uint8_t *req = realloc(ex->req, cap);
  if (req == NULL) return false;
  ex->req = req;
  ex->req_cap = cap;
  return true;
}

bool ymo__record_append(ymo_exchange_t *ex, const void *data, size_t len) {
  if (!reserve(ex, len)) return false;
  memcpy(ex->req + ex->req_len, data, len);
  ex->req_len += len;
  return true;
}

size_t ymo__record_field_open(ymo_exchange_t *ex) {
  static const uint8_t zero[YMO_REQ_FIELD_SIZE] = {0};
  size_t at = ex->req_len;
  return ymo__record_append(ex, zero, sizeof(zero)) ? at : 0;
}

bool ymo__record_field_append(ymo_exchange_t *ex, size_t at, bool value,
                              const void *data, size_t len) {
  if (!ymo__record_append(ex, data, len)) return false;
  uint8_t *entry = ex->req + at;
  if (value)
    PUT(entry, field_value_len, GET(entry, field_value_len) + len);
  else
    PUT(entry, field_name_len, GET(entry, field_name_len) + len);
  return true;
}

void ymo__record_field_trim(ymo_exchange_t *ex, size_t at, size_t len) {
  uint8_t *entry = ex->req + at;
  PUT(entry, field_value_len, GET(entry, field_value_len) - len);
  ex->req_len -= len;
}

void ymo__record_field_get(const ymo_exchange_t *ex, size_t at,
                           const char **name, uint32_t *name_len,
                           const char **value, uint32_t *value_len) {
  const uint8_t *entry = ex->req + at;
  *name_len = GET(entry, field_name_len);
  *value_len = GET(entry, field_value_len);
  *name = (const char *)entry + YMO_REQ_FIELD_SIZE;
  *value = *name + *name_len;
}

size_t ymo__record_field_next(const ymo_exchange_t *ex, size_t at) {
  if (ex->n_headers == 0) return 0;
  if (at == 0) return ex->headers_start;
  const uint8_t *entry = ex->req + at;
  size_t next = at + YMO_REQ_FIELD_SIZE + GET(entry, field_name_len) +
                GET(entry, field_value_len);
  return next < ex->params_start ? next : 0;
}

const uint8_t *ymo__record_method(const ymo_exchange_t *ex) {
  return ex->req + YMO_REQ_FIXED_SIZE;
}

bool ymo__record_finish(ymo_exchange_t *ex, size_t method_len, size_t url_len,
                        const struct sockaddr_storage *peer) {
  size_t padded = (ex->req_len + 7) & ~(size_t)7;
  if (!reserve(ex, padded - ex->req_len)) return false;
  memset(ex->req + ex->req_len, 0, padded - ex->req_len);
  uint8_t *h = ex->req;
  PUT(h, record_len, padded);
  PUT(h, http_major, ex->http_major);
  PUT(h, http_minor, ex->http_minor);
  PUT(h, flags, ex->req_flags);
  PUT(h, method_len, method_len);
  PUT(h, url_len, url_len);
  PUT(h, n_headers, ex->n_headers);
  PUT(h, headers_len, ex->body_start - ex->headers_start);
  PUT(h, body_len, ex->req_len - ex->body_start);
  PUT(h, route, ex->route);
  PUT(h, n_params, ex->n_params);
  if (peer->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
    PUT(h, remote_port, ntohs(in->sin_port));
    PUT(h, remote_family, 4);
    memcpy(h + YMO_REQ_AT_remote_addr, &in->sin_addr, 4);
  } else if (peer->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
    PUT(h, remote_port, ntohs(in6->sin6_port));
    PUT(h, remote_family, 6);
    memcpy(h + YMO_REQ_AT_remote_addr, &in6->sin6_addr,
           YMO_REQ_WIDTH_remote_addr);
  }
  ex->req_len = padded;
  return true;
}

void ymo__record_copy(uint8_t *dst, const ymo_exchange_t *ex, uint32_t id,
                      uint32_t gen) {
  memcpy(dst, ex->req, ex->req_len);
  PUT(dst, id, id);
  PUT(dst, gen, gen);
}

void ymo__record_notice(uint8_t *dst, size_t size, uint32_t id, uint32_t gen,
                        uint8_t flags, const uint8_t *data, size_t len) {
  memset(dst, 0, size);
  PUT(dst, record_len, size);
  PUT(dst, id, id);
  PUT(dst, gen, gen);
  PUT(dst, flags, flags);
  if (data != NULL) {
    PUT(dst, body_padding, size - YMO_REQ_ABORT_SIZE - len);
    memcpy(dst + YMO_REQ_ABORT_SIZE, data, len);
  }
}

bool ymo__field_name_is(const char *name, size_t len, const char *want) {
  return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

bool ymo__record_field_find(const ymo_exchange_t *ex, const char *name,
                            const char **value, uint32_t *value_len) {
  for (size_t at = ymo__record_field_next(ex, 0); at != 0;
       at = ymo__record_field_next(ex, at)) {
    const char *field;
    uint32_t field_len;
    ymo__record_field_get(ex, at, &field, &field_len, value, value_len);
    if (ymo__field_name_is(field, field_len, name)) return true;
  }
  return false;
}
