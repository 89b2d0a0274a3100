/**
 * The benchmark app: one `export default { fetch }` module, the convention of
 * `deno serve` and Bun, served unchanged by ymo (scripts/serve.ts), by
 * Deno.serve (serve_deno.ts) and by Bun.serve (serve_bun.ts). app_node.mjs
 * answers the same routes for node:http.
 *
 * | route         | answer                                              |
 * |---------------|-----------------------------------------------------|
 * | `GET /`       | `Hello, World!` (13 bytes, text/plain)              |
 * | `GET /static` | the same bytes, from `static` where the server can  |
 * | `POST /echo`  | the request body                                    |
 * | `GET /16k`    | 16 KiB                                              |
 * | `GET /json16k`| ~16 KiB of JSON (compressed where the server is    |
 * |               | started with compression: `--compress`)             |
 * | `GET /stream` | 1 MiB as a ReadableStream of 64 chunks of 16 KiB    |
 * | `GET /cpu`    | hex SHA-256 after ~200 us of synchronous hashing    |
 *
 * `static` holds the responses that never change: ymo answers them from its
 * C loop thread (`serve({ static })`) and Bun.serve from its `routes`, without
 * calling `fetch`; Deno.serve and node:http have no such option, so `fetch`
 * answers `/static` too, with the same bytes.
 *
 * The WebSocket routes of the ws-echo and ws-fanout workloads (`/ws-echo`,
 * `/ws-sub`, `/ws-pub`, in _work.mjs) are here in Bun's shape (`websocket`
 * handlers, `server.upgrade()` in `fetch`), which ymo serves on both
 * runtimes; serve_deno.ts and serve_bun.ts answer them with their runtime's
 * own API, in front of `fetch`, when started with `--websocket`.
 *
 * @module
 */

import {
  BODY_16K,
  cpuWork,
  HELLO,
  JSON_16K,
  STREAM_CHUNK,
  STREAM_CHUNKS,
  WS_ECHO,
  WS_PUB,
  WS_SUB,
  WS_TOPIC,
} from "./_work.mjs";

/** What the WebSocket routes need of the server (Bun's shape, ymo's too). */
interface WebSocketServer {
  upgrade(req: Request, options: { data: SocketData }): boolean;
  publish(topic: string, message: string | Uint8Array): number;
}
interface SocketData {
  path: string;
  server: WebSocketServer;
}
interface Socket {
  data: SocketData;
  send(message: string | Uint8Array): number;
  subscribe(topic: string): void;
}

function upgrade(req: Request, server: WebSocketServer | undefined): Response {
  const data = { path: pathOf(req.url), server: server! };
  if (server?.upgrade(req, { data })) return undefined as unknown as Response;
  return new Response("Expected a WebSocket upgrade", { status: 400 });
}

const BINARY = { "content-type": "application/octet-stream" };
const TEXT = { "content-type": "text/plain;charset=UTF-8" };
const JSON_TYPE = { "content-type": "application/json" };

/** The path of an absolute request URL, without the query. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const query = url.indexOf("?", start);
  return query < 0 ? url.slice(start) : url.slice(start, query);
}

function stream(): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      // A fresh copy per chunk: a server may take ownership of what it reads.
      controller.enqueue(STREAM_CHUNK.slice());
      if (++sent === STREAM_CHUNKS) controller.close();
    },
  });
}

async function echo(req: Request): Promise<Response> {
  const body = await req.arrayBuffer();
  return new Response(body, {
    headers: {
      "content-type": req.headers.get("content-type") ??
        "application/octet-stream",
    },
  });
}

export default {
  static: {
    "/static": new Response(HELLO, { headers: TEXT }),
  },
  websocket: {
    open(ws: Socket) {
      if (ws.data.path === WS_SUB) ws.subscribe(WS_TOPIC);
    },
    message(ws: Socket, message: string | Uint8Array) {
      if (ws.data.path === WS_ECHO) ws.send(message);
      else if (ws.data.path === WS_PUB) {
        ws.data.server.publish(WS_TOPIC, message);
      }
    },
  },
  fetch(
    req: Request,
    server?: WebSocketServer,
  ): Response | Promise<Response> {
    switch (pathOf(req.url)) {
      case WS_ECHO:
      case WS_SUB:
      case WS_PUB:
        return upgrade(req, server);
      case "/":
      case "/static":
        return new Response(HELLO, { headers: TEXT });
      case "/echo":
        if (req.method !== "POST") break;
        return echo(req);
      case "/16k":
        return new Response(BODY_16K, { headers: BINARY });
      case "/json16k":
        return new Response(JSON_16K, { headers: JSON_TYPE });
      case "/stream":
        return new Response(stream(), { headers: BINARY });
      case "/cpu":
        return new Response(cpuWork(), { headers: TEXT });
    }
    return new Response("Not Found", { status: 404, headers: TEXT });
  },
};
