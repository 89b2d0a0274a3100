/**
 * Picks the `serve()` implementation under test.
 *
 * `YMO_TEST_TARGET=reference` selects `./_reference.ts` (the same API on top of
 * `Deno.serve` / `Bun.serve`, used to check that the tests themselves are
 * right); anything else selects `../mod.ts`.
 *
 * The types below are the black-box contract the tests rely on. They are
 * written here rather than imported from mod.ts so the suite tests the
 * documented API, not whatever mod.ts happens to export, and so the reference
 * can stand in for it.
 *
 * @module
 */

import process from "node:process";

/** A TCP address. */
export interface Addr {
  transport: "tcp";
  hostname: string;
  port: number;
}

/** The second argument of a handler. */
export interface ServeHandlerInfo {
  remoteAddr: Addr;
}

/** A fetch-style request handler. */
export type Handler = (
  req: Request,
  info: ServeHandlerInfo,
) => Response | Promise<Response>;

/** Options accepted by `serve()`. */
export interface ServeOptions {
  port?: number;
  hostname?: string;
  onListen?: (addr: Addr) => void;
  onError?: (error: unknown) => Response | Promise<Response>;
  signal?: AbortSignal;
}

/** Options that carry their handler as `fetch`. */
export interface ServeInit extends ServeOptions {
  fetch: Handler;
}

/** The server returned by `serve()`. */
export interface Server {
  readonly addr: Addr;
  readonly port: number;
  readonly url: URL;
  readonly finished: Promise<void>;
  shutdown(): Promise<void>;
  ref(): void;
  unref(): void;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The three call forms of `serve()`. */
export interface ServeFn {
  (handler: Handler): Server;
  (options: ServeOptions, handler: Handler): Server;
  (init: ServeInit): Server;
}

/** "reference" or "ymo". */
export const TARGET: string = process.env.YMO_TEST_TARGET === "reference"
  ? "reference"
  : "ymo";

// A variable specifier: the module is resolved only when the suite runs, so
// the reference adapter is never loaded for ymo runs (and vice versa), and a
// missing or half-written mod.ts fails the run with its own error here.
const specifier = TARGET === "reference" ? "./_reference.ts" : "../mod.ts";
const mod = (await import(specifier)) as { serve?: unknown };
if (typeof mod.serve !== "function") {
  throw new TypeError(`${specifier} does not export a serve() function`);
}

/** The implementation under test. */
export const serve: ServeFn = mod.serve as ServeFn;
