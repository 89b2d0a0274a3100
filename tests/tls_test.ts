// HTTPS served by the C transport (native/src/tls.c): a test CA and server
// certificates made with the openssl command into a temporary directory, and
// real clients: the running runtime's fetch and WebSocket trusting the CA,
// curl --cacert, and openssl s_client (versions, ALPN, resumption,
// pipelining); a client stalled mid-handshake and plain HTTP on the TLS port
// do no harm; bad certificates, keys and passphrases make serve() throw
// before anything listens, saying which.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { isBun, isDeno, test } from "./_shim.ts";
import { pattern } from "./_http.ts";
import { serve, type ServeOptions, type Server, YmoError } from "../mod.ts";
import { ETLSCERT, ETLSKEY, ETLSMISMATCH, ETLSPASS } from "../ffi/symbols.ts";

const QUIET = { hostname: "127.0.0.1", port: 0, onListen() {} };

function has(command: string): boolean {
  try {
    execFileSync(command, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return command === "openssl" && hasOpenssl();
  }
}

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const OPENSSL = hasOpenssl();
const CURL = has("curl");

/** The test PKI: a CA, a server certificate for 127.0.0.1 and localhost,
 * another for other.test (SNI), the key encrypted, and a stray key. */
interface Pki {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  otherCert: string;
  otherKey: string;
  encKey: string;
  strayKey: string;
}

function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "ymo-tls-"));
  const run = (...args: string[]) =>
    execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
  run(
    "req",
    "-x509",
    ...ec,
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "3650",
    "-subj",
    "/CN=ymo test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  const leaf = (name: string, cn: string, san: string) => {
    run(
      "req",
      ...ec,
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    );
    writeFileSync(
      join(dir, `${name}.ext`),
      `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
    );
    run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-set_serial",
      String(Date.now() % 1e9),
      "-days",
      "3650",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.pem`,
    );
  };
  leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1");
  leaf("other", "other.test", "DNS:other.test");
  run(
    "pkey",
    "-in",
    "server.key",
    "-aes256",
    "-passout",
    "pass:secret",
    "-out",
    "server.enc.key",
  );
  run(
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    "stray.key",
  );
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  return {
    dir,
    ca: read("ca.pem"),
    cert: read("server.pem"),
    key: read("server.key"),
    otherCert: read("other.pem"),
    otherKey: read("other.key"),
    encKey: read("server.enc.key"),
    strayKey: read("stray.key"),
  };
}

const pki = OPENSSL ? makePki() : undefined;
if (pki !== undefined) {
  process.on("exit", () => rmSync(pki.dir, { recursive: true, force: true }));
}

/** Runs a command without blocking this thread (the server's handlers run
 * on it), with input, for at most timeoutMs. */
function run(
  command: string,
  args: string[],
  input = "",
  timeoutMs = 10_000,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid);
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.end(input);
  });
}

/** The running runtime's fetch, trusting the test CA. */
async function fetchTls(url: string, init: RequestInit = {}) {
  if (isDeno) {
    const client = Deno.createHttpClient({ caCerts: [pki!.ca] });
    try {
      const res = await fetch(url, { ...init, client } as RequestInit);
      const body = new Uint8Array(await res.arrayBuffer());
      return { res, body };
    } finally {
      client.close();
    }
  }
  const res = await fetch(
    url,
    { ...init, tls: { ca: pki!.ca } } as RequestInit,
  );
  return { res, body: new Uint8Array(await res.arrayBuffer()) };
}

function tlsServer(
  extra: ServeOptions = {},
  handler: (
    r: Request,
    info: { remoteAddr: unknown },
  ) => Response | Promise<Response> = (r) =>
    new Response(new URL(r.url).pathname),
): Server {
  return serve(
    { ...QUIET, cert: pki!.cert, key: pki!.key, ...extra },
    handler as never,
  );
}

function sClient(port: number, args: string[], input = "") {
  return run("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
    "-CAfile",
    join(pki!.dir, "ca.pem"),
    ...args,
  ], input);
}

const opensslTest = OPENSSL ? test : test.skip;
const curlTest = OPENSSL && CURL ? test : test.skip;

opensslTest(
  "HTTPS: the runtime's fetch trusting the CA, server.url and request.url say https",
  async () => {
    const server = tlsServer({}, (r) => new Response(r.url));
    try {
      assert.equal(server.url.protocol, "https:");
      const url = `https://127.0.0.1:${server.port}/hello`;
      const { res, body } = await fetchTls(url);
      assert.equal(res.status, 200);
      assert.equal(new TextDecoder().decode(body), url);
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "HTTPS: 1 MiB bodies both ways, and keep-alive over one connection",
  async () => {
    const big = pattern(1 << 20);
    const ports: number[] = [];
    const server = tlsServer({}, async (r, info) => {
      ports.push((info.remoteAddr as { port: number }).port);
      if (r.method === "POST") {
        return new Response(new Uint8Array(await r.arrayBuffer()));
      }
      return new Response(big);
    });
    try {
      const url = `https://127.0.0.1:${server.port}/`;
      if (isDeno) {
        // One client, so its pool keeps the connection between requests.
        const client = Deno.createHttpClient({ caCerts: [pki!.ca] });
        try {
          for (let i = 0; i < 3; i++) {
            const res = await fetch(url, { client } as RequestInit);
            assert.deepEqual(new Uint8Array(await res.arrayBuffer()), big);
          }
          const res = await fetch(url, {
            method: "POST",
            body: big,
            client,
          } as RequestInit);
          assert.deepEqual(new Uint8Array(await res.arrayBuffer()), big);
        } finally {
          client.close();
        }
      } else {
        for (let i = 0; i < 3; i++) {
          assert.deepEqual((await fetchTls(url)).body, big);
        }
        const { body } = await fetchTls(url, { method: "POST", body: big });
        assert.deepEqual(body, big);
      }
      assert.equal(ports.length, 4);
      assert.equal(new Set(ports).size, 1, `one connection: ${ports}`);
    } finally {
      await server.shutdown();
    }
  },
);

curlTest("HTTPS: curl --cacert gets HTTP/1.1 (ALPN), never h2", async () => {
  const server = tlsServer();
  try {
    const { code, out } = await run("curl", [
      "-sS",
      "--cacert",
      join(pki!.dir, "ca.pem"),
      "-w",
      "\n%{http_version}",
      `https://127.0.0.1:${server.port}/curl`,
    ]);
    assert.equal(code, 0, out);
    assert.equal(out, "/curl\n1.1");
  } finally {
    await server.shutdown();
  }
});

opensslTest(
  "HTTPS: s_client — TLS 1.0 and 1.1 refused, 1.2 and 1.3 accepted, ALPN http/1.1, h2 alone refused",
  async () => {
    const server = tlsServer();
    try {
      const port = server.port;
      for (const old of ["-tls1", "-tls1_1"]) {
        const { code, out } = await sClient(port, [
          old,
          "-cipher",
          "DEFAULT@SECLEVEL=0",
        ]);
        assert.notEqual(code, 0, `${old} refused: ${out}`);
        assert.match(
          out,
          /protocol version|unsupported protocol|no protocols/i,
        );
      }
      for (
        const [flag, name] of [["-tls1_2", "TLSv1.2"], ["-tls1_3", "TLSv1.3"]]
      ) {
        const { code, out } = await sClient(port, [
          flag,
          "-alpn",
          "h2,http/1.1",
        ]);
        assert.equal(code, 0, out);
        assert.match(
          out,
          new RegExp(`New, ${name.replace(".", "\\.")}, Cipher`),
        );
        assert.match(out, /ALPN protocol: http\/1\.1/);
        assert.match(out, /Verify return code: 0 \(ok\)/);
      }
      const h2 = await sClient(port, ["-alpn", "h2"]);
      assert.notEqual(h2.code, 0, "h2 alone is refused");
      assert.match(h2.out, /no application protocol/i);
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "HTTPS: session resumption (TLS 1.3 tickets and TLS 1.2) shows Reused",
  async () => {
    const server = tlsServer();
    try {
      for (const version of ["-tls1_3", "-tls1_2"]) {
        const sess = join(pki!.dir, `sess${version}`);
        // A request read to its end makes s_client take the tickets first.
        const req = "GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        const first = await sClient(server.port, [
          version,
          "-ign_eof",
          "-sess_out",
          sess,
        ], req);
        assert.match(first.out, /\/r/);
        assert.match(first.out, /New, TLSv1\.[23]/);
        const second = await sClient(server.port, [
          version,
          "-ign_eof",
          "-sess_in",
          sess,
        ], req);
        assert.match(second.out, /Reused, TLSv1\.[23]/, second.out);
      }
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "HTTPS with workers: a session resumes on every thread's loop",
  async () => {
    const server = serve({
      ...QUIET,
      cert: pki!.cert,
      key: pki!.key,
      workers: 2,
      module: new URL("./_worker_app.ts", import.meta.url),
    });
    try {
      const sess = join(pki!.dir, "sess-workers");
      const req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      const first = await sClient(server.port, [
        "-ign_eof",
        "-sess_out",
        sess,
      ], req);
      assert.match(first.out, /New, TLSv1\.3/);
      // Connections are dealt to the two loops in turn: the session was
      // made on one, and is resumed on both.
      const threads = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const again = await sClient(server.port, [
          "-ign_eof",
          "-sess_in",
          sess,
        ], req);
        assert.match(again.out, /Reused, TLSv1\.3/, again.out);
        const id = again.out.match(/\r\n\r\n([0-9a-f-]{36})/)?.[1];
        assert.ok(id !== undefined, again.out);
        threads.add(id);
      }
      assert.equal(threads.size, 2, "both threads answered");
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "HTTPS: pipelined requests in one write are answered in order",
  async () => {
    const server = tlsServer();
    try {
      const reqs = ["/one", "/two", "/three"].map((p, i) =>
        `GET ${p} HTTP/1.1\r\nHost: x\r\n${
          i === 2 ? "Connection: close\r\n" : ""
        }\r\n`
      ).join("");
      const { out } = await sClient(server.port, ["-quiet", "-ign_eof"], reqs);
      const bodies = [...out.matchAll(/\r\n\r\n(\/[a-z]+)/g)].map((m) => m[1]);
      assert.deepEqual(bodies, ["/one", "/two", "/three"], out);
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "HTTPS: SNI picks the certificate among several (Bun's tls array)",
  async () => {
    const server = serve({
      ...QUIET,
      tls: [
        { cert: pki!.cert, key: pki!.key },
        { cert: pki!.otherCert, key: pki!.otherKey, serverName: "other.test" },
      ],
    }, () => new Response("sni"));
    try {
      const other = await run("openssl", [
        "s_client",
        "-connect",
        `127.0.0.1:${server.port}`,
        "-servername",
        "other.test",
      ]);
      assert.match(other.out, /subject=CN ?= ?other\.test/);
      const dflt = await run("openssl", [
        "s_client",
        "-connect",
        `127.0.0.1:${server.port}`,
        "-servername",
        "unknown.test",
      ]);
      assert.match(dflt.out, /subject=CN ?= ?localhost/);
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "HTTPS: an encrypted key with its passphrase, files given as bytes",
  async () => {
    const server = serve({
      ...QUIET,
      tls: {
        cert: new TextEncoder().encode(pki!.cert),
        key: new TextEncoder().encode(pki!.encKey),
        passphrase: "secret",
        ca: pki!.ca,
      },
    }, () => new Response("enc"));
    try {
      const { body } = await fetchTls(`https://127.0.0.1:${server.port}/`);
      assert.equal(new TextDecoder().decode(body), "enc");
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "HTTPS: a client stalled mid-handshake does not hold others up, and is closed by the idle timeout",
  async () => {
    const server = tlsServer({ keepAliveTimeout: 500 });
    try {
      const stalled = connect(server.port, "127.0.0.1");
      const closed = new Promise<void>((resolve) => {
        stalled.on("close", () => resolve());
        stalled.on("error", () => {});
      });
      await new Promise<void>((resolve) => stalled.on("connect", resolve));
      // The first bytes of a ClientHello, and nothing more.
      stalled.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
      for (let i = 0; i < 3; i++) {
        const { body } = await fetchTls(`https://127.0.0.1:${server.port}/x`);
        assert.equal(new TextDecoder().decode(body), "/x");
      }
      await closed;
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "HTTPS: plain HTTP sent to the TLS port gets closed, and the server goes on",
  async () => {
    const server = tlsServer();
    try {
      const got = await new Promise<string>((resolve, reject) => {
        const socket = connect(server.port, "127.0.0.1", () => {
          socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        });
        let data = "";
        socket.on("data", (d) => (data += d.toString("latin1")));
        socket.on("close", () => resolve(data));
        // A reset is a close too: the request was left unread.
        socket.on("error", (e: NodeJS.ErrnoException) => {
          if (e.code !== "ECONNRESET") reject(e);
        });
      });
      assert.ok(!got.startsWith("HTTP/"), "no HTTP answer in plain text");
      const { body } = await fetchTls(`https://127.0.0.1:${server.port}/after`);
      assert.equal(new TextDecoder().decode(body), "/after");
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "HTTPS: WebSocket over TLS (wss:) with the runtime's client",
  async () => {
    const server = serve({
      ...QUIET,
      cert: pki!.cert,
      key: pki!.key,
      websocket: {
        message(ws, message) {
          ws.send(`echo ${message}`);
        },
      },
    }, (request, info) => {
      const srv = info as unknown as {
        upgrade(r: Request): boolean;
      };
      if (srv.upgrade(request)) return undefined as unknown as Response;
      return new Response("no upgrade", { status: 400 });
    });
    try {
      const url = `wss://127.0.0.1:${server.port}/ws`;
      if (isBun) {
        const ws = new WebSocket(url, { tls: { ca: pki!.ca } } as never);
        const reply = await new Promise<string>((resolve, reject) => {
          ws.onopen = () => ws.send("hi");
          ws.onmessage = (e) => resolve(String(e.data));
          ws.onerror = () => reject(new Error("wss failed"));
        });
        ws.close();
        assert.equal(reply, "echo hi");
      } else {
        // Deno's WebSocket has no per-socket CA: a child Deno trusts the CA
        // with --cert.
        const script = `const ws = new WebSocket(${JSON.stringify(url)});
ws.onopen = () => ws.send("hi");
ws.onmessage = (e) => { console.log(e.data); ws.close(); };
ws.onerror = (e) => { console.log("error", e.message); Deno.exit(1); };`;
        const { code, out } = await run(Deno.execPath(), [
          "eval",
          "--cert",
          join(pki!.dir, "ca.pem"),
          script,
        ]);
        assert.equal(code, 0, out);
        assert.match(out, /echo hi/);
      }
    } finally {
      await server.shutdown();
    }
  },
);

opensslTest(
  "serve() throws before listening for a bad cert, a bad key, a mismatched pair, a wrong passphrase, saying which",
  () => {
    const cases: [ServeOptions, number, RegExp][] = [
      [
        { cert: "nope", key: pki!.key },
        ETLSCERT,
        /^Invalid cert: bad TLS certificate/,
      ],
      [
        { cert: pki!.cert, key: "nope" },
        ETLSKEY,
        /^Invalid key: bad TLS private key/,
      ],
      [
        { cert: pki!.cert, key: pki!.strayKey },
        ETLSMISMATCH,
        /^Invalid key: TLS private key does not match the certificate/,
      ],
      [
        { tls: { cert: pki!.cert, key: pki!.encKey, passphrase: "wrong" } },
        ETLSPASS,
        /^Invalid tls.passphrase: wrong or missing TLS key passphrase/,
      ],
      [
        {
          tls: [{ cert: pki!.cert, key: pki!.key }, {
            cert: pki!.cert,
            key: pki!.encKey,
            serverName: "x.test",
          }],
        },
        ETLSPASS,
        /^Invalid tls\[1\].passphrase: wrong or missing/,
      ],
    ];
    for (const [options, code, message] of cases) {
      let seen: unknown;
      try {
        serve({ ...QUIET, port: 0, ...options }, () => new Response());
      } catch (error) {
        seen = error;
      }
      assert.ok(seen instanceof YmoError, `${message}: ${seen}`);
      assert.equal(seen.code, code);
      assert.match(seen.message, message);
    }
    assert.throws(
      () =>
        serve({
          ...QUIET,
          tls: { cert: { name: "/nonexistent/cert.pem" } as never, key: "k" },
        }, () => new Response()),
      /Invalid tls.cert: expected PEM/,
    );
    if (isBun) {
      const bun = (globalThis as unknown as {
        Bun: { file(path: string): Blob };
      }).Bun;
      assert.throws(
        () =>
          serve({
            ...QUIET,
            tls: { cert: bun.file("/nonexistent/cert.pem"), key: pki!.key },
          }, () => new Response()),
        /Cannot read tls.cert from \/nonexistent\/cert.pem/,
      );
    }
  },
);

(OPENSSL && isBun ? test : test.skip)(
  "HTTPS: Bun files are read from their path (Bun only)",
  async () => {
    const bun = (globalThis as unknown as { Bun: { file(path: string): Blob } })
      .Bun;
    const server = serve({
      ...QUIET,
      tls: {
        cert: bun.file(join(pki!.dir, "server.pem")),
        key: bun.file(join(pki!.dir, "server.key")),
      },
    }, () => new Response("file"));
    try {
      const { body } = await fetchTls(`https://127.0.0.1:${server.port}/`);
      assert.equal(new TextDecoder().decode(body), "file");
    } finally {
      await server.shutdown();
    }
  },
);
