/* Reading a request record's fields by their names in YMO_RECORD_MAP
 * (ymo.h), for the native tests and the fuzzer: their own reader, so they
 * check the library's writer rather than share its code. */
#ifndef YMO_RECORD_FIELD_H
#define YMO_RECORD_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "ymo.h"

/* A little-endian field of 1, 2 or 4 bytes. */
static inline uint32_t record_le(const uint8_t *p, size_t width) {
  uint32_t v = 0;
  for (size_t i = 0; i < width; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}

/* Field `name` of YMO_RECORD_MAP in the record, or header entry, at p. */
#define REC_FIELD(p, name) \
  record_le((p) + YMO_REQ_AT_##name, YMO_REQ_WIDTH_##name)

#endif /* YMO_RECORD_FIELD_H */
