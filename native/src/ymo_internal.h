/* Every internal header, top layer first, for the native tests and the
 * fuzzer, which reach inside the library. The library's own files include
 * only their layer's header (which includes the ones below it). */
#ifndef YMO_INTERNAL_H
#define YMO_INTERNAL_H

#include "server.h"

#endif /* YMO_INTERNAL_H */
