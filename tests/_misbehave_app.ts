/**
 * A child process for misbehave_test.ts: a server whose handler misbehaves
 * in a different way on each path. It runs in its own process because some
 * of these faults have ended the whole process (an uncaught error in the
 * server's own code), and a test run must survive that to report it.
 *
 * Usage: `<runtime> tests/_misbehave_app.ts MODE`, where MODE picks the
 * `onError` option:
 *
 * - `marker` (the default): answers 500 with the body `onError: NAME: MSG`,
 *   so a test can tell that the answer came through onError;
 * - `default`: no onError, so the server's own (which logs and answers 500);
 * - `throws`: an onError that throws;
 * - `rejects`: an onError whose promise rejects;
 * - `non-response`: an onError that returns a plain object.
 *
 * It prints `port=N` once listening. Every path it does not know answers
 * `ok <path>`, the good request the tests send after each bad one.
 *
 * @module
 */

import process from "node:process";
import { serve, type ServeOptions } from "./_target.ts";

const encoder = new TextEncoder();

/** A stream that enqueues `chunks` one per pull, then does `end`. */
function stream(
  chunks: unknown[],
  end: "close" | "error" = "close",
): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<unknown>({
    async pull(controller) {
      // A pause before each piece, so the first ones are sent on their own
      // before the stream ends or fails.
      await new Promise((resolve) => setTimeout(resolve, 10));
      if (i < chunks.length) controller.enqueue(chunks[i++]);
      else if (end === "close") controller.close();
      else controller.error(new Error("body stream failed on purpose"));
    },
  }) as ReadableStream<Uint8Array>;
}

/** A piece of bytes. */
function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

/** A Response subclass whose `headers` getter throws. */
class ThrowingHeaders extends Response {
  override get headers(): Headers {
    throw new Error("headers getter failed on purpose");
  }
}

/** A Response subclass whose `status` getter throws. */
class ThrowingStatus extends Response {
  override get status(): number {
    throw new Error("status getter failed on purpose");
  }
}

/** A Response subclass that claims status 101 (as a WebSocket upgrade). */
class Status101 extends Response {
  override get status(): number {
    return 101;
  }
}

type Route = () => unknown;

const routes: Record<string, Route> = {
  // The Response's body cannot be read by the server.
  "/locked": () => {
    const r = new Response("locked body");
    r.body!.getReader();
    return r;
  },
  "/used": async () => {
    const r = new Response("used body");
    await r.text();
    return r;
  },
  "/locked-stream": () => {
    const r = new Response(stream([bytes("never sent")]));
    r.body!.getReader();
    return r;
  },
  // Throwing getters and things that are not Responses.
  "/headers-getter-throws": () => new ThrowingHeaders("x"),
  "/headers-property-throws": () => {
    const r = new Response("x");
    Object.defineProperty(r, "headers", {
      get() {
        throw new Error("headers property failed on purpose");
      },
    });
    return r;
  },
  "/status-getter-throws": () => new ThrowingStatus("x"),
  "/plain-object": () => ({
    status: 200,
    headers: new Headers({ "content-type": "text/plain" }),
    body: null,
  }),
  "/plain-object-status-throws": () => ({
    get status(): number {
      throw new Error("status getter failed on purpose");
    },
    headers: new Headers(),
    body: null,
  }),
  "/response-prototype-object": () =>
    Object.setPrototypeOf({ status: 200 }, Response.prototype),
  // Statuses a server cannot send as a final response.
  "/response-error": () => Response.error(),
  "/status-101": () => new Status101(null),
  "/status-101-property": () => {
    const r = new Response(null);
    Object.defineProperty(r, "status", { value: 101 });
    return r;
  },
  // Body streams that fail before or after their first chunk.
  "/stream-error-first": () => new Response(stream([], "error")),
  "/stream-error-start": () =>
    new Response(
      new ReadableStream({
        start(controller) {
          controller.error(new Error("failed in start on purpose"));
        },
      }),
    ),
  "/stream-throw-pull": () =>
    new Response(
      new ReadableStream({
        pull() {
          throw new Error("pull threw on purpose");
        },
      }),
    ),
  "/stream-error-late": () =>
    new Response(stream([bytes("part 1;"), bytes("part 2;")], "error")),
  "/stream-error-late-length": () =>
    new Response(stream([bytes("part 1;"), bytes("part 2;")], "error"), {
      headers: { "content-length": "100" },
    }),
  // Body streams that yield what is not bytes.
  "/stream-string": () => new Response(stream(["text chunk"])),
  "/stream-object": () => new Response(stream([{ not: "bytes" }])),
  "/stream-number": () => new Response(stream([42])),
  "/stream-null": () => new Response(stream([null])),
  "/stream-undefined": () => new Response(stream([undefined])),
  "/stream-object-late": () =>
    new Response(stream([bytes("part 1;"), { not: "bytes" }])),
  "/stream-empty": () => new Response(stream([])),
  // Handlers that fail or return nothing.
  "/throw": () => {
    throw new Error("handler threw on purpose");
  },
  "/throw-non-error": () => {
    throw "a string thrown on purpose";
  },
  "/reject": async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    throw new Error("handler rejected on purpose");
  },
  "/undefined": () => undefined,
  "/promise-undefined": () => Promise.resolve(undefined),
  "/null": () => null,
  "/string": () => "a string, not a Response",
};

const mode = process.argv[process.argv.length - 1];

function errorText(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}`
    : `${typeof error}: ${String(error)}`;
}

const onErrors: Record<string, ServeOptions["onError"]> = {
  marker: (error) =>
    new Response(`onError: ${errorText(error)}`, { status: 500 }),
  default: undefined,
  throws: () => {
    throw new Error("onError threw on purpose");
  },
  rejects: async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    throw new Error("onError rejected on purpose");
  },
  "non-response": () =>
    ({ status: 200, body: "not a Response" }) as unknown as Response,
};
const onError = mode in onErrors ? onErrors[mode] : onErrors.marker;

serve({
  port: 0,
  hostname: "127.0.0.1",
  onListen(addr) {
    console.log(`port=${addr.port}`);
  },
  ...(onError ? { onError } : {}),
}, (req) => {
  const path = new URL(req.url).pathname;
  const route = routes[path];
  if (route) return route() as Response;
  return new Response(`ok ${path}`);
});
