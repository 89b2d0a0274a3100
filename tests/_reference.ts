/**
 * A reference implementation of ymo's `serve()` API on top of the runtime's
 * own server (`Deno.serve` under Deno, `Bun.serve` under Bun).
 *
 * It exists only to check the test suite: a test that fails here either found
 * a quirk of that platform (documented in the report) or is wrong. Select it
 * with `YMO_TEST_TARGET=reference`.
 *
 * @module
 */

import type {
  Addr,
  Handler,
  ServeInit,
  ServeOptions,
  Server,
} from "./_target.ts";

function parseArgs(
  a: unknown,
  b: unknown,
): { options: ServeOptions; handler: Handler } {
  let options: ServeOptions;
  let handler: unknown;
  if (typeof a === "function") {
    options = {};
    handler = a;
  } else if (a !== null && typeof a === "object") {
    options = a as ServeOptions;
    handler = b !== undefined ? b : (a as Partial<ServeInit>).fetch;
  } else {
    throw new TypeError("Invalid arguments: expected a handler or options");
  }
  if (typeof handler !== "function") {
    throw new TypeError("Invalid handler: expected a function");
  }
  const port = options.port ?? 8000;
  if (
    typeof port !== "number" || !Number.isInteger(port) || port < 0 ||
    port > 65535
  ) {
    throw new RangeError(
      `Invalid port: expected an integer from 0 to 65535, got ${port}`,
    );
  }
  return { options, handler: handler as Handler };
}

function defaultOnError(error: unknown): Response {
  console.error(error);
  return new Response("Internal Server Error", { status: 500 });
}

function urlOf(addr: Addr): URL {
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  return new URL(`http://${host}:${addr.port}/`);
}

function serveDeno(options: ServeOptions, handler: Handler): Server {
  const hostname = options.hostname ?? "0.0.0.0";
  const inner = Deno.serve({
    port: options.port ?? 8000,
    hostname,
    signal: options.signal,
    onListen: (a) => {
      const addr = { transport: "tcp" as const, hostname, port: a.port };
      if (options.onListen) options.onListen(addr);
      else console.log(`Listening on ${urlOf(addr)}`);
    },
    onError: options.onError ?? defaultOnError,
    handler: (req, info) => {
      const remote = info.remoteAddr as Deno.NetAddr;
      return handler(req, {
        remoteAddr: {
          transport: "tcp",
          hostname: remote.hostname,
          port: remote.port,
        },
      });
    },
  });
  const local = inner.addr as Deno.NetAddr;
  const addr: Addr = {
    transport: "tcp",
    hostname: local.hostname,
    port: local.port,
  };
  return {
    addr,
    port: addr.port,
    url: urlOf(addr),
    finished: inner.finished,
    shutdown: () => inner.shutdown(),
    ref: () => inner.ref(),
    unref: () => inner.unref(),
    [Symbol.asyncDispose]: () => inner.shutdown(),
  };
}

interface BunServer {
  port: number;
  hostname: string;
  stop(closeActiveConnections?: boolean): Promise<void>;
  ref(): void;
  unref(): void;
  requestIP(req: Request): { address: string; port: number } | null;
}

interface BunNamespace {
  serve(options: {
    port: number;
    hostname: string;
    development: boolean;
    fetch(req: Request, server: BunServer): Response | Promise<Response>;
    error(error: unknown): Response | Promise<Response>;
  }): BunServer;
}

function serveBun(options: ServeOptions, handler: Handler): Server {
  const bun = (globalThis as unknown as { Bun: BunNamespace }).Bun;
  const onError = options.onError ?? defaultOnError;
  const inner = bun.serve({
    port: options.port ?? 8000,
    hostname: options.hostname ?? "0.0.0.0",
    development: false,
    fetch(req, server) {
      const ip = server.requestIP(req);
      return handler(req, {
        remoteAddr: {
          transport: "tcp",
          hostname: ip?.address ?? "",
          port: ip?.port ?? 0,
        },
      });
    },
    error: onError,
  });
  const addr: Addr = {
    transport: "tcp",
    hostname: options.hostname ?? "0.0.0.0",
    port: inner.port,
  };
  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => (resolveFinished = r));
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= inner.stop(false).then(resolveFinished);
    return stopping;
  };
  if (options.signal) {
    if (options.signal.aborted) queueMicrotask(shutdown);
    else options.signal.addEventListener("abort", shutdown, { once: true });
  }
  if (options.onListen) options.onListen(addr);
  else console.log(`Listening on ${urlOf(addr)}`);
  return {
    addr,
    port: addr.port,
    url: urlOf(addr),
    finished,
    shutdown,
    ref: () => inner.ref(),
    unref: () => inner.unref(),
    [Symbol.asyncDispose]: shutdown,
  };
}

/** `serve()` with ymo's signature, backed by the runtime's own server. */
export function serve(a: unknown, b?: unknown): Server {
  const { options, handler } = parseArgs(a, b);
  return "Bun" in globalThis
    ? serveBun(options, handler)
    : serveDeno(options, handler);
}
