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
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { loadNative } from "./ffi/native.ts";
import type { Native, Pointer, Timer, Waker } from "./ffi/_types.ts";

export type { Pointer };
import {
  decodeRequests,
  HeaderWriter,
  REQF_ABORT,
  type RequestRecord,
  RESP_HIGH_WATER,
} from "./ffi/codec.ts";
import { EPIPE, Option, RESP_CLOSE, RESP_DONE } from "./ffi/symbols.ts";

const native: Native = await loadNative();
const lib = native.fn;
const { fastRequest, headerList, staticBody } = native;

/** The address a server listens on, or a client connects from. */
export interface NetAddr {
  /** Always "tcp". */
  transport: "tcp";
  /** The host name or IP address. */
  hostname: string;
  /** The port number. */
  port: number;
}

/** Information about the request passed to a handler with it. */
export interface ServeHandlerInfo {
  /** The client's address. */
  remoteAddr: NetAddr;
}

/** A fetch-style request handler. */
export type ServeHandler = (
  request: Request,
  info: ServeHandlerInfo,
) => Response | Promise<Response>;

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  /**
   * The port to listen on; 0 picks a free one (see {@linkcode Server.port}).
   * @default {8000}
   */
  port?: number;
  /**
   * The address to listen on: an IPv4 or IPv6 literal, or a host name.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * Called once the server listens.
   * @default {logs "Listening on http://HOST:PORT/"}
   */
  onListen?: (addr: NetAddr) => void;
  /**
   * Turns an error thrown (or a promise rejected) by the handler into a
   * response.
   * @default {logs the error and answers 500 Internal Server Error}
   */
  onError?: (error: unknown) => Response | Promise<Response>;
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
   * Milliseconds a client has to send a whole request (head and body) once
   * it has started; past it the server answers 408 and closes.
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
   * @default {100}
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
   * Fixed responses served by the native loop thread itself, without
   * calling into JavaScript: request target (path and query, matched
   * exactly) to Response, for GET and HEAD, like Bun's `static`. Their
   * bodies are read once, before the server starts accepting; they must
   * end (a fixed string, bytes, or a finite stream).
   */
  static?: Record<string, Response>;
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
}

/** Numeric options passed to C as they are, with their option numbers. */
const NATIVE_OPTIONS = [
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

/** {@linkcode ServeOptions} with the handler as `fetch`, as in Bun.serve. */
export interface ServeInit extends ServeOptions {
  /** The request handler. */
  fetch: ServeHandler;
}

/** The error thrown when the native library reports a failure. */
export class YmoError extends Error {
  /** The negative error code from ymo.h, e.g. -98 for EADDRINUSE. */
  readonly code: number;
  /**
   * Makes the error, with the library's text for `code` after the message.
   *
   * @param message What failed.
   * @param code The native error code.
   */
  constructor(message: string, code: number) {
    super(`${message}: ${native.cstring(lib.ymo_strerror(code))}`);
    this.name = "YmoError";
    this.code = code;
  }
}

function check(code: number, what: string): number {
  if (code < 0) throw new YmoError(what, code);
  return code;
}

const EMPTY = new Uint8Array(0);
const TIMEOUT_HEADERS = new TextEncoder().encode(
  "content-type: text/plain;charset=UTF-8\r\n",
);
const encoder = new TextEncoder();

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return encoder.encode(chunk);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) {
    return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  throw new TypeError("Response body chunks must be Uint8Array or string");
}

function clientGone(): DOMException {
  return new DOMException("The client went away", "AbortError");
}

/**
 * The Request handed to handlers: a standard Request whose `signal` comes
 * from the exchange, made only when read. Passing a signal to the Request
 * constructor costs more than the rest of the request (Deno links a
 * dependent signal), and most handlers never read it.
 */
class ServerRequest extends Request {
  #exchange: Exchange;

  /** `input` is a URL, or on Deno the brand that makes an empty Request
   * for `fastRequest.fill()`. */
  constructor(
    input: string | symbol,
    init: RequestInit | undefined,
    exchange: Exchange,
  ) {
    super(input as string, init);
    this.#exchange = exchange;
  }

  /** Aborted when the client goes away before the response is sent. */
  override get signal(): AbortSignal {
    return this.#exchange.signal;
  }
}

/**
 * One request and its response, as a handle on the native exchange. The
 * handle is an (id, generation) pair: once the response is finished, or the
 * server is gone, every method is a no-op instead of touching freed memory.
 */
export class Exchange {
  #worker: Worker;
  #id: number;
  #gen: number;
  #open = true;
  #aborted = false;
  /** When the handler was given the request (only with handlerTimeout). */
  started = 0;
  /** Whether respond() was called. */
  responded = false;
  /** Made on first use of `signal`: most handlers never look at it. */
  #controller: AbortController | null = null;

  /**
   * Wraps the handle of an exchange that `worker` took.
   *
   * @param worker The worker that took the request.
   * @param id The exchange's slot in the worker.
   * @param gen The slot's generation when the request was taken.
   */
  constructor(worker: Worker, id: number, gen: number) {
    this.#worker = worker;
    this.#id = id;
    this.#gen = gen;
  }

  /** The slot generation that, with the id, names the native exchange. */
  get gen(): number {
    return this.#gen;
  }

  /** Aborted when the client goes away before the response is finished. */
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(clientGone());
    }
    return this.#controller.signal;
  }

  /**
   * Resolves when the response's unwritten bytes have drained to the
   * low-water mark (or the exchange ended), after an append that returned
   * more than the high-water mark.
   */
  drained(): Promise<void> {
    if (!this.open) return Promise.resolve();
    return new Promise((resolve) => this.#onDrain = resolve);
  }

  #onDrain: (() => void) | null = null;

  /** @internal C told us the response drained. */
  drain(): void {
    const resolve = this.#onDrain;
    this.#onDrain = null;
    resolve?.();
  }

  #body: ReadableStreamDefaultController<Uint8Array> | null = null;
  #bodyUnacked = 0;

  /**
   * @internal The body of a request whose head came before its body: a
   * stream fed by body records, acknowledged to C as it is read, so C stops
   * reading the client while JavaScript does not keep up.
   */
  bodyStream(start: Uint8Array | null): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#body = controller;
        if (start !== null) this.#enqueue(start);
      },
      pull: () => this.#ack(),
      cancel: () => {
        this.#body = null;
        this.#ack();
      },
    }, { highWaterMark: 0 });
  }

  #enqueue(data: Uint8Array): void {
    this.#bodyUnacked += data.byteLength;
    this.#body!.enqueue(data);
  }

  #ack(): void {
    const bytes = this.#bodyUnacked;
    this.#bodyUnacked = 0;
    if (bytes > 0 && this.#worker.alive) {
      lib.ymo_worker_body_ack(this.#worker.pointer, this.#id, this.#gen, bytes);
    }
  }

  /** @internal A piece of the request body arrived. */
  bodyPiece(data: Uint8Array, end: boolean): void {
    if (this.#body === null) {
      // Nobody reads it (cancelled): let C go on at once.
      this.#bodyUnacked += data.byteLength;
      this.#ack();
      return;
    }
    if (data.byteLength > 0) this.#enqueue(data);
    if (end) {
      this.#body.close();
      this.#body = null;
    }
  }

  /** @internal C told us the client went away. */
  abort(): void {
    this.drain();
    if (this.#body !== null) {
      this.#body.error(clientGone());
      this.#body = null;
    }
    this.#open = false;
    this.#worker.forget(this.#id, this);
    this.#aborted = true;
    this.#controller?.abort(clientGone());
  }

  #finish(): void {
    this.#open = false;
    this.#worker.forget(this.#id, this);
  }

  /** Whether a response can still be sent (not finished, server alive). */
  get open(): boolean {
    return this.#open && this.#worker.alive;
  }

  /** Whether the client has gone away. */
  get aborted(): boolean {
    if (!this.open) return true;
    return lib.ymo_worker_aborted(this.#worker.pointer, this.#id, this.#gen) !==
      0;
  }

  /**
   * Sends the status, headers and the start of the body in one call. With
   * `done` the body is complete and goes out with Content-Length; without
   * it the rest follows through {@linkcode append}.
   *
   * @param status The status code.
   * @param headers "Name: value\r\n" lines (see `HeaderWriter`).
   * @param headersLength How many bytes of `headers` to send.
   * @param body The body, or its first part.
   * @param done Whether the body is complete.
   * @param close Whether to close the connection afterwards.
   * @returns 0, or a negative error code when the client is gone.
   */
  respond(
    status: number,
    headers: Uint8Array,
    headersLength: number,
    body: Uint8Array,
    done: boolean,
    close = false,
  ): number {
    if (!this.open) return EPIPE;
    this.responded = true;
    const rc: number = lib.ymo_worker_respond(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      status,
      headers,
      headersLength,
      body,
      body.byteLength,
      (done ? RESP_DONE : 0) | (close ? RESP_CLOSE : 0),
    );
    // Finished, or refused because the client is gone: either way C has
    // let go of the handle.
    if (done || rc < 0) this.#finish();
    return rc;
  }

  /**
   * Appends to a streamed body.
   *
   * @param chunk The bytes to send.
   * @param done Whether this is the last part.
   * @returns The bytes queued for the client and not yet written, or a
   * negative error code when the client is gone.
   */
  append(chunk: Uint8Array, done: boolean): number {
    if (!this.open) return EPIPE;
    const rc: number = lib.ymo_worker_response_body_append(
      this.#worker.pointer,
      this.#id,
      this.#gen,
      chunk,
      chunk.byteLength,
      done ? RESP_DONE : 0,
    );
    if (done || rc < 0) this.#finish();
    return rc;
  }

  /**
   * Gives up the exchange: a 500 if nothing was sent yet, otherwise the
   * connection is closed (its body is incomplete).
   */
  release(): void {
    if (!this.open) return;
    this.#finish();
    lib.ymo_worker_release(this.#worker.pointer, this.#id, this.#gen);
  }
}

/** What a {@linkcode Worker} needs from its owner: the app and the address. */
export interface WorkerHost {
  /** The request handler. */
  readonly handler: ServeHandler;
  /** Turns a handler error into a response (default: log, then 500). */
  onError?(error: unknown): Response | Promise<Response>;
  /** "host:port" for the URL of a request that has no Host header. */
  readonly defaultHost: string;
  /** Whether the server is shutting down. */
  readonly stopping: boolean;
  /** Milliseconds before an unanswered request gets 503, if set. */
  readonly handlerTimeout?: number;
}

/**
 * A native worker driven by this JavaScript thread: it takes batches of
 * requests from C, runs the handler on each, and hands responses back.
 */
export class Worker {
  #pointer: Pointer;
  #server: WorkerHost;
  #buf = new Uint8Array(64 * 1024);
  #view = new DataView(this.#buf.buffer);
  #waker: Waker | null = null;
  #alive = true;
  #stopped: Promise<void>;
  #resolveStopped!: () => void;
  #headerWriter = new HeaderWriter();
  #scratch = new Uint8Array(16 * 1024);

  /** UTF-8 of `text` in a reused buffer, valid until the next call. */
  #encode(text: string): Uint8Array {
    if (text.length * 3 > this.#scratch.byteLength) {
      this.#scratch = new Uint8Array(text.length * 3);
    }
    const { written } = encoder.encodeInto(text, this.#scratch);
    return this.#scratch.subarray(0, written);
  }

  /** Exchanges taken and not finished, by slot id (C reuses low ids), for
   * the notices and body pieces that name them. */
  #inflight: (Exchange | undefined)[] = [];

  /**
   * Wraps a native worker; {@linkcode Worker.start} makes this thread
   * drive it.
   *
   * @param server What the worker serves: the app, and the address.
   * @param pointer The native ymo_worker_t.
   */
  constructor(server: WorkerHost, pointer: Pointer) {
    this.#server = server;
    this.#pointer = pointer;
    this.#stopped = new Promise((resolve) => this.#resolveStopped = resolve);
  }

  /** UNSAFE: the native ymo_worker_t, valid while the server lives. */
  get pointer(): Pointer {
    return this.#pointer;
  }

  /** Whether the native worker still exists. */
  get alive(): boolean {
    return this.#alive;
  }

  /** Resolves when C has released this worker for good. */
  get stopped(): Promise<void> {
    return this.#stopped;
  }

  #sweep: Timer | undefined;

  /** Answers 503 for requests whose handler ran past handlerTimeout. */
  #sweepTimeouts(timeout: number): void {
    const now = performance.now();
    for (const exchange of this.#inflight) {
      if (
        exchange === undefined || exchange.responded ||
        now - exchange.started < timeout
      ) continue;
      const body = encoder.encode("Service Unavailable");
      exchange.respond(
        503,
        TIMEOUT_HEADERS,
        TIMEOUT_HEADERS.length,
        body,
        true,
      );
      exchange.abort();
    }
  }

  /** Starts taking requests on this thread. */
  start(): void {
    const timeout = this.#server.handlerTimeout;
    if (timeout !== undefined) {
      // One sweep a quarter of the timeout, not a timer per request.
      this.#sweep = setInterval(
        () => this.#sweepTimeouts(timeout),
        Math.max(10, timeout / 4),
      );
      native.unrefTimer(this.#sweep);
    }
    check(lib.ymo_worker_start(this.#pointer), "Cannot start worker");
    this.#waker = native.waker(
      this.#pointer,
      () => this.#drain(),
      () => this.#onReleased(),
      () => this.#server.stopping,
    );
  }

  /** Lets the process exit while only this worker waits. */
  unref(): void {
    this.#waker?.unref();
  }

  /** Undoes {@linkcode unref}. */
  ref(): void {
    this.#waker?.ref();
  }

  #onReleased(): void {
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
    this.#resolveStopped();
  }

  /**
   * Lets go of the native worker from this thread for good: C answers the
   * requests this thread holds with 503 and stops waking it. For a thread
   * that is about to die.
   */
  detach(): void {
    if (!this.#alive) return;
    lib.ymo_worker_join(this.#pointer);
    this.#onReleased();
    this.close();
  }

  /** Closes what this worker owns; only after C has released it. */
  close(): void {
    this.#alive = false;
    // Producers waiting for a drain that will never come can end now.
    for (const exchange of this.#inflight) exchange?.drain();
    this.#inflight = [];
    // The server is stopped and joined: C calls the waker no more.
    this.#waker?.close();
  }

  #drain(): void {
    if (!this.#alive) return;
    for (;;) {
      const n: number = lib.ymo_worker_take(
        this.#pointer,
        this.#buf,
        this.#buf.byteLength,
      );
      if (n === 0) return;
      if (n < 0) {
        let size = this.#buf.byteLength * 2;
        while (size < -n) size *= 2;
        this.#buf = new Uint8Array(size);
        this.#view = new DataView(this.#buf.buffer);
        continue;
      }
      decodeRequests(
        this.#buf,
        this.#view,
        n,
        (rec) => this.#handle(rec),
        (id, gen, flag) => {
          const exchange = this.#inflight[id];
          if (exchange === undefined || exchange.gen !== gen) return;
          if (flag === REQF_ABORT) exchange.abort();
          else exchange.drain();
        },
        (id, gen, data, end) => {
          const exchange = this.#inflight[id];
          if (exchange !== undefined && exchange.gen === gen) {
            exchange.bodyPiece(data, end);
          }
        },
      );
    }
  }

  /** @internal An exchange is finished: stop tracking it. */
  forget(id: number, exchange: Exchange): void {
    if (this.#inflight[id] === exchange) this.#inflight[id] = undefined;
  }

  #handle(rec: RequestRecord): void {
    const exchange = new Exchange(this, rec.id, rec.gen);
    if (this.#sweep !== undefined) exchange.started = performance.now();
    this.#inflight[rec.id] = exchange;
    let request: Request;
    try {
      request = buildRequest(rec, exchange, this.#server.defaultHost);
    } catch {
      // An URL or header the platform's Request refuses: the client's fault.
      const body = encoder.encode("Bad Request");
      exchange.respond(400, EMPTY, 0, body, true, true);
      return;
    }
    const info: ServeHandlerInfo = {
      remoteAddr: {
        transport: "tcp",
        hostname: rec.remoteHostname,
        port: rec.remotePort,
      },
    };
    let result: Response | Promise<Response>;
    try {
      result = this.#server.handler(request, info);
    } catch (error) {
      this.#fail(exchange, error, rec);
      return;
    }
    if (result instanceof Response) {
      this.#send(exchange, result, rec);
    } else {
      Promise.resolve(result).then(
        (response) => this.#send(exchange, response, rec),
        (error) => this.#fail(exchange, error, rec),
      );
    }
  }

  async #fail(
    exchange: Exchange,
    error: unknown,
    rec: RequestRecord,
  ): Promise<void> {
    let response: unknown;
    try {
      const host = this.#server;
      response =
        await (host.onError ? host.onError(error) : defaultOnError(error));
    } catch (second) {
      console.error("ymo: onError threw:", second);
    }
    if (!(response instanceof Response)) {
      response = new Response("Internal Server Error", { status: 500 });
    }
    await this.#send(exchange, response as Response, rec, true);
  }

  /** Sends `response`; returns a promise only when its body is a stream
   * (or it was not a Response), so fixed bodies cost no promise. */
  #send(
    exchange: Exchange,
    response: unknown,
    rec: RequestRecord,
    failed = false,
  ): Promise<void> | undefined {
    if (!(response instanceof Response)) {
      if (failed) {
        exchange.release();
        return;
      }
      const error = new TypeError(
        `Handler must return a Response, not ${
          Object.prototype.toString.call(response)
        }`,
      );
      return this.#fail(exchange, error, rec);
    }
    const status = response.status;
    // Read the headers before touching the body: Bun drops a Blob body's
    // implied Content-Type once `body` is read.
    const [head, headLength] = this.#headerWriter.write(
      headerList(response) ?? response.headers,
    );
    const fixed = staticBody(response);
    if (fixed !== undefined) {
      const bytes = typeof fixed === "string" ? this.#encode(fixed) : fixed;
      exchange.respond(status, head, headLength, bytes, true);
      return;
    }
    const body = response.body;
    if (body === null) {
      exchange.respond(status, head, headLength, EMPTY, true);
      return;
    }
    // Copied: the writer's buffer is reused by other exchanges while this
    // one awaits its body.
    return this.#sendStream(exchange, status, head.slice(0, headLength), body);
  }

  async #sendStream(
    exchange: Exchange,
    status: number,
    headers: Uint8Array,
    body: ReadableStream<unknown>,
  ): Promise<void> {
    const headLength = headers.byteLength;
    const reader: ReadableStreamDefaultReader<unknown> = body.getReader();
    try {
      // Read ahead while chunks are ready at once: a body that ends that way
      // (a string, bytes, a Blob) is sent whole with a Content-Length; one
      // that must wait (a real stream) is sent chunked from there on.
      const parts: Uint8Array[] = [];
      let size = 0;
      let chunk: ReadResult = await reader.read();
      let later: Promise<ReadResult> | null = null;
      while (!chunk.done && size < READ_AHEAD_LIMIT) {
        const bytes = toBytes(chunk.value);
        parts.push(bytes);
        size += bytes.byteLength;
        const next = await readSoon(reader);
        if ("later" in next) {
          later = next.later;
          break;
        }
        chunk = next.ready;
      }
      const start = parts.length === 1 ? parts[0] : concat(parts, size);
      if (chunk.done) {
        exchange.respond(status, headers, headLength, start, true);
        return;
      }
      if (exchange.respond(status, headers, headLength, start, false) < 0) {
        await reader.cancel();
        return;
      }
      // Either the pending read, or the chunk that hit the read-ahead limit
      // and is not sent yet.
      if (later !== null) chunk = await later;
      while (!chunk.done) {
        const pending = exchange.append(toBytes(chunk.value), false);
        if (pending < 0) {
          await reader.cancel();
          return;
        }
        // A slow client: stop pulling from the body until C has written
        // most of what it holds, so memory stays bounded.
        if (pending > RESP_HIGH_WATER) await exchange.drained();
        chunk = await reader.read();
      }
      exchange.append(EMPTY, true);
    } catch (error) {
      if (exchange.open) {
        // The body failed part way: the connection must be closed, since
        // the client cannot tell a cut body from a whole one otherwise.
        console.error("ymo: response body stream failed:", error);
        exchange.release();
      }
      reader.cancel().catch(() => {});
    } finally {
      reader.releaseLock?.();
    }
  }
}

/** Bytes a response may gather before its head goes out anyway. */
const READ_AHEAD_LIMIT = 64 * 1024;
/** Microtask turns a read may take and still count as ready at once. */
const READY_TURNS = 8;

type ReadResult = ReadableStreamReadResult<unknown>;

/**
 * Reads the next chunk: `ready` when the stream had it within a few microtask
 * turns, else `later`, the still-pending read.
 */
async function readSoon(
  reader: ReadableStreamDefaultReader<unknown>,
): Promise<{ ready: ReadResult } | { later: Promise<ReadResult> }> {
  let result: ReadResult | null = null;
  const later = reader.read();
  later.then((r) => result = r, () => {});
  for (let i = 0; i < READY_TURNS && result === null; i++) await null;
  return result !== null ? { ready: result } : { later };
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 0) return EMPTY;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** Builds the standard Request for a record. */
function buildRequest(
  rec: RequestRecord,
  exchange: Exchange,
  defaultHost: string,
): Request {
  const host = rec.host === "" ? defaultHost : rec.host;
  const target = rec.target;
  const url = target.charCodeAt(0) === 47 /* "/" */
    ? `http://${host}${target}`
    : target === "*"
    ? `http://${host}/`
    : target;
  const method = rec.method;
  const hasBody = method !== "GET" && method !== "HEAD";
  let body: Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null = rec
    .body as Uint8Array<ArrayBuffer> | null;
  if (rec.stream) {
    body = exchange.bodyStream(rec.body);
    // GET and HEAD may not have a body in a Request: theirs is read and
    // dropped, which also keeps the connection moving.
    if (!hasBody) body.cancel();
  }
  if (!hasBody) body = null;
  if (fastRequest !== undefined) {
    // The URL is parsed and serialized as the constructor would (it throws
    // on one the platform refuses); C's parser already checked the method
    // and the fields. Like Deno.serve and Bun, this passes TRACE to the
    // handler, where Deno's constructor refuses it.
    const href = new URL(url).href;
    const request = new ServerRequest(fastRequest.brand, undefined, exchange);
    fastRequest.fill(request, method, href, rec.fields, body);
    return request;
  }
  return new ServerRequest(url, {
    method,
    headers: fieldRecord(rec.fields),
    body,
    duplex: "half",
  } as RequestInit, exchange);
}

/**
 * Header fields as a record, the cheapest init for Headers: a name repeated
 * with the same spelling has its values joined with ", " (RFC 9110 section
 * 5.3); Headers joins the ones spelt differently.
 */
function fieldRecord(fields: readonly string[]): Record<string, string> {
  const record: Record<string, string> = Object.create(null);
  for (let i = 0; i < fields.length; i += 2) {
    const seen = record[fields[i]];
    record[fields[i]] = seen === undefined
      ? fields[i + 1]
      : `${seen}, ${fields[i + 1]}`;
  }
  return record;
}

const liveServers = new Set<Server>();
let exitHookInstalled = false;

/** Stops every live server's loop thread before the process exits. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  native.onExit(() => {
    for (const server of liveServers) server.stopNow();
  });
}

function validateOptions(options: ServeOptions): void {
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
  for (const name of ["onListen", "onError"] as const) {
    const value = options[name];
    if (value !== undefined && typeof value !== "function") {
      throw new TypeError(`Invalid ${name}: expected a function`);
    }
  }
}

/**
 * A running server, returned by {@linkcode serve}. Shaped like
 * `Deno.HttpServer`.
 */
export class Server implements WorkerHost {
  #pointer: Pointer;
  #workers: Worker[] = [];
  #threads: ThreadPool | null = null;
  #addr: NetAddr;
  #handler: ServeHandler;
  #onError: (error: unknown) => Response | Promise<Response>;
  #shutdownTimeout: number;
  #handlerTimeout: number | undefined;
  #finished: Promise<void>;
  #stopping = false;
  #started = false;
  #freed = false;

  /**
   * Starts a server; use {@linkcode serve} rather than this constructor.
   *
   * @param options The validated options.
   * @param handler The request handler.
   */
  constructor(options: ServeOptions, handler?: ServeHandler) {
    validateOptions(options);
    const threads = options.workers;
    if (threads === undefined && typeof handler !== "function") {
      throw new TypeError("Invalid handler: expected a function");
    }
    if (threads !== undefined && handler !== undefined) {
      throw new TypeError(
        "Invalid handler: with workers, the app comes from `module` (functions cannot be sent to other threads)",
      );
    }
    this.#handler = handler ?? (() => new Response(null, { status: 500 }));
    this.#onError = options.onError ?? defaultOnError;
    this.#shutdownTimeout = options.shutdownTimeout ?? 10_000;
    this.#handlerTimeout = options.handlerTimeout;
    const hostname = options.hostname ?? "0.0.0.0";
    const err = new Int32Array(1);
    const pointer = lib.ymo_server_create(
      threads ?? 1,
      new Uint8Array(err.buffer),
    );
    if (native.isNull(pointer)) {
      throw new YmoError("Cannot create server", err[0]);
    }
    this.#pointer = pointer;
    try {
      for (const [name, option] of NATIVE_OPTIONS) {
        const value = options[name];
        if (value !== undefined) {
          check(
            lib.ymo_server_set_option(pointer, option, BigInt(value)),
            `Cannot set ${name}`,
          );
        }
      }
      if (options.reusePort) {
        check(
          lib.ymo_server_set_option(pointer, Option.REUSE_PORT, 1n),
          "Cannot set reusePort",
        );
      }
      if (options.fd !== undefined) {
        check(
          lib.ymo_server_listen_fd(pointer, options.fd),
          `Cannot listen on fd ${options.fd}`,
        );
      } else {
        const rc = lib.ymo_server_listen(
          pointer,
          encoder.encode(hostname + "\0"),
          options.port ?? 8000,
        );
        check(rc, `Cannot listen on ${hostname}:${options.port ?? 8000}`);
      }
      const port = check(lib.ymo_server_port(pointer), "Cannot read port");
      this.#addr = {
        transport: "tcp",
        hostname: options.fd === undefined ? hostname : boundHost(pointer),
        port,
      };
      if (threads === undefined) {
        const worker = new Worker(this, lib.ymo_server_worker(pointer, 0));
        this.#workers.push(worker);
        worker.start();
      } else {
        this.#threads = new ThreadPool(
          this,
          pointer,
          threads,
          moduleUrl(options.module!),
        );
      }
      if (options.static === undefined) {
        check(lib.ymo_server_start(pointer), "Cannot start server");
        this.#started = true;
      }
    } catch (error) {
      lib.ymo_server_stop(pointer);
      for (const worker of this.#workers) worker.close();
      this.#threads?.terminate();
      lib.ymo_server_free(pointer);
      this.#freed = true;
      throw error;
    }
    liveServers.add(this);
    installExitHook();
    const stopped = this.#threads !== null
      ? [this.#threads.stopped]
      : this.#workers.map((w) => w.stopped);
    this.#finished = Promise.all(stopped).then(() => this.#free());
    const onListen = options.onListen ?? defaultOnListen;
    if (this.#started) {
      onListen({ ...this.#addr });
    } else {
      // The port is bound already (clients queue in the backlog); accepting
      // starts once the static bodies are read and handed to C.
      this.#startWithRoutes(options.static!).then(
        () => onListen({ ...this.#addr }),
        (error) => {
          console.error("ymo: cannot start the server:", error);
          this.stopNow();
        },
      );
    }
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) this.shutdown();
      else {signal.addEventListener("abort", () => this.shutdown(), {
          once: true,
        });}
    }
  }

  async #startWithRoutes(routes: Record<string, Response>): Promise<void> {
    const writer = new HeaderWriter();
    for (const [path, response] of Object.entries(routes)) {
      const [head, headLength] = writer.write(response.headers);
      const headers = head.slice(0, headLength);
      const body = new Uint8Array(await response.arrayBuffer());
      if (this.#stopping) return;
      check(
        lib.ymo_server_add_static(
          this.#pointer,
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
    if (this.#stopping) return;
    check(lib.ymo_server_start(this.#pointer), "Cannot start server");
    this.#started = true;
  }

  /** The address the server listens on. */
  get addr(): NetAddr {
    return { ...this.#addr };
  }

  /** The port the server listens on (the chosen one when 0 was asked). */
  get port(): number {
    return this.#addr.port;
  }

  /** An http URL for this server (loopback when it listens on all). */
  get url(): URL {
    let host = this.#addr.hostname;
    if (host === "0.0.0.0") host = "localhost";
    else if (host === "::") host = "[::1]";
    else if (host.includes(":")) host = `[${host}]`;
    return new URL(`http://${host}:${this.#addr.port}/`);
  }

  /** Resolves once the server has stopped and freed its native state. */
  get finished(): Promise<void> {
    return this.#finished;
  }

  /** Whether shutdown() or stopNow() has been called. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** UNSAFE: the native ymo_server_t; invalid once `finished` resolved. */
  get pointer(): Pointer {
    return this.#pointer;
  }

  /** @internal The request handler. */
  get handler(): ServeHandler {
    return this.#handler;
  }

  /** @internal Milliseconds before an unanswered request gets 503. */
  get handlerTimeout(): number | undefined {
    return this.#handlerTimeout;
  }

  /** @internal "host:port" for requests without a Host header. */
  get defaultHost(): string {
    const host = this.#addr.hostname;
    return `${host.includes(":") ? `[${host}]` : host}:${this.#addr.port}`;
  }

  /** @internal Turns a handler error into a response. */
  onError(error: unknown): Response | Promise<Response> {
    return this.#onError(error);
  }

  /**
   * Stops accepting connections at once, closes idle ones, lets in-flight
   * requests finish (up to `shutdownTimeout`), then stops.
   *
   * @returns A promise that resolves like {@linkcode finished}.
   */
  shutdown(): Promise<void> {
    if (!this.#stopping && !this.#freed) {
      this.#stopping = true;
      if (this.#started) {
        lib.ymo_server_shutdown(
          this.#pointer,
          Math.min(this.#shutdownTimeout, 2 ** 31 - 1),
        );
      } else {
        lib.ymo_server_stop(this.#pointer); // Releases the waiters.
      }
    }
    return this.#finished;
  }

  /** @internal Stops the loop thread now (process exit). */
  stopNow(): void {
    if (this.#freed) return;
    this.#stopping = true;
    lib.ymo_server_stop(this.#pointer);
  }

  #free(): void {
    if (this.#freed) return;
    this.#freed = true;
    liveServers.delete(this);
    // Every worker's waiter has returned and L is finishing: join it, then
    // close the callbacks and free, in that order (DESIGN.md, trap 1).
    lib.ymo_server_stop(this.#pointer);
    for (const worker of this.#workers) worker.close();
    this.#threads?.terminate();
    lib.ymo_server_free(this.#pointer);
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

function boundHost(server: Pointer): string {
  const buf = new Uint8Array(64);
  const len = check(
    lib.ymo_server_host(server, buf, buf.length),
    "Cannot read address",
  );
  return new TextDecoder().decode(buf.subarray(0, len));
}

function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module)) return module;
  return pathToFileURL(resolve(module)).href;
}

/** Messages between the pool and a worker thread (ffi/_thread.ts). */
export type ThreadMessage =
  | { type: "loaded" }
  | { type: "ready" }
  | { type: "stopped" }
  | { type: "crashed"; message: string; detached: boolean };

/**
 * The Web Workers of a server started with `workers`: one per native worker,
 * restarted when one crashes, until the server stops.
 */
class ThreadPool {
  #host: WorkerHost;
  #server: Pointer;
  #module: string;
  #threads: (globalThis.Worker | null)[];
  #ready: boolean[];
  #remaining: number;
  #resolveStopped!: () => void;
  readonly stopped: Promise<void>;

  constructor(host: WorkerHost, server: Pointer, n: number, module: string) {
    this.#host = host;
    this.#server = server;
    this.#module = module;
    this.#threads = new Array(n).fill(null);
    this.#ready = new Array(n).fill(false);
    this.#remaining = n;
    this.stopped = new Promise((resolve) => this.#resolveStopped = resolve);
    for (let i = 0; i < n; i++) this.#spawn(i);
  }

  #spawn(i: number): void {
    const url = new URL("./ffi/_thread.ts", import.meta.url);
    const thread = new globalThis.Worker(url.href, { type: "module" });
    this.#threads[i] = thread;
    this.#ready[i] = false;
    thread.onmessage = (event: MessageEvent<ThreadMessage>) => {
      const message = event.data;
      // The thread says when it can take its orders: Bun drops messages
      // that arrive while a worker module is still in its top-level await.
      if (message.type === "loaded") this.#init(i, thread);
      else if (message.type === "ready") this.#ready[i] = true;
      else if (message.type === "stopped") this.#done(i, thread);
      else this.#crashed(i, thread, message.message, message.detached);
    };
    thread.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#crashed(i, thread, event.message, false);
    };
  }

  #init(i: number, thread: globalThis.Worker): void {
    thread.postMessage({
      pointer: native.pointerValue(lib.ymo_server_worker(this.#server, i)),
      module: this.#module,
      defaultHost: this.#host.defaultHost,
      handlerTimeout: this.#host.handlerTimeout,
    });
  }

  #done(i: number, thread: globalThis.Worker): void {
    if (this.#threads[i] !== thread) return;
    this.#threads[i] = null;
    thread.terminate();
    if (--this.#remaining === 0) this.#resolveStopped();
  }

  #crashed(
    i: number,
    thread: globalThis.Worker,
    message: string,
    detached: boolean,
  ): void {
    if (this.#threads[i] !== thread) return;
    const worker = lib.ymo_server_worker(this.#server, i);
    thread.terminate();
    // A thread that died without detaching cannot answer what it held: let
    // go of it from here, now that it runs no more.
    if (!detached) lib.ymo_worker_join(worker);
    console.error(`ymo: worker thread ${i} crashed: ${message}`);
    if (this.#host.stopping) {
      this.#done(i, thread);
      return;
    }
    // Restart at once if it had served; after a pause if it never got
    // going (a module that throws on import would otherwise spin).
    const delay = this.#ready[i] ? 0 : 1000;
    this.#threads[i] = null;
    setTimeout(() => {
      if (this.#host.stopping) {
        if (--this.#remaining === 0) this.#resolveStopped();
        return;
      }
      this.#spawn(i);
    }, delay);
  }

  /** Ends every thread (after the server is stopped). */
  terminate(): void {
    for (const thread of this.#threads) thread?.terminate();
    this.#threads.fill(null);
  }
}

function defaultOnListen(addr: NetAddr): void {
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  console.error(`Listening on http://${host}:${addr.port}/`);
}

function defaultOnError(error: unknown): Response {
  console.error("ymo: handler failed:", error);
  return new Response("Internal Server Error", {
    status: 500,
    headers: { "content-type": "text/plain;charset=UTF-8" },
  });
}

/**
 * Serves HTTP with `handler` until the server is shut down.
 *
 * @example
 * ```ts
 * import { serve } from "@ymo/ymo";
 * serve((_req) => new Response("Hello, World!"));
 * ```
 *
 * @param handler The request handler.
 * @returns The running server.
 */
export function serve(handler: ServeHandler): Server;
/**
 * Serves HTTP with `handler` and the given options.
 *
 * @example
 * ```ts
 * import { serve } from "@ymo/ymo";
 * serve({ port: 0, onListen: ({ port }) => console.log(port) }, () =>
 *   new Response("hi"));
 * ```
 *
 * @param options Where to listen, and the callbacks.
 * @param handler The request handler.
 * @returns The running server.
 */
export function serve(options: ServeOptions, handler: ServeHandler): Server;
/**
 * Serves HTTP with the options' `fetch` handler, as `Bun.serve` does.
 *
 * @example
 * ```ts
 * import { serve } from "@ymo/ymo";
 * serve({ port: 8080, fetch: () => new Response("hi") });
 * ```
 *
 * @param init The options, with the handler as `fetch`.
 * @returns The running server.
 */
export function serve(init: ServeInit): Server;
/**
 * Serves HTTP with the app module on several threads.
 *
 * @example
 * ```ts
 * import { serve } from "@ymo/ymo";
 * serve({ port: 8080, workers: 2, module: new URL("./app.ts", import.meta.url) });
 * ```
 *
 * @param options The options, with `workers` and `module`.
 * @returns The running server.
 */
export function serve(
  options: ServeOptions & { workers: number; module: string | URL },
): Server;
export function serve(
  a: ServeHandler | ServeOptions | ServeInit,
  b?: ServeHandler,
): Server {
  if (typeof a === "function") return new Server({}, a);
  if (a === null || typeof a !== "object") {
    throw new TypeError("Invalid arguments: expected a handler or options");
  }
  const handler = b ?? (a as ServeInit).fetch;
  if ((a as ServeOptions).workers !== undefined) return new Server(a, handler);
  if (typeof handler !== "function") {
    throw new TypeError("Invalid handler: expected a function");
  }
  return new Server(a, handler);
}
