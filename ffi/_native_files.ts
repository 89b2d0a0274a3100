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
  "native/src/http.c",
  "native/src/queue.c",
  "native/src/server.c",
  "native/src/util.c",
  "native/src/worker.c",
  "native/src/ymo_internal.h",
];
