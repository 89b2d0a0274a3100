/**
 * {@linkcode Server}: creating the native server from validated options,
 * its TLS certificates, listening, starting its worker on this thread or its
 * thread pool, static routes, graceful shutdown, ref/unref, and stopping
 * every live server when the process exits.
 *
 * @module
 */
import { moduleHref } from "../ffi/_host.ts";
import { loadNative } from "../ffi/native.ts";
import { HeaderWriter } from "../ffi/codec.ts";
import { Option } from "../ffi/symbols.ts";
import type { Pointer } from "../ffi/_types.ts";
import { check, checkSystem, YmoError } from "./_errors.ts";
import { requestTimeout, socketAddress } from "./_info.ts";
import { exchangeOf } from "./_request.ts";
import {
  NATIVE_OPTIONS,
  type NetAddr,
  normalizeOptions,
  type ServeHandler,
  type ServeOptions,
  type SocketAddress,
  type UnixAddr,
  validateOptions,
} from "./_options.ts";
import { publishThrough } from "./_bun_websocket.ts";
import { ThreadWorker, type WorkerHost } from "./_worker.ts";
import { ThreadPool } from "./_pool.ts";
import { RouteTable } from "./_routes.ts";
import { tlsOptionOf, type TlsSite, tlsSites } from "./_tls.ts";

const native = await loadNative();
const lib = native.fn;

const encoder = new TextEncoder();

/** How each live server stops its loop thread at once, for the exit hook. */
const liveServers = new Set<() => void>();
let exitHookInstalled = false;

/** Stops every live server's loop thread before the process exits. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  native.onExit(() => {
    for (const stopNow of liveServers) stopNow();
  });
}

/**
 * A running server, returned by {@linkcode serve}. Shaped like
 * `Deno.HttpServer`.
 */
export class Server {
  /** Every native server of this one, the one that listens first: with
   * `workers`, one per thread (its shards, ymo_server_add_shard), so that
   * each thread runs its own loop; else that one alone. */
  #loops: Pointer[] = [];
  /** The native worker of each loop, the leader's first (in #loops' order):
   * the threads' workers, and where a publish goes. */
  #loopWorkers: Pointer[] = [];
  #workers: ThreadWorker[] = [];
  #threads: ThreadPool | null = null;
  #addr: NetAddr | UnixAddr;
  #tls = false;
  #shutdownTimeout: number;
  #finished: Promise<void>;
  /** This server's #stopNow, in liveServers while it lives. */
  #stopOnExit = () => this.#stopNow();
  #stopping = false;
  #started = false;
  #freed = false;

  /**
   * Starts a server; use {@linkcode serve} rather than this constructor.
   *
   * @param given The options, in Deno's or Bun's spelling.
   * @param handler The request handler.
   */
  constructor(given: ServeOptions, handler?: ServeHandler) {
    const options = normalizeOptions(given);
    validateOptions(options);
    const threads = options.workers;
    if (
      threads === undefined && typeof handler !== "function" &&
      !(handler === undefined && options.routes !== undefined)
    ) {
      throw new TypeError("Invalid handler: expected a function");
    }
    const routes = options.routes === undefined
      ? undefined
      : new RouteTable(options.routes);
    const statics = routes === undefined
      ? options.static
      : { ...routes.statics, ...options.static };
    if (threads !== undefined && handler !== undefined) {
      throw new TypeError(
        "Invalid handler: with workers, the app comes from `module` (functions cannot be sent to other threads)",
      );
    }
    const onError = options.onError;
    this.#shutdownTimeout = options.shutdownTimeout ?? 10_000;
    // Read before anything native exists: an unreadable file throws here.
    const sites = tlsSites(options);
    const hostname = options.hostname ?? "0.0.0.0";
    const pointer = createLoop();
    this.#loops.push(pointer);
    try {
      for (let i = 1; i < (threads ?? 1); i++) {
        const shard = createLoop();
        this.#loops.push(shard);
        check(lib.ymo_server_add_shard(pointer, shard), "Cannot add a loop");
      }
      this.#loopWorkers = this.#loops.map((loop) =>
        lib.ymo_server_worker(loop, 0)
      );
      for (const loop of this.#loops) configure(loop, options, sites);
      this.#tls = sites !== undefined;
      if (options.reusePort) {
        check(
          lib.ymo_server_set_option(pointer, Option.REUSE_PORT, 1n),
          "Cannot set reusePort",
        );
      }
      if (options.path !== undefined) {
        checkSystem(
          lib.ymo_server_listen_unix(
            pointer,
            encoder.encode(options.path + "\0"),
          ),
          `Cannot listen on ${options.path}`,
        );
      } else if (options.fd !== undefined) {
        check(
          lib.ymo_server_listen_fd(pointer, options.fd),
          `Cannot listen on fd ${options.fd}`,
        );
      } else {
        const port = options.port ?? 8000;
        const rc = lib.ymo_server_listen(
          pointer,
          encoder.encode(hostname + "\0"),
          port,
        );
        checkSystem(rc, `Cannot listen on ${hostname}:${port}`);
      }
      const port = check(lib.ymo_server_port(pointer), "Cannot read port");
      const bound = options.fd === undefined ? hostname : boundHost(pointer);
      this.#addr = options.path !== undefined
        ? { transport: "unix", path: options.path }
        : bound.startsWith("/")
        ? { transport: "unix", path: bound } // A unix socket given as fd.
        : { transport: "tcp", hostname: bound, port };
      // What the workers see of this server. The app's functions are called
      // with this server as `this`.
      const stopping = () => this.#stopping;
      const host: WorkerHost = {
        handler: handler?.bind(this),
        onError: onError?.bind(this),
        // As with Deno.serve: a request without a Host, or with an empty
        // one, is for localhost on this server's port.
        defaultHost: port === 0 ? "localhost" : `localhost:${port}`,
        get stopping() {
          return stopping();
        },
        handlerTimeout: options.handlerTimeout,
        routes,
        websocket: options.websocket,
        url: this.url.href,
        port,
        hostname: this.hostname,
        stop: (closeActive) => this.stop(closeActive),
      };
      if (threads === undefined) {
        const worker = new ThreadWorker(host, this.#loopWorkers[0]);
        this.#workers.push(worker);
        worker.start();
      } else {
        this.#threads = new ThreadPool(
          host,
          this.#loopWorkers,
          moduleHref(options.module!),
        );
      }
      for (const loop of this.#loops) {
        for (const route of routes?.native ?? []) {
          check(
            lib.ymo_server_add_route(
              loop,
              encoder.encode(route.pattern + "\0"),
              encoder.encode(route.method + "\0"),
              route.id,
            ),
            `Cannot add route ${route.pattern}`,
          );
        }
      }
      if (statics === undefined) this.#start();
    } catch (error) {
      this.#stopLoops();
      for (const worker of this.#workers) worker.close();
      this.#threads?.terminate();
      for (const loop of this.#loops) lib.ymo_server_free(loop);
      this.#freed = true;
      throw error;
    }
    liveServers.add(this.#stopOnExit);
    installExitHook();
    const stopped = this.#threads !== null
      ? [this.#threads.stopped]
      : this.#workers.map((w) => w.stopped);
    this.#finished = Promise.all(stopped).then(() => this.#free());
    const scheme = this.#tls ? "https" : "http";
    const onListen = options.onListen ??
      ((addr: NetAddr | UnixAddr) => defaultOnListen(addr, scheme));
    if (this.#started) {
      onListen({ ...this.#addr });
    } else {
      // The port is bound already (clients queue in the backlog); accepting
      // starts once the static bodies are read and handed to C.
      this.#startWithRoutes(statics!).then(
        () => onListen({ ...this.#addr }),
        (error) => {
          console.error("ymo: cannot start the server:", error);
          this.#stopNow();
        },
      );
    }
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) {
        this.shutdown();
      } else {
        signal.addEventListener("abort", () => this.shutdown(), { once: true });
      }
    }
  }

  async #startWithRoutes(routes: Record<string, Response>): Promise<void> {
    const writer = new HeaderWriter();
    for (const [path, response] of Object.entries(routes)) {
      const headers = writer.bytes.slice(0, writer.write(response.headers));
      const body = new Uint8Array(await response.arrayBuffer());
      if (this.#stopping) return;
      for (const loop of this.#loops) {
        check(
          lib.ymo_server_add_static(
            loop,
            encoder.encode(path + "\0"),
            response.status,
            headers,
            headers.byteLength,
            body,
            body.byteLength,
          ),
          `Cannot add static route ${path}`,
        );
      }
    }
    if (this.#stopping) return;
    this.#start();
  }

  /** Starts every loop, the shards before the leader that deals to them. */
  #start(): void {
    for (let i = this.#loops.length - 1; i >= 0; i--) {
      check(lib.ymo_server_start(this.#loops[i]), "Cannot start server");
      // Started loops must be stopped, whatever follows.
      this.#started = true;
    }
  }

  /** Stops and joins every loop thread, the leader first: it deals
   * connections to the others until it stops. */
  #stopLoops(): void {
    for (const loop of this.#loops) lib.ymo_server_stop(loop);
  }

  /** The address the server listens on. */
  get addr(): NetAddr | UnixAddr {
    return { ...this.#addr };
  }

  /** The port the server listens on (the chosen one when 0 was asked; 0
   * on a unix socket). */
  get port(): number {
    return this.#addr.transport === "tcp" ? this.#addr.port : 0;
  }

  /** The address the server listens on, as Bun's `server.hostname` (the
   * path of a unix socket). */
  get hostname(): string {
    return this.#addr.transport === "tcp"
      ? this.#addr.hostname
      : this.#addr.path;
  }

  /**
   * Requests being handled on this thread, as Bun's
   * `server.pendingRequests` (with `workers`, those threads' own are not
   * counted here).
   */
  get pendingRequests(): number {
    let sum = 0;
    for (const worker of this.#workers) sum += worker.pending;
    return sum;
  }

  /**
   * The client address of a request this server handles, as Bun's
   * `server.requestIP(request)`.
   *
   * @param request A Request given to this server's handler.
   * @returns Its client's address, or null for any other Request.
   * @example
   * ```ts
   * const server = serve((req) => new Response(server.requestIP(req)?.address));
   * ```
   */
  requestIP(request: Request): SocketAddress | null {
    const exchange = exchangeOf(request);
    return exchange === undefined ? null : socketAddress(exchange);
  }

  /**
   * Bun's `server.timeout(request, seconds)`: while `request` is being
   * answered, its connection closes (and `request.signal` aborts) after
   * `seconds` without a byte moving on it; 0 turns that off, ymo's
   * default while a request is in flight.
   *
   * @param request A Request given to this server's handler (any other is
   * ignored).
   * @param seconds Seconds, from 0 to 2147483.
   */
  timeout(request: Request, seconds: number): void {
    requestTimeout(exchangeOf(request), seconds);
  }

  /**
   * Bun: sends a message to every WebSocket subscribed to `topic`, on every
   * worker thread (a string as text, bytes as binary). Returns the message's
   * length, or 0 once the server is stopping.
   *
   * @param topic The topic (1 to 65535 bytes of UTF-8).
   * @param data The message.
   */
  publish(
    topic: string,
    data: string | ArrayBufferLike | ArrayBufferView,
  ): number {
    if (this.#stopping || this.#freed) return 0;
    return publishThrough(this.#loopWorkers, topic, data);
  }

  /** An http URL for this server (https with TLS; loopback when it listens
   * on all), or `unix:PATH` for a unix socket. */
  get url(): URL {
    if (this.#addr.transport === "unix") {
      return new URL(`unix:${encodeURI(this.#addr.path)}`);
    }
    let host = this.#addr.hostname;
    if (host === "0.0.0.0") host = "localhost";
    else if (host === "::") host = "[::1]";
    else if (host.includes(":")) host = `[${host}]`;
    const scheme = this.#tls ? "https" : "http";
    return new URL(`${scheme}://${host}:${this.#addr.port}/`);
  }

  /** Resolves once the server has stopped and freed its native state. */
  get finished(): Promise<void> {
    return this.#finished;
  }

  /** Whether the server is shutting down or stopped. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** UNSAFE: the native ymo_server_t; invalid once `finished` resolved. */
  get pointer(): Pointer {
    return this.#loops[0];
  }

  /**
   * Stops accepting connections at once, closes idle ones, lets in-flight
   * requests finish (up to `shutdownTimeout`), then stops.
   *
   * @returns A promise that resolves like {@linkcode finished}.
   */
  shutdown(): Promise<void> {
    return this.#shutdown(this.#shutdownTimeout);
  }

  /**
   * Bun's name for a shutdown: graceful, or with `closeActiveConnections`
   * closing the connections that still have requests in flight at once.
   *
   * @param closeActiveConnections Do not let in-flight requests finish.
   * @returns A promise that resolves like {@linkcode finished}.
   */
  stop(closeActiveConnections = false): Promise<void> {
    return this.#shutdown(closeActiveConnections ? 0 : this.#shutdownTimeout);
  }

  #shutdown(graceMs: number): Promise<void> {
    if (!this.#stopping && !this.#freed) {
      this.#stopping = true;
      if (this.#started) {
        for (const loop of this.#loops) {
          lib.ymo_server_shutdown(loop, Math.min(graceMs, 2 ** 31 - 1));
        }
      } else {
        this.#stopLoops(); // Releases the waiters.
      }
    }
    return this.#finished;
  }

  /** Stops the loop thread now (process exit, or static routes failed). */
  #stopNow(): void {
    if (this.#freed) return;
    this.#stopping = true;
    this.#stopLoops();
  }

  #free(): void {
    if (this.#freed) return;
    this.#freed = true;
    liveServers.delete(this.#stopOnExit);
    // Every worker's waiter has returned and L is finishing: join it, then
    // close the callbacks and free, in that order (DESIGN.md, trap 1).
    this.#stopLoops();
    for (const worker of this.#workers) worker.close();
    this.#threads?.terminate();
    for (const loop of this.#loops) lib.ymo_server_free(loop);
  }

  /** Makes the server keep the process alive (the default). */
  ref(): void {
    for (const worker of this.#workers) worker.ref();
  }

  /** Lets the process exit even though the server is listening. */
  unref(): void {
    for (const worker of this.#workers) worker.unref();
  }

  /** Shuts the server down; for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

/** A new native server with one worker: one loop of a Server. */
function createLoop(): Pointer {
  const err = new Int32Array(1);
  const pointer = lib.ymo_server_create(1, new Uint8Array(err.buffer));
  if (native.isNull(pointer)) {
    throw new YmoError("Cannot create server", err[0]);
  }
  return pointer;
}

/** Hands the options C applies to one loop of a server, and its TLS
 * sites (a bad certificate throws before anything is bound). */
function configure(
  loop: Pointer,
  options: ServeOptions,
  sites: TlsSite[] | undefined,
): void {
  for (const [name, option] of NATIVE_OPTIONS) {
    const value = options[name];
    if (value !== undefined) {
      check(
        lib.ymo_server_set_option(loop, option, BigInt(value)),
        `Cannot set ${name}`,
      );
    }
  }
  const ws = options.websocket;
  if (ws?.maxPayloadLength !== undefined) {
    check(
      lib.ymo_server_set_option(
        loop,
        Option.WS_MAX_MESSAGE,
        BigInt(ws.maxPayloadLength),
      ),
      "Cannot set websocket.maxPayloadLength",
    );
  }
  if (ws?.idleTimeout !== undefined) {
    check(
      lib.ymo_server_set_option(
        loop,
        Option.WS_IDLE_TIMEOUT_MS,
        BigInt(Math.round(ws.idleTimeout * 1000)),
      ),
      "Cannot set websocket.idleTimeout",
    );
  }
  if (ws?.sendPings === false) {
    check(
      lib.ymo_server_set_option(loop, Option.WS_SEND_PINGS, 0n),
      "Cannot set websocket.sendPings",
    );
  }
  if (options.automaticCompression) {
    check(
      lib.ymo_server_set_option(loop, Option.COMPRESSION, 1n),
      "Cannot set automaticCompression",
    );
  }
  if (sites !== undefined) addTls(loop, sites);
}

/** The default of `ServeOptions.onListen`. */
function defaultOnListen(addr: NetAddr | UnixAddr, scheme: string): void {
  if (addr.transport === "unix") {
    console.error(`Listening on ${addr.path}`);
    return;
  }
  const host = addr.hostname;
  const inUrl = host.includes(":") ? `[${host}]` : host;
  console.error(`Listening on ${scheme}://${inUrl}:${addr.port}/`);
}

/** Hands every site's certificates, keys and CAs to C; a bad one throws a
 * YmoError naming the option and what is wrong with it, with OpenSSL's
 * words. */
function addTls(server: Pointer, sites: TlsSite[]): void {
  const cstr = (text: string | undefined) =>
    text === undefined ? null : encoder.encode(text + "\0");
  for (const site of sites) {
    const passphrase = cstr(site.passphrase);
    const name = cstr(site.serverName);
    const fail = (code: number) => {
      const buf = new Uint8Array(256);
      const len = lib.ymo_server_tls_error(server, buf, buf.length);
      const detail = len > 0
        ? new TextDecoder().decode(buf.subarray(0, len))
        : "";
      const error = new YmoError(`Invalid ${tlsOptionOf(site, code)}`, code);
      if (detail !== "") error.message += ` (${detail})`;
      throw error;
    };
    for (let i = 0; i < site.certs.length; i++) {
      const cert = site.certs[i], key = site.keys[i];
      const rc = lib.ymo_server_add_tls_cert(
        server,
        cert,
        cert.byteLength,
        key,
        key.byteLength,
        passphrase,
        name,
      );
      if (rc < 0) fail(rc);
    }
    if (site.ca !== undefined) {
      const rc = lib.ymo_server_add_tls_ca(
        server,
        site.ca,
        site.ca.byteLength,
        name,
      );
      if (rc < 0) fail(rc);
    }
  }
}

function boundHost(server: Pointer): string {
  const buf = new Uint8Array(64);
  const len = check(
    lib.ymo_server_host(server, buf, buf.length),
    "Cannot read address",
  );
  return new TextDecoder().decode(buf.subarray(0, len));
}
