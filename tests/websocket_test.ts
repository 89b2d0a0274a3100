// WebSocket (RFC 6455): both APIs (Deno's upgradeWebSocket, Bun's
// websocket handlers with server.upgrade) with the runtime's own WebSocket
// client, and raw frames for the handshake checks, automatic pongs, the
// closing handshake and every protocol error the server must close with.
import assert from "node:assert/strict";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { test } from "./_shim.ts";
import {
  serve,
  type Server,
  type ServerWebSocket,
  upgradeWebSocket,
} from "../mod.ts";
import {
  clientFrame,
  closeOf,
  closePayload,
  type Frame,
  handshake,
  RawWebSocket,
  serveSockets,
} from "./_ws.ts";

const QUIET = { hostname: "127.0.0.1", port: 0, onListen() {} };

/** A Deno-style echo server: text comes back prefixed, binary as it is. */
function denoEcho(): Server {
  return serve(QUIET, (request) => {
    if (request.headers.get("upgrade") !== "websocket") {
      return new Response("plain");
    }
    const { socket, response } = upgradeWebSocket(request);
    socket.onmessage = (event) => {
      socket.send(
        typeof event.data === "string" ? `echo:${event.data}` : event.data,
      );
    };
    return response;
  });
}

/** Opens a client WebSocket and resolves once it is open. */
async function client(url: string, protocols?: string[]): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
  return ws;
}

/** The next message a client WebSocket gets. */
function nextMessage(ws: WebSocket): Promise<string | ArrayBuffer> {
  return new Promise((resolve) => {
    ws.onmessage = (event) => resolve(event.data);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    ws.onclose = (event) => resolve({ code: event.code, reason: event.reason });
  });
}

test("Deno's upgradeWebSocket: text and binary both ways, a 70 KB message, and a clean close", async () => {
  const server = denoEcho();
  try {
    const ws = await client(`ws://127.0.0.1:${server.port}/`);
    ws.send("hi");
    assert.equal(await nextMessage(ws), "echo:hi");
    ws.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual(
      new Uint8Array(await nextMessage(ws) as ArrayBuffer),
      new Uint8Array([1, 2, 3]),
    );
    const big = "é".repeat(35_000);
    ws.send(big);
    assert.equal(await nextMessage(ws), `echo:${big}`);
    const done = closed(ws);
    ws.close(1000, "bye");
    assert.equal((await done).code, 1000);
    // The server still answers plain HTTP.
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(await res.text(), "plain");
  } finally {
    await server.shutdown();
  }
});

test("Deno's socket: open, close events with the client's code and reason, readyState, protocol", async () => {
  const events: string[] = [];
  let resolveClose!: (
    v: { code: number; reason: string; clean: boolean },
  ) => void;
  const closedOnServer = new Promise<
    { code: number; reason: string; clean: boolean }
  >(
    (resolve) => resolveClose = resolve,
  );
  const server = serve(QUIET, (request) => {
    const { socket, response } = upgradeWebSocket(request, {
      protocol: "chat",
    });
    assert.equal(socket.readyState, WebSocket.CONNECTING);
    assert.throws(() => socket.send("early"), DOMException);
    socket.onopen = () => {
      events.push(`open ${socket.readyState} ${socket.protocol}`);
      socket.send("welcome");
    };
    socket.addEventListener("close", (event) => {
      events.push(`close ${socket.readyState}`);
      resolveClose({
        code: event.code,
        reason: event.reason,
        clean: event.wasClean,
      });
    });
    return response;
  });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`, ["chat"]);
    assert.equal(await nextMessage(ws), "welcome");
    assert.equal(ws.protocol, "chat");
    ws.close(4001, "done here");
    assert.deepEqual(await closedOnServer, {
      code: 4001,
      reason: "done here",
      clean: true,
    });
    assert.deepEqual(events, ["open 1 chat", "close 3"]);
  } finally {
    await server.shutdown();
  }
});

test("upgradeWebSocket refuses a request that is no WebSocket handshake", async () => {
  let error: unknown;
  const server = serve(QUIET, (request) => {
    try {
      upgradeWebSocket(request);
    } catch (e) {
      error = e;
    }
    return new Response("no");
  });
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(await res.text(), "no");
    assert.ok(error instanceof TypeError, String(error));
    assert.throws(() => upgradeWebSocket(new Request("http://x/")), TypeError);
  } finally {
    await server.shutdown();
  }
});

test("Bun's server.upgrade with websocket handlers: data, open, message, close, send's return", async () => {
  const log: string[] = [];
  let resolveClose!: (v: [number, string]) => void;
  const closedOnServer = new Promise<[number, string]>((r) => resolveClose = r);
  const server = serve({
    ...QUIET,
    fetch(request, srv) {
      const upgraded = srv.upgrade(request, {
        data: { user: new URL(request.url).searchParams.get("user") },
        headers: { "X-Hello": "yes" },
      });
      if (upgraded) return undefined as unknown as Response;
      return new Response("not a socket", { status: 400 });
    },
    websocket: {
      open(ws: ServerWebSocket<{ user: string }>) {
        log.push(`open ${ws.data.user} ${ws.readyState}`);
        assert.ok(ws.send(`hello ${ws.data.user}`) > 0);
      },
      message(ws, message) {
        if (typeof message === "string") ws.sendText(message.toUpperCase());
        else ws.sendBinary(message);
      },
      close(ws: ServerWebSocket<{ user: string }>, code, reason) {
        log.push(`close ${ws.data.user}`);
        resolveClose([code, reason]);
      },
    },
  });
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(res.status, 400);
    await res.text();
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/?user=ann`);
    ws.binaryType = "arraybuffer";
    assert.equal(await nextMessage(ws), "hello ann");
    ws.send("shout");
    assert.equal(await nextMessage(ws), "SHOUT");
    ws.send(new Uint8Array([9, 8]));
    assert.deepEqual(
      new Uint8Array(await nextMessage(ws) as ArrayBuffer),
      new Uint8Array([9, 8]),
    );
    ws.close(1000);
    assert.deepEqual(await closedOnServer, [1000, ""]);
    assert.deepEqual(log, ["open ann 1", "close ann"]);
  } finally {
    await server.shutdown();
  }
});

test("server.upgrade is false without websocket handlers or for a plain request", async () => {
  const results: boolean[] = [];
  const server = serve(QUIET, (request, srv) => {
    results.push(srv.upgrade(request));
    return new Response("plain");
  });
  try {
    const raw = await RawWebSocket.open(server.port);
    assert.match(raw.head, /^HTTP\/1\.1 200 /);
    raw.destroy();
    await (await fetch(`http://127.0.0.1:${server.port}/`)).text();
    assert.deepEqual(results, [false, false]);
  } finally {
    await server.shutdown();
  }
});

/** A raw connection to an echo server, past its 101. */
async function rawEcho(
  server: Server,
  early?: Uint8Array,
  extra?: Record<string, string>,
): Promise<RawWebSocket> {
  const raw = await RawWebSocket.open(
    server.port,
    handshake("/", extra),
    early,
  );
  assert.match(raw.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  return raw;
}

/** Expects a close frame with `code`, answers it (unless the server
 * closed because of what the client sent), and expects the end. */
async function expectClose(
  raw: RawWebSocket,
  code: number,
  answer = false,
): Promise<void> {
  let frame: Frame | null;
  do frame = await raw.frame(); while (frame !== null && frame.opcode !== 8);
  assert.ok(frame !== null, `expected a close frame with ${code}`);
  assert.equal(closeOf(frame).code, code);
  if (answer) raw.send(clientFrame(8, closePayload(code)));
  assert.ok(await raw.ended(), "the server closes the connection");
}

test("the 101 carries the RFC's Sec-WebSocket-Accept; frames sent with the handshake are not lost", async () => {
  const server = denoEcho();
  try {
    const raw = await rawEcho(server, clientFrame(1, "early"));
    assert.match(
      raw.head,
      /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=(\r\n|$)/i,
    );
    const frame = await raw.frame();
    assert.equal(frame?.opcode, 1);
    assert.equal(new TextDecoder().decode(frame!.payload), "echo:early");
    raw.destroy();
  } finally {
    await server.shutdown();
  }
});

test("a ping gets its pong; fragments with a ping between them make one message", async () => {
  const server = denoEcho();
  try {
    const raw = await rawEcho(server);
    raw.send(clientFrame(9, "are you there"));
    const pong = await raw.frame();
    assert.equal(pong?.opcode, 10);
    assert.equal(new TextDecoder().decode(pong!.payload), "are you there");
    raw.send(clientFrame(1, "frag", { fin: false }));
    raw.send(clientFrame(9, "p"));
    raw.send(clientFrame(0, "ment", { fin: false }));
    raw.send(clientFrame(0, "ed"));
    const frames = [await raw.frame(), await raw.frame()];
    assert.deepEqual(frames.map((f) => f?.opcode).sort(), [1, 10]);
    const text = frames.find((f) => f?.opcode === 1)!;
    assert.equal(new TextDecoder().decode(text.payload), "echo:fragmented");
    raw.send(clientFrame(8, closePayload(1000, "ok")));
    await expectClose(raw, 1000);
  } finally {
    await server.shutdown();
  }
});

test("protocol errors close with the RFC's codes: 1002 unmasked or bad opcode, 1007 bad UTF-8, 1009 too big", async () => {
  const server = serveSockets({ message() {}, maxPayloadLength: 1000 });
  try {
    const cases: [Uint8Array, number][] = [
      [clientFrame(1, "x", { masked: false }), 1002],
      [clientFrame(3, "x"), 1002],
      [clientFrame(1, "x", { rsv: 2 }), 1002],
      [clientFrame(0, "x"), 1002],
      [clientFrame(9, "x", { fin: false }), 1002],
      [clientFrame(1, new Uint8Array([0xc3, 0x28])), 1007],
      [clientFrame(2, new Uint8Array(1001)), 1009],
      [clientFrame(8, new Uint8Array([3])), 1002],
      [clientFrame(8, closePayload(1005)), 1002],
      [clientFrame(8, new Uint8Array([3, 232, 0xff])), 1007],
    ];
    for (const [frame, code] of cases) {
      const raw = await rawEcho(server);
      raw.send(frame);
      await expectClose(raw, code);
    }
  } finally {
    await server.shutdown();
  }
});

test("the wrong Sec-WebSocket-Version gets 426 naming 13", async () => {
  const server = denoEcho();
  try {
    const raw = await RawWebSocket.open(
      server.port,
      handshake("/", { "Sec-WebSocket-Version": "8" }),
    );
    assert.match(raw.head, /^HTTP\/1\.1 426 /);
    assert.match(raw.head, /\r\nSec-WebSocket-Version: 13(\r\n|$)/i);
    raw.destroy();
  } finally {
    await server.shutdown();
  }
});

test("a close from the server: the client gets the code and reason, then the connection ends", async () => {
  const server = serve(QUIET, (request) => {
    const { socket, response } = upgradeWebSocket(request);
    socket.onopen = () => socket.close(4000, "go away");
    return response;
  });
  try {
    const raw = await rawEcho(server);
    const frame = await raw.frame();
    assert.equal(frame?.opcode, 8);
    assert.deepEqual(closeOf(frame!), { code: 4000, reason: "go away" });
    raw.send(clientFrame(8, closePayload(4000)));
    assert.ok(await raw.ended());
  } finally {
    await server.shutdown();
  }
});

test("a client that vanishes gives the server a 1006 close; shutdown sends 1001", async () => {
  const codes: number[] = [];
  let resolveClosed!: () => void;
  const gone = new Promise<void>((r) => resolveClosed = r);
  const server = serve(QUIET, (request) => {
    const { socket, response } = upgradeWebSocket(request);
    socket.onclose = (event) => {
      codes.push(event.code);
      resolveClosed();
    };
    return response;
  });
  const raw = await rawEcho(server);
  raw.destroy();
  await gone;
  assert.deepEqual(codes, [1006]);
  const second = await rawEcho(server);
  const stopping = server.shutdown();
  await expectClose(second, 1001, true);
  await stopping;
});

/** Collects the next `n` messages of a client WebSocket. */
function messages(ws: WebSocket, n: number): Promise<(string | number[])[]> {
  const got: (string | number[])[] = [];
  return new Promise((resolve) => {
    ws.onmessage = (event) => {
      got.push(
        typeof event.data === "string"
          ? event.data
          : [...new Uint8Array(event.data as ArrayBuffer)],
      );
      if (got.length === n) resolve(got);
    };
  });
}

test("pub/sub across two worker threads: every subscriber gets every publish, in order", async () => {
  const server = serve({
    ...QUIET,
    workers: 2,
    module: new URL("./_ws_app.ts", import.meta.url),
  });
  try {
    const url = `ws://127.0.0.1:${server.port}`;
    const subs: WebSocket[] = [];
    const hellos: Promise<unknown>[] = [];
    for (let i = 0; i < 4; i++) {
      const ws = new WebSocket(`${url}/sub`);
      ws.binaryType = "arraybuffer";
      hellos.push(messages(ws, 1));
      subs.push(ws);
    }
    for (const hello of await Promise.all(hellos)) {
      assert.deepEqual(hello, ["subscribed true"]);
    }
    const got = subs.map((ws) => messages(ws, 3));
    const pub = await client(`${url}/pub`);
    pub.send("one");
    pub.send(new Uint8Array([2, 2]));
    pub.send("server:three");
    for (const list of await Promise.all(got)) {
      assert.deepEqual(list, ["one", [2, 2], "server:three"]);
    }
    for (const ws of [...subs, pub]) ws.close();
  } finally {
    await server.shutdown();
  }
});

test("pub/sub on one thread: server.publish, unsubscribe, publishToSelf, subscriptions", async () => {
  const sockets: ServerWebSocket<string>[] = [];
  const server = serve({
    ...QUIET,
    fetch(request, srv) {
      const name = new URL(request.url).searchParams.get("name") ?? "";
      srv.upgrade(request, { data: name });
      return undefined as unknown as Response;
    },
    websocket: {
      publishToSelf: true,
      open(ws: ServerWebSocket<string>) {
        sockets.push(ws);
        ws.subscribe("news");
        ws.subscribe("news");
        ws.subscribe("other");
        ws.send(ws.subscriptions.sort().join(","));
      },
      message(ws: ServerWebSocket<string>, message) {
        if (message === "leave") {
          ws.unsubscribe("news");
          ws.send(`left ${ws.isSubscribed("news")}`);
        } else ws.publish("news", `${ws.data}: ${message}`);
      },
    },
  });
  try {
    const url = `ws://127.0.0.1:${server.port}/`;
    const a = new WebSocket(`${url}?name=a`);
    const b = new WebSocket(`${url}?name=b`);
    const [helloA, helloB] = [messages(a, 1), messages(b, 1)];
    assert.deepEqual(await helloA, ["news,other"]);
    assert.deepEqual(await helloB, ["news,other"]);
    // publishToSelf: a's own publish comes back to a.
    let gotA = messages(a, 1), gotB = messages(b, 1);
    a.send("hi");
    assert.deepEqual(await gotA, ["a: hi"]);
    assert.deepEqual(await gotB, ["a: hi"]);
    gotA = messages(a, 1);
    gotB = messages(b, 1);
    assert.equal(server.publish("news", "from the server"), 15);
    assert.deepEqual(await gotA, ["from the server"]);
    assert.deepEqual(await gotB, ["from the server"]);
    const left = messages(b, 1);
    b.send("leave");
    assert.deepEqual(await left, ["left false"]);
    gotA = messages(a, 1);
    let bGot = false;
    b.onmessage = () => bGot = true;
    server.publish("news", "only a");
    assert.deepEqual(await gotA, ["only a"]);
    assert.equal(bGot, false);
    assert.throws(() => sockets[0].subscribe(""), TypeError);
    a.close();
    b.close();
  } finally {
    await server.shutdown();
  }
});

test("permessage-deflate: negotiated, compressed frames both ways, and none without the offer", async () => {
  const server = serveSockets({
    perMessageDeflate: true,
    message(ws, message) {
      ws.send(message);
    },
  });
  try {
    const raw = await rawEcho(server, undefined, {
      "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
    });
    assert.match(raw.head, /\r\nSec-WebSocket-Extensions: permessage-deflate/i);
    const text = "compress me ".repeat(50);
    // A compressed client message: RSV1, the deflate tail removed.
    const deflated = deflateRawSync(new TextEncoder().encode(text), {
      finishFlush: constants.Z_SYNC_FLUSH,
    });
    raw.send(clientFrame(1, deflated.subarray(0, deflated.length - 4), {
      rsv: 4,
    }));
    const frame = await raw.frame();
    assert.equal(frame?.opcode, 1);
    assert.equal(frame?.rsv1, true, "the server compressed its message");
    assert.ok(frame!.payload.byteLength < text.length / 4);
    // The tail the sender removed, then an empty final block so that the
    // stream is complete.
    const inflated = inflateRawSync(
      new Uint8Array([
        ...frame!.payload,
        0,
        0,
        0xff,
        0xff,
        1,
        0,
        0,
        0xff,
        0xff,
      ]),
    );
    assert.equal(new TextDecoder().decode(inflated), text);
    raw.destroy();

    const plain = await rawEcho(server);
    assert.doesNotMatch(plain.head, /Sec-WebSocket-Extensions/i);
    plain.send(clientFrame(1, text));
    const back = await plain.frame();
    assert.equal(back?.rsv1, false);
    assert.equal(new TextDecoder().decode(back!.payload), text);
    plain.destroy();
  } finally {
    await server.shutdown();
  }
});

test("backpressure: send() says -1 once the queue passes the limit, and drain runs when it is written", async () => {
  const { connect } = await import("node:net");
  let resolveFull!: (n: number) => void;
  const full = new Promise<number>((r) => resolveFull = r);
  let resolveDrained!: () => void;
  const drained = new Promise<void>((r) => resolveDrained = r);
  const chunk = new Uint8Array(64 * 1024);
  const server = serveSockets({
    message() {},
    open(ws) {
      // Send until the queue passes the limit (at most 256 MiB).
      for (let i = 1; i <= 4096; i++) {
        if (ws.send(chunk) === -1) return resolveFull(i);
      }
      resolveFull(-1);
    },
    drain() {
      resolveDrained();
    },
  });
  const socket = connect(server.port, "127.0.0.1");
  try {
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.write(handshake());
    socket.pause(); // Read nothing: the server's queue grows.
    const sends = await full;
    assert.ok(sends > 1, `send() returned -1 after ${sends} messages`);
    socket.resume();
    // Once what was queued is written (into the client's buffers, then to
    // the client), drain says so.
    await drained;
  } finally {
    socket.destroy();
    await server.shutdown();
  }
});

test("a 101 from the runtime's own upgradeWebSocket says to use ymo's", async () => {
  const logged: unknown[] = [];
  const server = serve({
    ...QUIET,
    onError(error) {
      logged.push(error);
      return new Response("use ymo's", { status: 500 });
    },
  }, () => {
    // What Deno.upgradeWebSocket returns: a 101 Response ymo did not make
    // (made here without Deno's internals, so the test runs on Bun too).
    const response = new Response(null, { status: 200 });
    Object.defineProperty(response, "status", { value: 101 });
    return response;
  });
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(res.status, 500);
    await res.text();
    assert.match(String(logged[0]), /upgradeWebSocket.*from ymo/);
  } finally {
    await server.shutdown();
  }
});

test("idleTimeout: a silent client is pinged first (sendPings), then closed with 1001", async () => {
  for (const sendPings of [true, false]) {
    const server = serveSockets({ message() {}, idleTimeout: 0.3, sendPings });
    try {
      const raw = await rawEcho(server);
      const started = Date.now();
      const first = await raw.frame(3000);
      if (sendPings) {
        assert.equal(first?.opcode, 9, "a ping when the client is idle");
        // Answering it counts as activity: the next ping comes, not a close.
        raw.send(clientFrame(10, first!.payload));
        const second = await raw.frame(3000);
        assert.equal(second?.opcode, 9);
        // Silent now: closed after one more timeout.
        await expectClose(raw, 1001);
      } else {
        assert.equal(first?.opcode, 8);
        assert.equal(closeOf(first!).code, 1001);
        assert.ok(await raw.ended());
      }
      assert.ok(Date.now() - started >= 250, "not before the idle timeout");
    } finally {
      await server.shutdown();
    }
  }
});

test("binary messages an app keeps stay intact after later messages (both APIs)", async () => {
  const kept: Uint8Array[] = [];
  const denoKept: ArrayBuffer[] = [];
  const server = serve({
    ...QUIET,
    fetch(request, srv) {
      if (new URL(request.url).pathname === "/bun") {
        srv.upgrade(request);
        return undefined as unknown as Response;
      }
      const { socket, response } = upgradeWebSocket(request);
      socket.binaryType = "arraybuffer";
      socket.onmessage = (event) => {
        denoKept.push(event.data as ArrayBuffer);
        if (denoKept.length === 3) socket.send("done");
      };
      return response;
    },
    websocket: {
      message(ws, message) {
        kept.push(message as unknown as Uint8Array);
        if (kept.length === 3) ws.send("done");
      },
    },
  });
  try {
    for (const path of ["/bun", "/deno"]) {
      const ws = await client(`ws://127.0.0.1:${server.port}${path}`);
      const done = nextMessage(ws);
      for (let i = 1; i <= 3; i++) ws.send(new Uint8Array(100).fill(i));
      assert.equal(await done, "done");
      ws.close();
    }
    const all = [
      ...kept.map((b) => new Uint8Array(b)),
      ...denoKept.map((b) => new Uint8Array(b)),
    ];
    assert.deepEqual(
      all.map((b) => [b.byteLength, b[0], b[99]]),
      [[100, 1, 1], [100, 2, 2], [100, 3, 3], [100, 1, 1], [100, 2, 2], [
        100,
        3,
        3,
      ]],
    );
  } finally {
    await server.shutdown();
  }
});
