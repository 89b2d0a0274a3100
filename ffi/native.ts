/**
 * Loads the native library once per process, through the backend for the
 * runtime we are on.
 *
 * @module
 */
import { isPermissionError } from "./_host.ts";
import { ensureLibrary } from "./_locate.ts";
import type { Native } from "./_types.ts";
import { VERSION } from "./_version.ts";

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** The one load in progress or done: every module that needs the library
 * awaits the same promise, so it is found (or built) once. */
let loading: Promise<Native> | undefined;

async function openBackend(path: string): Promise<Native> {
  // Chosen once: each backend imports only its own runtime's FFI.
  const backend = isBun ? await import("./bun.ts") : await import("./deno.ts");
  try {
    return backend.open(path);
  } catch (error) {
    if (isPermissionError(error)) throw error;
    // The runtimes wrap the dynamic loader's "<path>: <reason>" in their own
    // words (Deno says "Could not open library:" twice): keep the reason.
    const text = error instanceof Error ? error.message : String(error);
    const at = text.lastIndexOf(`${path}: `);
    const reason = at < 0 ? text : text.slice(at + path.length + 2);
    throw new Error(
      `Could not open the ymo native library ${path}: ${reason}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Returns the loaded library, finding (or building) and opening it on the
 * first call. Throws when it cannot be found or built, or when the build is
 * of another version; a later call then tries again.
 */
export function loadNative(): Promise<Native> {
  loading ??= load().catch((error) => {
    loading = undefined;
    throw error;
  });
  return loading;
}

async function load(): Promise<Native> {
  const path = await ensureLibrary();
  const native = await openBackend(path);
  const version = native.cstring(native.fn.ymo_version());
  if (version !== VERSION) {
    throw new Error(
      `Native library version mismatch: ${path} is ${version}, expected ${VERSION} (rebuild with scripts/setup.sh or delete it)`,
    );
  }
  return native;
}
