/**
 * Finds the ymo native library, and builds it once per version when there is
 * none yet.
 *
 * The places are tried in this order, and the first that has the library wins:
 *
 * 1. the file named by the `YMO_LIB` environment variable (an error if it is
 *    set and the file does not exist: a typo should not load another build);
 * 2. the local build, `native/build/<file>` next to this package, when the
 *    package was loaded from a `file:` URL (a clone, or an npm install);
 * 3. the per-user cache, `${XDG_CACHE_HOME:-~/.cache}/ymo/<version>/<file>`;
 * 4. a build made now: the files listed in `_native_files.ts` are copied from
 *    the package folder, or downloaded over https when the package was loaded
 *    from a remote URL such as JSR, into a staging folder in the cache; CMake
 *    builds them there; and the library is moved into the cache atomically
 *    (write a temporary file, then rename), so processes racing to build never
 *    see a half-written library.
 *
 * For a local package the cache keeps a copy of the sources it was built from
 * in `<cache>/src`, and step 3 skips a cached library whose sources differ from
 * the package's, so edited sources never load a stale cached build. A remote
 * package is immutable per version, so its cache is trusted as it is.
 *
 * {@linkcode ensureLibrary} does all of this. Steps 1 to 3 run on every load
 * and use only `_host.ts`, which keeps Node's modules out of a Deno process;
 * step 4 is in `_build.ts`, loaded only when a build is needed, as is
 * `locateLibrary`, the synchronous variant without the download.
 *
 * @module
 */

import {
  fromFileUrl,
  isAbsolute,
  isFile,
  isPermissionError,
  join,
  platform as hostPlatform,
  processEnv,
  readBytes,
  resolve,
} from "./_host.ts";
import { NATIVE_FILES } from "./_native_files.ts";
import { VERSION } from "./_version.ts";

/** Options of {@linkcode ensureLibrary} and `locateLibrary`. */
export interface LocateOptions {
  /**
   * Environment to read `YMO_LIB`, `XDG_CACHE_HOME` and `HOME` from.
   * @default {process.env}
   */
  env?: Record<string, string | undefined>;
  /**
   * URL of this module; the package root is the folder above it.
   * @default {import.meta.url}
   */
  moduleUrl?: string;
  /**
   * Receives one line per build step; nothing is logged unless a build runs.
   * @default {console.error}
   */
  log?: (line: string) => void;
  /**
   * Whether step 4 may build the library; with `false` a missing library is
   * an error at once (for deployments that must never run a compiler).
   * @default {true}
   */
  build?: boolean;
}

/** Options of {@linkcode ensureLibrary}. */
export interface EnsureOptions extends LocateOptions {
  /**
   * Downloads one source file when the package was loaded from a remote URL.
   * @default {globalThis.fetch}
   */
  fetch?: (url: URL) => Promise<Response>;
}

/** The packages that a build needs, per system, for the error message. */
const INSTALL_HINTS = [
  "Debian/Ubuntu: sudo apt-get install libev-dev cmake gcc pkg-config node-llhttp zlib1g-dev libdeflate-dev libbrotli-dev libssl-dev",
  "macOS: brew install libev llhttp brotli libdeflate openssl@3 cmake pkg-config",
];

/**
 * Returns the file name of the native library on this system.
 *
 * @param platform A `process.platform` value.
 * @returns `"libymo.dylib"` on macOS, `"ymo.dll"` on Windows, `"libymo.so"`
 *   elsewhere.
 * @example
 * ```ts
 * libraryFileName("linux"); // "libymo.so"
 * ```
 */
export function libraryFileName(platform: string = hostPlatform()): string {
  if (platform === "darwin") return "libymo.dylib";
  if (platform === "win32") return "ymo.dll";
  return "libymo.so";
}

/**
 * Returns the per-user cache folder of this version:
 * `${XDG_CACHE_HOME:-$HOME/.cache}/ymo/<version>`.
 *
 * @param env Environment to read `XDG_CACHE_HOME` and `HOME` from.
 * @returns An absolute path; the folder may not exist yet.
 * @example
 * ```ts
 * cacheDirectory({ XDG_CACHE_HOME: "/tmp/c" }); // "/tmp/c/ymo/0.1.0"
 * ```
 */
export function cacheDirectory(
  env: Record<string, string | undefined> = processEnv(),
): string {
  const xdg = env.XDG_CACHE_HOME;
  // The XDG spec says to ignore a relative path.
  if (xdg && isAbsolute(xdg)) return join(xdg, "ymo", VERSION);
  const home = env.HOME || env.USERPROFILE;
  if (!home) {
    throw new Error(
      "Cannot place the ymo native library's cache: neither XDG_CACHE_HOME nor HOME is set",
    );
  }
  return join(home, ".cache", "ymo", VERSION);
}

/**
 * Returns the path of the native library, building it first if needed, from
 * local sources or from sources downloaded next to this module's URL (steps
 * 1 to 4 of the module doc). Permission errors (Deno's `NotCapable` and
 * `PermissionDenied`) pass through unchanged; anything else that stops every
 * step becomes one `Error` that lists each path tried and the packages to
 * install, with the last failure as its `cause`. Needs `--allow-net` for the
 * download, and `--allow-run` and `--allow-write` whenever it builds.
 *
 * @param options Where to look, where to log, and how to download.
 * @returns A promise of the absolute path of an existing library.
 * @example
 * ```ts
 * const lib = Deno.dlopen(await ensureLibrary(), symbols);
 * ```
 */
export async function ensureLibrary(
  options: EnsureOptions = {},
): Promise<string> {
  const search = new Search(options);
  const found = search.lookUp();
  if (found !== undefined) return found;
  search.assertMayBuild();
  const { Build } = await import("./_build.ts");
  const build = new Build(search);
  if (search.localRoot !== undefined) {
    return build.run(() => build.copyLocalSources());
  }
  const fetchFile = options.fetch ?? ((url: URL) => fetch(url));
  let fetched = false;
  try {
    await build.download(fetchFile);
    fetched = true;
  } catch (error) {
    build.fail(`download from ${search.sourceBase}`, error);
  }
  if (!fetched) {
    build.discardStaging();
    throw search.failure();
  }
  return build.run(() => {}, /* staged */ true);
}

/** One lookup: the options resolved, and what was tried so far. */
export class Search {
  readonly env: Record<string, string | undefined>;
  readonly log: (line: string) => void;
  readonly build: boolean;
  readonly file: string;
  /** The cache folder, or undefined when nothing says where (no HOME). */
  readonly cache: string | undefined;
  readonly #noCache: string = "";
  /** Package root on disk, or undefined when the module was loaded remotely. */
  readonly localRoot: string | undefined;
  /** URL of the package root, for downloads and messages. */
  readonly sourceBase: URL;
  /** One line per place tried, for the error message. */
  readonly tried: string[] = [];
  /** The last unexpected failure, for the error's `cause`. */
  cause: unknown = undefined;

  constructor(options: LocateOptions) {
    this.env = options.env ?? processEnv();
    this.log = options.log ?? ((line) => console.error(line));
    this.build = options.build !== false;
    this.file = libraryFileName();
    const moduleUrl = new URL(options.moduleUrl ?? import.meta.url);
    this.sourceBase = new URL("../", moduleUrl);
    this.localRoot = moduleUrl.protocol === "file:"
      ? fromFileUrl(this.sourceBase)
      : undefined;
    try {
      this.cache = cacheDirectory(this.env);
    } catch (error) {
      // Steps 1 and 2 need no cache: only 3 and 4 fail, and say why.
      this.cache = undefined;
      this.#noCache = (error as Error).message;
    }
  }

  /** Steps 1 to 3: returns a path, or undefined to go on to a build. */
  lookUp(): string | undefined {
    const override = this.env.YMO_LIB;
    if (override) {
      const file = resolve(override);
      if (!isFile(file)) {
        throw new Error(
          `YMO_LIB names a native library that does not exist: ${file}`,
        );
      }
      return file;
    }
    this.tried.push("YMO_LIB: not set");

    if (this.localRoot !== undefined) {
      const local = join(this.localRoot, "native", "build", this.file);
      if (isFile(local)) return local;
      this.tried.push(`${local}: not found (local build)`);
    }

    if (this.cache === undefined) {
      this.tried.push(`cache: ${this.#noCache}`);
      return undefined;
    }
    const cached = join(this.cache, this.file);
    if (!isFile(cached)) {
      this.tried.push(`${cached}: not found (cache)`);
    } else if (this.localRoot === undefined || this.#cacheMatchesLocal()) {
      return cached;
    } else {
      const native = join(this.localRoot, "native");
      this.tried.push(`${cached}: built from other sources than ${native}`);
    }
    return undefined;
  }

  /** Throws the combined error if the options forbid a build, or there is
   * no cache to build into. */
  assertMayBuild(): void {
    if (!this.build) {
      this.tried.push(
        "build: not attempted, because the build option is false",
      );
      throw this.failure();
    }
    if (this.cache === undefined) {
      this.tried.push("build: not attempted, with no cache to build into");
      throw this.failure();
    }
  }

  /** Records a failed step; permission errors are thrown as they are. */
  fail(step: string, error: unknown): void {
    if (isPermissionError(error)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    this.tried.push(`${step}: ${message}`);
    this.cause = error;
  }

  /** The one error that lists every place tried and what to install. */
  failure(): Error {
    const lines = [
      "Could not find or build the ymo native library: tried",
      ...this.tried.map((line) => `  - ${indentTail(line, "    ")}`),
      "Install the build dependencies and run again, or set YMO_LIB to a " +
      `prebuilt ${this.file}:`,
      ...INSTALL_HINTS.map((hint) => `  ${hint}`),
    ];
    return new Error(lines.join("\n"), { cause: this.cause });
  }

  /** True when `<cache>/src` holds the same bytes as the local sources. */
  #cacheMatchesLocal(): boolean {
    const kept = join(this.cache!, "src");
    for (const rel of NATIVE_FILES) {
      const a = readOrUndefined(join(this.localRoot!, rel));
      const b = readOrUndefined(join(kept, ...srcRelative(rel)));
      if (a === undefined || b === undefined || !sameBytes(a, b)) return false;
    }
    return true;
  }
}

/** Maps "native/src/x.c" to ["src", "x.c"]: the path inside the staged tree. */
export function srcRelative(rel: string): string[] {
  const parts = rel.split("/");
  if (parts[0] !== "native" || parts.length < 2) {
    throw new Error(`Native file outside native/: ${rel}`);
  }
  return parts.slice(1);
}

/** The bytes of a file, or undefined if it cannot be read. */
function readOrUndefined(file: string): Uint8Array | undefined {
  try {
    return readBytes(file);
  } catch (error) {
    if (isPermissionError(error)) throw error;
    return undefined;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function indentTail(text: string, indent: string): string {
  return text.split("\n").join(`\n${indent}`);
}
