/**
 * The servers under test, and how to start, check and stop one.
 *
 * Each server starts as the leader of a new process group, with its output in
 * a log file; stopping it signals the whole group.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { buildC, cBinary } from "./_build.ts";

/** Paths the servers need; `root` is the repository. */
export interface Paths {
  root: string;
  deno: string;
  bun: string;
  node: string;
  app: string;
}

/** The JavaScript runtimes the servers run on. */
export type Runtime = "deno" | "bun" | "node";

/** A server under test. */
export interface ServerSpec {
  /** Short name used on the command line (`--servers`). */
  id: string;
  /** Name in tables and charts. */
  label: string;
  /**
   * ymo is measured; peers are what it is compared with; a baseline is a
   * bound that is not a peer (no JavaScript), reported as its own ratio.
   */
  kind: "ymo" | "peer" | "baseline";
  /** The runtime that runs the handlers (none for a baseline). */
  runtime: Runtime | null;
  /** The only workloads this server runs (default: every one). */
  workloads?: string[];
  /** The command that serves the benchmark app. */
  command(paths: Paths, port: number, workers: number): string[];
  /**
   * Why this server cannot run here, or null when it can; builds what the
   * server needs first, if anything.
   */
  unavailable(paths: Paths): string | null;
}

function missing(path: string, what: string): string | null {
  return existsSync(path) ? null : `${what} not found at ${path}`;
}

function ymoMissing(root: string, runtime: string): string | null {
  return missing(join(root, "scripts/serve.ts"), "scripts/serve.ts") ??
    missing(
      join(root, "native/build/libymo.so"),
      "native/build/libymo.so (build it first)",
    ) ??
    missing(runtime, "runtime");
}

/**
 * ymo on Deno and on Bun from the checkout at `root` (this one when
 * undefined), serving the benchmark app; `id` and `label` get `suffix`.
 */
function ymoServers(root: string | undefined, suffix = ""): ServerSpec[] {
  const from = (p: Paths) => root ?? p.root;
  return [
    {
      id: `ymo-deno${suffix && `-${suffix}`}`,
      runtime: "deno",
      label: `ymo (Deno)${suffix && ` ${suffix}`}`,
      kind: "ymo",
      command: (p, port, workers) => [
        p.deno,
        "run",
        "-A",
        join(from(p), "scripts/serve.ts"),
        p.app,
        ...listen(port, workers),
      ],
      unavailable: (p) => ymoMissing(from(p), p.deno),
    },
    {
      id: `ymo-bun${suffix && `-${suffix}`}`,
      runtime: "bun",
      label: `ymo (Bun)${suffix && ` ${suffix}`}`,
      kind: "ymo",
      command: (p, port, workers) => [
        p.bun,
        join(from(p), "scripts/serve.ts"),
        p.app,
        ...listen(port, workers),
      ],
      unavailable: (p) => ymoMissing(from(p), p.bun),
    },
  ];
}

/**
 * ymo from another checkout (built with scripts/setup.sh), to measure a
 * change before and after in one interleaved run (`--base DIR`).
 */
export function baseServers(root: string): ServerSpec[] {
  return ymoServers(root, "base");
}

function listen(port: number, workers: number): string[] {
  const args = ["--port", String(port), "--hostname", "127.0.0.1"];
  if (workers > 1) args.push("--workers", String(workers));
  return args;
}

const here = new URL(".", import.meta.url).pathname;

/** Every server the harness knows, in report order. */
export const SERVERS: ServerSpec[] = [
  ...ymoServers(undefined),
  {
    id: "deno",
    runtime: "deno",
    label: "Deno.serve",
    kind: "peer",
    command: (p, port, workers) => [
      p.deno,
      "run",
      "-A",
      // Deno.serve's reusePort, used with several workers, is unstable.
      ...(workers > 1 ? ["--unstable-net"] : []),
      join(here, "serve_deno.ts"),
      ...listen(port, workers),
    ],
    unavailable: (p) => missing(p.deno, "deno"),
  },
  {
    id: "bun",
    runtime: "bun",
    label: "Bun.serve",
    kind: "peer",
    command: (p, port, workers) => [
      p.bun,
      join(here, "serve_bun.ts"),
      ...listen(port, workers),
    ],
    unavailable: (p) => missing(p.bun, "bun"),
  },
  {
    id: "node",
    runtime: "node",
    label: "node:http",
    kind: "peer",
    command: (p, port, workers) => [
      p.node,
      join(here, "app_node.mjs"),
      ...listen(port, workers),
    ],
    unavailable: (p) => missing(p.node, "node"),
  },
  {
    // The machine's limit: the same answers from one C thread on libev with
    // nothing else to do (see plain_libev.c). It runs the workloads whose
    // answers it knows; stream and cpu need JavaScript's work to mean
    // anything.
    id: "c-libev",
    runtime: null,
    label: "C libev (plain)",
    kind: "baseline",
    workloads: ["hello", "static", "echo", "16k"],
    command: (p, port, workers) => {
      return [cBinary(p.root, "plain_libev"), ...listen(port, workers)];
    },
    unavailable: (p) => buildC(p.root, "plain_libev"),
  },
];

/** A started server. */
export interface Running {
  spec: ServerSpec;
  port: number;
  pid: number;
  child: ChildProcess;
  log: string;
  exited: boolean;
}

/**
 * Starts `spec` on `port`, on the CPUs `cpus` only if given (taskset -c,
 * which execs the server, so its pid is the server's), with a workload's
 * `extraArgs` after its own; the process leads its own group.
 */
export function startServer(
  spec: ServerSpec,
  paths: Paths,
  port: number,
  workers: number,
  log: string,
  env: Record<string, string>,
  cpus?: string,
  extraArgs: string[] = [],
): Running {
  const serverCommand = [...spec.command(paths, port, workers), ...extraArgs];
  const [command, ...args] = cpus === undefined
    ? serverCommand
    : ["taskset", "-c", cpus, ...serverCommand];
  const fd = openSync(log, "w");
  const child = spawn(command, args, {
    cwd: paths.root,
    detached: true,
    stdio: ["ignore", fd, fd],
    env: {
      ...process.env,
      DENO_NO_UPDATE_CHECK: "1",
      DO_NOT_TRACK: "1",
      ...env,
    },
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`Could not start ${command}`);
  const running: Running = {
    spec,
    port,
    pid: child.pid,
    child,
    log,
    exited: false,
  };
  child.on("exit", () => running.exited = true);
  child.on("error", () => running.exited = true);
  return running;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The last lines of a server's log, for error messages. */
export function logTail(server: Running, lines = 15): string {
  try {
    return readFileSync(server.log, "utf8").trimEnd().split("\n").slice(-lines)
      .join("\n");
  } catch {
    return "";
  }
}

/**
 * Waits until `GET /` answers 200, polling every 50 ms, for at most
 * `timeoutMs`; throws with the server's log when it exits or never answers.
 * `base` is the server's origin (https for TLS, with `init` trusting its
 * certificate).
 */
export async function waitReady(
  server: Running,
  timeoutMs: number,
  base = `http://127.0.0.1:${server.port}`,
  init: RequestInit = {},
) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (server.exited) {
      throw new Error(
        `${server.spec.label} exited during start-up:\n${logTail(server)}`,
      );
    }
    try {
      const res = await fetch(`${base}/`, {
        ...init,
        signal: AbortSignal.timeout(1000),
      });
      await res.arrayBuffer();
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (error) {
      last = String(error);
    }
    await sleep(50);
  }
  throw new Error(
    `${server.spec.label} did not answer within ${timeoutMs} ms (${last}):\n` +
      logTail(server),
  );
}

/** Sends SIGTERM to the group, then SIGKILL after `graceMs`. */
export async function stopServer(server: Running, graceMs = 3000) {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-server.pid, sig);
    } catch {
      // The group is already gone.
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (!server.exited && Date.now() < deadline) await sleep(20);
  // Children (cluster workers, reusePort copies) may outlive the leader.
  signal("SIGKILL");
  const killDeadline = Date.now() + 5000;
  while (!server.exited && Date.now() < killDeadline) await sleep(20);
  if (!server.exited) {
    throw new Error(
      `${server.spec.label} (pid ${server.pid}) survived SIGKILL`,
    );
  }
}
