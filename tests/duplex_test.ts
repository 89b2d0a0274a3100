/**
 * The handler runs as soon as the request head is complete (issue 10,
 * DESIGN.md "HTTP semantics"), as with `Deno.serve`: the rest of the body
 * streams into `request.body` as it arrives, so a handler can answer before
 * the body is sent, a slow client is served as long as its pieces keep
 * coming within `requestTimeout`, and a handler can read a piece and answer
 * a piece over one exchange.
 *
 * Each test orders its steps by what it observes (the handler was called,
 * the response head arrived), never by how long something took. A step that
 * cannot happen fails after a few seconds instead of hanging the suite.
 *
 * Runs unchanged under `deno test -A tests/duplex_test.ts` and
 * `bun test tests/duplex_test.ts`.
 */

import assert from "node:assert/strict";
import { test } from "./_shim.ts";
import type { Handler, ServeOptions, Server } from "./_target.ts";
import {
  deferred,
  delay,
  fetchText,
  RawConnection,
  withServer,
} from "./_http.ts";

/** How long any one step may wait before the test fails. */
const WAIT_MS = 4_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The serve() options used here beyond the common ones (mod.ts). */
interface Options extends ServeOptions {
  /** Time to receive the head, then the longest gap between body pieces. */
  requestTimeout?: number;
  /** How long shutdown() waits for in-flight requests. */
  shutdownTimeout?: number;
}

/**
 * Runs `fn` with a server; a short shutdownTimeout so that a handler left
 * waiting for a body that never came (when a test fails) does not hold the
 * suite.
 */
function withDuplex(
  options: Options,
  handler: Handler,
  fn: (server: Server) => Promise<void>,
): Promise<void> {
  return withServer(
    {
      onError: (e) => new Response(`onError: ${e}`, { status: 500 }),
      shutdownTimeout: 1_000,
      ...options,
    } as Options,
    handler,
    fn,
  );
}

/** Waits for `promise`, failing with `what` after WAIT_MS. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out waiting for ${what}`)),
      WAIT_MS,
    );
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

test("duplex: the handler runs once the head is complete, before any of a Content-Length body is sent, and answers at once", async () => {
  const called = deferred<void>();
  await withDuplex({}, (req) => {
    if (req.body === null) return new Response("ok");
    called.resolve();
    const reader = req.body!.getReader();
    let first = true;
    // The first piece says the handler runs; then the request body, echoed.
    return new Response(
      new ReadableStream({
        async pull(controller) {
          if (first) {
            first = false;
            controller.enqueue(encoder.encode("handler running;"));
            return;
          }
          const { value, done } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
      }),
    );
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n",
      );
      await within(called.promise, "the handler to be called (no body sent)");
      await conn.waitForText("handler running;", WAIT_MS);
      const early = decoder.decode(conn.pending);
      assert.match(
        early,
        /^HTTP\/1\.1 200 /,
        "the response head comes before the request body is sent",
      );
      await conn.write("0123456789");
      const res = await conn.read({ timeoutMs: WAIT_MS });
      assert.equal(res.status, 200);
      assert.equal(res.text(), "handler running;0123456789");
      // The connection goes on, or is closed cleanly (Deno.serve closes it
      // after a response that streamed while the request body came).
      await conn.write("GET /next HTTP/1.1\r\nHost: a\r\n\r\n").catch(
        () => {},
      );
      try {
        const next = await conn.read({ timeoutMs: WAIT_MS });
        assert.equal(next.status, 200);
        assert.equal(next.text(), "ok");
      } catch (error) {
        assert.ok(
          conn.ended && conn.pending.length === 0,
          `the next request on the connection: ${(error as Error).message}`,
        );
      }
    } finally {
      conn.destroy();
    }
    const after = await fetchText(server, "/");
    assert.equal(after.body, "ok", "the server goes on");
  });
});

test("duplex: a slow client sending a small body piece by piece, each gap within requestTimeout but the whole beyond it, is served, and the handler saw the head first", async () => {
  const BODY = "slow body!";
  let handlerCalls = 0;
  const called = deferred<void>();
  await withDuplex({ requestTimeout: 300 }, async (req) => {
    handlerCalls++;
    called.resolve();
    const body = await req.text();
    return new Response(`got ${body}`);
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(
        `POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: ${BODY.length}\r\n\r\n`,
      );
      // One byte every 100 ms: 1 s in all, over three times requestTimeout.
      for (let i = 0; i < BODY.length; i++) {
        await delay(100);
        assert.ok(
          !conn.ended && conn.pending.length === 0,
          `nothing may come before the body is complete; after ${i} bytes ` +
            `got ${JSON.stringify(decoder.decode(conn.pending))}`,
        );
        if (i === BODY.length - 1) {
          // The handler must already run: it saw the head at once, not the
          // whole body (this would wait forever if it only ran after it).
          await within(
            called.promise,
            "the handler to be called before the last body byte",
          );
        }
        await conn.write(BODY[i]);
      }
      const res = await conn.read({ timeoutMs: WAIT_MS });
      assert.equal(res.status, 200, `got ${res.status}: ${res.text()}`);
      assert.equal(res.text(), `got ${BODY}`);
      assert.equal(handlerCalls, 1);
    } finally {
      conn.destroy();
    }
    // requestTimeout still bounds a body that stops coming.
    const stalled = await RawConnection.open(server.port);
    try {
      await stalled.write(
        "POST /stalled HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
      );
      const res = await stalled.read({ timeoutMs: WAIT_MS });
      assert.ok(
        res.status === 408 || res.status === 500,
        `a stalled body gets 408 (or 500 from the handler whose body ` +
          `read failed), got ${res.status}`,
      );
      await stalled.closed(WAIT_MS);
    } finally {
      stalled.destroy();
    }
  });
});

test("duplex: a handler reads a piece and answers a piece over a chunked request and a chunked response", async () => {
  await withDuplex({}, (req) => {
    if (req.body === null) return new Response("ok");
    const reader = req.body.getReader();
    let text = "";
    return new Response(
      new ReadableStream({
        async pull(controller) {
          for (;;) {
            const m = /ping (\d+);/.exec(text);
            if (m) {
              text = text.slice(m.index + m[0].length);
              controller.enqueue(encoder.encode(`pong ${m[1]};`));
              return;
            }
            const { value, done } = await reader.read();
            if (done) {
              controller.enqueue(encoder.encode("end;"));
              controller.close();
              return;
            }
            text += decoder.decode(value, { stream: true });
          }
        },
      }),
    );
  }, async (server) => {
    const conn = await RawConnection.open(server.port);
    try {
      await conn.write(
        "POST /duplex HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
          "7\r\nping 1;\r\n",
      );
      await conn.waitForText("pong 1;", WAIT_MS);
      for (const n of [2, 3]) {
        // The next piece is sent only once the answer to the last came.
        await conn.write(`7\r\nping ${n};\r\n`);
        await conn.waitForText(`pong ${n};`, WAIT_MS);
      }
      await conn.write("0\r\n\r\n");
      const res = await conn.read({ timeoutMs: WAIT_MS });
      assert.equal(res.status, 200);
      assert.equal(res.chunked, true, "a streamed answer is sent chunked");
      assert.equal(res.text(), "pong 1;pong 2;pong 3;end;");
    } finally {
      conn.destroy();
    }
    // The server goes on.
    const after = await fetchText(server, "/");
    assert.equal(after.status, 200);
  });
});
