/**
 * The core of a WebSocket whose handshake C accepted, under both APIs
 * (_websocket.ts: Deno's standard `WebSocket`; _bun_websocket.ts: Bun's
 * `ServerWebSocket`): sending, closing, the ready state, and turning what C
 * hands over into strings and bytes. Frames, pings, the closing handshake
 * and UTF-8 checks are C's (native/src/websocket.c).
 *
 * @module
 */
import {
  EPIPE,
  WS_COMPRESS,
  WS_DEFLATE,
  WS_PUBLISH_SELF,
} from "../ffi/symbols.ts";
import { EMPTY, type Exchange, type SocketEvents } from "./_exchange.ts";

export const OP_TEXT = 1;
export const OP_BINARY = 2;
export const OP_CLOSE = 8;
export const OP_PING = 9;
export const OP_PONG = 10;

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

export const encoder = new TextEncoder();
const decoder = new TextDecoder();

let scratch = new Uint8Array(4096);

/** The UTF-8 of `text` in a reused buffer, valid until the next call: for
 * bytes C copies at once (a send), saving an allocation per message. */
export function encodeNow(text: string): Uint8Array {
  if (text.length * 3 > scratch.byteLength) {
    scratch = new Uint8Array(Math.max(text.length * 3, scratch.byteLength * 2));
  }
  const { written } = encoder.encodeInto(text, scratch);
  return scratch.subarray(0, written);
}

/** Bytes of what an app sends: strings as UTF-8, buffers and views as they
 * are. Blobs are read by the callers that accept them. */
export function bytesOf(data: unknown): Uint8Array | undefined {
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
export interface SocketApi {
  opened(): void;
  message(data: string | Uint8Array, text: boolean): void;
  ping(data: Uint8Array): void;
  pong(data: Uint8Array): void;
  drain(): void;
  closed(code: number, reason: string, clean: boolean): void;
}

/** One accepted WebSocket, shared by both APIs. */
export class SocketCore implements SocketEvents {
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
export const cores = new WeakMap<object, SocketCore>();

/** A close code an app may send (RFC 6455 section 7.4). */
export function checkCloseCode(code: number | undefined, what: string): number {
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

export function checkReason(
  reason: string | undefined,
  what: string,
): Uint8Array {
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
export function headerLines(
  headers: Headers | HeadersInit | undefined,
): Uint8Array {
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

export function reportError(error: unknown): void {
  const report = (globalThis as { reportError?: (e: unknown) => void })
    .reportError;
  if (report !== undefined) report(error);
  else console.error(error);
}
