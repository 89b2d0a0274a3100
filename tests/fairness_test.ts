// The JS thread takes requests in bounded drains: a queue that synchronous
// handlers never empty (a client pipelining thousands of requests) must not
// keep timers and awaiting handlers waiting until it does.
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "./_shim.ts";
import { deferred } from "./_http.ts";
import { startChild } from "./_child.ts";
import { serve } from "../mod.ts";

/** Busy-waits, as a CPU-heavy synchronous handler does. */
function spin(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) { /* work */ }
}

/** A server whose /endless answers a stream that always has a 16 KiB chunk
 * ready (`pulling` is called before each), and every other path "other". */
function endlessServer(pulling: (bytes: number) => void) {
  const chunk = new Uint8Array(16 * 1024).fill(97);
  return serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (req) =>
      new URL(req.url).pathname === "/endless"
        ? new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              pulling(chunk.byteLength);
              controller.enqueue(chunk.slice());
            },
          }),
        )
        : new Response("other"),
  );
}

test("a timer set by a handler fires while pipelined requests still queue", async () => {
  // Each connection's next request is parsed once the one before it is
  // answered, so 50 connections pipelining 60 each keep the queue full for
  // as long as all 3000 take (~300 ms of handlers).
  const connections = 50, each = 60, total = connections * each;
  let handled = 0;
  let handledWhenTimerFired = -1;
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () => {
      handled++;
      if (handled === 1) {
        setTimeout(() => handledWhenTimerFired = handled, 0);
      }
      spin(100);
      return new Response("ok");
    },
  );
  const answered = deferred();
  const sockets: net.Socket[] = [];
  try {
    let seen = 0;
    for (let i = 0; i < connections; i++) {
      const socket = net.connect(server.port, "127.0.0.1");
      sockets.push(socket);
      let text = "";
      socket.on("data", (chunk: Uint8Array) => {
        text += new TextDecoder().decode(chunk);
        let at: number;
        while ((at = text.indexOf("\r\n\r\nok")) >= 0) {
          text = text.slice(at + 6);
          if (++seen === total) answered.resolve();
        }
      });
      socket.on("error", (error: Error) => answered.reject(error));
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(each));
    }
    await answered.promise;
    assert.ok(
      handledWhenTimerFired > 0 && handledWhenTimerFired < total,
      `the timer fired after ${handledWhenTimerFired} of ${total} requests`,
    );
  } finally {
    for (const socket of sockets) socket.destroy();
    await server.shutdown();
  }
});

test("a stream that always has a chunk ready takes turns with other requests", async () => {
  // A client that reads as fast as the pull makes chunks: the other
  // requests must still be answered while it flows.
  const server = endlessServer(() => {});
  const endless = net.connect(server.port, "127.0.0.1");
  try {
    let received = 0;
    const flowing = deferred();
    endless.on("data", (data: Uint8Array) => {
      received += data.byteLength;
      if (received > 4 << 20) flowing.resolve();
    });
    endless.on("error", (error: Error) => flowing.reject(error));
    endless.write("GET /endless HTTP/1.1\r\nHost: x\r\n\r\n");
    await flowing.promise;
    for (let i = 0; i < 3; i++) {
      // Bounded, so that starving them fails instead of hanging the suite.
      const response = await fetch(`http://127.0.0.1:${server.port}/other`, {
        signal: AbortSignal.timeout(30_000),
      });
      assert.equal(await response.text(), "other");
    }
    const before = received;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(received > before, "the endless stream still flows");
  } finally {
    endless.destroy();
    await server.shutdown();
  }
});

test("a stream that a fast client reads to no end lets timers and other requests go on", async () => {
  // curl in another process takes the bytes as fast as they come, so the
  // socket never fills and the stream never waits for a drain: its chunks
  // come through microtasks alone, which must not keep the event loop (this
  // test's timers and fetch included) from turning. Starved, the timer
  // would fire only once curl gives up (--max-time) and the stream ends.
  let pulled = 0;
  const server = endlessServer((bytes) => {
    // Slower than curl reads, so the socket never fills.
    spin(20);
    pulled += bytes;
  });
  const curl = startChild("curl", [
    "-s",
    "-o",
    "/dev/null",
    "--max-time",
    "20",
    `http://127.0.0.1:${server.port}/endless`,
  ]);
  let curlDone = false;
  curl.exited.then(() => curlDone = true);
  try {
    while (pulled < 1 << 20 && !curlDone) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const start = pulled;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(
      !curlDone,
      `the timer fired once curl was done: ${curl.stderr()}`,
    );
    assert.ok(pulled > start + (1 << 20), "the stream flowed meanwhile");
    const response = await fetch(`http://127.0.0.1:${server.port}/other`, {
      signal: AbortSignal.timeout(15_000),
    });
    assert.equal(await response.text(), "other");
    assert.ok(!curlDone, "the other request was answered while it flowed");
  } finally {
    await curl.stop();
    await server.shutdown();
  }
});
