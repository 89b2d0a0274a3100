/**
 * ymo behind nginx, the way it is deployed: Debian's nginx runs in the
 * foreground from a temporary prefix and proxies 127.0.0.1:<port> to a ymo
 * server in this process, over HTTP/1.1 with an upstream keep-alive pool:
 *
 *     upstream ymo { server 127.0.0.1:<ymo>; keepalive 16; }
 *     proxy_http_version 1.1;
 *     proxy_set_header Connection "";
 *
 * A second ymo server listens on a unix socket in the same folder, which
 * nginx reaches for /unix/ (`server unix:<dir>/ymo.sock`).
 *
 * Skipped, saying so, when nginx is not installed (scripts/setup.sh installs
 * it). Each test starts its own nginx and server and stops both.
 */

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import { test } from "./_shim.ts";
import {
  type Deferred,
  deferred,
  firstDifference,
  pattern,
  RawConnection,
  requestHead,
  startServer,
  utf8,
} from "./_http.ts";
import type { Server } from "./_target.ts";
import { serve } from "../mod.ts";
import {
  type Child,
  freePort,
  startChild,
  waitForPort,
  withTempDir,
} from "./_child.ts";

/** The nginx binary: on PATH, or where Debian and the nginx.org build put it. */
function findNginx(): string | undefined {
  const dirs = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  dirs.push("/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin");
  for (const dir of dirs) {
    const file = path.join(dir, "nginx");
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

const NGINX = findNginx();

/** nginx.conf: one single-process nginx, everything under `dir`. */
function nginxConfig(dir: string, listen: number, upstream: number): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;

events {
  worker_connections 256;
}

http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

  upstream ymo {
    server 127.0.0.1:${upstream};
    keepalive 16;
  }

  upstream ymo_unix {
    server unix:${dir}/ymo.sock;
    keepalive 16;
  }

  # The control: no keep-alive pool, so each request opens a connection.
  upstream ymo_no_keepalive {
    server 127.0.0.1:${upstream};
  }

  server {
    listen 127.0.0.1:${listen};
    client_max_body_size 4m;
    proxy_http_version 1.1;
    proxy_set_header Connection "";

    location / {
      proxy_pass http://ymo;
    }
    location /unbuffered/ {
      proxy_pass http://ymo;
      proxy_buffering off;
    }
    location /upload/ {
      proxy_pass http://ymo;
      proxy_request_buffering off;
    }
    location /no-keepalive/ {
      proxy_pass http://ymo_no_keepalive;
    }
    location /unix/ {
      proxy_pass http://ymo_unix;
    }
  }
}
`;
}

/** What the handler saw, for the tests to inspect. */
interface Seen {
  /** `info.remoteAddr.port` of each request, in order. */
  ports: number[];
  /** Opened by the test to let the next /gated request finish its body. */
  gate: Deferred<void>;
}

const GATED_FIRST = "first part, sent before the gate opens\n";
const GATED_REST = "the rest, sent after the client saw the first part\n";
const STREAM_SIZE = 1024 * 1024;
const STREAM_CHUNK = 64 * 1024;

function handler(seen: Seen) {
  return async (
    request: Request,
    info: { remoteAddr: { port: number } },
  ): Promise<Response> => {
    seen.ports.push(info.remoteAddr.port);
    const { pathname } = new URL(request.url);
    const name = pathname.slice(pathname.lastIndexOf("/") + 1);
    if (name === "echo") {
      const body = new Uint8Array(await request.arrayBuffer());
      return new Response(body, {
        headers: {
          "x-request-transfer-encoding":
            request.headers.get("transfer-encoding") ?? "none",
        },
      });
    }
    if (name === "stream") {
      // 1 MiB in 64 KiB chunks, each produced on a later turn.
      const data = pattern(STREAM_SIZE);
      let offset = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            await new Promise((resolve) => setTimeout(resolve, 1));
            if (offset >= data.length) {
              controller.close();
              return;
            }
            controller.enqueue(data.slice(offset, offset + STREAM_CHUNK));
            offset += STREAM_CHUNK;
          },
        }),
      );
    }
    if (name === "gated") {
      return new Response(
        new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(utf8(GATED_FIRST));
            await seen.gate.promise;
            controller.enqueue(utf8(GATED_REST));
            controller.close();
          },
        }),
      );
    }
    return new Response(`${request.method} ${pathname}`);
  };
}

interface Proxy {
  /** nginx's port. */
  port: number;
  /** The ymo server behind it. */
  server: Server;
  /** The ymo server on the unix socket, behind /unix/. */
  unixServer: ReturnType<typeof serve>;
  seen: Seen;
  nginx: Child;
}

/**
 * Starts nginx in front of `upstream` on a free port. The port is free when
 * picked but could be taken before nginx binds it, so a bind failure retries
 * with another port, twice.
 */
async function startNginx(
  dir: string,
  upstream: number,
): Promise<{ port: number; nginx: Child }> {
  for (let attempt = 1;; attempt++) {
    const port = await freePort();
    const conf = path.join(dir, "nginx.conf");
    fs.writeFileSync(conf, nginxConfig(dir, port, upstream));
    const nginx = startChild(NGINX!, ["-e", "stderr", "-p", dir, "-c", conf]);
    let running = true;
    nginx.exited.then(() => (running = false));
    try {
      await waitForPort(port, () => running);
      return { port, nginx };
    } catch (error) {
      await nginx.stop();
      if (attempt < 3 && /Address already in use/.test(nginx.stderr())) {
        continue;
      }
      throw new Error(
        `nginx did not start: ${(error as Error).message}\n${nginx.output()}`,
      );
    }
  }
}

/** Starts a ymo server and nginx in front of it, runs `fn`, stops both. */
async function withProxy(fn: (proxy: Proxy) => Promise<void>): Promise<void> {
  await withTempDir("nginx", async (dir) => {
    const seen: Seen = { ports: [], gate: deferred() };
    const server = startServer(handler(seen));
    const unixServer = serve(
      { path: path.join(dir, "ymo.sock"), onListen() {} },
      handler(seen) as never,
    );
    let nginx: Child | undefined;
    try {
      const started = await startNginx(dir, server.port);
      nginx = started.nginx;
      await fn({ port: started.port, server, unixServer, seen, nginx });
      // nginx logs upstream failures (a reset, a bad response) as errors.
      assert.doesNotMatch(
        nginx.stderr(),
        /\[(error|crit|alert|emerg)\]/,
        nginx.output(),
      );
    } finally {
      seen.gate.resolve();
      if (nginx !== undefined) {
        nginx.kill("SIGQUIT"); // graceful stop
        await nginx.waitExit().catch(() => {});
        await nginx.stop();
      }
      await server.shutdown();
      await unixServer.shutdown();
    }
  });
}

/** Registers an nginx test, or a skipped one that says why. */
function nginxTest(name: string, fn: (proxy: Proxy) => Promise<void>): void {
  if (NGINX === undefined) {
    test.skip(
      `${name} (skipped: nginx is not installed; scripts/setup.sh installs it)`,
      () => {},
    );
    return;
  }
  test(name, () => withProxy(fn));
}

nginxTest(
  "GET through nginx answers, one at a time and 32 at once",
  async ({ port }) => {
    const base = `http://127.0.0.1:${port}`;
    const one = await fetch(`${base}/hello?x=1`);
    assert.equal(one.status, 200);
    assert.equal(await one.text(), "GET /hello");
    const many = await Promise.all(
      Array.from({ length: 32 }, async (_, i) => {
        const response = await fetch(`${base}/parallel/${i}`);
        return [response.status, await response.text()];
      }),
    );
    assert.deepEqual(
      many,
      Array.from({ length: 32 }, (_, i) => [200, `GET /parallel/${i}`]),
    );
  },
);

nginxTest(
  "POST of 100 KiB through nginx comes back byte for byte",
  async ({ port }) => {
    const body = pattern(100 * 1024);
    const response = await fetch(`http://127.0.0.1:${port}/echo`, {
      method: "POST",
      body,
    });
    assert.equal(response.status, 200);
    // nginx buffered the body and sent it with a Content-Length.
    assert.equal(response.headers.get("x-request-transfer-encoding"), "none");
    const echoed = new Uint8Array(await response.arrayBuffer());
    assert.equal(echoed.length, body.length);
    assert.equal(firstDifference(echoed, body), -1);
  },
);

nginxTest(
  "a chunked upload that nginx streams through chunked is echoed intact",
  async ({ port }) => {
    const body = pattern(100 * 1024, 7);
    const conn = await RawConnection.open(port);
    try {
      await conn.write(
        requestHead("POST", "/upload/echo", [["Transfer-Encoding", "chunked"]]),
      );
      for (let i = 0; i < body.length; i += 10_000) {
        const part = body.subarray(i, i + 10_000);
        await conn.write(`${part.length.toString(16)}\r\n`);
        await conn.write(part);
        await conn.write("\r\n");
      }
      await conn.write("0\r\n\r\n");
      const response = await conn.read();
      assert.equal(response.status, 200);
      // proxy_request_buffering off: nginx forwarded the chunked coding.
      assert.equal(response.get("x-request-transfer-encoding"), "chunked");
      assert.equal(response.body.length, body.length);
      assert.equal(firstDifference(response.body, body), -1);
    } finally {
      conn.destroy();
    }
  },
);

nginxTest(
  "a streamed 1 MiB response arrives intact and chunked, buffered or not",
  async ({ port }) => {
    const expected = pattern(STREAM_SIZE);
    for (const route of ["/stream", "/unbuffered/stream"]) {
      const conn = await RawConnection.open(port);
      try {
        await conn.write(requestHead("GET", route));
        const response = await conn.read({ timeoutMs: 15_000 });
        assert.equal(response.status, 200, route);
        assert.ok(response.chunked, `${route}: not chunked`);
        assert.equal(response.body.length, expected.length, route);
        assert.equal(firstDifference(response.body, expected), -1, route);
      } finally {
        conn.destroy();
      }
    }
  },
);

// nginx forwards what it has read as it goes, so this holds with buffering on
// too; /unbuffered/ is the setup for streaming (server-sent events, say).
nginxTest(
  "a streamed part reaches the client through nginx before the body ends",
  async ({ port, seen }) => {
    for (const route of ["/unbuffered/gated", "/gated"]) {
      seen.gate = deferred();
      const conn = await RawConnection.open(port);
      try {
        await conn.write(requestHead("GET", route));
        // The handler sends the rest only when the gate opens, which happens
        // only after the first part came through nginx.
        const first = utf8(GATED_FIRST);
        const deadline = Date.now() + 10_000;
        while (!includes(conn.pending, first)) {
          assert.ok(
            Date.now() < deadline,
            `${route}: the first part did not reach the client while the body was open`,
          );
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        seen.gate.resolve();
        const response = await conn.read();
        assert.equal(response.status, 200, route);
        assert.ok(response.chunked, `${route}: not chunked`);
        assert.equal(response.text(), GATED_FIRST + GATED_REST, route);
      } finally {
        conn.destroy();
      }
    }
  },
);

nginxTest(
  "nginx reuses its upstream connections: 20 requests, far fewer ports",
  async ({ port, server, seen }) => {
    // remoteAddr.port is the client's port: checked on a direct connection.
    const direct = await RawConnection.open(server.port);
    try {
      await direct.write(requestHead("GET", "/direct"));
      assert.equal((await direct.read()).text(), "GET /direct");
      assert.equal(seen.ports.at(-1), direct.localPort);
    } finally {
      direct.destroy();
    }

    const count = async (route: string, n: number): Promise<Set<number>> => {
      seen.ports.length = 0;
      for (let i = 0; i < n; i++) {
        const response = await fetch(`http://127.0.0.1:${port}${route}`);
        assert.equal(await response.text(), `GET ${route}`);
      }
      assert.equal(seen.ports.length, n);
      return new Set(seen.ports);
    };

    const pooled = await count("/pooled", 20);
    assert.ok(
      pooled.size <= 3,
      `20 requests through the keep-alive pool came from ${pooled.size} ports: ${[
        ...pooled,
      ]}`,
    );
    // The control: without the pool, each request is a new connection.
    const fresh = await count("/no-keepalive/x", 5);
    assert.equal(fresh.size, 5, `ports without keep-alive: ${[...fresh]}`);
  },
);

function includes(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return true;
  }
  return false;
}

nginxTest(
  "nginx reaches ymo on a unix socket (proxy_pass to unix:), keeping the connection",
  async ({ port, unixServer, seen }) => {
    assert.equal(unixServer.addr.transport, "unix");
    const base = `http://127.0.0.1:${port}/unix`;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/hello?i=${i}`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "GET /unix/hello");
    }
    const echo = await fetch(`${base}/echo`, {
      method: "POST",
      body: "over unix",
    });
    assert.equal(await echo.text(), "over unix");
    // A unix socket's client has no port.
    assert.deepEqual(seen.ports, [undefined, undefined, undefined, undefined]);
  },
);
