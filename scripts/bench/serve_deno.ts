/**
 * The Deno.serve peer: serves app.ts with Deno's built-in server. Deno.serve
 * has no static routes, so app.fetch answers `/static` as well.
 *
 *   deno run -A scripts/bench/serve_deno.ts --port 8000 [--hostname H]
 *                                           [--workers N] [--compress]
 *
 * --compress turns on Deno.serve's `automaticCompression` (opt-in since
 * Deno 2.9).
 *
 * With --workers N > 1 this process starts N - 1 copies of itself and every
 * copy listens with `reusePort`, so the kernel spreads connections over N
 * processes, each one JS thread.
 *
 * @module
 */

import app from "./app.ts";

function option(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i < 0 ? fallback : Deno.args[i + 1];
}

const port = Number(option("port", "8000"));
const hostname = option("hostname", "127.0.0.1");
const workers = Number(option("workers", "1"));
const child = Deno.env.get("YMO_BENCH_CHILD") === "1";
const compress = Deno.args.includes("--compress");

if (workers > 1 && !child) {
  for (let i = 1; i < workers; i++) {
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-net",
        import.meta.filename!,
        ...Deno.args,
      ],
      env: { YMO_BENCH_CHILD: "1" },
      stdin: "null",
    }).spawn();
  }
}

Deno.serve({
  port,
  hostname,
  reusePort: workers > 1,
  automaticCompression: compress,
  onListen() {},
}, app.fetch);
