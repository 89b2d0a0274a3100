/**
 * The handler's second argument, one object that is both what Deno.serve
 * passes (`ServeHandlerInfo`: `remoteAddr`, `completed`) and what Bun.serve
 * passes (its server: `requestIP(request)`, `url`, `port`, `hostname`,
 * `pendingRequests`, `stop()`), so apps written for either run unchanged.
 *
 * @module
 */
import type {
  NetAddr,
  ServeHandlerInfo,
  SocketAddress,
  UnixAddr,
} from "./_options.ts";
import type { Exchange } from "./_exchange.ts";

/** The longest timeout() in seconds: its milliseconds fit in an int32. */
const MAX_TIMEOUT_S = 2147483;

/**
 * Bun's `server.timeout(request, seconds)` for the request's exchange
 * (undefined: not this server's request, ignored), with its argument
 * checked: a TypeError or RangeError naming it.
 */
export function requestTimeout(
  exchange: Exchange | undefined,
  seconds: unknown,
): void {
  if (typeof seconds !== "number") {
    throw new TypeError("Invalid seconds: expected a number");
  }
  if (!(seconds >= 0 && seconds <= MAX_TIMEOUT_S)) {
    throw new RangeError(
      `Invalid seconds: ${seconds} (expected 0 to ${MAX_TIMEOUT_S})`,
    );
  }
  exchange?.setTimeout(seconds);
}

/** What a handler's second argument tells of the server it runs in: the
 * Bun members of {@linkcode ServeHandlerInfo}, and the exchange behind a
 * Request. */
export interface ServerFacade extends
  Pick<
    ServeHandlerInfo,
    | "url"
    | "port"
    | "hostname"
    | "pendingRequests"
    | "stop"
    | "requestIP"
    | "publish"
    | "upgrade"
  > {
  /** The exchange of a request this server is handling, if it is one. */
  exchangeOf(request: Request): Exchange | undefined;
}

/** The client address of an exchange, in Bun's shape (null for a unix
 * socket's client, as Bun gives). */
export function socketAddress(exchange: Exchange): SocketAddress | null {
  const address = exchange.remoteHostname;
  if (address === "") return null;
  return {
    address,
    family: address.includes(":") ? "IPv6" : "IPv4",
    port: exchange.remotePort,
  };
}

/**
 * The second argument of a handler, for one request. Cheap to make: the
 * address and the completion promise are made only when read.
 */
export class HandlerInfo implements ServeHandlerInfo {
  #exchange: Exchange;
  #server: ServerFacade;

  /**
   * Makes the info of one request.
   *
   * @param exchange The request's exchange.
   * @param server The server, as the handler sees it.
   */
  constructor(exchange: Exchange, server: ServerFacade) {
    this.#exchange = exchange;
    this.#server = server;
  }

  /** Deno: the client's address. */
  get remoteAddr(): NetAddr | UnixAddr {
    if (this.#exchange.remoteHostname === "") {
      return { transport: "unix", path: "" };
    }
    return {
      transport: "tcp",
      hostname: this.#exchange.remoteHostname,
      port: this.#exchange.remotePort,
    };
  }

  /** Deno: resolves once the response is finished, or the client is gone. */
  get completed(): Promise<void> {
    return this.#exchange.completed;
  }

  /** Bun: the server's URL. */
  get url(): URL {
    return this.#server.url;
  }

  /** Bun: the port the server listens on. */
  get port(): number {
    return this.#server.port;
  }

  /** Bun: the address the server listens on. */
  get hostname(): string {
    return this.#server.hostname;
  }

  /** Bun: requests taken on this thread and not yet answered. */
  get pendingRequests(): number {
    return this.#server.pendingRequests;
  }

  /**
   * Bun: the client address of `request`.
   *
   * @param request A request this server is handling.
   * @returns Its client's address, or null for another Request.
   */
  requestIP(request: Request): SocketAddress | null {
    return this.#server.requestIP(request);
  }

  /**
   * Bun: stops the server.
   *
   * @param closeActiveConnections Close connections with requests in
   * flight at once, instead of letting them finish.
   */
  stop(closeActiveConnections?: boolean): Promise<void> {
    return this.#server.stop(closeActiveConnections);
  }

  /**
   * Bun: an idle timeout for one request: while it is being answered, its
   * connection is closed (and `request.signal` aborted) after `seconds`
   * without a byte moving on it. 0 turns it off, which is ymo's default: no
   * idle timeout applies while a request is in flight.
   *
   * @param request A request this server is handling (others are ignored).
   * @param seconds Seconds, from 0 to 2147483.
   */
  timeout(request: Request, seconds: number): void {
    requestTimeout(this.#server.exchangeOf(request), seconds);
  }

  /**
   * Bun: sends a message to every WebSocket subscribed to `topic`, on every
   * worker thread. Returns the message's length, or 0 once stopping.
   *
   * @param topic The topic (1 to 65535 bytes of UTF-8).
   * @param data A string (text) or bytes (binary).
   */
  publish(
    topic: string,
    data: string | ArrayBufferLike | ArrayBufferView,
  ): number {
    return this.#server.publish(topic, data);
  }

  /**
   * Bun: accepts the WebSocket handshake of `request` now, with the server's
   * `websocket` handlers; `data` becomes `ws.data` and `headers` go in the
   * 101 response. False when the request is not a WebSocket handshake, was
   * answered already, or the server has no `websocket` option.
   */
  upgrade(
    request: Request,
    options?: { headers?: HeadersInit; data?: unknown },
  ): boolean {
    return this.#server.upgrade(request, options);
  }
}
