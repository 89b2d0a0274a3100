// A streamed response to a client that does not read must pause the
// producer instead of buffering the whole body in C.
import assert from "node:assert/strict";
import * as net from "node:net";
import { test } from "./_shim.ts";
// Straight from mod.ts: this file uses ymo-only options (maxBodySize).
import { serve } from "../mod.ts";

const CHUNK = 16 * 1024;
const TOTAL = 64 * 1024 * 1024;

test("a slow reader pauses a streamed response (backpressure)", async () => {
  let produced = 0;
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () =>
      new Response(
        new ReadableStream<Uint8Array>({
          pull(controller) {
            controller.enqueue(new Uint8Array(CHUNK).fill(97));
            produced += CHUNK;
            if (produced >= TOTAL) controller.close();
          },
        }),
      ),
  );
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
    assert.equal(
      produced,
      TOTAL,
      "the producer finished after the reader resumed",
    );
    assert.ok(received > TOTAL, `the whole body arrived (${received} bytes)`);
  } finally {
    socket.destroy();
    await server.shutdown();
  }
});

test("an upload the handler does not read yet stops being read (backpressure)", async () => {
  const TOTAL_UP = 128 * 1024 * 1024;
  let startReading!: () => void;
  const go = new Promise<void>((resolve) => startReading = resolve);
  let entered!: () => void;
  const handlerEntered = new Promise<void>((resolve) => entered = resolve);
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    maxBodySize: 2 * TOTAL_UP,
  }, async (req) => {
    entered();
    await go;
    let total = 0;
    let sum = 0;
    for await (const chunk of req.body!) {
      // Every 4096th byte of the whole body, wherever the chunks split it.
      for (
        let i = (4096 - total % 4096) % 4096;
        i < chunk.byteLength;
        i += 4096
      ) {
        sum = (sum + chunk[i]) % 65521;
      }
      total += chunk.byteLength;
    }
    return new Response(`${total} ${sum}`);
  });
  const socket = net.connect(server.port, "127.0.0.1");
  try {
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    let reply = "";
    socket.on("data", (d) => reply += d);
    const ended = new Promise<void>((resolve) => socket.on("end", resolve));
    socket.write(
      `POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${TOTAL_UP}\r\n\r\n`,
    );
    // Write until the kernel refuses more, as a fast client would.
    const block = new Uint8Array(64 * 1024);
    let queued = 0;
    let expectedSum = 0;
    const writeSome = () => {
      while (queued < TOTAL_UP) {
        for (let i = 0; i < block.byteLength; i += 4096) {
          block[i] = (queued / 65536 + i) & 0xff;
          expectedSum = (expectedSum + block[i]) % 65521;
        }
        queued += block.byteLength;
        if (!socket.write(block.slice())) return;
      }
    };
    socket.on("drain", writeSome);
    writeSome();
    await handlerEntered;
    // Let the server read all it will; then the client must be stuck.
    let last = -1;
    for (let i = 0; i < 60 && socket.bytesWritten !== last; i++) {
      last = socket.bytesWritten;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.ok(
      socket.bytesWritten < TOTAL_UP / 2,
      `the server stopped reading at ${socket.bytesWritten} of ${TOTAL_UP} bytes`,
    );
    startReading();
    await ended;
    assert.match(reply, /^HTTP\/1\.1 200/);
    assert.ok(reply.endsWith(`${TOTAL_UP} ${expectedSum}`), reply.slice(-40));
  } finally {
    socket.destroy();
    await server.shutdown();
  }
});
