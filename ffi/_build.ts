/**
 * Step 4 of finding the native library (`_locate.ts`): staging its sources
 * (copied from the package, or downloaded), building them with CMake, and
 * installing the library into the cache atomically. Loaded only when no
 * library was found, since it uses Node's modules (`node:fs`,
 * `node:child_process`), which cost a Deno process megabytes to load.
 *
 * Also {@linkcode locateLibrary}, the synchronous variant of `ensureLibrary`
 * (everything but the download), for callers that cannot wait.
 *
 * @module
 */

import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { isFile, isPermissionError } from "./_host.ts";
import { type LocateOptions, Search, srcRelative } from "./_locate.ts";
import { NATIVE_FILES } from "./_native_files.ts";
import { VERSION } from "./_version.ts";

/**
 * Returns the path of the native library, building it first if needed, for a
 * package loaded from a `file:` URL. It does steps 1 to 4 of `_locate.ts`,
 * except downloading the sources: for a package loaded over https it finds an
 * existing library or throws, and `ensureLibrary` is the call to use. Errors
 * as `ensureLibrary`'s.
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
  search.assertMayBuild();
  if (search.localRoot === undefined) {
    search.tried.push(
      `build from ${search.sourceBase}: the sources must be downloaded, ` +
        "which only the asynchronous ensureLibrary() does",
    );
    throw search.failure();
  }
  const build = new Build(search);
  return build.run(() => build.copyLocalSources());
}

/** One build into a search's cache, through a staging folder of its own. */
export class Build {
  readonly #search: Search;
  #staging: string | undefined;

  constructor(search: Search) {
    this.#search = search;
  }

  /** Copies the package's sources into the staging folder (local case). */
  copyLocalSources(): void {
    const root = this.#search.localRoot!;
    const staging = this.#stage();
    for (const rel of NATIVE_FILES) {
      const to = path.join(staging, "src", ...srcRelative(rel));
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(path.join(root, ...rel.split("/")), to);
    }
  }

  /** Downloads the sources into the staging folder, in parallel (remote
   * case). */
  async download(fetchFile: (url: URL) => Promise<Response>): Promise<void> {
    const { sourceBase } = this.#search;
    const staging = this.#stage();
    this.#search.log(`ymo: downloading the native sources from ${sourceBase}`);
    await Promise.all(NATIVE_FILES.map(async (rel) => {
      const url = new URL(rel, sourceBase);
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
   * Gets the sources with `getSources` (unless they are already staged), runs
   * CMake, and installs the library into the cache. Returns its path or
   * throws the search's combined error.
   */
  run(getSources: () => void, staged = false): string {
    const search = this.#search;
    const from = search.localRoot !== undefined
      ? path.join(search.localRoot, "native")
      : search.sourceBase.href;
    const cache = search.cache!;
    const target = path.join(cache, search.file);
    try {
      if (!staged) getSources();
      const staging = this.#stage();
      const src = path.join(staging, "src");
      const out = path.join(staging, "build");
      search.log(
        `ymo: building the native library for version ${VERSION}; ` +
          "this happens once and takes a few seconds",
      );
      search.log(`ymo: cmake configure (${out})`);
      runCommand("cmake", [
        "-S",
        src,
        "-B",
        out,
        "-DCMAKE_BUILD_TYPE=Release",
        "-DYMO_BUILD_TESTS=OFF",
        "-DBUILD_TESTING=OFF",
      ]);
      search.log("ymo: cmake build");
      runCommand("cmake", ["--build", out, "--parallel", "4"]);
      const built = findFile(out, search.file);
      if (built === undefined) {
        throw new Error(`the build did not produce ${search.file} in ${out}`);
      }
      // Atomic install: a reader sees the old library or the new, never part.
      const temporary = `${target}.${process.pid}.${randomSuffix()}.tmp`;
      fs.copyFileSync(built, temporary);
      fs.renameSync(temporary, target);
      // Keep the sources as the stamp that step 3 compares (local case).
      const keptSources = path.join(cache, "src");
      fs.rmSync(keptSources, { recursive: true, force: true });
      fs.renameSync(src, keptSources);
      fs.rmSync(staging, { recursive: true, force: true });
      this.#staging = undefined;
      search.log(`ymo: built ${target}`);
      return target;
    } catch (error) {
      this.fail(`build from ${from} into ${target}`, error);
      this.discardStaging();
      throw search.failure();
    }
  }

  /** Records a failed step; permission errors are thrown as they are, once
   * the staging folder is gone. */
  fail(step: string, error: unknown): void {
    if (isPermissionError(error)) this.discardStaging();
    this.#search.fail(step, error);
  }

  /** Creates the staging folder once: `<cache>/.staging-<pid>-<random>`. */
  #stage(): string {
    if (this.#staging === undefined) {
      const cache = this.#search.cache!;
      fs.mkdirSync(cache, { recursive: true });
      this.#staging = fs.mkdtempSync(
        path.join(cache, `.staging-${process.pid}-`),
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
function runCommand(command: string, args: string[]): void {
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

function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 10);
}
