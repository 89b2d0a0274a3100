/**
 * `serve()`: its four call forms (handler; options and handler; options with
 * `fetch`, as Bun.serve; options with `workers` and `module`), each making a
 * {@linkcode Server}.
 *
 * @module
 */
import type { ServeHandler, ServeInit, ServeOptions } from "./_options.ts";
import { Server } from "./_server.ts";

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
  const init = a as { fetch?: ServeHandler; handler?: ServeHandler };
  if (init.fetch !== undefined && init.handler !== undefined) {
    throw new TypeError(
      "Invalid options: fetch and handler are one option, give one",
    );
  }
  const handler = b ?? init.fetch ?? init.handler;
  // Server checks the handler: optional with workers or routes.
  return new Server(a, handler);
}
