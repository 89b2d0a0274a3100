/**
 * WebSocket on an exchange whose handshake C accepted: one socket core
 * ({@linkcode SocketCore}: sending, closing, the ready state, decoding what
 * C hands over) under the two APIs apps use, Deno's standard `WebSocket`
 * from {@linkcode upgradeWebSocket}, and Bun's `ServerWebSocket` with the
 * `websocket` handlers of `serve()` and `server.upgrade()`.
 *
 * Frames, pings, the closing handshake and UTF-8 checks are C's
 * (native/src/websocket.c); this file only turns messages into events and
 * calls into strings and bytes.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  EPIPE,
  WS_COMPRESS,
  WS_DEFLATE,
  WS_PUBLISH_SELF,
} from "../ffi/symbols.ts";
import { loadNative } from "../ffi/native.ts";
import { RESP_HIGH_WATER } from "../ffi/codec.ts";
import type { Pointer } from "../ffi/_types.ts";
import type { Exchange, SocketEvents } from "./_exchange.ts";
import { exchangeOf } from "./_request.ts";

const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;
const OP_PONG = 10;

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

const lib = (await loadNative()).fn;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);

let scratch = new Uint8Array(4096);

/** The UTF-8 of `text` in a reused buffer, valid until the next call: for
 * bytes C copies at once (a send), saving an allocation per message. */
function encodeNow(text: string): Uint8Array {
  if (text.length * 3 > scratch.byteLength) {
    scratch = new Uint8Array(Math.max(text.length * 3, scratch.byteLength * 2));
  }
  const { written } = encoder.encodeInto(text, scratch);
  return scratch.subarray(0, written);
}

/** Bytes of what an app sends: strings as UTF-8, buffers and views as they
 * are. Blobs are read by the callers that accept them. */
function bytesOf(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) {
    return new Uint8Array(data);
  }
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return undefined;
}

/** The code and reason of a close frame's payload (1005: none). */
function closePayload(data: Uint8Array): { code: number; reason: string } {
  if (data.byteLength < 2) return { code: 1005, reason: "" };
  return {
    code: (data[0] << 8) | data[1],
    reason: decoder.decode(data.subarray(2)),
  };
}

/** What a socket core tells the API object above it. */
interface SocketApi {
  opened(): void;
  message(data: string | Uint8Array, text: boolean): void;
  ping(data: Uint8Array): void;
  pong(data: Uint8Array): void;
  drain(): void;
  closed(code: number, reason: string, clean: boolean): void;
}

/** One accepted WebSocket, shared by both APIs. */
class SocketCore implements SocketEvents {
  readyState = CONNECTING;
  /** Bytes queued for the client and not yet written, as of the last send. */
  bufferedAmount = 0;
  #exchange: Exchange;
  #api: SocketApi;
  #compress: boolean;
  /** The client's close frame, once it came. */
  #closeFrame: { code: number; reason: string } | null = null;

  constructor(exchange: Exchange, api: SocketApi, compress: boolean) {
    this.#exchange = exchange;
    this.#api = api;
    this.#compress = compress;
  }

  /** Accepts the handshake; false when the client is gone. */
  accept(headers: Uint8Array, deflate: boolean): boolean {
    const rc = this.#exchange.wsAccept(
      headers,
      this,
      deflate ? WS_DEFLATE : 0,
    );
    if (rc !== 0) {
      this.readyState = CLOSED;
      return false;
    }
    this.readyState = OPEN;
    this.#api.opened();
    return true;
  }

  /** Sends a message; the bytes still queued, or a negative error. */
  send(
    opcode: number,
    bytes: Uint8Array,
    compress: boolean = this.#compress,
  ): number {
    if (this.readyState !== OPEN) return EPIPE;
    const rc = this.#exchange.wsSend(
      opcode,
      bytes,
      compress ? WS_COMPRESS : 0,
    );
    if (rc >= 0) this.bufferedAmount = rc;
    return rc;
  }

  /** Subscribes to or unsubscribes from a topic (pub/sub, in C). */
  subscribe(topic: Uint8Array, on: boolean): boolean {
    if (this.readyState !== OPEN) return false;
    return this.#exchange.wsSubscribe(topic, on) === 0;
  }

  /** Publishes to a topic's subscribers but this socket, unless `self`. */
  publish(
    topic: Uint8Array,
    opcode: number,
    bytes: Uint8Array,
    self: boolean,
  ): number {
    if (this.readyState !== OPEN) return EPIPE;
    return this.#exchange.wsPublish(
      topic,
      opcode,
      bytes,
      self ? WS_PUBLISH_SELF : 0,
    );
  }

  /** Starts the closing handshake (code 0: none). */
  close(code: number, reason: Uint8Array): void {
    if (this.readyState !== OPEN) return;
    this.readyState = CLOSING;
    this.#exchange.wsClose(code, reason);
  }

  /** Closes the connection without a closing handshake. */
  terminate(): void {
    if (this.readyState === CLOSED) return;
    this.#exchange.socket = null;
    this.#exchange.release();
    this.gone();
  }

  message(opcode: number, data: Uint8Array): void {
    switch (opcode) {
      case OP_TEXT:
        // C checked that a text message is UTF-8.
        this.#api.message(decoder.decode(data), true);
        break;
      case OP_BINARY:
        // `data` is a view into the take buffer: the app may keep a copy.
        this.#api.message(data.slice(), false);
        break;
      case OP_PING:
        this.#api.ping(data.slice());
        break;
      case OP_PONG:
        this.#api.pong(data.slice());
        break;
      case OP_CLOSE:
        // C has answered it; the connection ends next.
        this.#closeFrame = closePayload(data);
        if (this.readyState === OPEN) this.readyState = CLOSING;
        break;
    }
  }

  drain(): void {
    this.bufferedAmount = 0;
    this.#api.drain();
  }

  gone(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.bufferedAmount = 0;
    const frame = this.#closeFrame;
    if (frame !== null) this.#api.closed(frame.code, frame.reason, true);
    else this.#api.closed(1006, "", false);
  }
}

/** The core under each API object, for the code that accepts it. */
const cores = new WeakMap<object, SocketCore>();

/** A close code an app may send (RFC 6455 section 7.4). */
function checkCloseCode(code: number | undefined, what: string): number {
  if (code === undefined) return 0;
  if (
    !Number.isInteger(code) ||
    !(code === 1000 || (code >= 3000 && code <= 4999))
  ) {
    throw new DOMException(
      `${what}: the close code must be 1000 or from 3000 to 4999, not ${code}`,
      "InvalidAccessError",
    );
  }
  return code;
}

function checkReason(reason: string | undefined, what: string): Uint8Array {
  if (reason === undefined) return EMPTY;
  const bytes = encoder.encode(String(reason));
  if (bytes.byteLength > 123) {
    throw new DOMException(
      `${what}: the reason must be at most 123 bytes of UTF-8`,
      "SyntaxError",
    );
  }
  return bytes;
}

/** The header lines of a Response's headers, minus those C writes. */
function headerLines(headers: Headers | HeadersInit | undefined): Uint8Array {
  if (headers === undefined) return EMPTY;
  let lines = "";
  for (const [name, value] of new Headers(headers)) {
    const lower = name.toLowerCase();
    if (
      lower === "upgrade" || lower === "connection" ||
      lower === "sec-websocket-accept" || lower === "sec-websocket-extensions"
    ) continue;
    lines += `${name}: ${value}\r\n`;
  }
  return encoder.encode(lines);
}

// ------------------------------------------------------------------ Deno

/** The options of {@linkcode upgradeWebSocket}, as Deno's. */
export interface UpgradeWebSocketOptions {
  /** The subprotocol to answer with (one the client offered). */
  protocol?: string;
  /** Deno's ping-based idle timeout per socket: not supported by ymo,
   * whose idle timeout is the server's `websocket.idleTimeout`. */
  idleTimeout?: number;
}

/** What {@linkcode upgradeWebSocket} returns, as Deno's. */
export interface WebSocketUpgrade {
  /** The server's end of the connection, open once `response` is sent. */
  socket: WebSocket;
  /** The 101 response to return from the handler. */
  response: Response;
}

/** Upgrade responses made by upgradeWebSocket: their exchange, and what
 * sends them. */
const pendingUpgrades = new WeakMap<
  Response,
  { exchange: Exchange; send: () => void }
>();

/**
 * If `response` is one {@linkcode upgradeWebSocket} made for `exchange`,
 * sends it (the 101, and the socket opens) and returns true.
 */
export function sendUpgrade(exchange: Exchange, response: Response): boolean {
  const upgrade = pendingUpgrades.get(response);
  if (upgrade === undefined || upgrade.exchange !== exchange) return false;
  pendingUpgrades.delete(response);
  upgrade.send();
  return true;
}

/**
 * The server's end of a WebSocket, shaped as the standard `WebSocket`
 * (Deno's `upgradeWebSocket` gives one): events and `on*` handlers,
 * `readyState`, `binaryType`, `bufferedAmount`, `protocol`, `extensions`,
 * `send()` and `close()`.
 */
class ServerSideWebSocket extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSING = CLOSING;
  readonly CLOSED = CLOSED;

  #core: SocketCore;
  #binaryType: BinaryType = "blob";
  #url: string;
  #protocol: string;
  #extensions = "";
  /** Sends waiting for a Blob to be read, to keep their order. */
  #queue: Promise<void> | null = null;

  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;

  constructor(exchange: Exchange, url: string, protocol: string) {
    super();
    this.#core = new SocketCore(exchange, {
      opened: () => this.#fire(new Event("open"), this.onopen),
      message: (data, text) => this.#message(data, text),
      ping: () => {},
      pong: () => {},
      drain: () => {},
      closed: (code, reason, clean) => this.#closed(code, reason, clean),
    }, false);
    cores.set(this, this.#core);
    this.#url = url;
    this.#protocol = protocol;
  }

  get url(): string {
    return this.#url;
  }
  /** 0 connecting, 1 open, 2 closing, 3 closed, as WebSocket's. */
  get readyState(): number {
    return this.#core.readyState;
  }
  get bufferedAmount(): number {
    return this.#core.bufferedAmount;
  }
  get protocol(): string {
    return this.#protocol;
  }
  get extensions(): string {
    return this.#extensions;
  }
  get binaryType(): BinaryType {
    return this.#binaryType;
  }
  set binaryType(value: BinaryType) {
    if (value === "blob" || value === "arraybuffer") this.#binaryType = value;
  }

  #fire(event: Event, handler: ((event: never) => void) | null): void {
    try {
      handler?.call(this, event as never);
    } catch (error) {
      reportError(error);
    }
    this.dispatchEvent(event);
  }

  #message(data: string | Uint8Array, text: boolean): void {
    let value: string | ArrayBuffer | Blob;
    if (text) value = data as string;
    else {
      const bytes = data as Uint8Array;
      // The core's copy: its buffer is the message's, exactly.
      value = this.#binaryType === "arraybuffer"
        ? bytes.buffer as ArrayBuffer
        : new Blob([bytes as Uint8Array<ArrayBuffer>]);
    }
    this.#fire(
      new MessageEvent("message", { data: value, origin: this.#origin() }),
      this.onmessage,
    );
  }

  #origin(): string {
    try {
      return new URL(this.#url).origin;
    } catch {
      return "";
    }
  }

  /** The connection ended (also when the 101 could not be sent). */
  #closed(code: number, reason: string, clean: boolean): void {
    if (!clean) this.#fire(new Event("error"), this.onerror);
    this.#fire(
      new CloseEvent("close", { code, reason, wasClean: clean }),
      this.onclose,
    );
  }

  /** Sends a text (string) or binary message. */
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void {
    if (this.#core.readyState === CONNECTING) {
      throw new DOMException(
        "WebSocket.send: the socket is not open yet",
        "InvalidStateError",
      );
    }
    if (data instanceof Blob) {
      const read = data.arrayBuffer();
      this.#chain(async () => {
        this.#core.send(OP_BINARY, new Uint8Array(await read));
      });
      return;
    }
    const text = typeof data === "string";
    const later = this.#queue !== null;
    const bytes = text
      ? later ? encoder.encode(data) : encodeNow(data)
      : bytesOf(data);
    if (bytes === undefined) {
      throw new TypeError(
        "WebSocket.send: expected a string, an ArrayBuffer, a view or a Blob",
      );
    }
    if (later) {
      this.#chain(() => {
        this.#core.send(text ? OP_TEXT : OP_BINARY, bytes);
      });
    } else this.#core.send(text ? OP_TEXT : OP_BINARY, bytes);
  }

  #chain(step: () => void | Promise<void>): void {
    const queue = (this.#queue ?? Promise.resolve()).then(step).catch(
      reportError,
    );
    this.#queue = queue;
    queue.then(() => {
      if (this.#queue === queue) this.#queue = null;
    });
  }

  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void {
    const c = checkCloseCode(code, "WebSocket.close");
    const r = checkReason(reason, "WebSocket.close");
    if (this.#queue !== null) this.#chain(() => this.#core.close(c, r));
    else this.#core.close(c, r);
  }
}

function reportError(error: unknown): void {
  const report = (globalThis as { reportError?: (e: unknown) => void })
    .reportError;
  if (report !== undefined) report(error);
  else console.error(error);
}

/**
 * Deno's `Deno.upgradeWebSocket`, for a request ymo is serving: returns the
 * socket and the 101 response to return from the handler; the socket opens
 * once that response is sent.
 *
 * @throws TypeError when the request is not a WebSocket opening handshake
 * ymo is serving, or was upgraded already.
 */
export function upgradeWebSocket(
  request: Request,
  options: UpgradeWebSocketOptions = {},
): WebSocketUpgrade {
  const exchange = exchangeOf(request);
  if (exchange === undefined) {
    throw new TypeError(
      "upgradeWebSocket: the request is not one a ymo server is handling",
    );
  }
  if (!exchange.upgradable) {
    throw new TypeError(
      "upgradeWebSocket: the request is not a WebSocket opening handshake (GET with Upgrade: websocket, Connection: upgrade, Sec-WebSocket-Version: 13 and a valid Sec-WebSocket-Key)",
    );
  }
  if (exchange.responded || exchange.socket !== null) {
    throw new TypeError("upgradeWebSocket: the request was answered already");
  }
  exchange.upgradable = false;
  const protocol = options.protocol ?? "";
  const url = request.url.replace(/^http/, "ws");
  const socket = new ServerSideWebSocket(exchange, url, protocol);
  const response = new Response(null, { status: 200 });
  Object.defineProperty(response, "status", { value: 101 });
  const headers = protocol === ""
    ? EMPTY
    : encoder.encode(`Sec-WebSocket-Protocol: ${protocol}\r\n`);
  pendingUpgrades.set(response, {
    exchange,
    send: () => {
      cores.get(socket)!.accept(headers, false);
    },
  });
  return { socket: socket as unknown as WebSocket, response };
}

// ------------------------------------------------------------------- Bun

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
    // C asks for a drain record past RESP_HIGH_WATER only, so a lower limit
    // could leave a -1 without its drain.
    const limit = Math.max(
      this.#handler.backpressureLimit ?? 16 * 1024 * 1024,
      RESP_HIGH_WATER,
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
 * worker thread, gets the message; sent through native worker `worker`'s
 * queue. Returns the message's length, or 0 when the server is stopping.
 */
export function publishThrough(
  worker: Pointer,
  topic: string,
  data: string | ArrayBufferLike | ArrayBufferView,
): number {
  const name = topicBytes(topic, "publish");
  const [opcode, bytes] = messageOf(data, "server.publish");
  const rc: number = lib.ymo_worker_publish(
    worker,
    name,
    name.byteLength,
    opcode,
    bytes,
    bytes.byteLength,
  );
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
