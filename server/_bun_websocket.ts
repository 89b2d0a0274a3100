/**
 * Bun's WebSocket API on ymo: the `websocket` handlers of `serve()`,
 * `server.upgrade(request, { headers, data })` ({@linkcode upgradeRequest}),
 * {@linkcode ServerWebSocket}, and pub/sub, done in C across worker
 * threads (`ws.subscribe`, `ws.publish`, `server.publish` through
 * {@linkcode publishThrough}). The socket core is _socket.ts's.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { WS_HIGH_WATER } from "../ffi/codec.ts";
import type { Pointer } from "../ffi/_types.ts";
import { EMPTY, type Exchange, publishOn } from "./_exchange.ts";
import { exchangeOf } from "./_request.ts";
import {
  bytesOf,
  checkCloseCode,
  checkReason,
  cores,
  encodeNow,
  encoder,
  headerLines,
  OP_BINARY,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  reportError,
  SocketCore,
} from "./_socket.ts";

/** Bun's `websocket` option of `serve()`: the handlers of every socket. */
export interface WebSocketHandler<T = unknown> {
  /** A socket opened (after the 101 went out). */
  open?(ws: ServerWebSocket<T>): void | Promise<void>;
  /** A message: a string for text, bytes (by `ws.binaryType`) for binary. */
  message(
    ws: ServerWebSocket<T>,
    message: string | Buffer,
  ): void | Promise<void>;
  /** The connection ended: the client's close code and reason, or 1006. */
  close?(
    ws: ServerWebSocket<T>,
    code: number,
    reason: string,
  ): void | Promise<void>;
  /** What was queued past the backpressure point has been written. */
  drain?(ws: ServerWebSocket<T>): void | Promise<void>;
  /** The client pinged (ymo has answered with a pong already). */
  ping?(ws: ServerWebSocket<T>, data: Buffer): void | Promise<void>;
  /** The client sent a pong. */
  pong?(ws: ServerWebSocket<T>, data: Buffer): void | Promise<void>;
  /** Largest message in bytes (16 MiB); bigger ones close with 1009. */
  maxPayloadLength?: number;
  /** Seconds without a message before the connection closes (120). */
  idleTimeout?: number;
  /** Bytes queued past which `send()` returns -1 (16 MiB; at least 256
   * KiB, where ymo's drain notice starts). */
  backpressureLimit?: number;
  /** Close the connection when the backpressure limit is passed. */
  closeOnBackpressureLimit?: boolean;
  /** Negotiate permessage-deflate and compress what is sent. */
  perMessageDeflate?: boolean | Record<string, unknown>;
  /** When the idle timeout runs out, ping the client and close only if
   * nothing comes back within another timeout (default true). */
  sendPings?: boolean;
  /** `ws.publish()` reaches the publishing socket too (default false). */
  publishToSelf?: boolean;
}

const HANDLER_KEYS = new Set([
  "open",
  "message",
  "close",
  "drain",
  "ping",
  "pong",
  "maxPayloadLength",
  "idleTimeout",
  "backpressureLimit",
  "closeOnBackpressureLimit",
  "perMessageDeflate",
  "sendPings",
  "publishToSelf",
]);

/** Checks Bun's `websocket` option; a TypeError or RangeError names what is
 * wrong. */
export function validateWebSocketHandler(value: unknown): void {
  if (value === null || typeof value !== "object") {
    throw new TypeError("Invalid websocket: expected an object of handlers");
  }
  const handler = value as Record<string, unknown>;
  for (const key of Object.keys(handler)) {
    if (!HANDLER_KEYS.has(key)) {
      throw new TypeError(`Unknown option: websocket.${key}`);
    }
  }
  if (typeof handler.message !== "function") {
    throw new TypeError("Invalid websocket.message: expected a function");
  }
  for (const name of ["open", "close", "drain", "ping", "pong"]) {
    if (handler[name] !== undefined && typeof handler[name] !== "function") {
      throw new TypeError(`Invalid websocket.${name}: expected a function`);
    }
  }
  for (const name of ["maxPayloadLength", "backpressureLimit"]) {
    const n = handler[name];
    if (
      n !== undefined &&
      (typeof n !== "number" || !Number.isInteger(n) || n < 1)
    ) {
      throw new RangeError(
        `Invalid websocket.${name}: ${String(n)} (expected a positive integer)`,
      );
    }
  }
  for (
    const name of ["closeOnBackpressureLimit", "sendPings", "publishToSelf"]
  ) {
    if (handler[name] !== undefined && typeof handler[name] !== "boolean") {
      throw new TypeError(`Invalid websocket.${name}: expected a boolean`);
    }
  }
  const idle = handler.idleTimeout;
  if (
    idle !== undefined &&
    (typeof idle !== "number" || !(idle >= 0) || idle > 960)
  ) {
    throw new RangeError(
      `Invalid websocket.idleTimeout: ${
        String(idle)
      } (expected seconds from 0 to 960)`,
    );
  }
}

/**
 * Bun's `ServerWebSocket`: the socket its `websocket` handlers get.
 */
export class ServerWebSocket<T = unknown> {
  #core: SocketCore;
  #handler: WebSocketHandler<T>;
  /** What `server.upgrade(request, { data })` attached. */
  data: T;
  /** How binary messages arrive: "nodebuffer" (Buffer, the default),
   * "arraybuffer" or "uint8array". */
  binaryType: "nodebuffer" | "arraybuffer" | "uint8array" = "nodebuffer";
  /** The client's IP address. */
  readonly remoteAddress: string;

  /** Made by `server.upgrade()`, never by apps. */
  constructor(exchange: Exchange, handler: WebSocketHandler<T>, data: T) {
    this.#core = new SocketCore(exchange, {
      opened: () => this.#opened(),
      message: (data, text) => this.#message(data, text),
      ping: (data) => this.#control(handler.ping, data),
      pong: (data) => this.#control(handler.pong, data),
      drain: () => {
        const drain = handler.drain;
        if (drain !== undefined) this.#call(() => drain(this));
      },
      closed: (code, reason) => {
        const close = handler.close;
        if (close !== undefined) this.#call(() => close(this, code, reason));
      },
    }, compresses(handler));
    cores.set(this, this.#core);
    this.#handler = handler;
    this.data = data;
    this.remoteAddress = exchange.remoteHostname;
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed, as WebSocket's. */
  get readyState(): number {
    return this.#core.readyState;
  }

  #call(fn: (() => void | Promise<void>) | undefined): void {
    if (fn === undefined) return;
    try {
      const result = fn();
      if (result instanceof Promise) result.catch(reportError);
    } catch (error) {
      reportError(error);
    }
  }

  #binary(data: Uint8Array): Buffer | ArrayBuffer | Uint8Array {
    if (this.binaryType === "uint8array") return data;
    // The core's copy: its buffer is the message's, exactly.
    if (this.binaryType === "arraybuffer") return data.buffer as ArrayBuffer;
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }

  #opened(): void {
    const open = this.#handler.open;
    // After fetch has returned, as in Bun.
    if (open !== undefined) queueMicrotask(() => this.#call(() => open(this)));
  }

  #message(data: string | Uint8Array, text: boolean): void {
    const message = text ? data as string : this.#binary(data as Uint8Array);
    // Inline rather than #call: no closure per message.
    try {
      const result = this.#handler.message(this, message as string | Buffer);
      if (result instanceof Promise) result.catch(reportError);
    } catch (error) {
      reportError(error);
    }
  }

  #control(
    fn:
      | ((ws: ServerWebSocket<T>, data: Buffer) => void | Promise<void>)
      | undefined,
    data: Uint8Array,
  ): void {
    if (fn !== undefined) this.#call(() => fn(this, Buffer.from(data)));
  }

  #sendBytes(opcode: number, bytes: Uint8Array, compress?: boolean): number {
    const rc = this.#core.send(
      opcode,
      bytes,
      compress ?? compresses(this.#handler),
    );
    if (rc < 0) return 0;
    // C asks for a drain record past WS_HIGH_WATER only, so a lower limit
    // could leave a -1 without its drain.
    const limit = Math.max(
      this.#handler.backpressureLimit ?? 16 * 1024 * 1024,
      WS_HIGH_WATER,
    );
    if (rc > limit) {
      if (this.#handler.closeOnBackpressureLimit) this.#core.terminate();
      return -1;
    }
    return Math.max(1, bytes.byteLength);
  }

  /**
   * Sends a message: a string as text, bytes as binary. Returns the bytes
   * sent, -1 when they were queued past the backpressure limit, or 0 when
   * the socket is closed.
   */
  send(
    data: string | ArrayBufferLike | ArrayBufferView,
    compress?: boolean,
  ): number {
    if (typeof data === "string") return this.sendText(data, compress);
    return this.sendBinary(data, compress);
  }

  /** Sends a text message; returns as {@linkcode ServerWebSocket.send}. */
  sendText(data: string, compress?: boolean): number {
    return this.#sendBytes(OP_TEXT, encodeNow(String(data)), compress);
  }

  /** Sends a binary message; returns as {@linkcode ServerWebSocket.send}. */
  sendBinary(
    data: ArrayBufferLike | ArrayBufferView,
    compress?: boolean,
  ): number {
    const bytes = bytesOf(data);
    if (bytes === undefined) {
      throw new TypeError(
        "ServerWebSocket.send: expected a string, an ArrayBuffer or a view",
      );
    }
    return this.#sendBytes(OP_BINARY, bytes, compress);
  }

  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void {
    this.#core.close(
      checkCloseCode(code, "ServerWebSocket.close"),
      checkReason(reason, "ServerWebSocket.close"),
    );
  }

  /** Closes the connection at once, without a closing handshake. */
  terminate(): void {
    this.#core.terminate();
  }

  /** Sends a ping (at most 125 bytes). */
  ping(data?: string | ArrayBufferLike | ArrayBufferView): number {
    return this.#sendControl(OP_PING, data);
  }

  /** Sends an unsolicited pong (at most 125 bytes). */
  pong(data?: string | ArrayBufferLike | ArrayBufferView): number {
    return this.#sendControl(OP_PONG, data);
  }

  #sendControl(
    opcode: number,
    data: string | ArrayBufferLike | ArrayBufferView | undefined,
  ): number {
    const bytes = data === undefined
      ? EMPTY
      : typeof data === "string"
      ? encoder.encode(data)
      : bytesOf(data) ?? EMPTY;
    if (bytes.byteLength > 125) {
      throw new RangeError("A ping or pong carries at most 125 bytes");
    }
    return this.#sendBytes(opcode, bytes, false);
  }

  /** Runs `callback`; sends are written together anyway (one writev per
   * connection per pass of the loop). */
  cork<R>(callback: (ws: ServerWebSocket<T>) => R): R {
    return callback(this);
  }

  #topics = new Set<string>();

  /** Subscribes to `topic`: what anyone publishes to it reaches this
   * socket, from any worker thread. */
  subscribe(topic: string): void {
    const bytes = topicBytes(topic, "subscribe");
    const name = String(topic);
    if (this.#topics.has(name)) return;
    if (this.#core.subscribe(bytes, true)) this.#topics.add(name);
  }

  /** Stops receiving what is published to `topic`. */
  unsubscribe(topic: string): void {
    const bytes = topicBytes(topic, "unsubscribe");
    if (!this.#topics.delete(String(topic))) return;
    this.#core.subscribe(bytes, false);
  }

  /** Whether this socket subscribes to `topic`. */
  isSubscribed(topic: string): boolean {
    return this.#topics.has(String(topic));
  }

  /** The topics this socket subscribes to. */
  get subscriptions(): string[] {
    return [...this.#topics];
  }

  /**
   * Sends a message to every subscriber of `topic` but this socket (unless
   * the `publishToSelf` option): a string as text, bytes as binary. C frames
   * it once and copies it behind each subscriber's output. Returns the
   * message's length, or 0 when the socket is closed.
   */
  publish(
    topic: string,
    data: string | ArrayBufferLike | ArrayBufferView,
    _compress?: boolean,
  ): number {
    const name = topicBytes(topic, "publish");
    const [opcode, bytes] = messageOf(data, "ServerWebSocket.publish");
    const rc = this.#core.publish(
      name,
      opcode,
      bytes,
      this.#handler.publishToSelf === true,
    );
    return rc < 0 ? 0 : rc;
  }

  /** {@linkcode ServerWebSocket.publish} of a text message. */
  publishText(topic: string, data: string, compress?: boolean): number {
    return this.publish(topic, String(data), compress);
  }

  /** {@linkcode ServerWebSocket.publish} of a binary message. */
  publishBinary(
    topic: string,
    data: ArrayBufferLike | ArrayBufferView,
    compress?: boolean,
  ): number {
    if (typeof data === "string") {
      throw new TypeError("ServerWebSocket.publishBinary: expected bytes");
    }
    return this.publish(topic, data, compress);
  }
}

/** The last topic encoded, since a publisher mostly repeats one. */
let lastTopic = "";
let lastTopicBytes = new Uint8Array(0);

/** A topic's UTF-8, checked to be 1 to 65535 bytes. */
function topicBytes(topic: unknown, what: string): Uint8Array {
  const name = String(topic);
  if (name === lastTopic && name !== "") return lastTopicBytes;
  const bytes = encoder.encode(name);
  if (bytes.byteLength === 0 || bytes.byteLength > 65535) {
    throw new TypeError(
      `ServerWebSocket.${what}: a topic is 1 to 65535 bytes of UTF-8`,
    );
  }
  lastTopic = name;
  lastTopicBytes = bytes;
  return bytes;
}

/** A message's opcode and bytes: a string as text, bytes as binary. */
function messageOf(data: unknown, what: string): [number, Uint8Array] {
  if (typeof data === "string") return [OP_TEXT, encodeNow(data)];
  const bytes = bytesOf(data);
  if (bytes === undefined) {
    throw new TypeError(
      `${what}: expected a string, an ArrayBuffer or a view`,
    );
  }
  return [OP_BINARY, bytes];
}

/**
 * Bun's `server.publish(topic, data)`: every subscriber of `topic`, on any
 * worker thread, gets the message; sent through the queue of one native
 * worker per loop of the server (`workers`, the first the caller's own).
 * Returns the message's length, or 0 when the server is stopping.
 */
export function publishThrough(
  workers: readonly Pointer[],
  topic: string,
  data: string | ArrayBufferLike | ArrayBufferView,
): number {
  const name = topicBytes(topic, "publish");
  const [opcode, bytes] = messageOf(data, "server.publish");
  const rc = publishOn(workers, name, opcode, bytes);
  return rc < 0 ? 0 : rc;
}

/**
 * Bun's `server.upgrade(request, { headers, data })`: accepts the handshake
 * now (the 101 goes out, then `websocket.open` runs). False when the
 * request is no WebSocket handshake, was answered, or the server has no
 * `websocket` handlers.
 */
export function upgradeRequest(
  request: Request,
  handler: WebSocketHandler | undefined,
  options: { headers?: HeadersInit; data?: unknown } = {},
): boolean {
  const exchange = exchangeOf(request);
  if (
    handler === undefined || exchange === undefined ||
    !exchange.upgradable || exchange.responded
  ) return false;
  exchange.upgradable = false;
  const headers = headerLines(options.headers);
  const ws = new ServerWebSocket(exchange, handler, options.data);
  return cores.get(ws)!.accept(headers, compresses(handler));
}

/** Whether Bun's handlers ask for permessage-deflate. */
function compresses(handler: WebSocketHandler<never>): boolean {
  return handler.perMessageDeflate !== undefined &&
    handler.perMessageDeflate !== false;
}
