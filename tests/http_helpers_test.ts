/**
 * Tests of the raw HTTP response parser in _http.ts, so that the serve()
 * tests can trust what it reports.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { test } from "./_shim.ts";
import { parseResponse, ResponseSyntaxError } from "./_http.ts";

const b = (s: string) => Buffer.from(s, "latin1");

test("parseResponse() splits pipelined Content-Length and chunked responses", () => {
  const buf = b(
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello" +
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: t\r\n\r\n" +
      "HTTP/1.1 204 No Content\r\n\r\n",
  );
  const one = parseResponse(buf, 0)!;
  assert.equal(one.response.status, 200);
  assert.equal(one.response.text(), "hello");
  assert.deepEqual(one.response.getAll("set-cookie"), ["a=1", "b=2"]);
  const two = parseResponse(buf, one.end)!;
  assert.equal(two.response.status, 404);
  assert.equal(two.response.reason, "Not Found");
  assert.equal(two.response.chunked, true);
  assert.deepEqual(two.response.chunkSizes, [3, 2]);
  assert.equal(two.response.text(), "abcde");
  const three = parseResponse(buf, two.end)!;
  assert.equal(three.response.status, 204);
  assert.equal(three.response.body.length, 0);
  assert.equal(three.end, buf.length);
});

test("parseResponse() waits for incomplete input", () => {
  assert.equal(parseResponse(b("HTTP/1.1 200 OK\r\nContent-Le"), 0), null);
  assert.equal(
    parseResponse(b("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"), 0),
    null,
  );
  assert.equal(
    parseResponse(
      b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
      0,
    ),
    null,
  );
  // Without a length the body ends only when the connection does.
  const closeDelimited = b("HTTP/1.0 200 OK\r\n\r\nuntil close");
  assert.equal(parseResponse(closeDelimited, 0), null);
  assert.equal(
    parseResponse(closeDelimited, 0, { eof: true })!.response.text(),
    "until close",
  );
});

test("parseResponse() gives HEAD responses no body", () => {
  const buf = b(
    "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
  );
  const head = parseResponse(buf, 0, { head: true })!;
  assert.equal(head.response.get("content-length"), "11");
  assert.equal(head.response.body.length, 0);
  assert.equal(parseResponse(buf, head.end)!.response.text(), "ok");
});

test("parseResponse() rejects malformed responses", () => {
  for (
    const bad of [
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE\r\n\r\n",
      "hello world\r\n\r\n",
      "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ]
  ) {
    assert.throws(
      () => {
        const buf = b(bad);
        let offset = 0;
        for (;;) {
          const r = parseResponse(buf, offset, { eof: true });
          if (r === null || r.end === buf.length) break;
          offset = r.end;
        }
      },
      ResponseSyntaxError,
      JSON.stringify(bad),
    );
  }
});
