/**
 * Builds the benchmark's C programs (plain_libev.c, ws_load.c) with
 * `gcc -O2 ... -lev` into bench/tmp/, which git ignores.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

const here = new URL(".", import.meta.url).pathname;

/** Where scripts/bench/`name`.c is built: bench/tmp/`name` under `root`. */
export function cBinary(root: string, name: string): string {
  return join(root, "bench/tmp", name);
}

/**
 * Builds scripts/bench/`name`.c into cBinary(root, name) when the binary is
 * missing or older than the source; returns why it cannot, or null.
 */
export function buildC(root: string, name: string): string | null {
  const source = join(here, `${name}.c`);
  const binary = cBinary(root, name);
  if (
    existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs
  ) {
    return null;
  }
  mkdirSync(join(root, "bench/tmp"), { recursive: true });
  const partial = `${binary}.${process.pid}`;
  const gcc = spawnSync(
    "gcc",
    ["-O2", "-Wall", "-o", partial, source, "-lev"],
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
