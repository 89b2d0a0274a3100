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
 * {@linkcode locateLibrary} is synchronous and does all of this except the
 * download; {@linkcode ensureLibrary} is asynchronous and does all of it. Both
 * use only `node:` modules, so they run unchanged on Deno and Bun.
 *
 * @module
 */

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { NATIVE_FILES } from "./_native_files.ts";
import { VERSION } from "./_version.ts";

/** Options of {@linkcode locateLibrary}. */
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
export function libraryFileName(platform: string = os.platform()): string {
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
  env: Record<string, string | undefined> = process.env,
): string {
  const xdg = env.XDG_CACHE_HOME;
  // The XDG spec says to ignore a relative path.
  const base = xdg && path.isAbsolute(xdg)
    ? xdg
    : path.join(env.HOME || env.USERPROFILE || os.homedir(), ".cache");
  return path.join(base, "ymo", VERSION);
}

/**
 * Returns the path of the native library, building it first if needed, for a
 * package loaded from a `file:` URL. It does steps 1 to 4 of the module doc,
 * except downloading the sources: for a package loaded over https it finds an
 * existing library or throws, and {@linkcode ensureLibrary} is the call to use.
 *
 * Permission errors (Deno's `NotCapable` and `PermissionDenied`) pass through
 * unchanged; anything else that stops every step becomes one `Error` that lists
 * each path tried and the packages to install, with the last failure as its
 * `cause`.
 *
 * @param options Where to look and where to log.
 * @returns The absolute path of an existing library.
 * @example
 * ```ts
 * const path = locateLibrary();
 * const lib = Deno.dlopen(path, symbols);
 * ```
 */
export function locateLibrary(options: LocateOptions = {}): string {
  const search = new Search(options);
  const found = search.lookUp();
  if (found !== undefined) return found;
  if (options.build === false) {
    search.tried.push(
      "build: not attempted, because the build option is false",
    );
    throw search.failure();
  }
  if (search.localRoot === undefined) {
    search.tried.push(
      `build from ${search.sourceBase}: the sources must be downloaded, ` +
        "which only the asynchronous ensureLibrary() does",
    );
    throw search.failure();
  }
  return search.build(() => search.copyLocalSources());
}

/**
 * Returns the path of the native library, building it first if needed, from
 * local sources or from sources downloaded next to this module's URL. Same
 * order and errors as {@linkcode locateLibrary}, which it extends to packages
 * loaded over https (JSR). Needs `--allow-net` for that download, and
 * `--allow-run` and `--allow-write` whenever it builds.
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
  if (options.build === false) {
    search.tried.push(
      "build: not attempted, because the build option is false",
    );
    throw search.failure();
  }
  if (search.localRoot !== undefined) {
    return search.build(() => search.copyLocalSources());
  }
  const fetchFile = options.fetch ?? ((url: URL) => fetch(url));
  let fetched = false;
  try {
    await search.download(fetchFile);
    fetched = true;
  } catch (error) {
    search.fail(`download from ${search.sourceBase}`, error);
  }
  if (!fetched) {
    search.discardStaging();
    throw search.failure();
  }
  return search.build(() => {}, /* staged */ true);
}

/** One lookup: the options resolved, and what was tried so far. */
class Search {
  readonly env: Record<string, string | undefined>;
  readonly log: (line: string) => void;
  readonly file: string;
  readonly cache: string;
  /** Package root on disk, or undefined when the module was loaded remotely. */
  readonly localRoot: string | undefined;
  /** URL of the package root, for downloads and messages. */
  readonly sourceBase: URL;
  /** One line per place tried, for the error message. */
  readonly tried: string[] = [];
  /** The last unexpected failure, for the error's `cause`. */
  cause: unknown = undefined;
  #staging: string | undefined;

  constructor(options: LocateOptions) {
    this.env = options.env ?? process.env;
    this.log = options.log ?? ((line) => console.error(line));
    this.file = libraryFileName();
    const moduleUrl = new URL(options.moduleUrl ?? import.meta.url);
    this.sourceBase = new URL("../", moduleUrl);
    this.localRoot = moduleUrl.protocol === "file:"
      ? fileURLToPath(this.sourceBase)
      : undefined;
    this.cache = cacheDirectory(this.env);
  }

  /** Steps 1 to 3: returns a path, or undefined to go on to a build. */
  lookUp(): string | undefined {
    const override = this.env.YMO_LIB;
    if (override) {
      const file = path.resolve(override);
      if (!isFile(file)) {
        throw new Error(
          `YMO_LIB names a native library that does not exist: ${file}`,
        );
      }
      return file;
    }
    this.tried.push("YMO_LIB: not set");

    if (this.localRoot !== undefined) {
      const local = path.join(this.localRoot, "native", "build", this.file);
      if (isFile(local)) return local;
      this.tried.push(`${local}: not found (local build)`);
    }

    const cached = path.join(this.cache, this.file);
    if (!isFile(cached)) {
      this.tried.push(`${cached}: not found (cache)`);
    } else if (this.localRoot === undefined || this.#cacheMatchesLocal()) {
      return cached;
    } else {
      const native = path.join(this.localRoot, "native");
      this.tried.push(`${cached}: built from other sources than ${native}`);
    }
    return undefined;
  }

  /** Step 4, sources part, local case: copies them into the staging folder. */
  copyLocalSources(): void {
    const root = this.localRoot!;
    const staging = this.#stage();
    for (const rel of NATIVE_FILES) {
      const to = path.join(staging, "src", ...srcRelative(rel));
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(path.join(root, ...rel.split("/")), to);
    }
  }

  /** Step 4, sources part, remote case: downloads them in parallel. */
  async download(fetchFile: (url: URL) => Promise<Response>): Promise<void> {
    const staging = this.#stage();
    this.log(`ymo: downloading the native sources from ${this.sourceBase}`);
    await Promise.all(NATIVE_FILES.map(async (rel) => {
      const url = new URL(rel, this.sourceBase);
      const response = await fetchFile(url);
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`GET ${url} answered ${response.status}`);
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      const to = path.join(staging, "src", ...srcRelative(rel));
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.writeFileSync(to, bytes);
    }));
  }

  /**
   * Step 4, build part: gets the sources with `getSources` (unless they are
   * already staged), runs CMake, and installs the library into the cache.
   * Returns its path or throws the combined error.
   */
  build(getSources: () => void, staged = false): string {
    const from = this.localRoot !== undefined
      ? path.join(this.localRoot, "native")
      : this.sourceBase.href;
    const target = path.join(this.cache, this.file);
    try {
      if (!staged) getSources();
      const staging = this.#stage();
      const src = path.join(staging, "src");
      const out = path.join(staging, "build");
      this.log(
        `ymo: building the native library for version ${VERSION}; ` +
          "this happens once and takes a few seconds",
      );
      this.log(`ymo: cmake configure (${out})`);
      run("cmake", [
        "-S",
        src,
        "-B",
        out,
        "-DCMAKE_BUILD_TYPE=Release",
        "-DYMO_BUILD_TESTS=OFF",
        "-DBUILD_TESTING=OFF",
      ]);
      this.log("ymo: cmake build");
      run("cmake", ["--build", out, "--parallel", "4"]);
      const built = findFile(out, this.file);
      if (built === undefined) {
        throw new Error(`the build did not produce ${this.file} in ${out}`);
      }
      // Atomic install: a reader sees the old library or the new, never part.
      const temporary = `${target}.${process.pid}.${randomSuffix()}.tmp`;
      fs.copyFileSync(built, temporary);
      fs.renameSync(temporary, target);
      // Keep the sources as the stamp that step 3 compares (local case).
      const keptSources = path.join(this.cache, "src");
      fs.rmSync(keptSources, { recursive: true, force: true });
      fs.renameSync(src, keptSources);
      fs.rmSync(staging, { recursive: true, force: true });
      this.#staging = undefined;
      this.log(`ymo: built ${target}`);
      return target;
    } catch (error) {
      this.fail(`build from ${from} into ${target}`, error);
      this.discardStaging();
      throw this.failure();
    }
  }

  /** Records a failed step; permission errors are thrown as they are. */
  fail(step: string, error: unknown): void {
    if (isPermissionError(error)) {
      this.discardStaging();
      throw error;
    }
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
    const kept = path.join(this.cache, "src");
    for (const rel of NATIVE_FILES) {
      const a = readOrUndefined(path.join(this.localRoot!, ...rel.split("/")));
      const b = readOrUndefined(path.join(kept, ...srcRelative(rel)));
      if (a === undefined || b === undefined || !a.equals(b)) return false;
    }
    return true;
  }

  /** Creates the staging folder once: `<cache>/.staging-<pid>-<random>`. */
  #stage(): string {
    if (this.#staging === undefined) {
      fs.mkdirSync(this.cache, { recursive: true });
      this.#staging = fs.mkdtempSync(
        path.join(this.cache, `.staging-${process.pid}-`),
      );
    }
    return this.#staging;
  }

  /** Removes the staging folder of a failed build. */
  discardStaging(): void {
    if (this.#staging === undefined) return;
    try {
      fs.rmSync(this.#staging, { recursive: true, force: true });
    } catch {
      // A leftover staging folder is harmless; the next build makes its own.
    }
    this.#staging = undefined;
  }
}

/** Maps "native/src/x.c" to ["src", "x.c"]: the path inside the staged tree. */
function srcRelative(rel: string): string[] {
  const parts = rel.split("/");
  if (parts[0] !== "native" || parts.length < 2) {
    throw new Error(`Native file outside native/: ${rel}`);
  }
  return parts.slice(1);
}

/**
 * Throws Deno's permission error, naming the flag, when this process may not
 * run `command`: Deno's node:child_process reports a refused run only as an
 * exit status of undefined. A no-op on Bun, which has no permissions.
 */
function assertMayRun(command: string): void {
  const deno = (globalThis as {
    Deno?: {
      permissions?: {
        querySync?(d: { name: "run"; command: string }): { state: string };
        requestSync?(d: { name: "run"; command: string }): { state: string };
      };
      errors: { NotCapable: new (message: string) => Error };
    };
  }).Deno;
  const permissions = deno?.permissions;
  if (deno === undefined || permissions?.querySync === undefined) return;
  const descriptor = { name: "run" as const, command };
  let state = permissions.querySync(descriptor).state;
  if (state === "prompt" && permissions.requestSync !== undefined) {
    state = permissions.requestSync(descriptor).state;
  }
  if (state !== "granted") {
    throw new deno.errors.NotCapable(
      `Requires run access to "${command}" to build the ymo native library ` +
        `on first use, run again with the --allow-run=${command} flag`,
    );
  }
}

/** Runs a command, capturing its output; throws with the output's tail. */
function run(command: string, args: string[]): void {
  assertMayRun(command);
  const result = spawnSync(command, args, {
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) {
    if (isPermissionError(result.error)) throw result.error;
    const code = (result.error as { code?: string }).code;
    throw new Error(
      code === "ENOENT"
        ? `${command} was not found on PATH`
        : `${command} could not start: ${result.error.message}`,
      { cause: result.error },
    );
  }
  if (typeof result.status !== "number" && !result.signal) {
    throw new Error(`${command} did not run (it reported no exit status)`);
  }
  if (result.status !== 0) {
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trimEnd();
    const tail = output.split("\n").slice(-25).join("\n");
    const how = result.status === null
      ? `was killed by ${result.signal}`
      : `exited with code ${result.status}`;
    throw new Error(`${command} ${args.join(" ")} ${how}:\n${tail}`);
  }
}

/** Finds `name` under `dir` (the build folder), skipping CMake's own files. */
function findFile(dir: string, name: string, depth = 3): string | undefined {
  const direct = path.join(dir, name);
  if (isFile(direct)) return direct;
  if (depth === 0) return undefined;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name === "CMakeFiles") continue;
    const found = findFile(path.join(dir, entry.name), name, depth - 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** True for an existing file (or a link to one); permission errors throw. */
function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch (error) {
    if (isPermissionError(error)) throw error;
    return false;
  }
}

/** The bytes of a file, or undefined if it cannot be read. */
function readOrUndefined(file: string) {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    if (isPermissionError(error)) throw error;
    return undefined;
  }
}

/** True for Deno's permission errors, which callers must see unchanged. */
export function isPermissionError(error: unknown): boolean {
  const errors = (globalThis as {
    Deno?: { errors?: Record<string, abstract new () => Error> };
  }).Deno?.errors;
  if (errors === undefined) return false;
  return (errors.NotCapable !== undefined &&
    error instanceof errors.NotCapable) ||
    (errors.PermissionDenied !== undefined &&
      error instanceof errors.PermissionDenied);
}

function indentTail(text: string, indent: string): string {
  return text.split("\n").join(`\n${indent}`);
}

function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 10);
}
