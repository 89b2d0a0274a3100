/**
 * Misbehaving handlers (issue 10): whatever a handler returns or throws, and
 * whatever its body stream does, the client gets an answer and the server
 * goes on. When nothing was sent yet the answer is a 500 made by `onError`;
 * when a body fails part way the connection is closed, so the client cannot
 * take a cut body for a whole one (RFC 9112 6.3, 8). Never a hang, never a
 * dead process.
 *
 * Each test starts its own server in a child process (tests/_misbehave_app.ts)
 * because some of these faults have ended the whole process: run in the test
 * runner, one such case would take every later result with it. Each bad
 * request is followed by a good one on the same connection (when the answer
 * let it stay open) and one on a new connection, and both must be answered.
 *
 * A hang fails quickly: every read gives up after a few seconds. No assertion
 * is about how long anything took.
 *
 * Runs unchanged under `deno test -A tests/misbehave_test.ts` and
 * `bun test tests/misbehave_test.ts`.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { isBun, test } from "./_shim.ts";
import { type Child, startChild } from "./_child.ts";
import {
  delay,
  parseResponse,
  RawConnection,
  type RawResponse,
  requestHead,
} from "./_http.ts";
import { show } from "./_wire.ts";

/** How long a read may wait: a hang fails the test after this. */
const WAIT_MS = 4_000;

const APP = fileURLToPath(new URL("./_misbehave_app.ts", import.meta.url));

/** The onError variants of the child app (see _misbehave_app.ts). */
type Mode = "marker" | "default" | "throws" | "rejects" | "non-response";

interface App {
  port: number;
  child: Child;
}

async function startApp(mode: Mode): Promise<App> {
  const args = isBun ? [APP, mode] : ["run", "-A", APP, mode];
  const child = startChild(process.execPath, args, {
    env: { ...process.env, NO_COLOR: "1" },
  });
  try {
    const m = await child.waitFor(/port=(\d+)/);
    return { port: Number(m[1]), child };
  } catch (error) {
    await child.stop();
    throw error;
  }
}

/**
 * Runs `fn` against a fresh child app. A failure carries the child's output
 * (an uncaught error that ended it shows there), and the child must still be
 * running at the end.
 */
async function withApp(
  mode: Mode,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const app = await startApp(mode);
  let exited: string | null = null;
  app.child.exited.then((e) => exited = `code ${e.code}, signal ${e.signal}`);
  try {
    await fn(app.port);
    await Promise.resolve();
    assert.equal(exited, null, "the server process must still run");
  } catch (error) {
    // Give a process that is going down a moment to be seen as gone.
    await Promise.race([app.child.exited, delay(500)]);
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `${message}\n[server process: ${
        exited ?? "running"
      }]\n${app.child.output()}`,
    );
  } finally {
    await app.child.stop();
  }
}

/** What the client saw for one bad request. */
interface Seen {
  /** The response, if a complete one came. */
  response: RawResponse | null;
  /** The connection it came on (still open unless `closed`). */
  conn: RawConnection;
}

/** Sends GET `path` and reads one response, or fails after WAIT_MS. */
async function get(port: number, path: string): Promise<Seen> {
  const conn = await RawConnection.open(port);
  await conn.write(requestHead("GET", path));
  try {
    return { response: await conn.read({ timeoutMs: WAIT_MS }), conn };
  } catch (error) {
    conn.destroy();
    throw new Error(
      `GET ${path}: no complete response: ${(error as Error).message}`,
    );
  }
}

/**
 * After the bad request's answer: the same connection serves a good request
 * unless the answer said Connection: close (then the server must close it),
 * and a new connection is served too.
 */
async function goesOn(port: number, seen: Seen, what: string): Promise<void> {
  const { conn, response } = seen;
  try {
    if (response?.get("connection")?.toLowerCase() === "close") {
      await conn.closed(WAIT_MS);
    } else {
      await conn.write(requestHead("GET", "/good"));
      const good = await conn.read({ timeoutMs: WAIT_MS }).catch((e) => {
        throw new Error(
          `${what}: the same connection got no answer to a good request ` +
            `(the answer did not say Connection: close): ${e.message}`,
        );
      });
      assert.equal(good.status, 200, `${what}: same connection`);
      assert.equal(good.text(), "ok /good", `${what}: same connection`);
    }
  } finally {
    conn.destroy();
  }
  const fresh = await get(port, "/after").catch((e) => {
    throw new Error(`${what}: a new connection was not served: ${e.message}`);
  });
  fresh.conn.destroy();
  assert.equal(fresh.response?.status, 200, `${what}: new connection`);
  assert.equal(fresh.response?.text(), "ok /after", `${what}: new connection`);
}

function describeResponse(r: RawResponse | null): string {
  if (r === null) return "no response";
  return `${r.status} ${show(r.reason)} ${JSON.stringify(r.headers)} body ${
    show(r.body)
  }`;
}

/**
 * GET `path` must be answered 500 with a body made by the marker onError
 * (`onError: NAME: MESSAGE`, checked against `body` when given), then the
 * server goes on.
 */
async function expectOnError500(
  port: number,
  path: string,
  body?: string | RegExp,
): Promise<void> {
  const seen = await get(port, path);
  const r = seen.response!;
  const what = `GET ${path} -> ${describeResponse(r)}`;
  assert.equal(r.status, 500, what);
  assert.match(r.text(), /^onError: /, `${what}: made by onError`);
  if (typeof body === "string") assert.equal(r.text(), body, what);
  else if (body) assert.match(r.text(), body, what);
  await goesOn(port, seen, what);
}

/**
 * GET `path` must be answered either 500 through onError, or `status` with
 * `body` (what Deno.serve and Bun.serve send: they read the Response's own
 * internal state, not the overridden getter); then the server goes on.
 */
async function expectOnError500Or(
  port: number,
  path: string,
  status: number,
  body: string,
): Promise<void> {
  const seen = await get(port, path);
  const r = seen.response!;
  const what = `GET ${path} -> ${describeResponse(r)}`;
  const viaOnError = r.status === 500 && /^onError: /.test(r.text());
  const asPlatform = r.status === status && r.text() === body;
  assert.ok(
    viaOnError || asPlatform,
    `${what}: expected 500 through onError, or ${status} ${show(body)}`,
  );
  await goesOn(port, seen, what);
}

/** GET `path` must get a 500 with any body (onError itself failed). */
async function expect500(port: number, path: string): Promise<void> {
  const seen = await get(port, path);
  const r = seen.response!;
  const what = `GET ${path} -> ${describeResponse(r)}`;
  assert.equal(r.status, 500, what);
  await goesOn(port, seen, what);
}

/**
 * GET `path` must get a 200 head and the first body bytes `sent`, then the
 * connection closed before the message is complete: no last chunk, or fewer
 * bytes than the Content-Length.
 */
async function expectCut(
  port: number,
  path: string,
  sent: string,
): Promise<void> {
  const conn = await RawConnection.open(port);
  try {
    await conn.write(requestHead("GET", path));
    const raw = await conn.closed(WAIT_MS).catch((e) => {
      throw new Error(
        `GET ${path}: the connection was not closed after the body failed: ${e.message}`,
      );
    });
    const buf = Buffer.from(raw);
    const what = `GET ${path} -> ${show(raw, 400)}`;
    assert.match(buf.toString("latin1"), /^HTTP\/1\.1 200 /, what);
    assert.equal(
      parseResponse(buf, 0, { eof: false }),
      null,
      `${what}: the message must be incomplete`,
    );
    const head = buf.indexOf("\r\n\r\n");
    assert.ok(head > 0, `${what}: a complete head`);
    const body = buf.toString("latin1", head + 4);
    const chunked = /\r\ntransfer-encoding: *chunked\r\n/i.test(
      buf.toString("latin1", 0, head + 2),
    );
    // What arrived of the body, with chunk framing taken off.
    const data = chunked
      ? body.split("\r\n").filter((_, i) => i % 2 === 1).join("")
      : body;
    assert.equal(data, sent, `${what}: the body sent before the failure`);
  } finally {
    conn.destroy();
  }
  const fresh = await get(port, "/after");
  fresh.conn.destroy();
  assert.equal(fresh.response?.text(), "ok /after", "a new connection");
}

// ---------------------------------------------------------------------------
// A returned Response whose body the server cannot read

test("misbehave: a Response whose body was read (await r.text()) gets 500 through onError", () =>
  withApp("marker", (port) => expectOnError500(port, "/used")));

test("misbehave: a Response whose stream body is locked (getReader()) gets 500 through onError", () =>
  withApp("marker", (port) => expectOnError500(port, "/locked-stream")));

test("misbehave: a Response whose fixed body is locked (getReader()) is answered: 500 through onError, or its body as Deno.serve sends it", () =>
  withApp(
    "marker",
    (port) => expectOnError500Or(port, "/locked", 200, "locked body"),
  ));

// ---------------------------------------------------------------------------
// Throwing getters and things that are not Responses

test("misbehave: a Response subclass whose headers getter throws is answered: 500 through onError, or 200 as Deno.serve and Bun.serve", () =>
  withApp(
    "marker",
    (port) => expectOnError500Or(port, "/headers-getter-throws", 200, "x"),
  ));

test("misbehave: a Response whose own headers property throws (defineProperty) is answered: 500 through onError, or 200 as Deno.serve and Bun.serve", () =>
  withApp(
    "marker",
    (port) => expectOnError500Or(port, "/headers-property-throws", 200, "x"),
  ));

test("misbehave: a Response subclass whose status getter throws is answered: 500 through onError, or 200 as Deno.serve and Bun.serve", () =>
  withApp(
    "marker",
    (port) => expectOnError500Or(port, "/status-getter-throws", 200, "x"),
  ));

test("misbehave: a plain object in place of a Response gets 500 through onError", () =>
  withApp("marker", async (port) => {
    await expectOnError500(port, "/plain-object");
    await expectOnError500(port, "/plain-object-status-throws");
  }));

test("misbehave: an object with Response.prototype that is not a Response gets 500 through onError", () =>
  withApp(
    "marker",
    (port) => expectOnError500(port, "/response-prototype-object"),
  ));

// ---------------------------------------------------------------------------
// Statuses that cannot be sent as a final response

test("misbehave: Response.error() (status 0) gets 500 through onError", () =>
  withApp("marker", (port) => expectOnError500(port, "/response-error")));

test("misbehave: a Response claiming status 101 is never sent as 101: 500 through onError, or 200 as Deno.serve and Bun.serve", () =>
  withApp("marker", async (port) => {
    await expectOnError500Or(port, "/status-101", 200, "");
    await expectOnError500Or(port, "/status-101-property", 200, "");
  }));

// ---------------------------------------------------------------------------
// Body streams that fail

test("misbehave: a body stream that errors before its first chunk gets 500 through onError", () =>
  withApp("marker", (port) => expectOnError500(port, "/stream-error-first")));

test("misbehave: a body stream that errors in start() gets 500 through onError", () =>
  withApp("marker", (port) => expectOnError500(port, "/stream-error-start")));

test("misbehave: a body stream whose pull() throws at once gets 500 through onError", () =>
  withApp("marker", (port) => expectOnError500(port, "/stream-throw-pull")));

test("misbehave: a body stream that errors after two chunks: the client gets them, then the close without a last chunk", () =>
  withApp(
    "marker",
    (port) => expectCut(port, "/stream-error-late", "part 1;part 2;"),
  ));

test("misbehave: a body stream that errors short of the Content-Length the app set: the client gets the bytes, then the close", () =>
  withApp(
    "marker",
    (port) => expectCut(port, "/stream-error-late-length", "part 1;part 2;"),
  ));

// ---------------------------------------------------------------------------
// Body streams that yield what is not bytes

for (const kind of ["object", "number", "null", "undefined"]) {
  test(
    `misbehave: a body stream whose first chunk is ${
      kind === "object"
        ? "a plain object"
        : kind === "number"
        ? "a number"
        : kind
    } gets 500 through onError`,
    () =>
      withApp("marker", (port) => expectOnError500(port, `/stream-${kind}`)),
  );
}

test("misbehave: a body stream that yields a plain object after bytes: the client gets the bytes, then the close", () =>
  withApp(
    "marker",
    (port) => expectCut(port, "/stream-object-late", "part 1;"),
  ));

test("misbehave: a body stream that yields a string sends it as UTF-8, as Bun.serve does", () =>
  withApp("marker", async (port) => {
    const seen = await get(port, "/stream-string");
    const what = `GET /stream-string -> ${describeResponse(seen.response)}`;
    assert.equal(seen.response?.status, 200, what);
    assert.equal(seen.response?.text(), "text chunk", what);
    await goesOn(port, seen, what);
  }));

test("misbehave: a body stream that closes at once is an empty 200", () =>
  withApp("marker", async (port) => {
    const seen = await get(port, "/stream-empty");
    const what = `GET /stream-empty -> ${describeResponse(seen.response)}`;
    assert.equal(seen.response?.status, 200, what);
    assert.equal(seen.response?.body.length, 0, what);
    await goesOn(port, seen, what);
  }));

// ---------------------------------------------------------------------------
// Handlers that fail or return nothing

test("misbehave: a handler that throws gets 500 through onError with the thrown value", () =>
  withApp("marker", async (port) => {
    await expectOnError500(
      port,
      "/throw",
      "onError: Error: handler threw on purpose",
    );
    await expectOnError500(
      port,
      "/throw-non-error",
      "onError: string: a string thrown on purpose",
    );
  }));

test("misbehave: a handler that rejects gets 500 through onError with the reason", () =>
  withApp(
    "marker",
    (port) =>
      expectOnError500(
        port,
        "/reject",
        "onError: Error: handler rejected on purpose",
      ),
  ));

test("misbehave: a handler that returns undefined, a promise of undefined, null or a string gets 500 through onError", () =>
  withApp("marker", async (port) => {
    for (
      const path of ["/undefined", "/promise-undefined", "/null", "/string"]
    ) {
      await expectOnError500(port, path, /^onError: TypeError: /);
    }
  }));

// ---------------------------------------------------------------------------
// Without onError, and an onError that fails

/**
 * Runs `check` for each path, all of them even when some fail (a hang or a
 * wrong answer on one path must not hide the others), then fails listing
 * every path that went wrong.
 */
async function eachPath(
  paths: string[],
  check: (path: string) => Promise<void>,
): Promise<void> {
  const wrong: string[] = [];
  for (const path of paths) {
    try {
      await check(path);
    } catch (error) {
      wrong.push(
        `${path}: ${(error as Error).message.split("\n")[0].slice(0, 300)}`,
      );
    }
  }
  assert.deepEqual(wrong, [], `${wrong.length} of ${paths.length} paths`);
}

const NOTHING_SENT = [
  "/throw",
  "/reject",
  "/undefined",
  "/response-error",
  "/used",
  "/locked-stream",
  "/response-prototype-object",
  "/stream-error-first",
  "/stream-object",
];

test("misbehave: without onError, each failure before anything was sent gets the default 500", () =>
  withApp("default", async (port) => {
    await eachPath(NOTHING_SENT, async (path) => {
      const seen = await get(port, path);
      const what = `GET ${path} -> ${describeResponse(seen.response)}`;
      assert.equal(seen.response?.status, 500, what);
      assert.equal(seen.response?.text(), "Internal Server Error", what);
      await goesOn(port, seen, what);
    });
  }));

for (const mode of ["throws", "rejects", "non-response"] as const) {
  const what = mode === "throws"
    ? "throws"
    : mode === "rejects"
    ? "rejects"
    : "returns a plain object";
  test(`misbehave: an onError that ${what} still gives 500 for each failure before anything was sent`, () =>
    withApp(mode, async (port) => {
      await eachPath(NOTHING_SENT, (path) => expect500(port, path));
    }));
}
