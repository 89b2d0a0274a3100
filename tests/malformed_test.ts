/**
 * Malformed and abusive input: each gets a 400 and a close (DESIGN.md: strict
 * parsing, smuggling-prone input refused), never a crash, and the server goes
 * on serving well-formed clients afterwards.
 */

import assert from "node:assert/strict";
import { test } from "./_shim.ts";
import type { Server } from "./_target.ts";
import { fetchText, RawConnection, rawRequest, withServer } from "./_http.ts";

let handled = 0;
function handler(): Response {
  handled++;
  return new Response("handled");
}

async function stillServes(server: Server): Promise<void> {
  const res = await fetchText(server, "/");
  assert.equal(res.status, 200);
  assert.equal(res.body, "handled");
}

/** Sends `bytes`, expects one 400 response and a close, and no handler call. */
async function expect400(bytes: string): Promise<void> {
  await withServer({}, handler, async (server) => {
    handled = 0;
    const { responses, closed } = await rawRequest(server.port, bytes, {
      until: "close",
    });
    assert.equal(closed, true, "connection closed");
    assert.deepEqual(responses.map((r) => r.status), [400]);
    assert.equal(handled, 0, "the handler must not see a malformed request");
    await stillServes(server);
  });
}

test("a garbage request line gets 400 and a close", async () => {
  await expect400("HELLO THERE\r\n\r\n");
});

test("a header line without a colon gets 400 and a close", async () => {
  await expect400("GET / HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n");
});

test("Content-Length with Transfer-Encoding gets 400 and a close", async () => {
  await expect400(
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" +
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  );
});

test("an invalid chunk size gets 400 and a close", async () => {
  await expect400(
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
  );
});

test("two different Content-Length values get 400 and a close", async () => {
  await expect400(
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
  );
});

test("a client that disconnects mid-request does not disturb the server", async () => {
  await withServer({}, handler, async (server) => {
    for (
      const partial of [
        "GET / HT",
        "GET / HTTP/1.1\r\nHost: x\r\nX-Half: ",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
      ]
    ) {
      const conn = await RawConnection.open(server.port);
      await conn.write(partial);
      conn.destroy();
    }
    await stillServes(server);
  });
});
