/* Layer 1: error strings (from the YMO_ERRNO_MAP table in ymo.h) and the
 * library's version. */
#include "base.h"

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
