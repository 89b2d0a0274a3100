/**
 * Builds the benchmark's C programs (plain_libev.c, ws_load.c) with
 * `gcc -O2 ... -lev`, and its LD_PRELOAD library for wrk (wrk_tls.c) with
 * `gcc -O2 -shared -fPIC ... -ldl`, into bench/tmp/, which git ignores.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

const here = new URL(".", import.meta.url).pathname;

/** What a C file builds into: a program, or a library for LD_PRELOAD. */
export type CKind = "program" | "preload";

/**
 * Where scripts/bench/`name`.c is built: bench/tmp/`name` under `root`
 * (`name`.so for a preload library).
 */
export function cBinary(
  root: string,
  name: string,
  kind: CKind = "program",
): string {
  return join(root, "bench/tmp", kind === "preload" ? `${name}.so` : name);
}

/** ymo's C files a program is built with (paths from the repository
 * root), found through `-I native/src`: one SHA-1 for the server and the
 * WebSocket load client. */
const SHARED: Record<string, string[]> = {
  ws_load: ["native/src/sha1.c"],
};

/** gcc's arguments around `-o OUTPUT SOURCE`, by kind. */
const GCC: Record<CKind, { before: string[]; after: string[] }> = {
  program: { before: ["-O2", "-Wall"], after: ["-lev"] },
  preload: { before: ["-O2", "-Wall", "-shared", "-fPIC"], after: ["-ldl"] },
};

/**
 * Builds scripts/bench/`name`.c into cBinary(root, name, kind) when the
 * output is missing or older than the source; returns why it cannot, or
 * null.
 */
export function buildC(
  root: string,
  name: string,
  kind: CKind = "program",
): string | null {
  const source = join(here, `${name}.c`);
  const shared = (SHARED[name] ?? []).map((file) => join(root, file));
  const binary = cBinary(root, name, kind);
  if (
    existsSync(binary) &&
    [source, ...shared].every((file) =>
      statSync(binary).mtimeMs >= statSync(file).mtimeMs
    )
  ) {
    return null;
  }
  mkdirSync(join(root, "bench/tmp"), { recursive: true });
  const partial = `${binary}.${process.pid}`;
  const gcc = spawnSync(
    "gcc",
    [
      ...GCC[kind].before,
      ...(shared.length > 0 ? ["-I", join(root, "native/src")] : []),
      "-o",
      partial,
      source,
      ...shared,
      ...GCC[kind].after,
    ],
    { encoding: "utf8" },
  );
  if ((gcc.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    return "gcc not found on PATH (apt-get install gcc)";
  }
  if (gcc.status !== 0) {
    const output = `${gcc.stderr ?? ""}${gcc.error ?? ""}`.trim();
    const lines = output.split("\n");
    const first = lines.find((line) => /error/i.test(line)) ?? lines[0];
    if (/ev\.h|-lev\b/.test(output)) {
      return `libev not found (apt-get install libev-dev): ${first}`;
    }
    return `gcc could not build ${source}: ${first}`;
  }
  renameSync(partial, binary);
  return null;
}
