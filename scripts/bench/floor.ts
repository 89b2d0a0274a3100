/**
 * The benchmark app's own work per request, with no server at all: the CPU
 * time this runtime spends in `app.fetch` making the Response, plus, for a
 * stream, pulling its chunks through a reader as any server on this runtime
 * must. No server here can spend less per request than this floor; the
 * report compares it with the servers' totals (CPU time/req).
 *
 *   deno run -A scripts/bench/floor.ts [--workloads hello,16k,stream,cpu]
 *   bun scripts/bench/floor.ts [--workloads ...]
 *
 * Fixed bodies are not read: a server can take them from the Response's
 * inner state (ymo and both built-in servers do). The Request is made once
 * and reused, since making it is the server's part. Each workload runs a
 * warm-up, then 5 batches timed with process.cpuUsage() (all threads, so a
 * runtime's garbage collector counts); the median batch is printed.
 *
 * @module
 */
import process from "node:process";
import app from "./app.ts";

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

const chosen = (option("workloads") ?? Object.keys(WORKLOADS).join(","))
  .split(",");
const runtime = "Deno" in globalThis ? "deno" : "bun";
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
  console.log(
    `${runtime} ${id}: ${batches[2].toFixed(1)} µs CPU/req (batches ${
      batches[0].toFixed(1)
    }–${batches[4].toFixed(1)})`,
  );
}
