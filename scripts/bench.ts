/**
 * The ymo benchmark: wrk against ymo (on Deno and on Bun) and against
 * Deno.serve, Bun.serve and node:http, all serving the same app
 * (scripts/bench/app.ts; app_node.mjs for Node), over interleaved rounds.
 * The `static` workload also runs a plain C server on libev
 * (scripts/bench/plain_libev.c, built with gcc into bench/tmp/), the bound
 * for ymo's static routes. The WebSocket workloads, ws-echo and ws-fanout,
 * are measured by scripts/bench/ws_load.c (built the same way) instead of
 * wrk, against Deno.serve and Bun.serve only for now. The TLS workloads,
 * hello-tls, 16k-tls and handshake-tls, run wrk over https against ymo,
 * Deno.serve and Bun.serve, with a test certificate made by the `openssl`
 * command into bench/tmp/tls/ (scripts/bench/_tls.ts) and wrk's handshakes
 * counted by scripts/bench/wrk_tls.c, preloaded into wrk.
 *
 *   deno run -A scripts/bench.ts            # 3 rounds x 5 s, the full table
 *   deno run -A scripts/bench.ts --quick    # 1 round x 2 s, a smoke check
 *   deno run -A scripts/bench.ts --help
 *
 * Writes results.md, results.svg and results.json into --out (bench/ by
 * default; bench/tmp/quick/, which git ignores, with --quick). Needs wrk,
 * and gcc and libev for the C programs; openssl for the TLS workloads.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createServer } from "node:net";
import { Buffer } from "node:buffer";
import { gunzipSync } from "node:zlib";
import os from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import {
  BODY_16K,
  ECHO_BYTES,
  hashRounds,
  HELLO,
  JSON_16K,
  STREAM_CHUNK,
  STREAM_CHUNKS,
  WS_ECHO,
  WS_PUB,
  WS_SUB,
} from "./bench/_work.mjs";
import {
  canCountSyscalls,
  countSyscalls,
  type GroupSample,
  type MachineSample,
  processCpuSeconds,
  sampleGroup,
  sampleMachine,
} from "./bench/_proc.ts";
import {
  baselineGoal,
  type Cell,
  formatRps,
  formatTime,
  markdown,
  rateOf,
  type ReportInput,
  type RunRecord,
  summarize,
  svg,
  type WorkloadInfo,
} from "./bench/_report.ts";
import {
  baseServers,
  logTail,
  type Paths,
  type Running,
  type Runtime,
  SERVERS,
  type ServerSpec,
  startServer,
  stopServer,
  waitReady,
} from "./bench/_servers.ts";
import { parseWrk, runWrk, type WrkResult } from "./bench/_wrk.ts";
import { parseWsLoad, runWsLoad } from "./bench/_ws_load.ts";
import { buildC, cBinary } from "./bench/_build.ts";
import {
  ensureCertificate,
  negotiated,
  tlsFiles,
  trustingInit,
} from "./bench/_tls.ts";

const BENCH_DIR = dirname(new URL(import.meta.url).pathname);

/** Cores used on average by other processes above which a run is disturbed. */
const NOISE_CORES = 0.25;
const ROOT = resolve(BENCH_DIR, "..");

// ---------------------------------------------------------------- workloads

/** A request pattern, the route that answers it, and how to check an answer. */
interface Workload {
  id: string;
  title: string;
  /** Title in the chart, where space is short. */
  short: string;
  path: string;
  /** wrk Lua script, for requests other than a plain GET. */
  script?: string;
  /**
   * Sends one request and returns what is wrong with the answer, or null.
   * `cpuRounds` is what the server was told to do for `/cpu`; `init` is
   * what a fetch to `base` needs (for https, a client trusting the test CA).
   */
  check(
    base: string,
    cpuRounds: number,
    init: RequestInit,
  ): Promise<string | null>;
  /** Part of the default set (cpu waits for the scaling section). */
  byDefault: boolean;
  /** Arguments every server is started with for this workload. */
  serverArgs?: string[];
  /** The peers that run it (default: every one); ymo always does, unless
   * `ymoSkip` says why not. */
  peers?: string[];
  /** Why ymo does not run it yet; absent when ymo does. */
  ymoSkip?: string;
  /**
   * A WebSocket workload: run by ws_load (scripts/bench/ws_load.c) in this
   * mode, with these extra arguments, instead of wrk. Messages count as
   * requests.
   */
  ws?: { mode: "echo" | "fanout"; args: string[] };
  /** The connection counts it runs at, whatever --connections says. */
  connections?: number[];
  /**
   * An HTTPS workload, served with the test certificate (serverArgs carry
   * --cert and --key). With `newConnections`, every request goes on a new
   * connection (`Connection: close`) with a full handshake (wrk_tls.c), and
   * the rate counts handshakes.
   */
  tls?: { newConnections: boolean };
}

/**
 * Whether ymo serves the WebSocket routes of scripts/bench/_work.mjs: it does,
 * from app.ts's `websocket` handlers, so it needs no --websocket flag (which
 * only the peers' servers take).
 */
const YMO_SERVES_WEBSOCKET = true;

/** Why ymo does not run the WebSocket workloads, while it does not. */
const YMO_WEBSOCKET_SKIP = YMO_SERVES_WEBSOCKET
  ? undefined
  : "ymo does not serve WebSocket yet";

async function fetchBytes(url: string, init?: RequestInit) {
  const res = await fetch(url, {
    ...init,
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: new Uint8Array(await res.arrayBuffer()) };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function expectBody(
  status: number,
  body: Uint8Array,
  expected: Uint8Array,
): string | null {
  if (status !== 200) return `status ${status}, expected 200`;
  if (!sameBytes(body, expected)) {
    return `body of ${body.length} bytes differs from the expected ${expected.length}`;
  }
  return null;
}

const encoder = new TextEncoder();
const STREAM_BODY = new Uint8Array(STREAM_CHUNK.length * STREAM_CHUNKS);
for (let i = 0; i < STREAM_CHUNKS; i++) {
  STREAM_BODY.set(STREAM_CHUNK, i * STREAM_CHUNK.length);
}

/** A check that `GET path` answers 200 with `expected`, byte for byte. */
function checkGet(path: string, expected: Uint8Array): Workload["check"] {
  return async (base, _cpuRounds, init) => {
    const { status, body } = await fetchBytes(`${base}${path}`, init);
    return expectBody(status, body, expected);
  };
}

/** The test certificate's files, under bench/tmp/tls/ (see _tls.ts). */
const TLS = tlsFiles(ROOT);
/** What every server is started with for the TLS workloads: ymo through
 * scripts/serve.ts, the peers through serve_deno.ts and serve_bun.ts. */
const TLS_ARGS = ["--cert", TLS.cert, "--key", TLS.key];
/** The servers with TLS besides ymo: node:http and the C server have none. */
const TLS_PEERS = ["deno", "bun"];

/** One GET of /json16k with Accept-Encoding: gzip, by node:http, which
 * leaves the body as sent: it must be gzip and inflate to JSON_16K. */
function checkGzipJson(base: string): Promise<string | null> {
  return new Promise((resolve) => {
    const req = http.get(`${base}/json16k`, {
      headers: { "accept-encoding": "gzip" },
      timeout: 10_000,
    }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (part: Buffer) => parts.push(part));
      res.on("end", () => {
        if (res.statusCode !== 200) {
          return resolve(`status ${res.statusCode}, expected 200`);
        }
        const coding = res.headers["content-encoding"];
        if (coding !== "gzip") {
          return resolve(`Content-Encoding ${coding}, expected gzip`);
        }
        const body = gunzipSync(Buffer.concat(parts));
        resolve(expectBody(200, body, encoder.encode(JSON_16K)));
      });
    });
    req.on("error", (e) => resolve(`request failed: ${e}`));
    req.on("timeout", () => req.destroy(new Error("timed out")));
  });
}

const WORKLOADS: Workload[] = [
  {
    id: "hello",
    title: "GET / answering 13 bytes",
    short: "hello: GET / → 13 B",
    path: "/",
    byDefault: true,
    async check(base) {
      const { status, body } = await fetchBytes(`${base}/`);
      return expectBody(status, body, encoder.encode(HELLO));
    },
  },
  {
    id: "static",
    title:
      "GET /static answering 13 bytes from a static route (ymo: the C loop thread; Bun.serve: routes; others: fetch)",
    short: "static: GET /static → 13 B",
    path: "/static",
    byDefault: true,
    async check(base) {
      const { status, body } = await fetchBytes(`${base}/static`);
      return expectBody(status, body, encoder.encode(HELLO));
    },
  },
  {
    id: "echo",
    title: "POST /echo of 1 KiB, echoed back",
    short: "echo: POST 1 KiB → 1 KiB",
    path: "/echo",
    script: join(BENCH_DIR, "bench/echo.lua"),
    byDefault: true,
    async check(base) {
      const sent = crypto.getRandomValues(new Uint8Array(ECHO_BYTES));
      const { status, body } = await fetchBytes(`${base}/echo`, {
        method: "POST",
        body: sent,
        headers: { "content-type": "application/octet-stream" },
      });
      return expectBody(status, body, sent);
    },
  },
  {
    id: "16k",
    title: "GET /16k answering 16 KiB",
    short: "16k: GET → 16 KiB",
    path: "/16k",
    byDefault: true,
    async check(base) {
      const { status, body } = await fetchBytes(`${base}/16k`);
      return expectBody(status, body, BODY_16K);
    },
  },
  {
    id: "stream",
    title: "GET /stream, 1 MiB as a ReadableStream of 64 × 16 KiB",
    short: "stream: GET → 1 MiB in 64 chunks",
    path: "/stream",
    byDefault: true,
    async check(base) {
      const { status, body } = await fetchBytes(`${base}/stream`);
      return expectBody(status, body, STREAM_BODY);
    },
  },
  {
    id: "json16k",
    title:
      "GET /json16k answering ~16 KiB of JSON, gzip-compressed (ymo and Deno.serve: automaticCompression; Bun.serve has none)",
    short: "json16k: GET → 16 KiB JSON, gzip",
    path: "/json16k",
    script: join(BENCH_DIR, "bench/json16k.lua"),
    byDefault: false,
    serverArgs: ["--compress"],
    peers: ["deno"],
    check: checkGzipJson,
  },
  {
    id: "ws-echo",
    title:
      "WebSocket echo: 50 connections, each sending a 32-byte text message and waiting for its echo (Deno.upgradeWebSocket, Bun.serve websocket)",
    short: "ws-echo: 32 B text echo, msgs/s",
    path: WS_ECHO,
    byDefault: false,
    serverArgs: ["--websocket"],
    peers: ["deno", "bun"],
    ymoSkip: YMO_WEBSOCKET_SKIP,
    ws: { mode: "echo", args: ["--path", WS_ECHO, "--depth", "1"] },
    connections: [50],
    // ws_load checks every message it gets back, byte for byte.
    check: () => Promise.resolve(null),
  },
  {
    id: "ws-fanout",
    title:
      "WebSocket fan-out: 1 publisher, 1,000 subscribers, each 32-byte message sent to all, at most 4 in flight (Bun.serve: server.publish; Deno.serve: a loop over a Set of sockets)",
    short: "ws-fanout: 1 → 1,000 subs, msgs/s",
    path: WS_PUB,
    byDefault: false,
    serverArgs: ["--websocket"],
    peers: ["deno", "bun"],
    ymoSkip: YMO_WEBSOCKET_SKIP,
    ws: {
      mode: "fanout",
      args: ["--sub-path", WS_SUB, "--pub-path", WS_PUB, "--window", "4"],
    },
    connections: [1000],
    // ws_load checks that every subscriber gets every message, in order.
    check: () => Promise.resolve(null),
  },
  {
    id: "hello-tls",
    title:
      "GET / answering 13 bytes over HTTPS, keep-alive (Deno.serve: cert/key; Bun.serve: tls)",
    short: "hello-tls: GET / → 13 B, https",
    path: "/",
    byDefault: false,
    serverArgs: TLS_ARGS,
    peers: TLS_PEERS,
    tls: { newConnections: false },
    check: checkGet("/", encoder.encode(HELLO)),
  },
  {
    id: "16k-tls",
    title: "GET /16k answering 16 KiB over HTTPS, keep-alive",
    short: "16k-tls: GET → 16 KiB, https",
    path: "/16k",
    byDefault: false,
    serverArgs: TLS_ARGS,
    peers: TLS_PEERS,
    tls: { newConnections: false },
    check: checkGet("/16k", BODY_16K),
  },
  {
    id: "handshake-tls",
    title:
      "New TLS connections: GET / with Connection: close, each request on a new connection with a full handshake (handshakes/s)",
    short: "handshake-tls: full handshakes/s",
    path: "/",
    byDefault: false,
    serverArgs: TLS_ARGS,
    peers: TLS_PEERS,
    tls: { newConnections: true },
    check: checkGet("/", encoder.encode(HELLO)),
  },
  {
    id: "cpu",
    title: "GET /cpu, ~200 µs of synchronous SHA-256 in the handler",
    short: "cpu: GET → ~200 µs of hashing",
    path: "/cpu",
    byDefault: false,
    async check(base, cpuRounds) {
      const { status, body } = await fetchBytes(`${base}/cpu`);
      return expectBody(status, body, encoder.encode(hashRounds(cpuRounds)));
    },
  },
];

// ---------------------------------------------------------------- options

const HELP = `Usage: deno run -A scripts/bench.ts [options]

  --rounds N          rounds, servers interleaved within each (default 3)
  --duration S        seconds of each measured wrk run (default 5)
  --warmup S          seconds of wrk warm-up before each run, 0 for none (default 1)
  --connections LIST  wrk connection counts (default 50,256; ws-echo always
                      runs 50, ws-fanout 1,000 subscribers)
  --threads N         wrk threads (default 2)
  --servers LIST      of ${SERVERS.map((s) => s.id).join(",")} (default all;
                      c-libev, a plain C server, runs hello, static, echo and 16k;
                      the TLS workloads run ymo, deno and bun only)
  --workloads LIST    of ${WORKLOADS.map((w) => w.id).join(",")} (default ${
  WORKLOADS.filter((w) => w.byDefault).map((w) => w.id).join(",")
})
  --workers LIST      JS workers per server, e.g. 1,2,4 (default 1)
  --timeout S         wrk's per-request timeout (default 5)
  --start-timeout S   how long a server may take to answer GET / (default 30)
  --wait-idle S       before each run, wait up to S seconds for other processes
                      to use less than ${NOISE_CORES} cores (default 0: do not wait)
  --base DIR          also run ymo from the checkout DIR (another commit, built
                      with its scripts/setup.sh), labelled "base", interleaved
                      with this one: a change measured before and after
  --pin               pinned mode: each server on core 1 alone, wrk (one thread)
                      on core 0, so req/s is what one server core does; output
                      in bench/pinned/ by default
  --port N            first port; each server start takes the next free one (default 18100)
  --out DIR           where results.{md,svg,json} go (default bench/)
  --quick             1 round of 2 s, 1 s warm-up, output in bench/tmp/quick/
  --from FILE         only render FILE (a results.json) again, into its folder
  --deno PATH, --bun PATH, --node PATH   runtimes (default node_modules/.bin, PATH)
`;

function list(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

function positiveInt(name: string, text: string, allowZero = false): number {
  const value = Number(text.replace(/s$/, ""));
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new RangeError(
      `--${name} must be a whole number${allowZero ? "" : " above 0"}: ${text}`,
    );
  }
  return value;
}

function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

function runtime(flag: string | undefined, name: string): string {
  if (flag) return resolve(flag);
  const local = join(ROOT, "node_modules/.bin", name);
  if (existsSync(local)) return local;
  return findOnPath(name) ?? name;
}

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    rounds: { type: "string" },
    duration: { type: "string" },
    warmup: { type: "string" },
    connections: { type: "string" },
    threads: { type: "string" },
    servers: { type: "string" },
    workloads: { type: "string" },
    workers: { type: "string" },
    timeout: { type: "string" },
    "start-timeout": { type: "string" },
    "wait-idle": { type: "string" },
    port: { type: "string" },
    out: { type: "string" },
    from: { type: "string" },
    quick: { type: "boolean" },
    pin: { type: "boolean" },
    base: { type: "string" },
    deno: { type: "string" },
    bun: { type: "string" },
    node: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

if (flags.help) {
  console.log(HELP);
  process.exit(0);
}

const quick = flags.quick ?? false;
const pin = flags.pin ?? false;
if (pin && os.cpus().length < 2) {
  console.error(
    "--pin needs at least 2 cores: one for the server, one for wrk",
  );
  process.exit(1);
}
/** Where the server and wrk run in pinned mode. */
const SERVER_CPU = "1", WRK_CPU = "0";
const options = {
  rounds: positiveInt("rounds", flags.rounds ?? (quick ? "1" : "3")),
  duration: positiveInt("duration", flags.duration ?? (quick ? "2" : "5")),
  warmup: positiveInt("warmup", flags.warmup ?? "1", true),
  connections: list(flags.connections ?? "50,256").map((c) =>
    positiveInt("connections", c)
  ),
  threads: pin ? 1 : positiveInt("threads", flags.threads ?? "2"),
  workers: list(flags.workers ?? "1").map((w) => positiveInt("workers", w)),
  timeout: positiveInt("timeout", flags.timeout ?? "5"),
  startTimeout: positiveInt("start-timeout", flags["start-timeout"] ?? "30"),
  waitIdle: positiveInt("wait-idle", flags["wait-idle"] ?? "0", true),
  port: positiveInt("port", flags.port ?? "18100"),
  out: resolve(
    flags.out ??
      join(ROOT, quick ? "bench/tmp/quick" : pin ? "bench/pinned" : "bench"),
  ),
  pin,
};

function pick<T extends { id: string }>(
  what: string,
  all: T[],
  wanted: string | undefined,
  byDefault: (item: T) => boolean,
): T[] {
  if (wanted === undefined) return all.filter(byDefault);
  const ids = list(wanted);
  for (const id of ids) {
    if (!all.some((item) => item.id === id)) {
      throw new RangeError(
        `Unknown ${what}: ${id} (known: ${all.map((i) => i.id).join(", ")})`,
      );
    }
  }
  return all.filter((item) => ids.includes(item.id));
}

const picked = pick(
  "workload",
  WORKLOADS,
  flags.workloads,
  (w) => w.byDefault,
);
/**
 * Why the TLS workloads asked for cannot run here, or null: the test
 * certificate is made now (once per run, kept in bench/tmp/tls/ while it is
 * valid for another day), and wrk_tls.so built. Not checked with --from.
 */
const tlsUnavailable = !flags.from && picked.some((w) => w.tls)
  ? ensureCertificate(ROOT) ?? buildC(ROOT, "wrk_tls", "preload")
  : null;
const workloads = tlsUnavailable ? picked.filter((w) => !w.tls) : picked;
if (tlsUnavailable) {
  console.error(
    `Not running the TLS workloads (${
      picked.filter((w) => w.tls).map((w) => w.id).join(", ")
    }): ${tlsUnavailable}`,
  );
  if (workloads.length === 0) process.exit(1);
}
// The base's ymo servers come right after this checkout's, in report order.
const known = [
  ...SERVERS.filter((s) => s.kind === "ymo"),
  ...(flags.base ? baseServers(resolve(flags.base)) : []),
  ...SERVERS.filter((s) => s.kind !== "ymo"),
];
const asked = pick("server", known, flags.servers, () => true);
for (const workload of workloads) {
  if (workload.ymoSkip && asked.some((s) => s.kind === "ymo")) {
    console.error(`Not running ymo on ${workload.id}: ${workload.ymoSkip}`);
  }
}
const requested = asked
  .filter((spec) => {
    // A server limited to some workloads runs only when one of them does.
    if (workloads.some((w) => runs(spec, w))) return true;
    if (flags.servers !== undefined) {
      console.error(
        `Leaving out ${spec.label}: ${
          spec.workloads
            ? `it only runs ${spec.workloads.join(", ")}`
            : "none of the workloads asked for compares it"
        }`,
      );
    }
    return false;
  });

/** Whether `spec` runs `workload`. */
function runs(
  spec: ServerSpec,
  workload: { id: string; peers?: string[]; ymoSkip?: string },
): boolean {
  if (spec.workloads && !spec.workloads.includes(workload.id)) return false;
  if (spec.kind === "ymo") return workload.ymoSkip === undefined;
  return !workload.peers || workload.peers.includes(spec.id);
}

/** The connection counts `workload` runs at. */
function connectionsOf(workload: Workload): number[] {
  return workload.connections ?? options.connections;
}

/** `first`, then the other counts in `more`, each once: the report's
 * connection counts. */
function connectionCounts(first: number[], more: number[]): number[] {
  return [...new Set([...first, ...more])];
}

/** Writes results.md and results.svg for `input` into `dir`. */
function writeReport(
  input: ReportInput,
  dir: string,
): { md: string; cells: Cell[] } {
  const cells = summarize(input);
  const md = markdown(input, cells, "results.svg");
  writeFileSync(join(dir, "results.md"), md);
  writeFileSync(join(dir, "results.svg"), svg(input, cells));
  return { md, cells };
}

/**
 * ymo's requests/s ratios, for results.json: to the best peer and, where
 * the plain C server ran, to it (median, min and max over the rounds).
 */
function ratios(cells: Cell[]) {
  return cells.filter((c) => c.vsBest || c.vsBaseline).map((c) => ({
    server: c.server.id,
    workload: c.workload,
    connections: c.connections,
    workers: c.workers,
    ...(c.vsBest
      ? { rpsVsBestPeer: { ...c.vsBest.rps, peer: c.vsBest.bestPeer } }
      : {}),
    ...(c.vsBaseline
      ? {
        rpsVsBaseline: { ...c.vsBaseline.rps, baseline: c.vsBaseline.baseline },
      }
      : {}),
  }));
}

/** A workload as the report names it. */
function info(workload: Workload): WorkloadInfo {
  const { id, title, short } = workload;
  const unit = workload.ws
    ? "msg"
    : workload.tls?.newConnections
    ? "handshake"
    : "req";
  return { id, title, short, unit };
}

// --from: render a saved results.json again, without measuring anything.
if (flags.from) {
  const saved = JSON.parse(readFileSync(flags.from, "utf8"));
  const records: RunRecord[] = saved.records;
  const has = (key: "server" | "workload", id: string) =>
    records.some((r) => r[key] === id);
  const input: ReportInput = {
    records,
    servers: [...SERVERS, ...baseServers("")].filter((s) => has("server", s.id))
      .map(({ id, label, kind }) => ({ id, label, kind })),
    workloads: WORKLOADS.filter((w) => has("workload", w.id)).map(info),
    connections: connectionCounts(
      saved.options.connections,
      records.map((r) => r.connections),
    ),
    workers: saved.options.workers,
    rounds: Math.max(1, ...records.map((r) => r.round)),
    about: saved.about,
    skipped: saved.skipped,
    noiseCores: NOISE_CORES,
  };
  const dir = flags.out ? resolve(flags.out) : dirname(resolve(flags.from));
  writeReport(input, dir);
  console.error(`Wrote ${join(dir, "results.md")} and results.svg`);
  process.exit(0);
}

const paths: Paths = {
  root: ROOT,
  deno: runtime(flags.deno, "deno"),
  bun: runtime(flags.bun, "bun"),
  node: runtime(flags.node, "node"),
  app: join(BENCH_DIR, "bench/app.ts"),
};

const skipped: { label: string; reason: string }[] = [];
if (tlsUnavailable) {
  skipped.push({
    label: `the TLS workloads (${
      picked.filter((w) => w.tls).map((w) => w.id).join(", ")
    })`,
    reason: tlsUnavailable,
  });
}
const servers: ServerSpec[] = [];
// unavailable() also builds what a server needs (the plain C server).
for (const spec of requested) {
  const reason = spec.unavailable(paths);
  if (reason) {
    skipped.push({ label: spec.label, reason });
    console.error(`Skipping ${spec.label}: ${reason}`);
  } else {
    servers.push(spec);
  }
}
if (servers.length === 0) {
  console.error("No server can run; nothing to measure");
  process.exit(1);
}
if (workloads.some((w) => !w.ws) && !findOnPath("wrk")) {
  console.error("wrk not found on PATH: install it (apt-get install wrk)");
  process.exit(1);
}
if (workloads.some((w) => w.ws)) {
  const reason = buildC(ROOT, "ws_load");
  if (reason) {
    console.error(`Cannot build the WebSocket load client: ${reason}`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------- context

function firstLine(command: string, args: string[]): string {
  try {
    const out = execFileSync(command, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    });
    return out.trim().split("\n")[0];
  } catch (error) {
    // wrk -v prints its version and exits 1.
    const out = String((error as { stdout?: string }).stdout ?? "").trim();
    return out ? out.split("\n")[0] : "unknown";
  }
}

const RUNTIME_NAMES: Record<Runtime, string> = {
  deno: "Deno",
  bun: "Bun",
  node: "Node",
};

/**
 * SHA-256 rounds that take about 200 µs in each runtime, measured once per
 * runtime by scripts/bench/calibrate.mjs, so that every server on a runtime
 * is given the same work and each handler spends about 200 µs in it.
 */
const cpuRounds: Partial<Record<Runtime, number>> = {};
if (workloads.some((w) => w.id === "cpu")) {
  const script = join(BENCH_DIR, "bench/calibrate.mjs");
  const commands: Record<Runtime, string[]> = {
    deno: [paths.deno, "run", "-A", script],
    bun: [paths.bun, script],
    node: [paths.node, script],
  };
  const runtimes = servers.map((s) => s.runtime).filter((r) => r !== null);
  for (const runtime of new Set(runtimes)) {
    const [command, ...args] = commands[runtime];
    // The median of three processes: one calibration on a busy machine can
    // be off by a third.
    const tries = [0, 1, 2].map(() =>
      Number(firstLine(command, [...args, "200"]))
    ).sort((a, b) => a - b);
    const rounds = tries[1];
    if (!(rounds > 0)) {
      console.error(`Could not calibrate the cpu workload on ${runtime}`);
      process.exit(1);
    }
    cpuRounds[runtime] = rounds;
  }
}

/** Whether perf can count the servers' system calls on this machine. */
const countingSyscalls = canCountSyscalls();
if (!countingSyscalls) {
  console.error(
    "perf cannot count system calls here (apt-get install linux-perf, as " +
      "root): the syscalls/req column stays empty",
  );
}

/** The ymo commit measured, taken before the first run. */
const COMMIT = firstLine("git", [
  "-C",
  ROOT,
  "describe",
  "--always",
  "--dirty",
]);

/** How this harness was started, for the report. */
const HARNESS = process.versions.bun ? "bun" : "deno run -A";

function about(completedRounds: number): string[] {
  const cpus = os.cpus();
  const argv = process.argv.slice(2).join(" ");
  const wrk = `wrk -t${options.threads} -c<conns> -d${options.duration}s ` +
    `--timeout ${options.timeout}s --latency`;
  const lines = [
    `Generated ${
      new Date().toISOString().slice(0, 16).replace("T", " ")
    } UTC by ` +
    `\`${HARNESS} scripts/bench.ts${
      argv ? ` ${argv}` : ""
    }\` at ymo ${COMMIT}.`,
    `Machine: ${
      cpus[0]?.model.trim() ?? "unknown CPU"
    }, ${cpus.length} cores, ` +
    `Linux ${os.release()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB.`,
    `Runtimes: ${firstLine(paths.deno, ["--version"])}, bun ${
      firstLine(paths.bun, ["--version"])
    }, ` +
    `node ${firstLine(paths.node, ["--version"])}; ${
      firstLine("wrk", ["-v"]).replace(/\s*Copyright.*/, "")
    }.`,
    `Method: ${completedRounds} of ${options.rounds} round${
      options.rounds > 1 ? "s" : ""
    }; ` +
    `in each round every server runs every workload${
      servers.filter((s) => s.workloads).map((s) =>
        ` (${s.label}: only ${s.workloads!.join(", ")})`
      ).join("")
    }, the server order rotating from round to round. ` +
    `Each run starts a fresh server (its own process group), waits until \`GET /\` answers, ` +
    `checks one response of the workload byte for byte, warms up for ${options.warmup} s ` +
    `with the same load, then measures \`${wrk}\`.`,
    `CPU time/req: utime + stime from /proc/PID/stat of every process in the server's group ` +
    `(all threads) over the measured run only, divided by the requests wrk completed. ` +
    `Context switches/req: voluntary + involuntary switches of every thread of the group ` +
    `(/proc/PID/task/TID/status) over the measured run, per request. ` +
    (countingSyscalls
      ? "Syscalls/req: `perf stat -e raw_syscalls:sys_enter -p <the group's pids>` over " +
        "the measured run, per request (counting adds a little to each call, alike for every server). "
      : "Syscalls/req: not counted (perf unavailable). ") +
    `Peak RSS: VmHWM from /proc/PID/status summed over the group at the end of the run ` +
    `(a fresh process per run, so per workload), max over the rounds.`,
    (options.pin
      ? `Pinned mode: every server runs on core ${SERVER_CPU} alone (\`taskset -c ${SERVER_CPU}\`, ` +
        `all its threads) and wrk, with one thread, on core ${WRK_CPU}, so requests/s is what ` +
        `one server core does. `
      : `wrk and the server share this machine's ${cpus.length} cores, so absolute figures are ` +
        `lower than with a separate client: compare the servers with each other. `) +
    `"Other load" ` +
    `is the CPU time used during a run by processes other than the server, wrk and this ` +
    `harness, in cores (max over the rounds); above ${NOISE_CORES} the figures are disturbed.`,
  ];
  if (workloads.some((w) => w.id === "static")) {
    const baseline = servers.find((s) => s.kind === "baseline");
    lines.push(
      "static workload: ymo answers `GET /static` from a static route " +
        "(`serve({ static })`, in its C loop thread) and Bun.serve from its " +
        "`routes`, neither calling the handler; Deno.serve and node:http have " +
        "no such option and answer from the handler." +
        (baseline
          ? ` ${baseline.label} is scripts/bench/plain_libev.c built with ` +
            "`gcc -O2 -lev`: one C thread (one process per worker) answering " +
            "hello, static, echo and 16k with the same bytes as ymo; ymo's " +
            `ratio to it is the goal of static routes (at least ${
              baselineGoal("static")
            }×) and, through JavaScript, of hello, echo and 16k (at least ${
              baselineGoal("hello")
            }×).`
          : ""),
    );
  }
  const ws = workloads.filter((w) => w.ws);
  if (ws.length) {
    const ymoSkips = ws.filter((w) => w.ymoSkip);
    lines.push(
      `${
        ws.map((w) => w.id).join(" and ")
      }: measured by scripts/bench/ws_load.c instead of wrk, built with ` +
        "`gcc -O2 -lev`: one C thread on libev with non-blocking sockets, " +
        "masked frames, every message checked byte for byte. It connects " +
        `(ws-fanout: the subscribers, then the publisher), loads for the ` +
        `${options.warmup} s warm-up and then the measured ${options.duration} s ` +
        "in the same run, and the server's CPU time, system calls and " +
        "context switches are taken over the measured part only, per message. " +
        "ws-echo: messages echoed per second, latency from sending a message " +
        "to reading its echo. ws-fanout: messages delivered to subscribers " +
        "per second (each published message counts once per subscriber), " +
        "latency from publishing a message to a subscriber reading it; the " +
        "publisher keeps a small window of messages in flight, a message " +
        "leaving it once every subscriber has it, and every subscriber must " +
        "get every message in order. The peers serve these routes only when " +
        "started with `--websocket`, so the HTTP workloads pay nothing for them." +
        (ymoSkips.length
          ? ` ymo is not run on ${ymoSkips.map((w) => w.id).join(", ")}: ${
            ymoSkips[0].ymoSkip
          }.`
          : ""),
    );
  }
  const tls = workloads.filter((w) => w.tls);
  if (tls.length) lines.push(...aboutTls(tls));
  if (Object.keys(cpuRounds).length) {
    lines.push(
      `cpu workload: SHA-256 rounds per request calibrated to ~200 µs per runtime: ` +
        Object.entries(cpuRounds).map(([r, n]) =>
          `${RUNTIME_NAMES[r as Runtime]} ${n}`
        )
          .join(", ") +
        ".",
    );
  }
  return lines;
}

/** The method text of the TLS workloads, with what wrk did in this run. */
function aboutTls(tls: Workload[]): string[] {
  const ids = tls.map((w) => w.id).join(", ");
  const handshakeRuns = records.filter((r) =>
    r.workload === "handshake-tls" && r.wrk?.tlsHandshakes
  );
  const sum = (key: "full" | "resumed") =>
    handshakeRuns.reduce((n, r) => n + r.wrk!.tlsHandshakes![key], 0);
  const lines = [
    `${ids}: wrk over https (its OpenSSL ${
      firstLine("openssl", ["version"]).replace(/^OpenSSL\s+/, "").split(
        " ",
      )[0]
    }, no certificate verification, no ALPN, so HTTP/1.1) against ymo ` +
    "(scripts/serve.ts `--cert --key`), Deno.serve (`cert`, `key`) and " +
    "Bun.serve (`tls: { cert, key }`); node:http and the C server do not run " +
    "them. Certificate: a test CA and a leaf for 127.0.0.1 and localhost, " +
    "both ECDSA P-256, made by the `openssl` command into bench/tmp/tls/ " +
    "when missing (scripts/bench/_tls.ts); the check before each run fetches " +
    "over https trusting that CA. Negotiated with OpenSSL's defaults, as " +
    "wrk does (`openssl s_client`): " +
    (Object.entries(negotiatedBy).map(([label, what]) => `${label} ${what}`)
      .join("; ") || "not measured") +
    ". wrk runs with scripts/bench/wrk_tls.c preloaded, which counts its " +
    "handshakes, full and resumed, and checks them: hello-tls and 16k-tls " +
    "keep each connection open, one handshake per connection.",
  ];
  if (tls.some((w) => w.tls?.newConnections)) {
    lines.push(
      "handshake-tls: the rate column is new TLS connections per second, each " +
        "a full handshake carrying one `GET /` with `Connection: close`; CPU " +
        "time, syscalls and switches are per handshake (with its request). " +
        "wrk alone would not measure that: it keeps one SSL object per " +
        "connection and calls SSL_clear() to reconnect, which keeps the last " +
        "session, so every handshake after a connection's first offers " +
        "resumption, which a server that issues tickets accepts. " +
        (Object.keys(stockWrkBy).length
          ? "Measured here, before each server's first handshake-tls run, " +
            "stock wrk (wrk_tls.so only counting) at 4 connections for 1 s: " +
            Object.entries(stockWrkBy).map(([label, c]) =>
              `${label} ${c.full.toLocaleString("en-US")} full and ${
                c.resumed.toLocaleString("en-US")
              } resumed`
            ).join("; ") + ". "
          : "") +
        "wrk_tls.so, with " +
        "YMO_BENCH_TLS_FRESH=1, drops that session in SSL_clear() " +
        "(SSL_set_session(ssl, NULL)), so every handshake is full; a resumed " +
        "one would be flagged. " +
        (handshakeRuns.length
          ? `In these runs wrk completed ${
            sum("full").toLocaleString("en-US")
          } full and ${
            sum("resumed").toLocaleString("en-US")
          } resumed handshakes. `
          : "") +
        "ymo and Deno.serve answer `Connection: close` with the same header " +
        "and wrk closes; Bun.serve closes without the header, which wrk " +
        "counts as a read error and then reconnects: such read errors are " +
        "not reported as errors while every handshake but those in flight at " +
        "the end got its response.",
    );
  }
  return lines;
}

// ---------------------------------------------------------------- running

let nextPort = options.port;

function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once("error", () => done(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => done(true)));
  });
}

async function freePort(): Promise<number> {
  for (let tries = 0; tries < 1000; tries++) {
    const port = nextPort++;
    if (nextPort > 60000) nextPort = options.port;
    if (await portIsFree(port)) return port;
  }
  throw new Error("No free port found");
}

const logDir = join(
  ROOT,
  "bench/tmp/logs",
  new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-"),
);
mkdirSync(logDir, { recursive: true });
mkdirSync(options.out, { recursive: true });

let current: Running | null = null;

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * Waits, for at most --wait-idle seconds, until processes other than this
 * harness have used at most NOISE_CORES over one second.
 */
async function waitForIdle(): Promise<void> {
  const deadline = Date.now() + options.waitIdle * 1000;
  while (Date.now() < deadline) {
    const before = sampleMachine();
    await sleep(1000);
    const after = sampleMachine();
    const others = after.busySeconds - before.busySeconds -
      (after.selfAndReapedSeconds - before.selfAndReapedSeconds);
    if (others <= NOISE_CORES) return;
  }
}
const records: RunRecord[] = [];

/** Fetch options trusting the test CA, made on first use. */
let tlsInit: RequestInit | undefined;

/** What each server negotiated with OpenSSL's defaults, by label. */
const negotiatedBy: Record<string, string> = {};

/**
 * What stock wrk does on handshake-tls, by server label: its handshakes,
 * full and resumed, in a 1 s probe at 4 connections without
 * YMO_BENCH_TLS_FRESH (wrk_tls.so only counting).
 */
const stockWrkBy: Record<string, { full: number; resumed: number }> = {};

/** Environment for wrk on a TLS workload: wrk_tls.so preloaded, to count
 * the handshakes and, for new connections, to make each one full. */
function wrkTlsEnv(workload: Workload): Record<string, string> | undefined {
  if (!workload.tls) return undefined;
  return {
    LD_PRELOAD: cBinary(ROOT, "wrk_tls", "preload"),
    ...(workload.tls.newConnections ? { YMO_BENCH_TLS_FRESH: "1" } : {}),
  };
}

/**
 * What is wrong with a TLS run's handshakes, given wrk's result; and
 * whether wrk's read errors are the server closing each connection after
 * its response (Bun.serve closes without a `Connection: close` header, which
 * wrk counts as a read error before it reconnects).
 */
function tlsProblems(
  workload: Workload,
  result: WrkResult,
  connections: number,
): { flags: string[]; readErrorsAreCloses: boolean } {
  const counts = result.tlsHandshakes;
  if (!workload.tls) return { flags: [], readErrorsAreCloses: false };
  if (!counts) {
    return {
      flags: ["wrk_tls.so reported no handshake counts"],
      readErrorsAreCloses: false,
    };
  }
  const handshakes = counts.full + counts.resumed;
  const flags: string[] = [];
  if (!workload.tls.newConnections) {
    // Each connection connects once; more handshakes mean reconnections.
    if (handshakes > connections) {
      flags.push(
        `${handshakes} TLS handshakes over ${connections} keep-alive connections`,
      );
    }
    return { flags, readErrorsAreCloses: false };
  }
  if (counts.resumed > 0) {
    flags.push(`${counts.resumed} resumed TLS handshakes`);
  }
  if (handshakes < result.requests) {
    flags.push(
      `connections kept alive: ${result.requests} responses over ${handshakes} handshakes`,
    );
  }
  // Every handshake but those still waiting at the end got its response.
  const readErrorsAreCloses = handshakes <= result.requests + connections &&
    result.socketErrors.read <= handshakes;
  return { flags, readErrorsAreCloses };
}

async function measure(
  spec: ServerSpec,
  workload: Workload,
  connections: number,
  workers: number,
  round: number,
): Promise<RunRecord> {
  const record: RunRecord = {
    round,
    server: spec.id,
    workload: workload.id,
    connections,
    workers,
    flags: [],
  };
  await waitForIdle();
  const port = await freePort();
  const base = `${workload.tls ? "https" : "http"}://127.0.0.1:${port}`;
  const init = workload.tls ? tlsInit ??= trustingInit(TLS.ca) : {};
  const log = join(
    logDir,
    `${spec.id}-${workload.id}-c${connections}-w${workers}-r${round}.log`,
  );
  const rounds = spec.runtime ? cpuRounds[spec.runtime] ?? 0 : 0;
  const env: Record<string, string> = rounds
    ? { YMO_BENCH_CPU_ROUNDS: String(rounds) }
    : {};
  const server = current = startServer(
    spec,
    paths,
    port,
    workers,
    log,
    env,
    options.pin ? SERVER_CPU : undefined,
    spec.kind === "ymo"
      ? workload.serverArgs?.filter((arg) => arg !== "--websocket")
      : workload.serverArgs,
  );
  try {
    await waitReady(server, options.startTimeout * 1000, base, init);
    const wrong = await workload.check(base, rounds, init).catch((e) =>
      `request failed: ${e}`
    );
    if (wrong) record.flags.push(`bad answer to ${workload.path}: ${wrong}`);
    if (workload.tls && !(spec.label in negotiatedBy)) {
      negotiatedBy[spec.label] = negotiated(port, TLS.ca) ?? "unknown";
    }
    if (workload.tls?.newConnections && !(spec.label in stockWrkBy)) {
      const probe = await runWrk({
        url: `${base}${workload.path}`,
        threads: 1,
        connections: 4,
        seconds: 1,
        timeoutSeconds: options.timeout,
        headers: ["Connection: close"],
        cpus: options.pin ? WRK_CPU : undefined,
        env: { LD_PRELOAD: cBinary(ROOT, "wrk_tls", "preload") },
      });
      const counts = parseWrk(probe).tlsHandshakes;
      if (counts) stockWrkBy[spec.label] = counts;
    }
    // The server and the machine, sampled as the measured run starts and ends.
    let groupBefore: GroupSample | undefined,
      groupAfter: GroupSample | undefined;
    let machineBefore: MachineSample | undefined,
      machineAfter: MachineSample | undefined;
    let syscalls: Promise<number | null> = Promise.resolve(null);
    const started = () => {
      groupBefore = sampleGroup(server.pid);
      machineBefore = sampleMachine();
      if (countingSyscalls) {
        syscalls = countSyscalls(groupBefore.pids, options.duration);
      }
    };
    const ended = () => {
      machineAfter = sampleMachine();
      groupAfter = sampleGroup(server.pid);
    };
    // CPU time of a load client still running at the end (ws_load, which
    // warms up and measures in one run), not other load.
    let clientSeconds = 0;
    if (workload.ws) {
      let clientBefore = 0;
      const output = await runWsLoad({
        binary: cBinary(ROOT, "ws_load"),
        mode: workload.ws.mode,
        port,
        connections,
        args: workload.ws.args,
        warmupSeconds: options.warmup,
        seconds: options.duration,
        cpus: options.pin ? WRK_CPU : undefined,
      }, {
        measuring(pid) {
          started();
          clientBefore = processCpuSeconds(pid);
        },
        measured(pid) {
          clientSeconds = processCpuSeconds(pid) - clientBefore;
          ended();
        },
      });
      record.wrk = parseWsLoad(output);
    } else {
      const wrk = {
        url: `${base}${workload.path}`,
        threads: options.threads,
        connections,
        seconds: options.warmup,
        timeoutSeconds: options.timeout,
        script: workload.script,
        headers: workload.tls?.newConnections
          ? ["Connection: close"]
          : undefined,
        cpus: options.pin ? WRK_CPU : undefined,
        env: wrkTlsEnv(workload),
      };
      if (options.warmup > 0) await runWrk(wrk);
      started();
      const output = await runWrk({ ...wrk, seconds: options.duration });
      ended();
      record.wrk = parseWrk(output);
    }
    if (!groupBefore || !groupAfter || !machineBefore || !machineAfter) {
      throw new Error("the load client never reported its measured run");
    }
    const result = record.wrk;
    const calls = await syscalls;
    if (result.requests > 0) {
      if (calls !== null) record.syscallsPerRequest = calls / result.requests;
      record.switchesPerRequest = (groupAfter.switches - groupBefore.switches) /
        result.requests;
    }
    const cpu = record.cpuSeconds = groupAfter.cpuSeconds -
      groupBefore.cpuSeconds;
    record.cpuUsPerRequest = result.requests > 0
      ? (cpu * 1e6) / result.requests
      : NaN;
    record.peakRssKiB = groupAfter.peakRssKiB;
    // Everything busy on the machine except the server, the load client and
    // this harness.
    const others = machineAfter.busySeconds - machineBefore.busySeconds - cpu -
      clientSeconds -
      (machineAfter.selfAndReapedSeconds - machineBefore.selfAndReapedSeconds);
    record.otherCores = Math.max(0, others / result.seconds);
    const tls = tlsProblems(workload, result, connections);
    record.flags.push(...tls.flags);
    const e = {
      ...result.socketErrors,
      ...(tls.readErrorsAreCloses ? { read: 0 } : {}),
    };
    if (e.connect + e.read + e.write + e.timeout > 0) {
      record.flags.push(
        `socket errors: connect ${e.connect}, read ${e.read}, write ${e.write}, timeout ${e.timeout}`,
      );
    }
    if (result.non2xx > 0) {
      record.flags.push(`non-2xx responses: ${result.non2xx}`);
    }
    if (result.requests === 0) record.flags.push("no request completed");
    if (server.exited) {
      record.flags.push(`server exited during the run: ${logTail(server, 5)}`);
    }
    if (result.requests < connections / 4) {
      // Requests still waiting when wrk stops count neither as answered nor as
      // timeouts, so a server that stalls shows up only here: fewer responses
      // than one for every fourth connection.
      record.flags.push(
        `stalled: ${result.requests} responses over ${connections} connections in ${result.seconds} s`,
      );
    }
  } catch (error) {
    record.flags.push(`run failed: ${(error as Error).message.split("\n")[0]}`);
    console.error(`  ${(error as Error).message}\n  log: ${log}`);
  } finally {
    await stopServer(server);
    current = null;
  }
  return record;
}

function describe(record: RunRecord, workload: Workload): string {
  const w = record.wrk;
  // Requests, or WebSocket messages.
  const per = info(workload).unit;
  const figures = w
    ? `${formatRps(w.requestsPerSec)} ${rateOf(info(workload))}, p50 ${
      formatTime(w.latencyP50Us)
    }, ` +
      `p99 ${formatTime(w.latencyP99Us)}, ${
        (record.cpuUsPerRequest ?? NaN).toFixed(1)
      } µs CPU/${per}, ${
        (record.syscallsPerRequest ?? NaN).toFixed(2)
      } syscalls/${per}, ${
        (record.switchesPerRequest ?? NaN).toFixed(2)
      } switches/${per}, ` +
      `${((record.peakRssKiB ?? 0) / 1024).toFixed(0)} MiB` +
      (w.tlsHandshakes
        ? `, TLS handshakes ${w.tlsHandshakes.full} full, ${w.tlsHandshakes.resumed} resumed` +
          (w.socketErrors.read ? `, ${w.socketErrors.read} read errors` : "")
        : "")
    : "no result";
  const noise = (record.otherCores ?? 0) > NOISE_CORES
    ? ` (other load ${record.otherCores!.toFixed(2)} cores)`
    : "";
  return `${figures}${noise}${
    record.flags.length ? `  ⚠ ${record.flags.join("; ")}` : ""
  }`;
}

let completedRounds = 0;

function report(): string {
  const input: ReportInput = {
    records,
    servers: servers.map(({ id, label, kind }) => ({ id, label, kind })),
    workloads: workloads.map(info),
    connections: connectionCounts([], workloads.flatMap(connectionsOf)),
    workers: options.workers,
    rounds: Math.max(1, completedRounds),
    about: about(completedRounds),
    skipped,
    noiseCores: NOISE_CORES,
  };
  const { md, cells } = writeReport(input, options.out);
  writeFileSync(
    join(options.out, "results.json"),
    JSON.stringify(
      {
        options,
        cpuRounds,
        about: input.about,
        skipped,
        ratios: ratios(cells),
        records,
      },
      null,
      1,
    ) + "\n",
  );
  return md;
}

let interrupted = false;
process.on("SIGINT", () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  console.error(
    "\nInterrupted: stopping the server and writing what was measured",
  );
  if (current) {
    try {
      process.kill(-current.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  report();
  process.exit(130);
});

const perRound = workloads.reduce(
  (sum, w) =>
    sum + servers.filter((s) => runs(s, w)).length * connectionsOf(w).length,
  0,
) * options.workers.length;
const estimate = options.rounds * perRound *
  (options.duration + options.warmup + 1);
console.error(
  `Benchmark: ${servers.map((s) => s.label).join(", ")}; ` +
    `${workloads.map((w) => w.id).join(", ")}; ${
      connectionCounts([], workloads.flatMap(connectionsOf)).join("/")
    } connections; ` +
    `${options.rounds} round(s) of ${perRound} runs, about ${
      Math.ceil(estimate / 60)
    } min. ` +
    `Server logs: ${logDir}`,
);

for (let round = 1; round <= options.rounds; round++) {
  // Rotate the server order so that no server always runs first or last.
  const shift = (round - 1) % servers.length;
  const order = [...servers.slice(shift), ...servers.slice(0, shift)];
  let n = 0;
  for (const workload of workloads) {
    for (const connections of connectionsOf(workload)) {
      for (const workers of options.workers) {
        for (const spec of order.filter((s) => runs(s, workload))) {
          n++;
          const record = await measure(
            spec,
            workload,
            connections,
            workers,
            round,
          );
          records.push(record);
          console.error(
            `[round ${round}/${options.rounds} ${n}/${perRound}] ${workload.id} c${connections}` +
              `${
                options.workers.length > 1 ? ` w${workers}` : ""
              } ${spec.label}: ${describe(record, workload)}`,
          );
        }
      }
    }
  }
  completedRounds = round;
  report();
}

console.log(report());
console.error(
  `Wrote ${
    relative(process.cwd(), join(options.out, "results.md")) || "results.md"
  }, ` +
    "results.svg and results.json",
);
