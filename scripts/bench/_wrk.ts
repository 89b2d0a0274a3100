/**
 * Runs wrk and parses its `--latency` report, and the handshake counts of
 * wrk_tls.so (scripts/bench/wrk_tls.c) when wrk runs with it.
 *
 * @module
 */

import { execFile } from "node:child_process";
import process from "node:process";

/** One wrk run, parsed. Times in microseconds. */
export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSec: number;
  latencyAvgUs: number;
  latencyP50Us: number;
  latencyP75Us: number;
  latencyP90Us: number;
  latencyP99Us: number;
  latencyMaxUs: number;
  socketErrors: {
    connect: number;
    read: number;
    write: number;
    timeout: number;
  };
  non2xx: number;
  bytesRead: number;
  /** TLS handshakes wrk completed, when it ran with wrk_tls.so. */
  tlsHandshakes?: { full: number; resumed: number };
}

const TIME_UNITS: Record<string, number> = {
  us: 1,
  ms: 1e3,
  s: 1e6,
  m: 60e6,
  h: 3600e6,
};

const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KB: 1024,
  MB: 1024 ** 2,
  GB: 1024 ** 3,
  TB: 1024 ** 4,
};

/** Parses a wrk duration such as `487.06us`, `1.20ms` or `2.00s` into us. */
export function parseTime(text: string): number {
  const match = text.match(/^([\d.]+)(us|ms|s|m|h)$/);
  if (!match) throw new Error(`Unrecognised wrk time: ${text}`);
  return Number(match[1]) * TIME_UNITS[match[2]];
}

/** Parses a wrk size such as `60.00MB` into bytes. */
export function parseSize(text: string): number {
  const match = text.match(/^([\d.]+)([KMGT]?B)$/);
  if (!match) throw new Error(`Unrecognised wrk size: ${text}`);
  return Number(match[1]) * SIZE_UNITS[match[2]];
}

/**
 * Parses the text wrk prints with `--latency`. Throws when the report has no
 * request rate (wrk could not connect, or was killed).
 */
export function parseWrk(text: string): WrkResult {
  const rate = text.match(/^Requests\/sec:\s+([\d.]+)/m);
  const total = text.match(
    /^\s*(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read/m,
  );
  if (!rate || !total) {
    throw new Error(`No result in wrk output: ${text.trim().slice(-300)}`);
  }
  const latency = text.match(
    /^\s*Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)/m,
  );
  const percentile = (p: number): number => {
    const m = text.match(new RegExp(`^\\s*${p}%\\s+([\\d.]+\\w+)`, "m"));
    return m ? parseTime(m[1]) : NaN;
  };
  const errors = text.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  const non2xx = text.match(/Non-2xx or 3xx responses: (\d+)/);
  const handshakes = text.match(/^TLS handshakes: (\d+) full, (\d+) resumed/m);
  return {
    requests: Number(total[1]),
    seconds: parseTime(total[2]) / 1e6,
    requestsPerSec: Number(rate[1]),
    latencyAvgUs: latency ? parseTime(latency[1]) : NaN,
    latencyMaxUs: latency ? parseTime(latency[3]) : NaN,
    latencyP50Us: percentile(50),
    latencyP75Us: percentile(75),
    latencyP90Us: percentile(90),
    latencyP99Us: percentile(99),
    socketErrors: {
      connect: errors ? Number(errors[1]) : 0,
      read: errors ? Number(errors[2]) : 0,
      write: errors ? Number(errors[3]) : 0,
      timeout: errors ? Number(errors[4]) : 0,
    },
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    bytesRead: parseSize(total[3]),
    ...(handshakes
      ? {
        tlsHandshakes: {
          full: Number(handshakes[1]),
          resumed: Number(handshakes[2]),
        },
      }
      : {}),
  };
}

/** Options of one wrk run. */
export interface WrkOptions {
  url: string;
  threads: number;
  connections: number;
  seconds: number;
  timeoutSeconds: number;
  script?: string;
  /** Request headers, as `Name: value`. */
  headers?: string[];
  /** Run wrk on these CPUs only (taskset -c), e.g. "0". */
  cpus?: string;
  /** Variables added to wrk's environment (LD_PRELOAD of wrk_tls.so). */
  env?: Record<string, string>;
}

/** The wrk command line for `options`. */
export function wrkArgs(options: WrkOptions): string[] {
  const args = [
    `-t${Math.min(options.threads, options.connections)}`,
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    `--timeout`,
    `${options.timeoutSeconds}s`,
    "--latency",
  ];
  for (const header of options.headers ?? []) args.push("-H", header);
  if (options.script) args.push("-s", options.script);
  args.push(options.url);
  return args;
}

/**
 * Runs wrk and returns its raw output, stdout then stderr (where wrk_tls.so
 * writes its counts). wrk is killed if it outlives its own duration by 15 s,
 * so every run is bounded.
 */
export function runWrk(options: WrkOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const [command, args] = options.cpus === undefined
      ? ["wrk", wrkArgs(options)]
      : ["taskset", ["-c", options.cpus, "wrk", ...wrkArgs(options)]];
    execFile(command, args, {
      timeout: (options.seconds + 15) * 1000,
      killSignal: "SIGKILL",
      maxBuffer: 1 << 20,
      env: { ...process.env, ...options.env },
    }, (error, stdout, stderr) => {
      if (error && !stdout.includes("Requests/sec")) {
        reject(new Error(`wrk failed: ${(stderr || error.message).trim()}`));
      } else {
        resolve(`${stdout}${stderr}`);
      }
    });
  });
}
