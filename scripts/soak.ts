/**
 * Soak test: runs the demo server (`scripts/serve.ts`) in a child process for
 * a while under mixed traffic from this script, checks every answer, and
 * watches the server's memory.
 *
 *     node_modules/.bin/deno run -A scripts/soak.ts [--duration 600] [--runtime deno|bun]
 *     node_modules/.bin/bun scripts/soak.ts [--duration 600] [--runtime deno|bun]
 *
 * Options (all optional):
 *
 *   --duration S     seconds of traffic (default 600)
 *   --runtime R      runtime of the server: deno or bun (default: the one
 *                    running this script)
 *   --clients N      concurrent virtual clients (default 12)
 *   --sample S       seconds between memory samples (default 2)
 *   --warmup S       seconds of traffic before memory counts (default: a
 *                    tenth of the duration, at least 5 and at most 60)
 *   --max-growth P   allowed RSS growth in percent (default 10)
 *   --seed N         seed of the traffic mix (default 1)
 *   --json FILE      also write the report as JSON to FILE
 *
 * Traffic, each from a client that picks the next scenario at random:
 *
 *   keepalive  5 to 40 requests on one connection, one after another, with an
 *              occasional pause of up to 2 s (under the 5 s idle timeout):
 *              GET /, HEAD /, GET /headers, GET /stream, POST /echo with a
 *              Content-Length or a chunked body of 0 B to 256 KiB
 *   pipeline   2 to 16 of those requests in one write, answers in order
 *   slow       one request dribbled over up to 4 s (under the 10 s header
 *              timeout) in small pieces
 *   http10     an HTTP/1.0 request: one answer, then the server closes
 *   fetch      the runtime's own fetch(): GET / or POST /echo
 *   abort-req  a request cut off mid-head or mid-body, then a reset
 *   abort-res  GET /stream or a large POST /echo, reset after the first bytes
 *              of the answer
 *
 * Every well-formed request must be answered, and every answer must be what
 * the demo app sends for it (status, framing, body byte for byte). The
 * aborted ones are counted apart and expected to leave no trace.
 *
 * Memory: the server's VmRSS from /proc/PID/status is sampled every --sample
 * seconds. The samples after the warm-up are judged two ways, and the run
 * fails only if both say the memory grows:
 *
 *  1. overall: the smallest RSS of the last third is more than --max-growth
 *     percent, and more than 16 MiB, above the largest RSS of the first
 *     third. Comparing that minimum with that maximum ignores the garbage
 *     collector's sawtooth and one-off peaks.
 *  2. still growing at the end: a least-squares line through the second half
 *     of the samples rises by more than half of --max-growth percent (and
 *     more than 8 MiB) over that half.
 *
 * A leak does both. A heap that steps up once (JIT code, a bigger old
 * generation, malloc arenas) and then stays flat does only the first: that
 * is reported, but is not a failure.
 *
 * Exit status: 0 if no request was lost or answered wrongly, the memory
 * check passed, and the server shut down cleanly on SIGTERM; 1 otherwise.
 *
 * @module
 */

import net from "node:net";
import process from "node:process";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Buffer } from "node:buffer";
import { RawConnection, type RawResponse } from "../tests/_http.ts";

// ---------------------------------------------------------------------------
// Options

interface Options {
  duration: number;
  runtime: "deno" | "bun";
  clients: number;
  sample: number;
  warmup: number;
  maxGrowth: number;
  seed: number;
  json?: string;
}

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

function parseOptions(argv: string[]): Options {
  const raw = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") {
      console.log(
        "Usage: soak.ts [--duration S] [--runtime deno|bun] [--clients N] " +
          "[--sample S] [--warmup S] [--max-growth P] [--seed N] [--json FILE]",
      );
      process.exit(0);
    }
    const [flag, inline] = arg.split("=", 2);
    if (!flag.startsWith("--")) {
      throw new TypeError(`Unexpected argument: ${arg}`);
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new TypeError(`Missing value for ${flag}`);
    raw.set(flag.slice(2), value);
  }
  const num = (name: string, dflt: number, min: number): number => {
    const v = raw.get(name);
    raw.delete(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) {
      throw new RangeError(`Invalid --${name}: ${v} (at least ${min})`);
    }
    return n;
  };
  const duration = num("duration", 600, 1);
  const runtime = raw.get("runtime") ?? (isBun ? "bun" : "deno");
  raw.delete("runtime");
  if (runtime !== "deno" && runtime !== "bun") {
    throw new TypeError(`Invalid --runtime: ${runtime} (deno or bun)`);
  }
  const json = raw.get("json");
  raw.delete("json");
  const opts: Options = {
    duration,
    runtime,
    clients: num("clients", 12, 1),
    sample: num("sample", 2, 0.1),
    warmup: num("warmup", Math.min(60, Math.max(5, duration / 10)), 0),
    maxGrowth: num("max-growth", 10, 0),
    seed: num("seed", 1, 0),
    json,
  };
  if (raw.size > 0) {
    throw new TypeError(`Unknown option: --${[...raw.keys()][0]}`);
  }
  return opts;
}

// ---------------------------------------------------------------------------
// Counters and failures

const stats = {
  sent: 0, // Well-formed requests sent.
  answered: 0, // Complete answers received to them.
  verified: 0, // Answers that were exactly right.
  lost: 0, // Well-formed requests with no complete answer.
  wrong: 0, // Answers that were not right.
  aborted: 0, // Requests or answers cut off on purpose.
  connections: 0,
  byScenario: {} as Record<string, number>,
};
const problems: string[] = [];

function problem(message: string): void {
  if (problems.length < 30) problems.push(message);
}

// ---------------------------------------------------------------------------
// Random numbers (xorshift32), so a run can be repeated with --seed.

let rngState = 1;
function random(): number {
  rngState ^= rngState << 13;
  rngState >>>= 0;
  rngState ^= rngState >>> 17;
  rngState ^= rngState << 5;
  rngState >>>= 0;
  return rngState / 0x100000000;
}
function randInt(lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo + 1));
}
function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (random() * 256) | 0;
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Requests and what the demo app answers (scripts/demo.ts)

interface Req {
  bytes: Uint8Array;
  method: string;
  /** Checks the answer; returns why it is wrong, or null. */
  check(res: RawResponse): string | null;
  what: string;
}

const HELLO = "Hello, World!";
const STREAM = "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n";
const latin1 = (s: string) => Buffer.from(s, "latin1");

function head(lines: string[]): string {
  return lines.join("\r\n") + "\r\n\r\n";
}

function expectText(status: number, body: string) {
  return (res: RawResponse): string | null => {
    if (res.status !== status) return `status ${res.status}, want ${status}`;
    const text = res.text();
    if (text !== body) {
      return `body ${JSON.stringify(text.slice(0, 80))}, want ${
        JSON.stringify(body.slice(0, 80))
      }`;
    }
    return null;
  };
}

function getRoot(): Req {
  return {
    what: "GET /",
    method: "GET",
    bytes: latin1(head(["GET / HTTP/1.1", "Host: soak"])),
    check: expectText(200, HELLO),
  };
}

function headRoot(): Req {
  return {
    what: "HEAD /",
    method: "HEAD",
    bytes: latin1(head(["HEAD / HTTP/1.1", "Host: soak"])),
    check: (res) => {
      if (res.status !== 200) return `status ${res.status}`;
      if (res.body.length !== 0) return "HEAD answer with a body";
      const cl = res.get("content-length");
      if (cl !== null && cl !== String(HELLO.length)) {
        return `HEAD Content-Length ${cl}`;
      }
      return null;
    },
  };
}

function getHeaders(): Req {
  const token = randInt(0, 1e9).toString(36);
  return {
    what: "GET /headers",
    method: "GET",
    bytes: latin1(
      head(["GET /headers HTTP/1.1", "Host: soak", `X-Soak: ${token}`]),
    ),
    check: (res) => {
      if (res.status !== 200) return `status ${res.status}`;
      try {
        const h = JSON.parse(res.text()) as Record<string, string>;
        return h["x-soak"] === token
          ? null
          : `x-soak ${h["x-soak"]}, want ${token}`;
      } catch (e) {
        return `bad JSON: ${(e as Error).message}`;
      }
    },
  };
}

function getStream(): Req {
  return {
    what: "GET /stream",
    method: "GET",
    bytes: latin1(head(["GET /stream HTTP/1.1", "Host: soak"])),
    check: (res) => {
      const err = expectText(200, STREAM)(res);
      if (err) return err;
      return res.chunked ? null : "stream not chunked";
    },
  };
}

function bodySize(): number {
  const r = random();
  if (r < 0.15) return 0;
  if (r < 0.7) return randInt(1, 2048);
  if (r < 0.95) return randInt(2049, 65536);
  return randInt(65537, 256 * 1024);
}

function postEcho(size = bodySize(), chunked = random() < 0.4): Req {
  const body = randomBytes(size);
  let bytes: Uint8Array;
  if (chunked) {
    const parts: Uint8Array[] = [
      latin1(
        head([
          "POST /echo HTTP/1.1",
          "Host: soak",
          "Transfer-Encoding: chunked",
          "Content-Type: application/octet-stream",
        ]),
      ),
    ];
    for (let at = 0; at < size;) {
      const n = Math.min(size - at, randInt(1, 32768));
      parts.push(
        latin1(n.toString(16) + "\r\n"),
        body.subarray(at, at + n),
        latin1("\r\n"),
      );
      at += n;
    }
    parts.push(latin1("0\r\n\r\n"));
    bytes = Buffer.concat(parts);
  } else {
    bytes = Buffer.concat([
      latin1(
        head([
          "POST /echo HTTP/1.1",
          "Host: soak",
          `Content-Length: ${size}`,
          "Content-Type: application/octet-stream",
        ]),
      ),
      body,
    ]);
  }
  return {
    what: `POST /echo ${size} B${chunked ? " chunked" : ""}`,
    method: "POST",
    bytes,
    check: (res) => {
      if (res.status !== 200) return `status ${res.status}`;
      if (res.body.length !== size) {
        return `echo of ${res.body.length} B, want ${size}`;
      }
      for (let i = 0; i < size; i++) {
        if (res.body[i] !== body[i]) return `echo differs at byte ${i}`;
      }
      return null;
    },
  };
}

function anyRequest(): Req {
  const r = random();
  if (r < 0.35) return getRoot();
  if (r < 0.45) return headRoot();
  if (r < 0.55) return getHeaders();
  if (r < 0.65) return getStream();
  return postEcho();
}

// ---------------------------------------------------------------------------
// Scenarios

async function openConn(port: number): Promise<RawConnection> {
  stats.connections++;
  return await RawConnection.open(port);
}

/** Reads and checks one answer per request; counts the rest as lost. */
async function readAnswers(
  conn: RawConnection,
  reqs: Req[],
  scenario: string,
): Promise<boolean> {
  for (let i = 0; i < reqs.length; i++) {
    let res: RawResponse;
    try {
      res = await conn.read({
        head: reqs[i].method === "HEAD",
        timeoutMs: 15_000,
      });
    } catch (e) {
      const lost = reqs.length - i;
      stats.lost += lost;
      problem(
        `${scenario}: ${lost} request(s) lost from ${reqs[i].what}: ${
          (e as Error).message.slice(0, 200)
        }`,
      );
      return false;
    }
    stats.answered++;
    const err = reqs[i].check(res);
    if (err === null) stats.verified++;
    else {
      stats.wrong++;
      problem(`${scenario}: ${reqs[i].what}: ${err}`);
    }
  }
  return true;
}

async function keepalive(port: number): Promise<void> {
  const conn = await openConn(port);
  try {
    const n = randInt(5, 40);
    for (let i = 0; i < n; i++) {
      const req = anyRequest();
      stats.sent++;
      await conn.write(req.bytes);
      if (!(await readAnswers(conn, [req], "keepalive"))) return;
      if (random() < 0.03) await sleep(randInt(100, 2000));
    }
  } finally {
    conn.destroy();
  }
}

async function pipeline(port: number): Promise<void> {
  const conn = await openConn(port);
  try {
    const reqs = Array.from({ length: randInt(2, 16) }, anyRequest);
    stats.sent += reqs.length;
    await conn.write(Buffer.concat(reqs.map((r) => r.bytes)));
    await readAnswers(conn, reqs, "pipeline");
  } finally {
    conn.destroy();
  }
}

async function slow(port: number): Promise<void> {
  const conn = await openConn(port);
  try {
    const req = random() < 0.5 ? getHeaders() : postEcho(randInt(0, 4096));
    stats.sent++;
    const pieces = randInt(5, 40);
    const step = Math.ceil(req.bytes.length / pieces);
    const gap = Math.floor(4000 / pieces);
    for (let at = 0; at < req.bytes.length; at += step) {
      await conn.write(req.bytes.subarray(at, at + step));
      await sleep(randInt(gap / 2, gap));
    }
    await readAnswers(conn, [req], "slow");
  } finally {
    conn.destroy();
  }
}

async function http10(port: number): Promise<void> {
  const conn = await openConn(port);
  try {
    stats.sent++;
    await conn.write("GET / HTTP/1.0\r\n\r\n");
    const req: Req = { ...getRoot(), what: "HTTP/1.0 GET /" };
    if (!(await readAnswers(conn, [req], "http10"))) return;
    try {
      await conn.closed(5_000);
    } catch {
      stats.wrong++;
      problem("http10: the server kept an HTTP/1.0 connection open");
    }
  } finally {
    conn.destroy();
  }
}

async function viaFetch(port: number): Promise<void> {
  stats.sent++;
  try {
    if (random() < 0.5) {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      const text = await res.text();
      stats.answered++;
      if (res.status === 200 && text === HELLO) stats.verified++;
      else {
        stats.wrong++;
        problem(
          `fetch GET /: ${res.status} ${JSON.stringify(text.slice(0, 60))}`,
        );
      }
    } else {
      const body = randomBytes(bodySize());
      const res = await fetch(`http://127.0.0.1:${port}/echo`, {
        method: "POST",
        body,
      });
      const got = new Uint8Array(await res.arrayBuffer());
      stats.answered++;
      if (
        res.status === 200 &&
        Buffer.compare(Buffer.from(got), Buffer.from(body)) === 0
      ) {
        stats.verified++;
      } else {
        stats.wrong++;
        problem(
          `fetch POST /echo ${body.length} B: ${res.status}, ${got.length} B back`,
        );
      }
    }
  } catch (e) {
    stats.lost++;
    problem(`fetch: ${(e as Error).message.slice(0, 200)}`);
  }
}

async function abortRequest(port: number): Promise<void> {
  const conn = await openConn(port);
  stats.aborted++;
  const req = random() < 0.5 ? getHeaders() : postEcho(randInt(100, 65536));
  const cut = randInt(1, req.bytes.length - 1);
  await conn.write(req.bytes.subarray(0, cut)).catch(() => {});
  await sleep(randInt(0, 200));
  conn.destroy();
}

async function abortResponse(port: number): Promise<void> {
  const conn = await openConn(port);
  stats.aborted++;
  const req = random() < 0.5
    ? getStream()
    : postEcho(randInt(256 * 1024, 1024 * 1024), false);
  await conn.write(req.bytes).catch(() => {});
  const deadline = Date.now() + 5_000;
  while (conn.pending.length === 0 && !conn.ended && Date.now() < deadline) {
    await sleep(2);
  }
  conn.destroy();
}

const SCENARIOS: [string, number, (port: number) => Promise<void>][] = [
  ["keepalive", 30, keepalive],
  ["pipeline", 20, pipeline],
  ["slow", 6, slow],
  ["http10", 8, http10],
  ["fetch", 16, viaFetch],
  ["abort-req", 10, abortRequest],
  ["abort-res", 10, abortResponse],
];
const TOTAL_WEIGHT = SCENARIOS.reduce((s, [, w]) => s + w, 0);

function pickScenario(): [string, (port: number) => Promise<void>] {
  let r = random() * TOTAL_WEIGHT;
  for (const [name, w, fn] of SCENARIOS) {
    if ((r -= w) < 0) return [name, fn];
  }
  return [SCENARIOS[0][0], SCENARIOS[0][2]];
}

async function client(port: number, until: number): Promise<void> {
  while (Date.now() < until) {
    const [name, fn] = pickScenario();
    stats.byScenario[name] = (stats.byScenario[name] ?? 0) + 1;
    try {
      await fn(port);
    } catch (e) {
      // A failure to connect or write where none is expected.
      stats.lost++;
      problem(`${name}: ${(e as Error).message.slice(0, 200)}`);
    }
  }
}

// ---------------------------------------------------------------------------
// The server process and its memory

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolvePort(port));
    });
  });
}

function rssKiB(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function waitForServer(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      await res.text();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      throw new Error(
        `The server did not answer on port ${port} within ${ms} ms`,
      );
    }
    await sleep(100);
  }
}

const mib = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  rngState = (opts.seed >>> 0) || 1;
  const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  const bin = resolve(root, "node_modules/.bin", opts.runtime);
  const port = await freePort();
  const args = opts.runtime === "deno"
    ? [
      "run",
      "-A",
      "scripts/serve.ts",
      "--port",
      String(port),
      "--hostname",
      "127.0.0.1",
    ]
    : ["scripts/serve.ts", "--port", String(port), "--hostname", "127.0.0.1"];
  console.log(
    `soak: ${opts.runtime} scripts/serve.ts on 127.0.0.1:${port}, ${opts.duration} s, ${opts.clients} clients, seed ${opts.seed}`,
  );
  const child = spawn(bin, args, {
    cwd: root,
    stdio: ["ignore", "inherit", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((
    r,
  ) => child.on("exit", (code, signal) => r({ code, signal })));
  const pid = child.pid!;

  const samples: { t: number; kib: number }[] = [];
  let sampler: ReturnType<typeof setInterval> | undefined;
  let failed = false;
  const report: Record<string, unknown> = {
    runtime: opts.runtime,
    duration: opts.duration,
    clients: opts.clients,
    seed: opts.seed,
  };
  try {
    await waitForServer(port, 60_000);
    const started = Date.now();
    const take = () => {
      const kib = rssKiB(pid);
      if (kib !== null) samples.push({ t: (Date.now() - started) / 1000, kib });
    };
    take();
    sampler = setInterval(take, opts.sample * 1000);
    const until = started + opts.duration * 1000;
    let lastLog = started;
    const progress = setInterval(() => {
      const now = Date.now();
      if (now - lastLog < 30_000) return;
      lastLog = now;
      const last = samples.at(-1);
      console.log(
        `soak: ${
          Math.round((now - started) / 1000)
        } s: sent ${stats.sent}, verified ${stats.verified}, lost ${stats.lost}, wrong ${stats.wrong}, aborted ${stats.aborted}, RSS ${
          last ? mib(last.kib) : "?"
        }`,
      );
    }, 1000);
    await Promise.all(
      Array.from({ length: opts.clients }, () => client(port, until)),
    );
    clearInterval(progress);
    take();
    clearInterval(sampler);
    sampler = undefined;

    // The server must still answer after all that.
    stats.sent++;
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      const text = await res.text();
      stats.answered++;
      if (res.status === 200 && text === HELLO) stats.verified++;
      else stats.wrong++;
    } catch (e) {
      stats.lost++;
      problem(`final GET /: ${(e as Error).message}`);
    }
    const elapsed = (Date.now() - started) / 1000;

    // Memory: thirds of the samples after the warm-up.
    const after = samples.filter((s) => s.t >= opts.warmup);
    const third = Math.floor(after.length / 3);
    let memory: Record<string, unknown>;
    if (third < 2) {
      memory = {
        verdict: "too few samples after the warm-up to judge (run longer)",
        ok: true,
      };
    } else {
      const first = after.slice(0, third).map((s) => s.kib);
      const last = after.slice(after.length - third).map((s) => s.kib);
      const firstMax = Math.max(...first);
      const lastMin = Math.min(...last);
      const growth = (lastMin - firstMax) / firstMax * 100;
      const grew = growth > opts.maxGrowth && lastMin - firstMax > 16 * 1024;
      // Least-squares slope through the second half of the samples.
      const half = after.slice(Math.floor(after.length / 2));
      const n = half.length;
      const mt = half.reduce((a, s) => a + s.t, 0) / n;
      const mk = half.reduce((a, s) => a + s.kib, 0) / n;
      const slope = half.reduce((a, s) => a + (s.t - mt) * (s.kib - mk), 0) /
        Math.max(1e-9, half.reduce((a, s) => a + (s.t - mt) ** 2, 0));
      const rise = slope * (half[n - 1].t - half[0].t);
      const risePercent = rise / mk * 100;
      const rising = risePercent > opts.maxGrowth / 2 && rise > 8 * 1024;
      const ok = !(grew && rising);
      const change = `the last third's minimum (${mib(lastMin)}) is ${
        Math.abs(growth).toFixed(1)
      }% ${growth >= 0 ? "above" : "below"} the first third's maximum (${
        mib(firstMax)
      })`;
      const trend = `the second half's trend is ${rise >= 0 ? "+" : "-"}${
        mib(Math.abs(rise))
      } (${risePercent.toFixed(1)}%) over ${
        Math.round(half[n - 1].t - half[0].t)
      } s`;
      memory = {
        firstThirdMaxKiB: firstMax,
        lastThirdMinKiB: lastMin,
        growthPercent: Number(growth.toFixed(1)),
        secondHalfRiseKiB: Math.round(rise),
        secondHalfRisePercent: Number(risePercent.toFixed(1)),
        ok,
        verdict: !ok
          ? `GROWING: ${change}, and ${trend}`
          : grew
          ? `ok (grew, then flat): ${change}, but ${trend}`
          : `ok: ${change}; ${trend}`,
      };
    }
    const kibs = samples.map((s) => s.kib);
    Object.assign(report, {
      elapsedSeconds: Number(elapsed.toFixed(1)),
      ...stats,
      requestsPerSecond: Math.round(stats.sent / elapsed),
      rss: {
        startKiB: samples[0]?.kib,
        endKiB: samples.at(-1)?.kib,
        minKiB: Math.min(...kibs),
        maxKiB: Math.max(...kibs),
        samples: samples.length,
        warmupSeconds: opts.warmup,
        // Every tenth sample, for the record.
        series: samples.filter((_, i) => i % 10 === 0).map((
          s,
        ) => [Math.round(s.t), s.kib]),
      },
      memory,
      problems,
    });
    if (
      stats.lost > 0 || stats.wrong > 0 || stats.sent !== stats.verified ||
      !memory.ok
    ) failed = true;
  } catch (e) {
    failed = true;
    report.error = (e as Error).message;
  } finally {
    if (sampler) clearInterval(sampler);
    // process.kill, not child.kill: after child.kill() Deno's node:child_process
    // reports the signal as the cause of exit even when the child exits 0.
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // Already gone; the exit status says how.
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const exit = await exited;
    clearTimeout(timer);
    report.serverExit = exit;
    if (exit.code !== 0) {
      failed = true;
      report.serverStderr = stderr.slice(-2000);
    }
  }

  const rss = report.rss as {
    startKiB: number;
    endKiB: number;
    minKiB: number;
    maxKiB: number;
  } | undefined;
  console.log("\nsoak report");
  console.log(
    `  runtime          ${opts.runtime}, ${
      report.elapsedSeconds ?? "?"
    } s, ${opts.clients} clients`,
  );
  console.log(
    `  requests         sent ${stats.sent}, answered ${stats.answered}, verified ${stats.verified}, lost ${stats.lost}, wrong ${stats.wrong} (${
      report.requestsPerSecond ?? "?"
    }/s)`,
  );
  console.log(
    `  aborted on purpose ${stats.aborted}; connections ${stats.connections}`,
  );
  console.log(
    `  scenarios        ${
      Object.entries(stats.byScenario).map(([k, v]) => `${k} ${v}`).join(", ")
    }`,
  );
  if (rss) {
    console.log(
      `  server RSS       start ${mib(rss.startKiB)}, end ${
        mib(rss.endKiB)
      }, min ${mib(rss.minKiB)}, max ${mib(rss.maxKiB)}`,
    );
  }
  const memory = report.memory as { verdict: string } | undefined;
  if (memory) console.log(`  memory           ${memory.verdict}`);
  console.log(`  server exit      ${JSON.stringify(report.serverExit)}`);
  if (report.error) console.log(`  error            ${report.error}`);
  for (const p of problems) console.log(`  problem          ${p}`);
  if (report.serverStderr) {
    console.log(`  server stderr    ${report.serverStderr}`);
  }
  console.log(`  result           ${failed ? "FAIL" : "PASS"}`);
  if (opts.json) {
    writeFileSync(opts.json, JSON.stringify(report, null, 2) + "\n");
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
