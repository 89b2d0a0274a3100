/**
 * Child processes, free ports and temporary folders for the tests that run
 * whole programs: the package test (a user's project on each runtime), the
 * nginx test and the SO_REUSEPORT test. Built on `node:` modules so it runs
 * under both Deno and Bun.
 *
 * Every wait here is bounded, and every child is killed and reaped by the
 * test that started it, so a hung child fails one test instead of the run.
 *
 * @module
 */

import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { isDeno } from "./_shim.ts";

/** The repository root (the folder above tests/). */
export const ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** How long a child may take to print what a test waits for. */
export const CHILD_TIMEOUT_MS = 20_000;

/** The signals the tests send. */
export type Signal = "SIGTERM" | "SIGKILL" | "SIGQUIT" | "SIGINT";

/** How a child ended. */
export interface Exit {
  code: number | null;
  signal: string | null;
}

/** A running child process whose output is collected. */
export interface Child {
  readonly pid: number;
  /** Everything the child wrote to stdout so far. */
  stdout(): string;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
  /**
   * Waits until stdout (or `stream`) matches `pattern`; rejects if the child
   * exits first or `timeoutMs` passes, with both output streams in the
   * message.
   */
  waitFor(
    pattern: RegExp,
    timeoutMs?: number,
    stream?: "stdout" | "stderr",
  ): Promise<RegExpExecArray>;
  /** Resolves once the child has exited and its output streams closed. */
  readonly exited: Promise<Exit>;
  /** Waits for the exit, up to `timeoutMs`; rejects on timeout. */
  waitExit(timeoutMs?: number): Promise<Exit>;
  /** Sends a signal unless the child has exited. */
  kill(signal?: Signal): void;
  /** Kills the child (SIGKILL) if it still runs, and waits until it is reaped. */
  stop(): Promise<void>;
  /** Both output streams, labelled, for assertion messages. */
  output(): string;
}

/** Options of {@linkcode startChild}. */
export interface ChildOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
}

/** The few things a test does with an OS process, on either runtime. */
interface Process {
  readonly pid: number;
  /** Sends a signal; a no-op once the process has exited. */
  kill(signal: Signal): void;
}

/** What a {@linkcode Process} reports back. */
interface ProcessEvents {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Called once, after the exit and after both output streams ended. */
  closed(exit: Exit): void;
}

/**
 * Starts a process with `node:child_process` (Bun). Not used on Deno: Deno
 * 2.9.6's `node:child_process` reports a child that was sent SIGTERM as killed
 * by it even when the child handled the signal and exited with code 0.
 */
function spawnNode(
  command: string,
  args: string[],
  options: ChildOptions,
  events: ProcessEvents,
): Process {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let done = false;
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stdout!.on("data", events.stdout);
  child.stderr!.on("data", events.stderr);
  // "close" comes after "exit" and after both streams have ended.
  child.on("close", (code, signal) => {
    done = true;
    events.closed({ code, signal });
  });
  child.on("error", (error) => {
    events.stderr(`\n[spawn error] ${error.message}`);
    if (child.pid === undefined && !done) {
      done = true;
      events.closed({ code: null, signal: null });
    }
  });
  return {
    pid: child.pid ?? -1,
    kill(signal) {
      if (!done && child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
      }
    },
  };
}

/**
 * Starts a process with `Deno.Command` (Deno). The exit is reported only
 * after both output streams are read to the end, so the test leaves no
 * resource open (Deno's sanitizer checks that).
 */
function spawnDeno(
  command: string,
  args: string[],
  options: ChildOptions,
  events: ProcessEvents,
): Process {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.env ?? process.env)) {
    if (value !== undefined) env[key] = value;
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      cwd: options.cwd,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    events.stderr(`\n[spawn error] ${(error as Error).message}`);
    queueMicrotask(() => events.closed({ code: null, signal: null }));
    return { pid: -1, kill() {} };
  }
  let done = false;
  const pump = async (
    stream: ReadableStream<Uint8Array>,
    on: (text: string) => void,
  ) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      on(text);
    }
  };
  Promise.all([
    child.status,
    pump(child.stdout, events.stdout),
    pump(child.stderr, events.stderr),
  ]).then(([status]) => {
    done = true;
    events.closed(
      status.signal === null
        ? { code: status.code, signal: null }
        : { code: null, signal: status.signal },
    );
  });
  return {
    pid: child.pid,
    kill(signal) {
      if (done) return;
      try {
        child.kill(signal);
      } catch {
        // It exited in the meantime.
      }
    },
  };
}

/** Starts `command` with `args`, stdin closed and both outputs collected. */
export function startChild(
  command: string,
  args: string[],
  options: ChildOptions = {},
): Child {
  let stdout = "";
  let stderr = "";
  let done = false;
  const watchers = new Set<() => void>();
  const notify = () => {
    for (const watcher of watchers) watcher();
  };
  let resolveExit!: (exit: Exit) => void;
  const exited = new Promise<Exit>((resolve) => (resolveExit = resolve));
  const events: ProcessEvents = {
    stdout(text) {
      stdout += text;
      notify();
    },
    stderr(text) {
      stderr += text;
      notify();
    },
    closed(exit) {
      done = true;
      resolveExit(exit);
      notify();
    },
  };
  const child = isDeno
    ? spawnDeno(command, args, options, events)
    : spawnNode(command, args, options, events);
  const output = () =>
    `${command} ${
      args.join(" ")
    }\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;

  return {
    pid: child.pid,
    stdout: () => stdout,
    stderr: () => stderr,
    output,
    exited,
    waitFor(pattern, timeoutMs = CHILD_TIMEOUT_MS, stream = "stdout") {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(
            new Error(
              `Timed out after ${timeoutMs} ms waiting for ${pattern} on ${stream} of ${output()}`,
            ),
          );
        }, timeoutMs);
        const check = () => {
          const match = pattern.exec(stream === "stdout" ? stdout : stderr);
          if (match === null && !done) return;
          clearTimeout(timer);
          watchers.delete(check);
          if (match !== null) resolve(match);
          else {
            reject(
              new Error(
                `The child exited before printing ${pattern}: ${output()}`,
              ),
            );
          }
        };
        watchers.add(check);
        check();
      });
    },
    waitExit(timeoutMs = CHILD_TIMEOUT_MS) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `Timed out after ${timeoutMs} ms waiting for the child to exit: ${output()}`,
              ),
            ),
          timeoutMs,
        );
      });
      return Promise.race([exited, expired]).finally(() => clearTimeout(timer));
    },
    kill(signal: Signal = "SIGTERM") {
      if (!done) child.kill(signal);
    },
    async stop() {
      if (!done) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** What {@linkcode runChild} saw. */
export interface RunResult extends Exit {
  stdout: string;
  stderr: string;
  output: string;
}

/** Runs a command to completion (killed after `timeoutMs`). */
export async function runChild(
  command: string,
  args: string[],
  options: ChildOptions = {},
  timeoutMs = CHILD_TIMEOUT_MS,
): Promise<RunResult> {
  const child = startChild(command, args, options);
  try {
    const exit = await child.waitExit(timeoutMs);
    return {
      ...exit,
      stdout: child.stdout(),
      stderr: child.stderr(),
      output: child.output(),
    };
  } finally {
    await child.stop();
  }
}

/**
 * A port on 127.0.0.1 that was free a moment ago: bound to port 0, read, and
 * closed. Another process could take it in between; the tests that use it
 * start their listener right away.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() =>
        port > 0 ? resolve(port) : reject(new Error("No port from bind"))
      );
    });
  });
}

/**
 * Resolves once a TCP connection to 127.0.0.1:`port` succeeds, retrying every
 * 20 ms; rejects after `timeoutMs`, or as soon as `alive()` returns false.
 */
export async function waitForPort(
  port: number,
  alive: () => boolean = () => true,
  timeoutMs = CHILD_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canConnect(port)) return;
    if (!alive()) throw new Error(`The process for port ${port} exited`);
    if (Date.now() > deadline) {
      throw new Error(`Nothing listens on port ${port} after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 1000);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * Creates a folder under the system's temporary folder (outside the
 * repository), runs `fn` with it, and removes it afterwards.
 */
export async function withTempDir<T>(
  prefix: string,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ymo-${prefix}-`));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The environment for a child: this process's, without `YMO_LIB` (so the
 * child looks for the library as a user's program would), plus `extra`.
 */
export function childEnv(
  extra: Record<string, string> = {},
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.YMO_LIB;
  env.NO_COLOR = "1";
  return { ...env, ...extra };
}
