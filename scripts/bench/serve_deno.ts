/**
 * The Deno.serve peer: serves app.ts with Deno's built-in server. Deno.serve
 * has no static routes, so app.fetch answers `/static` as well.
 *
 *   deno run -A scripts/bench/serve_deno.ts --port 8000 [--hostname H]
 *                                           [--workers N] [--compress]
 *                                           [--websocket]
 *                                           [--cert FILE --key FILE]
 *
 * --cert and --key serve HTTPS with that certificate and key (PEM files),
 * through Deno.serve's `cert` and `key` options.
 *
 * --compress turns on Deno.serve's `automaticCompression` (opt-in since
 * Deno 2.9).
 *
 * --websocket serves the WebSocket routes of _work.mjs as well, with
 * Deno.upgradeWebSocket: /ws-echo, /ws-sub and /ws-pub. Deno has no
 * pub/sub, so /ws-pub sends each message to every socket in a Set of the
 * subscribers. Without it, requests go straight to app.fetch, so the HTTP
 * workloads pay nothing for the check. With several workers, each process
 * has its own subscribers.
 *
 * With --workers N > 1 this process starts N - 1 copies of itself and every
 * copy listens with `reusePort`, so the kernel spreads connections over N
 * processes, each one JS thread.
 *
 * @module
 */

import app from "./app.ts";

/** app.fetch without its second argument (the WebSocket routes' server,
 * which ymo gives; Deno's are answered here, with Deno's own API). */
const fetchOnly = (req: Request) => app.fetch(req);
import { WS_ECHO, WS_PUB, WS_SUB } from "./_work.mjs";

function option(name: string, fallback: string): string;
function option(name: string): string | undefined;
function option(name: string, fallback?: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i < 0 ? fallback : Deno.args[i + 1];
}

const port = Number(option("port", "8000"));
const hostname = option("hostname", "127.0.0.1");
const workers = Number(option("workers", "1"));
const child = Deno.env.get("YMO_BENCH_CHILD") === "1";
const compress = Deno.args.includes("--compress");
const websocket = Deno.args.includes("--websocket");
const certFile = option("cert"), keyFile = option("key");
if ((certFile === undefined) !== (keyFile === undefined)) {
  console.error("--cert and --key go together");
  Deno.exit(2);
}
const tls = certFile === undefined ? {} : {
  cert: Deno.readTextFileSync(certFile),
  key: Deno.readTextFileSync(keyFile!),
};

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

/** app.fetch, with the WebSocket routes in front of it. */
function withWebSocket(
  fetch: (req: Request) => Response | Promise<Response>,
): (req: Request) => Response | Promise<Response> {
  const subscribers = new Set<WebSocket>();
  return (req) => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return fetch(req);
    }
    const path = new URL(req.url).pathname;
    if (path !== WS_ECHO && path !== WS_SUB && path !== WS_PUB) {
      return fetch(req);
    }
    const { socket, response } = Deno.upgradeWebSocket(req);
    if (path === WS_ECHO) {
      socket.onmessage = (event) => socket.send(event.data);
    } else if (path === WS_SUB) {
      socket.onopen = () => subscribers.add(socket);
      socket.onclose = () => subscribers.delete(socket);
    } else {
      socket.onmessage = (event) => {
        for (const subscriber of subscribers) subscriber.send(event.data);
      };
    }
    return response;
  };
}

Deno.serve({
  port,
  hostname,
  reusePort: workers > 1,
  automaticCompression: compress,
  ...tls,
  onListen() {},
}, websocket ? withWebSocket(fetchOnly) : fetchOnly);
