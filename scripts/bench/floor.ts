/**
 * The benchmark app's own work per request, with no server at all: the CPU
 * time this runtime spends in `app.fetch` making the Response, plus, for a
 * stream, pulling its chunks through a reader as any server on this runtime
 * must. Compare it with the servers' CPU time/req in scripts/bench.ts's
 * report. It is a floor only where the runtime's garbage collector does not
 * swing it: on Deno the stream figure moved between batches from 446 to
 * 1,569 µs, and ymo on Deno has served streams at 516-620 µs per response,
 * so read the batches' range, not only the median.
 *
 *   deno run -A scripts/bench/floor.ts [--workloads hello,16k,stream,cpu]
 *   bun scripts/bench/floor.ts [--workloads ...]
 *   deno run -A scripts/bench/floor.ts --rss [--ffi] [--rate N]
 *   bun scripts/bench/floor.ts --rss [--ffi] [--rate N]
 *
 * Fixed bodies are not read: a server can take them from the Response's
 * inner state (ymo and both built-in servers do). The Request is made once
 * and reused, since making it is the server's part. Each workload runs a
 * warm-up, then 5 batches timed with process.cpuUsage() (all threads, so a
 * runtime's garbage collector counts); the median batch is printed. `cpu`
 * hashes as many rounds as YMO_BENCH_CPU_ROUNDS says (a benchmark report's
 * `cpuRounds` for this runtime, to price the work that run did), else as many
 * as this process calibrates to 200 µs, which moves from run to run; the
 * count is printed.
 *
 * `--rss` measures memory instead: the process's peak resident set (VmHWM)
 * while the app answers `GET /` for 4 s with no server, 50 requests per turn
 * of the event loop and `--rate` per second (default 70000, about what the
 * servers answer on hello). `--ffi` first loads one symbol of libev through
 * the runtime's FFI (`Deno.dlopen`, `bun:ffi`), as any server with its I/O
 * in a native library must; the difference between the two runs is what
 * that costs. The peak itself is not a strict floor: the engine's heap
 * grows with the allocation rate, so it moves with `--rate`.
 *
 * @module
 */
import process from "node:process";
import { readBytes } from "../../ffi/_host.ts";
import app from "./app.ts";
import { cpuRoundsPerRequest } from "./_work.mjs";

const WORKLOADS: Record<string, { path: string; batch: number }> = {
  hello: { path: "/", batch: 200_000 },
  "16k": { path: "/16k", batch: 100_000 },
  stream: { path: "/stream", batch: 500 },
  cpu: { path: "/cpu", batch: 2_000 },
};

function option(name: string): string | undefined {
  const args = process.argv;
  const i = args.indexOf(`--${name}`);
  return i < 0 ? undefined : args[i + 1];
}

async function oneRequest(request: Request): Promise<number> {
  const response = await app.fetch(request);
  const body = response.body;
  if (body === null || !request.url.endsWith("/stream")) return 0;
  const reader = body.getReader();
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return bytes;
    bytes += (value as Uint8Array).byteLength;
  }
}

async function batchCpu(request: Request, n: number): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) await oneRequest(request);
  const { user, system } = process.cpuUsage(start);
  return (user + system) / n;
}

const runtime = "Deno" in globalThis ? "deno" : "bun";

// deno-lint-ignore no-explicit-any
const deno = (globalThis as any).Deno;

/** A field of /proc/self/status, in KiB (Linux). */
function statusKiB(field: string): number {
  // Through _host.ts: not node:fs on Deno, where loading it costs megabytes
  // of its own (the app loads only node:process and node:crypto).
  const status = new TextDecoder().decode(readBytes("/proc/self/status"));
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  if (match === null) throw new Error(`no ${field} in /proc/self/status`);
  return Number(match[1]);
}

/** Loads one symbol of libev through this runtime's FFI. */
async function loadFfi(): Promise<void> {
  const library = "libev.so.4";
  if (runtime === "deno") {
    deno.dlopen(library, {
      ev_version_major: { parameters: [], result: "i32" },
    });
  } else {
    const BUN_FFI = "bun:ffi"; // a variable, so Deno does not resolve it
    const ffi = await import(BUN_FFI);
    ffi.dlopen(library, { ev_version_major: { args: [], returns: "i32" } });
  }
}

/** Peak RSS of answering GET / at `rate` per second for `seconds`. */
async function rssFloor(seconds: number, rate: number): Promise<void> {
  const ffi = process.argv.includes("--ffi");
  if (ffi) await loadFfi();
  const idle = statusKiB("VmRSS");
  const request = new Request("http://127.0.0.1/");
  const turn = new MessageChannel();
  const start = performance.now();
  const end = start + seconds * 1000;
  let answered = 0;
  for (let now = start; now < end; now = performance.now()) {
    for (let i = 0; i < 50; i++) {
      const response = app.fetch(request);
      if (response instanceof Promise) await response;
      answered++;
    }
    // A turn of the event loop (a message: setTimeout(0) waits 1 ms or
    // more), then wait while ahead of the rate.
    const ahead = answered / rate * 1000 - (performance.now() - start);
    await new Promise((resolve) => {
      if (ahead > 1) setTimeout(resolve, ahead);
      else {
        turn.port1.onmessage = resolve;
        turn.port2.postMessage(0);
      }
    });
  }
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  console.log(
    `${runtime} rss${ffi ? " with FFI" : ""}: peak ${
      mib(statusKiB("VmHWM"))
    } MiB (idle ${mib(idle)} MiB), ${Math.round(answered / seconds)} answers/s`,
  );
  turn.port1.close();
}

if (process.argv.includes("--rss")) {
  const rate = Number(option("rate") ?? 70_000);
  if (!(rate > 0)) {
    throw new RangeError(`--rate: not a positive number: ${option("rate")}`);
  }
  await rssFloor(4, rate);
  process.exit(0);
}

const chosen = (option("workloads") ?? Object.keys(WORKLOADS).join(","))
  .split(",");
for (const id of chosen) {
  const workload = WORKLOADS[id];
  if (workload === undefined) {
    throw new RangeError(
      `--workloads: unknown workload "${id}" (known: ${
        Object.keys(WORKLOADS).join(", ")
      })`,
    );
  }
  const request = new Request(`http://127.0.0.1${workload.path}`);
  await batchCpu(request, Math.ceil(workload.batch / 5));
  const batches: number[] = [];
  for (let i = 0; i < 5; i++) {
    batches.push(await batchCpu(request, Math.ceil(workload.batch / 5)));
  }
  batches.sort((a, b) => a - b);
  const rounds = id === "cpu" ? `, ${cpuRoundsPerRequest()} rounds` : "";
  console.log(
    `${runtime} ${id}: ${batches[2].toFixed(1)} µs CPU/req (batches ${
      batches[0].toFixed(1)
    }–${batches[4].toFixed(1)}${rounds})`,
  );
}
