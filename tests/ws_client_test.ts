// WebSocket with the npm `ws` package as the client (the one most Node and
// Bun apps use): both of ymo's APIs, text, binary, ping and pong, a clean
// close, and permessage-deflate, which `ws` offers by default.
import assert from "node:assert/strict";
import { isDeno, test } from "./_shim.ts";
import { serveSockets } from "./_ws.ts";
import { serve, type Server, upgradeWebSocket } from "../mod.ts";

// Deno loads npm packages by specifier; Bun from node_modules (a
// devDependency in package.json).
const WS_MODULE = isDeno ? "npm:ws@8.23.1" : "ws";
// deno-lint-ignore no-explicit-any
const WebSocketClient: any = (await import(WS_MODULE)).default;

const QUIET = { hostname: "127.0.0.1", port: 0, onListen() {} };

// deno-lint-ignore no-explicit-any
type Client = any;

async function open(url: string, options: Record<string, unknown> = {}) {
  const ws: Client = new WebSocketClient(url, options);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return ws;
}

function next(ws: Client): Promise<{ data: Uint8Array; binary: boolean }> {
  return new Promise((resolve) =>
    ws.once(
      "message",
      (data: Uint8Array, binary: boolean) => resolve({ data, binary }),
    )
  );
}

async function exercise(server: Server, deflate: boolean) {
  const ws = await open(`ws://127.0.0.1:${server.port}/`, {
    perMessageDeflate: deflate,
  });
  try {
    assert.equal(
      ws.extensions.includes("permessage-deflate"),
      deflate && !isDenoUpgrade(server),
    );
    ws.send("hello");
    let got = await next(ws);
    assert.equal(got.binary, false);
    assert.equal(new TextDecoder().decode(got.data), "echo:hello");
    const bytes = new Uint8Array(3000).map((_, i) => i & 255);
    ws.send(bytes);
    got = await next(ws);
    assert.equal(got.binary, true);
    assert.deepEqual(new Uint8Array(got.data), bytes);
    const pong = new Promise((resolve) => ws.once("pong", resolve));
    ws.ping("are you there");
    assert.equal(String(await pong), "are you there");
    const closed = new Promise<[number, string]>((resolve) =>
      ws.once(
        "close",
        (code: number, reason: Uint8Array) => resolve([code, String(reason)]),
      )
    );
    ws.close(4321, "done");
    assert.deepEqual(await closed, [4321, ""]);
  } finally {
    ws.terminate();
  }
}

const denoStyle = new WeakSet<Server>();
function isDenoUpgrade(server: Server): boolean {
  return denoStyle.has(server);
}

test("the ws package talks to upgradeWebSocket: text, binary, ping, close", async () => {
  const server = serve(QUIET, (request) => {
    const { socket, response } = upgradeWebSocket(request);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) =>
      socket.send(
        typeof event.data === "string" ? `echo:${event.data}` : event.data,
      );
    return response;
  });
  denoStyle.add(server);
  try {
    await exercise(server, false);
    await exercise(server, true); // Offered, and declined: Deno's API.
  } finally {
    await server.shutdown();
  }
});

test("the ws package talks to Bun's websocket handlers, with and without permessage-deflate", async () => {
  const server = serveSockets({
    perMessageDeflate: true,
    message(ws, message) {
      if (typeof message === "string") ws.send(`echo:${message}`);
      else ws.send(message);
    },
  });
  try {
    await exercise(server, false);
    await exercise(server, true);
  } finally {
    await server.shutdown();
  }
});
