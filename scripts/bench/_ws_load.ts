/**
 * Runs ws_load (scripts/bench/ws_load.c, the WebSocket load client) and
 * parses its one-line JSON report into wrk's result shape, messages in the
 * place of requests, so the report treats both alike.
 *
 * @module
 */

import { spawn } from "node:child_process";
import type { WrkResult } from "./_wrk.ts";

/** One ws_load run. */
export interface WsLoadOptions {
  /** The ws_load binary (built by buildC(root, "ws_load")). */
  binary: string;
  /** echo: each connection sends and waits for its echo; fanout: one
   * publisher, `connections` subscribers. */
  mode: "echo" | "fanout";
  port: number;
  /** Echo connections, or fanout subscribers. */
  connections: number;
  /** ws_load's own options beyond these, e.g. ["--depth", "1"]. */
  args: string[];
  warmupSeconds: number;
  seconds: number;
  /** Run ws_load on these CPUs only (taskset -c), e.g. "0". */
  cpus?: string;
}

/** Called as the measured part of a run starts and ends, with ws_load's
 * process id. */
export interface WsLoadHooks {
  measuring(pid: number): void;
  measured(pid: number): void;
}

/** The ws_load command line for `options`. */
export function wsLoadArgs(options: WsLoadOptions): string[] {
  return [
    options.mode,
    "--port",
    String(options.port),
    options.mode === "echo" ? "--connections" : "--subscribers",
    String(options.connections),
    "--warmup",
    String(options.warmupSeconds),
    "--duration",
    String(options.seconds),
    ...options.args,
  ];
}

/**
 * Parses ws_load's JSON line. Throws when there is none (ws_load failed
 * before the end).
 */
export function parseWsLoad(text: string): WrkResult {
  const line = text.split("\n").find((l) => l.startsWith("{"));
  if (!line) throw new Error(`No result in ws_load output: ${text.trim()}`);
  const r = JSON.parse(line);
  return {
    requests: r.messages,
    seconds: r.seconds,
    requestsPerSec: r.messagesPerSec,
    latencyAvgUs: r.latencyAvgUs,
    latencyP50Us: r.latencyP50Us,
    latencyP75Us: r.latencyP75Us,
    latencyP90Us: r.latencyP90Us,
    latencyP99Us: r.latencyP99Us,
    latencyMaxUs: r.latencyMaxUs,
    // ws_load stops at the first error, so a result has none.
    socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: 0,
    bytesRead: r.bytesRead,
  };
}

/**
 * Runs ws_load, calling `hooks` as it reports the measured part's start and
 * end on stderr, and returns its stdout. Rejects with ws_load's error when it
 * fails; it is killed if it outlives its warm-up and duration by 30 s
 * (connecting, priming and closing take a few at most), so every run is
 * bounded.
 */
export function runWsLoad(
  options: WsLoadOptions,
  hooks: WsLoadHooks,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const [command, ...args] = options.cpus === undefined
      ? [options.binary, ...wsLoadArgs(options)]
      : ["taskset", "-c", options.cpus, options.binary, ...wsLoadArgs(options)];
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "", pending = "";
    const timer = setTimeout(
      () => child.kill("SIGKILL"),
      (options.warmupSeconds + options.seconds + 30) * 1000,
    );
    child.stdout.setEncoding("utf8").on("data", (text) => stdout += text);
    child.stderr.setEncoding("utf8").on("data", (text: string) => {
      stderr += text;
      pending += text;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        if (line === "ws_load: measuring") hooks.measuring(child.pid!);
        else if (line === "ws_load: measured") hooks.measured(child.pid!);
      }
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`ws_load failed: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(stdout);
      const why = stderr.trim().split("\n").filter((l) =>
        !/^ws_load: measur/.test(l)
      ).pop() ?? `exit ${code ?? signal}`;
      reject(
        new Error(`ws_load failed: ${signal ? `killed (${signal})` : why}`),
      );
    });
  });
}
