/**
 * Loads the native library once per process, through the backend for the
 * runtime we are on.
 *
 * @module
 */
import { ensureLibrary } from "./_locate.ts";
import type { Native } from "./_types.ts";
import { VERSION } from "./_version.ts";

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

let loaded: Native | undefined;

async function openBackend(path: string): Promise<Native> {
  // Chosen once: each backend imports only its own runtime's FFI.
  const backend = isBun ? await import("./bun.ts") : await import("./deno.ts");
  return backend.open(path);
}

/**
 * Returns the loaded library, finding (or building) and opening it on the
 * first call. Throws when it cannot be found or built, or when the build is
 * of another version.
 */
export async function loadNative(): Promise<Native> {
  if (loaded !== undefined) return loaded;
  const path = await ensureLibrary();
  const native = await openBackend(path);
  const version = native.cstring(native.fn.ymo_version());
  if (version !== VERSION) {
    throw new Error(
      `Native library version mismatch: ${path} is ${version}, expected ${VERSION} (rebuild with scripts/setup.sh or delete it)`,
    );
  }
  loaded = native;
  return native;
}
