/**
 * Deno's WebSocket API on ymo: {@linkcode upgradeWebSocket} returns the
 * standard `WebSocket` shape (events, `on*` handlers, `readyState`,
 * `binaryType`, `bufferedAmount`, `protocol`, `send`, `close`) and the 101
 * response to return; the socket opens once that response is sent
 * ({@linkcode sendUpgrade}, from _response.ts). The socket core is
 * _socket.ts's.
 *
 * @module
 */
import { EMPTY, type Exchange } from "./_exchange.ts";
import { exchangeOf } from "./_request.ts";
import {
  bytesOf,
  checkCloseCode,
  checkReason,
  CLOSED,
  CLOSING,
  CONNECTING,
  cores,
  encodeNow,
  encoder,
  OP_BINARY,
  OP_TEXT,
  OPEN,
  reportError,
  SocketCore,
} from "./_socket.ts";

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
  /** The origin every message event carries, worked out once. */
  #origin: string;
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
    this.#origin = originOf(url);
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
      new MessageEvent("message", { data: value, origin: this.#origin }),
      this.onmessage,
    );
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

/** The origin of a socket's URL, or "" if it has none. */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "";
  }
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
