/**
 * The Bun.serve peer: serves app.ts with Bun's built-in server, its `static`
 * responses as Bun `routes` (which Bun answers without calling `fetch`).
 *
 *   bun scripts/bench/serve_bun.ts --port 8000 [--hostname H] [--workers N]
 *
 * Bun.serve has no automatic compression, so `--compress` is refused rather
 * than silently measured uncompressed.
 *
 * With --workers N > 1 this process starts N - 1 copies of itself and every
 * copy listens with `reusePort`, Bun's documented way to use several cores.
 *
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";
import app from "./app.ts";

/** The part of Bun's global this file uses (typed here so Deno can check it). */
interface BunServe {
  serve(options: {
    port: number;
    hostname: string;
    reusePort: boolean;
    routes: Record<string, Response>;
    fetch: (req: Request) => Response | Promise<Response>;
  }): unknown;
}
const { Bun } = globalThis as unknown as { Bun: BunServe };

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}

const port = Number(option("port", "8000"));
const hostname = option("hostname", "127.0.0.1");
const workers = Number(option("workers", "1"));
if (process.argv.includes("--compress")) {
  console.error("Bun.serve has no automatic response compression");
  process.exit(2);
}

if (workers > 1 && process.env.YMO_BENCH_CHILD !== "1") {
  for (let i = 1; i < workers; i++) {
    spawn(process.execPath, process.argv.slice(1), {
      env: { ...process.env, YMO_BENCH_CHILD: "1" },
      stdio: ["ignore", "inherit", "inherit"],
    });
  }
}

Bun.serve({
  port,
  hostname,
  reusePort: workers > 1,
  routes: app.static,
  fetch: app.fetch,
});
