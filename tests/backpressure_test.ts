// A streamed response to a client that does not read must pause the
// producer instead of buffering the whole body in C.
import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "./_shim.ts";
import { serve } from "./_target.ts";

const CHUNK = 16 * 1024;
const TOTAL = 64 * 1024 * 1024;

test("a slow reader pauses a streamed response (backpressure)", async () => {
  let produced = 0;
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, () =>
    new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(new Uint8Array(CHUNK).fill(97));
          produced += CHUNK;
          if (produced >= TOTAL) controller.close();
        },
      }),
    ));
  const socket = net.connect(server.port, "127.0.0.1");
  try {
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    let received = 0;
    let resumed = false;
    const ended = new Promise<void>((resolve) => socket.on("end", resolve));
    socket.on("data", (data: Uint8Array) => {
      received += data.byteLength;
      if (!resumed) socket.pause(); // Read the first bytes, then stall.
    });
    socket.write(
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    // Wait until the producer stops (or finishes): no change for 500 ms.
    let last = -1;
    for (let i = 0; i < 100 && produced !== last; i++) {
      last = produced;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const stalledAt = produced;
    assert.ok(
      stalledAt < TOTAL / 2,
      `the producer stopped at ${stalledAt} bytes, not at the whole ${TOTAL}`,
    );
    resumed = true;
    socket.resume();
    await ended;
    assert.equal(produced, TOTAL, "the producer finished after the reader resumed");
    assert.ok(received > TOTAL, `the whole body arrived (${received} bytes)`);
  } finally {
    socket.destroy();
    await server.shutdown();
  }
});
