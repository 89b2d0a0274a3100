/**
 * The files needed to build the native library, relative to the package root.
 *
 * When the package is loaded over https (from JSR, say), the locator downloads
 * exactly these files and builds them, so the list must name every file that
 * `native/CMakeLists.txt` uses. `tests/locate_test.ts` checks that it equals
 * the files under `native/` (CMakeLists.txt, include/ and src/) and that the
 * package publishes each of them.
 *
 * @module
 */

/** Paths of the native build inputs, relative to the package root, sorted. */
export const NATIVE_FILES: readonly string[] = [
  "native/CMakeLists.txt",
  "native/include/ymo.h",
  "native/src/base.h",
  "native/src/compress.c",
  "native/src/compress.h",
  "native/src/conn.c",
  "native/src/conn.h",
  "native/src/exchange.c",
  "native/src/exchange.h",
  "native/src/http1.c",
  "native/src/http1_parser.c",
  "native/src/loan.c",
  "native/src/queue.c",
  "native/src/record.c",
  "native/src/response.c",
  "native/src/response.h",
  "native/src/ring.c",
  "native/src/ring.h",
  "native/src/router.c",
  "native/src/routes.c",
  "native/src/server.c",
  "native/src/server.h",
  "native/src/sha1.c",
  "native/src/sha1.h",
  "native/src/tcp.c",
  "native/src/tls.c",
  "native/src/tls.h",
  "native/src/topics.c",
  "native/src/util.c",
  "native/src/websocket.c",
  "native/src/websocket.h",
  "native/src/worker.c",
  "native/src/worker.h",
  "native/src/ws.c",
  "native/src/ws.h",
  "native/src/ws_handshake.c",
  "native/src/ws_worker.c",
  "native/src/ymo_internal.h",
];
