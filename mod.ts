/**
 * ymo: an HTTP/1.1 server for Deno and Bun whose I/O runs in C, on a libev
 * loop thread, while request handlers run in JavaScript.
 *
 * `serve()` takes a fetch-style handler, like `Deno.serve` and `Bun.serve`,
 * and returns a {@linkcode Server} shaped like `Deno.HttpServer`.
 *
 * @example Serve "Hello, World!" on port 8000
 * ```ts
 * import { serve } from "@ymo/ymo";
 *
 * const server = serve({ port: 8000 }, (req) => {
 *   const url = new URL(req.url);
 *   return new Response(`Hello from ${url.pathname}`);
 * });
 * await server.finished;
 * ```
 *
 * @module
 */
// The layers, bottom up (DESIGN.md, "Layers, bottom up"): ffi/ (symbols,
// codec, the Deno and Bun backends, the library locator), then server/:
// _errors, _tls, _options, _routes, _exchange, _request, _socket (a
// WebSocket's core) with _websocket (Deno's API) and _bun_websocket (Bun's),
// _response, _worker (the take loop), _pool and _thread (worker threads),
// _server, _serve. Each file imports only files below it (but _options, which
// checks the websocket option with _bun_websocket's rules); this one
// re-exports the public API.

export { serve } from "./server/_serve.ts";
export {
  upgradeWebSocket,
  type UpgradeWebSocketOptions,
  type WebSocketUpgrade,
} from "./server/_websocket.ts";
export {
  ServerWebSocket,
  type WebSocketHandler,
} from "./server/_bun_websocket.ts";
export { Server } from "./server/_server.ts";
export { YmoError } from "./server/_errors.ts";
export type {
  NetAddr,
  RouteHandler,
  Routes,
  RouteTarget,
  RouteValue,
  ServeHandler,
  ServeHandlerInfo,
  ServeInit,
  ServeOptions,
  SocketAddress,
  UnixAddr,
} from "./server/_options.ts";
export type { TlsData, TlsOptions } from "./server/_tls.ts";
export type { Pointer } from "./ffi/_types.ts";
