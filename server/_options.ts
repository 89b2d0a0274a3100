/**
 * What `serve()` accepts: the handler and option types, with their JSDoc and
 * defaults, the numeric options passed to C as they are, and the validation
 * that throws before anything native is made.
 *
 * @module
 */
import { Option } from "../ffi/symbols.ts";
import {
  validateWebSocketHandler,
  type WebSocketHandler,
} from "./_bun_websocket.ts";
import { type TlsData, type TlsOptions, validateTls } from "./_tls.ts";

/** The address a server listens on, or a client connects from. */
export interface NetAddr {
  /** Always "tcp". */
  transport: "tcp";
  /** The host name or IP address. */
  hostname: string;
  /** The port number. */
  port: number;
}

/** A unix domain socket's address. */
export interface UnixAddr {
  /** Always "unix". */
  transport: "unix";
  /** The socket file's path ("" for a client's unnamed socket). */
  path: string;
}

/** A client's address as Bun's `server.requestIP()` gives it. */
export interface SocketAddress {
  /** The IP address. */
  address: string;
  /** "IPv4" or "IPv6". */
  family: "IPv4" | "IPv6";
  /** The client's port. */
  port: number;
}

/**
 * The handler's second argument: Deno.serve's `ServeHandlerInfo` and the
 * parts of Bun.serve's `server` that apply, in one object, so handlers
 * written for either runtime run unchanged.
 */
export interface ServeHandlerInfo {
  /** Deno: the client's address. */
  readonly remoteAddr: NetAddr | UnixAddr;
  /** Deno: resolves once the response is finished or the client is gone. */
  readonly completed: Promise<void>;
  /** Bun: the server's URL. */
  readonly url: URL;
  /** Bun: the port the server listens on. */
  readonly port: number;
  /** Bun: the address the server listens on. */
  readonly hostname: string;
  /** Bun: requests being handled on this thread. */
  readonly pendingRequests: number;
  /** Bun: the client address of a request this server is handling. */
  requestIP(request: Request): SocketAddress | null;
  /** Bun: closes the request's connection after `seconds` without a byte
   * moving on it while the request is answered (0: never, the default). */
  timeout(request: Request, seconds: number): void;
  /** Bun: stops the server; `closeActiveConnections` does not wait for
   * requests in flight. */
  stop(closeActiveConnections?: boolean): Promise<void>;
  /** Bun: sends a message to every WebSocket subscribed to `topic`. */
  publish(
    topic: string,
    data: string | ArrayBufferLike | ArrayBufferView,
  ): number;
  /** Bun: accepts the request's WebSocket handshake with the server's
   * `websocket` handlers; false when it is no handshake or cannot be. */
  upgrade(
    request: Request,
    options?: { headers?: HeadersInit; data?: unknown },
  ): boolean;
}

/** A fetch-style request handler. */
export type ServeHandler = (
  request: Request,
  info: ServeHandlerInfo,
) => Response | Promise<Response>;

/** A handler of one of Bun's routes: its request has `params`. */
export type RouteHandler = (
  request: Request & { params: Record<string, string> },
  info: ServeHandlerInfo,
) => Response | Promise<Response>;

/** What one method of a route does: a handler, a fixed Response, or `false`
 * (the request goes to `fetch`). */
export type RouteTarget = RouteHandler | Response | false;

/** A route's value: one target for every method, or one per method. */
export type RouteValue = RouteTarget | Partial<Record<string, RouteTarget>>;

/** Bun's `routes` option: path pattern to what answers it. */
export type Routes = Record<string, RouteValue>;

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  /**
   * The port to listen on, as a number or a numeric string (as Bun takes
   * it); 0 picks a free one (see {@linkcode Server.port}).
   * @default {8000}
   */
  port?: number | string;
  /**
   * The address to listen on: an IPv4 or IPv6 literal, or a host name.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * Called once the server listens.
   * @default {logs "Listening on http://HOST:PORT/" (https with TLS)}
   */
  onListen?: (addr: NetAddr | UnixAddr) => void;
  /**
   * Listen on a unix domain socket at this path instead of a TCP port (as
   * `Deno.serve({ path })`); a stale socket file is replaced, and the file
   * is removed when the server stops.
   */
  path?: string;
  /** Bun's name for {@linkcode ServeOptions.path}. */
  unix?: string;
  /**
   * Turns an error thrown (or a promise rejected) by the handler into a
   * response.
   * @default {logs the error and answers 500 Internal Server Error}
   */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Bun's name for {@linkcode ServeOptions.onError}. */
  error?: (error: unknown) => Response | Promise<Response>;
  /** Aborting it shuts the server down, as {@linkcode Server.shutdown}. */
  signal?: AbortSignal;
  /**
   * Milliseconds a handler may take to produce its Response; past it the
   * client gets 503 Service Unavailable, `request.signal` is aborted, and
   * whatever the handler returns later is dropped. Without it a handler may
   * take as long as it likes, as with `Deno.serve`.
   */
  handlerTimeout?: number;
  /**
   * How long {@linkcode Server.shutdown} lets in-flight requests run before
   * closing their connections, in milliseconds.
   * @default {10000}
   */
  shutdownTimeout?: number;
  /**
   * Milliseconds a keep-alive connection may sit idle between requests.
   * @default {5000}
   */
  keepAliveTimeout?: number;
  /**
   * Bun's option: seconds a connection may sit idle between requests; the
   * same as {@linkcode ServeOptions.keepAliveTimeout} in milliseconds.
   */
  idleTimeout?: number;
  /**
   * Milliseconds a client has to send a request head once it has started,
   * and then the longest gap between pieces of its body; past it the server
   * answers 408 and closes.
   * @default {10000}
   */
  requestTimeout?: number;
  /**
   * Largest request head (request line and header fields) in bytes; larger
   * ones get 431.
   * @default {65536}
   */
  maxHeaderSize?: number;
  /**
   * Most header fields in one request; more get 431.
   * @default {2000}
   */
  maxHeaderCount?: number;
  /**
   * Longest request target (path and query) in bytes; longer ones get 414.
   * @default {8192}
   */
  maxUrlLength?: number;
  /**
   * Largest request body in bytes; larger ones get 413.
   * @default {67108864}
   */
  maxBodySize?: number;
  /** Bun's name for {@linkcode ServeOptions.maxBodySize}. */
  maxRequestBodySize?: number;
  /**
   * Most open connections; new ones beyond it are closed at once.
   * @default {10000}
   */
  maxConnections?: number;
  /**
   * Most requests one connection may have waiting for responses; past it
   * the server reads no more from that connection until some are answered.
   * @default {16}
   */
  maxPipelineDepth?: number;
  /**
   * The listen(2) backlog.
   * @default {511}
   */
  backlog?: number;
  /**
   * Set SO_REUSEPORT, so several processes can listen on the same port and
   * the kernel spreads connections over them.
   * @default {false}
   */
  reusePort?: boolean;
  /**
   * Compress responses by the request's `Accept-Encoding` (br, gzip or
   * deflate), as `Deno.serve`'s option of the same name: in C, for
   * compressible types (text, JSON, JavaScript, XML, SVG, wasm, ...) of at
   * least 64 bytes, unless the response has `Content-Encoding`,
   * `Content-Range` or `Cache-Control: no-transform`. Streamed bodies are
   * compressed as they stream; `static` routes once, at start.
   * @default {false}
   */
  automaticCompression?: boolean;
  /**
   * Bun's WebSocket handlers (`open`, `message`, `close`, `drain`, `ping`,
   * `pong`) and settings, for sockets a handler accepts with
   * `server.upgrade(request)`. Its `maxPayloadLength` (16 MiB) and
   * `idleTimeout` (120 s) also apply to sockets from `upgradeWebSocket()`.
   */
  websocket?: WebSocketHandler;
  /**
   * Fixed responses served by the native loop thread itself, without
   * calling into JavaScript: request target (path and query, matched
   * exactly) to Response, for GET and HEAD, like Bun's `static`. Their
   * bodies are read once, before the server starts accepting; they must
   * end (a fixed string, bytes, or a finite stream).
   */
  static?: Record<string, Response>;
  /**
   * Bun's routes: path pattern ("/", literal segments, `:name` parameters,
   * a final `*`) to a handler, a Response, `false` (to `fetch`), or an
   * object of those by method. C matches each request: exact segments
   * before parameters before wildcards; a route's request has `params`,
   * percent-decoded. A Response at an exact path is served by C for GET
   * and HEAD, as `static`; other methods and patterns get a copy. With
   * routes, `fetch` is optional: what no route takes gets 404. With
   * `workers`, give the module's own `routes` here: C matches with these,
   * each thread runs its module's handlers.
   */
  routes?: Routes;
  /**
   * Listen on this already-listening socket instead of `hostname`/`port`,
   * for example one inherited from systemd (`LISTEN_FDS`, fd 3). The server
   * owns it from then on.
   */
  fd?: number;
  /**
   * Run the app on this many JavaScript threads (Web Workers), each with
   * its own native worker; the loop thread spreads connections over them.
   * Needs {@linkcode ServeOptions.module}, since functions cannot be sent
   * to other threads. Without it, the handler runs on the calling thread.
   */
  workers?: number;
  /**
   * The app each worker thread loads: a module URL or path whose default
   * export has `fetch(request, info)` (and optionally `onError(error)`).
   */
  module?: string | URL;
  /**
   * Deno's HTTPS option: the server's certificate (PEM, intermediates after
   * it), with {@linkcode ServeOptions.key}. Served with TLS 1.2 and 1.3 by
   * the native loop thread (OpenSSL).
   */
  cert?: TlsData;
  /** Deno's HTTPS option: the private key (PEM) of
   * {@linkcode ServeOptions.cert}. */
  key?: TlsData;
  /**
   * Bun's HTTPS option: `{ cert, key, ca, passphrase, serverName }`, or an
   * array of those to serve a certificate per server name (SNI; the one
   * without `serverName`, else the first, is the default). Values are PEM
   * as strings, bytes, or Bun files (`Bun.file(path)`, read at once).
   */
  tls?: TlsOptions | TlsOptions[];
}

/**
 * {@linkcode ServeOptions} with the handler in them: as `fetch`, as in
 * Bun.serve, or as `handler`, as in Deno.serve.
 */
export type ServeInit =
  & ServeOptions
  & ({
    /** The request handler (Bun's name). */
    fetch: ServeHandler;
  } | {
    /** The request handler (Deno's name). */
    handler: ServeHandler;
  } | {
    /** Bun's routes, with `fetch` for what they do not take (404 without
     * it). */
    routes: Routes;
    fetch?: ServeHandler;
  });

/** Options of Deno.serve and Bun.serve that ymo does not have yet, and why
 * it refuses them rather than serve something else than asked. */
const NOT_YET: Record<string, string> = {
  development: "Bun's development mode is not supported",
};

/** Every option serve() knows, with the handler's two names. */
const KNOWN = new Set([
  "port",
  "hostname",
  "onListen",
  "onError",
  "error",
  "signal",
  "handlerTimeout",
  "shutdownTimeout",
  "keepAliveTimeout",
  "idleTimeout",
  "requestTimeout",
  "maxHeaderSize",
  "maxHeaderCount",
  "maxUrlLength",
  "maxBodySize",
  "maxRequestBodySize",
  "maxConnections",
  "maxPipelineDepth",
  "backlog",
  "reusePort",
  "automaticCompression",
  "static",
  "routes",
  "fd",
  "workers",
  "module",
  "transport",
  "path",
  "unix",
  "fetch",
  "handler",
  "websocket",
  "cert",
  "key",
  "tls",
]);

/**
 * Options as ymo uses them: every key known (a TypeError names the first
 * one that is not), Bun's names mapped onto ymo's (`error`, `idleTimeout`
 * in seconds, `maxRequestBodySize`) and a numeric string port made a
 * number. Values are checked by {@linkcode validateOptions}.
 */
export function normalizeOptions(options: ServeOptions): ServeOptions {
  for (const key of Object.keys(options)) {
    if (KNOWN.has(key)) continue;
    const why = NOT_YET[key];
    throw new TypeError(
      why === undefined
        ? `Unknown option: ${key}`
        : `Unsupported option: ${key} (${why})`,
    );
  }
  const out: ServeOptions & { transport?: unknown } = { ...options };
  alias(out, "error", "onError");
  alias(out, "unix", "path");
  const transport = out.transport ?? (out.path === undefined ? "tcp" : "unix");
  if (transport !== (out.path === undefined ? "tcp" : "unix")) {
    throw new TypeError(
      `Invalid transport: ${String(transport)} (${
        out.path === undefined
          ? 'only "tcp" without path'
          : '"unix" goes with path'
      })`,
    );
  }
  delete out.transport;
  if (out.path !== undefined) {
    for (const key of ["port", "hostname", "fd", "reusePort"] as const) {
      if (out[key] !== undefined) {
        throw new TypeError(
          `Invalid options: path (a unix socket) and ${key} cannot be combined`,
        );
      }
    }
  }
  alias(out, "maxRequestBodySize", "maxBodySize");
  if (out.idleTimeout !== undefined) {
    const seconds = out.idleTimeout;
    if (typeof seconds !== "number" || !(seconds > 0)) {
      throw new RangeError(
        `Invalid idleTimeout: ${String(seconds)} (expected seconds > 0)`,
      );
    }
    if (out.keepAliveTimeout !== undefined) {
      throw new TypeError(
        "Invalid options: idleTimeout and keepAliveTimeout are one option, give one",
      );
    }
    out.keepAliveTimeout = Math.round(seconds * 1000);
    delete out.idleTimeout;
  }
  if (typeof out.port === "string" && /^\d+$/.test(out.port)) {
    out.port = Number(out.port);
  }
  return out;
}

/** Moves Bun's spelling `from` of an option to ymo's `to`. */
function alias(
  options: ServeOptions,
  from: "error" | "maxRequestBodySize" | "unix",
  to: "onError" | "maxBodySize" | "path",
): void {
  if (options[from] === undefined) return;
  if (options[to] !== undefined) {
    throw new TypeError(
      `Invalid options: ${from} and ${to} are one option, give one`,
    );
  }
  (options as Record<string, unknown>)[to] = options[from];
  delete options[from];
}

/** Numeric options passed to C as they are, with their option numbers. */
export const NATIVE_OPTIONS = [
  ["keepAliveTimeout", Option.KEEPALIVE_TIMEOUT_MS],
  ["requestTimeout", Option.HEADER_TIMEOUT_MS],
  ["maxHeaderSize", Option.MAX_HEAD_SIZE],
  ["maxHeaderCount", Option.MAX_HEADERS],
  ["maxUrlLength", Option.MAX_URL_SIZE],
  ["maxBodySize", Option.MAX_BODY_SIZE],
  ["maxConnections", Option.MAX_CONNECTIONS],
  ["maxPipelineDepth", Option.MAX_PIPELINE],
  ["backlog", Option.BACKLOG],
] as const;

/** Throws a RangeError or TypeError for the first invalid option. */
export function validateOptions(options: ServeOptions): void {
  const { port, hostname, shutdownTimeout } = options;
  if (
    port !== undefined &&
    (typeof port !== "number" || !Number.isInteger(port) || port < 0 ||
      port > 65535)
  ) {
    throw new RangeError(
      `Invalid port: ${String(port)} (expected an integer from 0 to 65535)`,
    );
  }
  if (hostname !== undefined && typeof hostname !== "string") {
    throw new TypeError(`Invalid hostname: expected a string`);
  }
  const { path } = options;
  if (
    path !== undefined &&
    (typeof path !== "string" || path === "" || path.includes("\0"))
  ) {
    throw new TypeError("Invalid path: expected a unix socket file's path");
  }
  const { handlerTimeout } = options;
  if (
    handlerTimeout !== undefined &&
    (typeof handlerTimeout !== "number" || !(handlerTimeout > 0) ||
      handlerTimeout > 2 ** 31 - 1)
  ) {
    throw new RangeError(
      `Invalid handlerTimeout: ${
        String(handlerTimeout)
      } (expected milliseconds > 0)`,
    );
  }
  if (
    shutdownTimeout !== undefined &&
    (typeof shutdownTimeout !== "number" || !(shutdownTimeout >= 0))
  ) {
    throw new RangeError(
      `Invalid shutdownTimeout: ${
        String(shutdownTimeout)
      } (expected a number >= 0)`,
    );
  }
  for (const [name] of NATIVE_OPTIONS) {
    const value = options[name];
    if (
      value !== undefined &&
      (typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
        value > Number.MAX_SAFE_INTEGER)
    ) {
      throw new RangeError(
        `Invalid ${name}: ${String(value)} (expected a positive integer)`,
      );
    }
  }
  if (
    options.reusePort !== undefined && typeof options.reusePort !== "boolean"
  ) {
    throw new TypeError("Invalid reusePort: expected a boolean");
  }
  if (
    options.automaticCompression !== undefined &&
    typeof options.automaticCompression !== "boolean"
  ) {
    throw new TypeError("Invalid automaticCompression: expected a boolean");
  }
  if (
    options.fd !== undefined &&
    (!Number.isInteger(options.fd) || options.fd < 0 ||
      options.fd > 2 ** 31 - 1)
  ) {
    throw new RangeError(
      `Invalid fd: ${String(options.fd)} (expected a file descriptor number)`,
    );
  }
  if (options.static !== undefined) {
    if (options.static === null || typeof options.static !== "object") {
      throw new TypeError("Invalid static: expected an object of Responses");
    }
    for (const [path, response] of Object.entries(options.static)) {
      if (!path.startsWith("/") || /[\s\0]/.test(path)) {
        throw new TypeError(
          `Invalid static: "${path}" is not a request path (it must start with "/")`,
        );
      }
      if (!(response instanceof Response)) {
        throw new TypeError(`Invalid static: "${path}" must map to a Response`);
      }
      if (response.bodyUsed) {
        throw new TypeError(
          `Invalid static: the body of "${path}" is already read`,
        );
      }
    }
  }
  const { workers, module } = options;
  if (workers !== undefined) {
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
      throw new RangeError(
        `Invalid workers: ${
          String(workers)
        } (expected an integer from 1 to 256)`,
      );
    }
    if (module === undefined) {
      throw new TypeError(
        "Invalid module: workers need the app as a module URL or path",
      );
    }
  }
  if (
    module !== undefined && typeof module !== "string" &&
    !(module instanceof URL)
  ) {
    throw new TypeError("Invalid module: expected a URL or a path");
  }
  if (options.websocket !== undefined) {
    validateWebSocketHandler(options.websocket);
  }
  validateTls(options);
  for (const name of ["onListen", "onError"] as const) {
    const value = options[name];
    if (value !== undefined && typeof value !== "function") {
      throw new TypeError(`Invalid ${name}: expected a function`);
    }
  }
}
