/**
 * Raw-socket HTTP/1.1 helpers for black-box tests, built on `node:net` so they
 * run under both Deno and Bun.
 *
 * `RawConnection` writes exact bytes and parses what comes back, one response
 * at a time, so tests can see framing that `fetch` hides: chunked encoding,
 * duplicate headers, a body that should not be there, a connection that
 * should close.
 *
 * @module
 */

import net from "node:net";
import { Buffer } from "node:buffer";
import {
  type Handler,
  serve,
  type ServeOptions,
  type Server,
} from "./_target.ts";

/** How long one read may wait for the server before failing. */
export const READ_TIMEOUT_MS = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a string as UTF-8. */
export function utf8(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s);
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve and reject functions. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

/** Creates a `Deferred`. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * `n` deterministic pseudo-random bytes (xorshift32). Unlike a short repeating
 * pattern, a misplaced, repeated or dropped block changes the result.
 */
export function pattern(n: number, seed = 0x9e3779b9): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Index of the first difference between two byte arrays, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** A parsed HTTP response. */
export class RawResponse {
  constructor(
    /** "1.1" or "1.0". */
    readonly version: string,
    readonly status: number,
    readonly reason: string,
    /** Header fields in wire order, names lower-cased. */
    readonly headers: ReadonlyArray<readonly [string, string]>,
    readonly body: Uint8Array,
    /** True if the body was sent with chunked transfer coding. */
    readonly chunked: boolean,
    /** Sizes of the chunks, in order, without the final 0 chunk. */
    readonly chunkSizes: readonly number[],
  ) {}

  /** All values of a header, in wire order. */
  getAll(name: string): string[] {
    const key = name.toLowerCase();
    return this.headers.filter(([k]) => k === key).map(([, v]) => v);
  }

  /** A header's values joined by ", ", or null if absent. */
  get(name: string): string | null {
    const all = this.getAll(name);
    return all.length === 0 ? null : all.join(", ");
  }

  /** The body as UTF-8 text. */
  text(): string {
    return decoder.decode(this.body);
  }
}

/** Thrown when bytes from the server are not valid HTTP/1.x. */
export class ResponseSyntaxError extends Error {
  override name = "ResponseSyntaxError";
}

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");

/** Options for parsing one response. */
export interface ParseOptions {
  /** The request was HEAD, so the response has no body. */
  head?: boolean;
  /** The server has closed, so a body delimited by close is complete. */
  eof?: boolean;
}

/**
 * Parses one response from `buf` at `offset`. Returns the response and the
 * offset after it, or null if more bytes are needed. Throws
 * `ResponseSyntaxError` on malformed input.
 */
export function parseResponse(
  buf: Buffer,
  offset: number,
  opts: ParseOptions = {},
): { response: RawResponse; end: number } | null {
  const headEnd = buf.indexOf(HEAD_END, offset);
  if (headEnd < 0) {
    if (opts.eof && buf.length > offset) {
      throw new ResponseSyntaxError(
        `Connection closed inside a response head: ${
          show(buf.subarray(offset))
        }`,
      );
    }
    return null;
  }
  const lines = buf.toString("latin1", offset, headEnd).split("\r\n");
  const statusLine = lines[0];
  const m = /^HTTP\/(1\.[01]) (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!m) {
    throw new ResponseSyntaxError(
      `Bad status line: ${JSON.stringify(statusLine)}`,
    );
  }
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const h = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!h) {
      throw new ResponseSyntaxError(`Bad header line: ${JSON.stringify(line)}`);
    }
    headers.push([h[1].toLowerCase(), h[2]]);
  }
  const status = Number(m[2]);
  const bodyStart = headEnd + 4;
  const make = (body: Uint8Array, chunked: boolean, sizes: number[]) =>
    new RawResponse(m[1], status, m[3] ?? "", headers, body, chunked, sizes);

  if (
    opts.head || (status >= 100 && status < 200) || status === 204 ||
    status === 304
  ) {
    return { response: make(new Uint8Array(0), false, []), end: bodyStart };
  }
  const te = headers.filter(([k]) => k === "transfer-encoding").map(([, v]) =>
    v
  ).join(",");
  if (te !== "") {
    const codings = te.split(",").map((s) => s.trim().toLowerCase());
    if (codings[codings.length - 1] !== "chunked") {
      throw new ResponseSyntaxError(`Unsupported Transfer-Encoding: ${te}`);
    }
    return parseChunked(buf, bodyStart, make);
  }
  const cls = headers.filter(([k]) => k === "content-length").map(([, v]) => v);
  if (cls.length > 0) {
    if (cls.some((v) => v !== cls[0]) || !/^\d+$/.test(cls[0])) {
      throw new ResponseSyntaxError(`Bad Content-Length: ${cls.join(", ")}`);
    }
    const len = Number(cls[0]);
    if (buf.length - bodyStart < len) {
      if (opts.eof) {
        throw new ResponseSyntaxError(
          `Connection closed after ${
            buf.length - bodyStart
          } of ${len} body bytes`,
        );
      }
      return null;
    }
    return {
      response: make(copy(buf, bodyStart, bodyStart + len), false, []),
      end: bodyStart + len,
    };
  }
  // No length: the body runs until the server closes the connection.
  if (!opts.eof) return null;
  return {
    response: make(copy(buf, bodyStart, buf.length), false, []),
    end: buf.length,
  };
}

function parseChunked(
  buf: Buffer,
  start: number,
  make: (body: Uint8Array, chunked: boolean, sizes: number[]) => RawResponse,
): { response: RawResponse; end: number } | null {
  const parts: Uint8Array[] = [];
  const sizes: number[] = [];
  let pos = start;
  for (;;) {
    const lineEnd = buf.indexOf(CRLF, pos);
    if (lineEnd < 0) return null;
    const line = buf.toString("latin1", pos, lineEnd);
    const sm = /^([0-9A-Fa-f]+)(?:[ \t]*;.*)?$/.exec(line);
    if (!sm) {
      throw new ResponseSyntaxError(
        `Bad chunk size line: ${JSON.stringify(line)}`,
      );
    }
    const size = parseInt(sm[1], 16);
    pos = lineEnd + 2;
    if (size === 0) {
      // Trailer fields, then an empty line.
      for (;;) {
        const end = buf.indexOf(CRLF, pos);
        if (end < 0) return null;
        const empty = end === pos;
        pos = end + 2;
        if (empty) break;
      }
      const body = Buffer.concat(parts);
      return { response: make(new Uint8Array(body), true, sizes), end: pos };
    }
    if (buf.length < pos + size + 2) return null;
    if (buf[pos + size] !== 0x0d || buf[pos + size + 1] !== 0x0a) {
      throw new ResponseSyntaxError(
        `Chunk of ${size} bytes not followed by CRLF`,
      );
    }
    parts.push(buf.subarray(pos, pos + size));
    sizes.push(size);
    pos += size + 2;
  }
}

function copy(buf: Buffer, start: number, end: number): Uint8Array {
  return new Uint8Array(buf.subarray(start, end));
}

function show(bytes: Uint8Array): string {
  const s = Buffer.from(bytes).toString("latin1");
  return JSON.stringify(s.length > 300 ? s.slice(0, 300) + "..." : s);
}

/** Options for reading one response. */
export interface ReadOptions {
  /** The request was HEAD. */
  head?: boolean;
  /** Return 1xx interim responses instead of skipping them. */
  interim?: boolean;
  /** How long to wait, in ms. */
  timeoutMs?: number;
}

/** One client connection that speaks raw bytes. */
export class RawConnection {
  #socket: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #offset = 0;
  #ended = false;
  #error: Error | undefined;
  #waiters: (() => void)[] = [];

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.#buf = this.#offset === this.#buf.length
        ? Buffer.from(chunk)
        : Buffer.concat([this.#buf.subarray(this.#offset), chunk]);
      this.#offset = 0;
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", (err: Error) => {
      this.#error = err;
      this.#ended = true;
      this.#wake();
    });
  }

  /** Connects to 127.0.0.1:`port`. */
  static open(port: number, host = "127.0.0.1"): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`Timed out connecting to ${host}:${port}`));
      }, READ_TIMEOUT_MS);
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(new RawConnection(socket));
      });
    });
  }

  /** The client-side port of this connection. */
  get localPort(): number {
    return this.#socket.localPort ?? -1;
  }

  /** True once the server has closed (or reset) the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  /** The socket error seen, if any (for example ECONNRESET). */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Bytes received but not yet consumed by a read. */
  get pending(): Uint8Array {
    return new Uint8Array(this.#buf.subarray(this.#offset));
  }

  /** Writes bytes (strings are sent as latin1, byte for byte). */
  write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Reads the next complete response. */
  async read(opts: ReadOptions = {}): Promise<RawResponse> {
    const deadline = Date.now() + (opts.timeoutMs ?? READ_TIMEOUT_MS);
    for (;;) {
      const parsed = parseResponse(this.#buf, this.#offset, {
        head: opts.head,
        eof: this.#ended,
      });
      if (parsed) {
        this.#offset = parsed.end;
        const r = parsed.response;
        if (r.status >= 100 && r.status < 200 && !opts.interim) continue;
        return r;
      }
      if (this.#ended) {
        throw new Error(
          `Connection closed before a complete response${
            this.#error ? ` (${this.#error.message})` : ""
          }; unread bytes: ${show(this.pending)}`,
        );
      }
      await this.#wait(deadline, "a response");
    }
  }

  /** Waits until the server closes the connection; returns unread bytes. */
  async closed(timeoutMs = READ_TIMEOUT_MS): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#ended) await this.#wait(deadline, "the server to close");
    return this.pending;
  }

  /**
   * Waits until the unread bytes (as latin1) contain `text`, without
   * consuming them: for watching a response arrive piece by piece. Rejects
   * if the server closes first or `timeoutMs` passes.
   */
  async waitForText(
    text: string,
    timeoutMs = READ_TIMEOUT_MS,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#buf.toString("latin1", this.#offset).includes(text)) return;
      if (this.#ended) {
        throw new Error(
          `Connection closed before ${show(utf8(text))} came; unread bytes: ${
            show(this.pending)
          }`,
        );
      }
      await this.#wait(deadline, show(utf8(text)));
    }
  }

  /** Closes the client side abruptly. */
  destroy(): void {
    this.#socket.destroy();
  }

  /**
   * Closes the client side with a reset (RST): the client is gone for good.
   * (A FIN alone is a half-close, whose requests are still answered, RFC
   * 9112 9.6.)
   */
  reset(): void {
    (this.#socket as net.Socket & { resetAndDestroy(): void })
      .resetAndDestroy();
  }

  /** Half-closes the client side (sends FIN) but keeps reading. */
  end(): void {
    this.#socket.end();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #wait(deadline: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const ms = deadline - Date.now();
      const timer = setTimeout(() => {
        reject(
          new Error(
            `Timed out waiting for ${what}; unread bytes: ${
              show(this.pending)
            }`,
          ),
        );
      }, Math.max(ms, 0));
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** Options for `rawRequest`. */
export interface RawRequestOptions {
  /**
   * Stop after this many final responses (default 1), or "close" to read
   * every response until the server closes the connection.
   */
  until?: number | "close";
  /** Methods of the requests in order, so HEAD responses parse correctly. */
  methods?: string[];
}

/** What `rawRequest` saw. */
export interface RawResult {
  responses: RawResponse[];
  /** True if the server closed the connection. */
  closed: boolean;
  /** Bytes left over after the parsed responses. */
  trailing: Uint8Array;
}

/**
 * Opens a connection, writes `data` exactly, and collects responses until
 * `until` is met. Always closes the connection.
 */
export async function rawRequest(
  port: number,
  data: string | Uint8Array,
  opts: RawRequestOptions = {},
): Promise<RawResult> {
  const until = opts.until ?? 1;
  const conn = await RawConnection.open(port);
  try {
    await conn.write(data);
    const responses: RawResponse[] = [];
    if (until === "close") {
      await conn.closed();
      for (;;) {
        if (conn.pending.length === 0) break;
        responses.push(
          await conn.read({
            head: opts.methods?.[responses.length] === "HEAD",
          }),
        );
      }
    } else {
      while (responses.length < until) {
        responses.push(
          await conn.read({
            head: opts.methods?.[responses.length] === "HEAD",
          }),
        );
      }
    }
    return { responses, closed: conn.ended, trailing: conn.pending };
  } finally {
    conn.destroy();
  }
}

/** Builds a simple request head; `headers` are written as given. */
export function requestHead(
  method: string,
  path: string,
  headers: [string, string][] = [],
  version = "HTTP/1.1",
): string {
  const lines = [`${method} ${path} ${version}`];
  if (
    version === "HTTP/1.1" && !headers.some(([k]) => k.toLowerCase() === "host")
  ) {
    lines.push("Host: 127.0.0.1");
  }
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  return lines.join("\r\n") + "\r\n\r\n";
}

/** Resolves if connecting to 127.0.0.1:`port` is refused; rejects otherwise. */
export function expectRefused(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`Connecting to port ${port} neither failed nor succeeded`),
      );
    }, READ_TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(`Port ${port} still accepts connections`));
    });
    socket.once("error", (err: Error & { code?: string }) => {
      clearTimeout(timer);
      if (err.code === "ECONNREFUSED") resolve();
      else reject(err);
    });
  });
}

/** Resolves true if a plain TCP listener can bind 127.0.0.1:`port`. */
export function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** Default options for test servers: ephemeral port, loopback, quiet. */
export const TEST_OPTIONS: ServeOptions = {
  port: 0,
  hostname: "127.0.0.1",
  onListen() {},
};

/** Starts a test server. */
export function startServer(
  handler: Handler,
  options: ServeOptions = {},
): Server {
  return serve({ ...TEST_OPTIONS, ...options }, handler);
}

/**
 * Starts a server on an ephemeral loopback port, runs `fn`, and always shuts
 * the server down afterwards.
 */
export async function withServer<T>(
  options: ServeOptions,
  handler: Handler,
  fn: (server: Server) => Promise<T>,
): Promise<T> {
  const server = startServer(handler, options);
  try {
    return await fn(server);
  } finally {
    await server.shutdown();
  }
}

/** `fetch` against the server, returning status, headers and body text. */
export async function fetchText(
  server: Server,
  path: string,
  init?: RequestInit,
): Promise<{ status: number; headers: Headers; body: string }> {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, init);
  const body = await res.text();
  return { status: res.status, headers: res.headers, body };
}
