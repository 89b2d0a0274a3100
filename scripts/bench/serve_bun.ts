/**
 * The Bun.serve peer: serves app.ts with Bun's built-in server, its `static`
 * responses as Bun `routes` (which Bun answers without calling `fetch`).
 *
 *   bun scripts/bench/serve_bun.ts --port 8000 [--hostname H] [--workers N]
 *                                  [--websocket] [--cert FILE --key FILE]
 *
 * --cert and --key serve HTTPS with that certificate and key (PEM files),
 * through Bun.serve's `tls: { cert, key }`.
 *
 * Bun.serve has no automatic compression, so `--compress` is refused rather
 * than silently measured uncompressed.
 *
 * --websocket serves the WebSocket routes of _work.mjs as well, with Bun's
 * `websocket` handlers: /ws-echo, /ws-sub (`ws.subscribe`) and /ws-pub
 * (`server.publish`). Without it, Bun.serve gets app.fetch itself, so the
 * HTTP workloads pay nothing for the check. With several workers, each
 * process has its own subscribers.
 *
 * With --workers N > 1 this process starts N - 1 copies of itself and every
 * copy listens with `reusePort`, Bun's documented way to use several cores.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import app from "./app.ts";
import { WS_ECHO, WS_PUB, WS_SUB, WS_TOPIC } from "./_work.mjs";

/** A Bun server-side WebSocket, with the route it was upgraded on. */
interface BunWebSocket {
  data: { path: string };
  send(message: string | Uint8Array): number;
  subscribe(topic: string): void;
}

/** The part of a Bun server this file uses. */
interface BunServer {
  upgrade(req: Request, options: { data: { path: string } }): boolean;
  publish(topic: string, message: string | Uint8Array): number;
}

/** The part of Bun's global this file uses (typed here so Deno can check it). */
interface BunServe {
  serve(options: {
    port: number;
    hostname: string;
    reusePort: boolean;
    tls?: { cert: string; key: string };
    routes: Record<string, Response>;
    fetch: (
      req: Request,
      server: BunServer,
    ) => Response | Promise<Response> | undefined;
    websocket?: {
      open(ws: BunWebSocket): void;
      message(ws: BunWebSocket, message: string | Uint8Array): void;
    };
  }): BunServer;
}
const { Bun } = globalThis as unknown as { Bun: BunServe };

function option(name: string, fallback: string): string;
function option(name: string): string | undefined;
function option(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}

const port = Number(option("port", "8000"));
const hostname = option("hostname", "127.0.0.1");
const workers = Number(option("workers", "1"));
const websocket = process.argv.includes("--websocket");
if (process.argv.includes("--compress")) {
  console.error("Bun.serve has no automatic response compression");
  process.exit(2);
}
const certFile = option("cert"), keyFile = option("key");
if ((certFile === undefined) !== (keyFile === undefined)) {
  console.error("--cert and --key go together");
  process.exit(2);
}
const tls = certFile === undefined ? undefined : {
  cert: readFileSync(certFile, "utf8"),
  key: readFileSync(keyFile!, "utf8"),
};

if (workers > 1 && process.env.YMO_BENCH_CHILD !== "1") {
  for (let i = 1; i < workers; i++) {
    spawn(process.execPath, process.argv.slice(1), {
      env: { ...process.env, YMO_BENCH_CHILD: "1" },
      stdio: ["ignore", "inherit", "inherit"],
    });
  }
}

/** app.fetch, with the WebSocket routes upgraded in front of it. */
function fetchWithWebSocket(
  req: Request,
  server: BunServer,
): Response | Promise<Response> | undefined {
  const path = new URL(req.url).pathname;
  if (path !== WS_ECHO && path !== WS_SUB && path !== WS_PUB) {
    return app.fetch(req);
  }
  if (server.upgrade(req, { data: { path } })) return undefined;
  return new Response("Expected a WebSocket upgrade", { status: 400 });
}

const server: BunServer = Bun.serve({
  port,
  hostname,
  reusePort: workers > 1,
  ...(tls ? { tls } : {}),
  routes: app.static,
  fetch: websocket ? fetchWithWebSocket : app.fetch,
  ...(websocket
    ? {
      websocket: {
        open(ws: BunWebSocket) {
          if (ws.data.path === WS_SUB) ws.subscribe(WS_TOPIC);
        },
        message(ws: BunWebSocket, message: string | Uint8Array) {
          if (ws.data.path === WS_ECHO) ws.send(message);
          else if (ws.data.path === WS_PUB) server.publish(WS_TOPIC, message);
        },
      },
    }
    : {}),
});
