/**
 * A raw WebSocket client for tests: sends exact handshake and frame bytes
 * over node:net and reads the server's frames one by one, so tests can
 * break the protocol on purpose and see what the server answers.
 *
 * @module
 */
import { connect, type Socket } from "node:net";
import { Buffer } from "node:buffer";
import { serve, type Server, type WebSocketHandler } from "../mod.ts";

/** A server on a free loopback port that accepts every request as a
 * WebSocket with Bun's `websocket` handlers. */
export function serveSockets(
  // deno-lint-ignore no-explicit-any
  websocket: WebSocketHandler<any>,
): Server {
  return serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    fetch(request, server) {
      server.upgrade(request);
      return undefined as unknown as Response;
    },
    websocket,
  });
}

/** A frame the server sent. */
export interface Frame {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  payload: Uint8Array;
}

/** A close frame's code (1005 for none) and reason. */
export function closeOf(frame: Frame): { code: number; reason: string } {
  if (frame.payload.byteLength < 2) return { code: 1005, reason: "" };
  return {
    code: (frame.payload[0] << 8) | frame.payload[1],
    reason: new TextDecoder().decode(frame.payload.subarray(2)),
  };
}

/** A client frame: masked (unless `masked` is false), FIN unless told. */
export function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  { fin = true, masked = true, rsv = 0 } = {},
): Uint8Array {
  const data = typeof payload === "string"
    ? new TextEncoder().encode(payload)
    : payload;
  const len = data.byteLength;
  const head: number[] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const maskBit = masked ? 0x80 : 0;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 255);
  else {
    head.push(maskBit | 127, 0, 0, 0, 0);
    head.push(
      (len >>> 24) & 255,
      (len >>> 16) & 255,
      (len >>> 8) & 255,
      len & 255,
    );
  }
  const mask = [0x12, 0x34, 0x56, 0x78];
  if (masked) head.push(...mask);
  const out = new Uint8Array(head.length + len);
  out.set(head);
  for (let i = 0; i < len; i++) {
    out[head.length + i] = masked ? data[i] ^ mask[i & 3] : data[i];
  }
  return out;
}

/** A close frame's payload: code, then reason. */
export function closePayload(code: number, reason = ""): Uint8Array {
  const r = new TextEncoder().encode(reason);
  const out = new Uint8Array(2 + r.byteLength);
  out[0] = code >> 8;
  out[1] = code & 255;
  out.set(r, 2);
  return out;
}

/** The handshake request for `path`, with extra header lines. */
export function handshake(
  path = "/",
  extra: Record<string, string> = {},
): string {
  const headers: Record<string, string> = {
    Host: "127.0.0.1",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...extra,
  };
  let text = `GET ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value !== "") text += `${name}: ${value}\r\n`;
  }
  return text + "\r\n";
}

/** A raw connection: the response head, then frames. */
export class RawWebSocket {
  #socket: Socket;
  #buf = Buffer.alloc(0);
  #wake: (() => void) | null = null;
  #ended = false;
  /** The response head ("HTTP/1.1 101 ..." to the blank line). */
  head = "";

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      this.#wake?.();
    });
    const end = () => {
      this.#ended = true;
      this.#wake?.();
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", end);
  }

  /** Connects, sends `request` (and `early` bytes in the same write) and
   * reads the response head. */
  static async open(
    port: number,
    request = handshake(),
    early?: Uint8Array,
  ): Promise<RawWebSocket> {
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const ws = new RawWebSocket(socket);
    const bytes = new TextEncoder().encode(request);
    socket.write(early ? Buffer.concat([bytes, early]) : bytes);
    const at = await ws.#until(() => ws.#buf.indexOf("\r\n\r\n"), 5000);
    if (at < 0) throw new Error(`No response head: ${ws.#buf.toString()}`);
    ws.head = ws.#buf.subarray(0, at).toString("latin1");
    ws.#buf = ws.#buf.subarray(at + 4);
    return ws;
  }

  /** Waits until `probe` returns >= 0, the connection ends, or `ms`. */
  async #until(probe: () => number, ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    for (;;) {
      const n = probe();
      if (n >= 0 || this.#ended) return n;
      const left = deadline - Date.now();
      if (left <= 0) return -1;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  /** The length of the whole frame at the start of the buffer, or -1. */
  #frameLength(): number {
    const b = this.#buf;
    if (b.length < 2) return -1;
    let len = b[1] & 127;
    let at = 2;
    if (len === 126) {
      if (b.length < 4) return -1;
      len = b.readUInt16BE(2);
      at = 4;
    } else if (len === 127) {
      if (b.length < 10) return -1;
      len = Number(b.readBigUInt64BE(2));
      at = 10;
    }
    return b.length >= at + len ? at + len : -1;
  }

  /** The next frame, or null when the connection ended (or `ms` passed). */
  async frame(ms = 5000): Promise<Frame | null> {
    const total = await this.#until(() => this.#frameLength(), ms);
    if (total < 0) return null;
    const b = this.#buf;
    const headLen = total -
      ((b[1] & 127) === 126
        ? total - 4
        : (b[1] & 127) === 127
        ? total - 10
        : total - 2);
    const frame: Frame = {
      fin: (b[0] & 0x80) !== 0,
      rsv1: (b[0] & 0x40) !== 0,
      opcode: b[0] & 15,
      payload: new Uint8Array(b.subarray(headLen, total)),
    };
    this.#buf = b.subarray(total);
    return frame;
  }

  /** Whether the server closed the connection within `ms`. */
  async ended(ms = 5000): Promise<boolean> {
    await this.#until(() => -1, ms);
    return this.#ended;
  }

  send(bytes: Uint8Array): void {
    this.#socket.write(bytes);
  }

  destroy(): void {
    this.#socket.destroy();
  }
}
