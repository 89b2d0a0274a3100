/**
 * TLS for the benchmark's HTTPS workloads: the test certificate, made with
 * the `openssl` command into bench/tmp/tls/, a fetch that trusts it, and
 * what a server negotiates with OpenSSL's defaults (wrk's).
 *
 * The certificate is a small CA and a leaf for 127.0.0.1 and localhost,
 * both ECDSA P-256, valid for 30 days: the servers get the leaf and its key
 * (leaf.pem, leaf.key), the checks trust the CA (ca.pem). A self-signed leaf
 * alone would do for curl, but rustls (Deno's fetch) takes no end-entity
 * certificate as its own trust anchor.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The test certificate's files. */
export interface TlsFiles {
  /** The CA certificate (PEM) that signed the leaf: what clients trust. */
  ca: string;
  /** The leaf certificate (PEM) the servers present. */
  cert: string;
  /** The leaf's private key (PEM, unencrypted). */
  key: string;
}

/** Where the test certificate lives: bench/tmp/tls/ under `root`. */
export function tlsFiles(root: string): TlsFiles {
  const dir = join(root, "bench/tmp/tls");
  return {
    ca: join(dir, "ca.pem"),
    cert: join(dir, "leaf.pem"),
    key: join(dir, "leaf.key"),
  };
}

/** Runs `openssl args`; returns its error output on failure, or null. */
function openssl(args: string[], cwd: string): string | null {
  const run = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if ((run.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    return "the openssl command is not on PATH (apt-get install openssl)";
  }
  if (run.status !== 0) {
    const output = `${run.stderr ?? ""}${run.error ?? ""}`.trim();
    return `openssl ${args[0]} failed: ${output.split("\n").pop()}`;
  }
  return null;
}

/** Seconds left, at least, for a certificate still to be used. */
const VALID_FOR = 86400;

/**
 * Makes the test certificate in bench/tmp/tls/ under `root` unless one is
 * there and valid for another day; returns why it cannot, or null.
 */
export function ensureCertificate(root: string): string | null {
  const files = tlsFiles(root);
  const dir = join(root, "bench/tmp/tls");
  const present = [files.ca, files.cert, files.key].every((f) => existsSync(f));
  if (
    present &&
    openssl(
        ["x509", "-checkend", String(VALID_FOR), "-noout", "-in", files.cert],
        dir,
      ) === null
  ) {
    return null;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, "leaf.ext"),
    "subjectAltName = IP:127.0.0.1, DNS:localhost\n" +
      "basicConstraints = critical, CA:FALSE\n" +
      "keyUsage = critical, digitalSignature\n" +
      "extendedKeyUsage = serverAuth\n",
  );
  const p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
  return openssl([
    "req",
    "-x509",
    ...p256,
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "30",
    "-subj",
    "/CN=ymo bench CA",
    "-addext",
    "basicConstraints = critical, CA:TRUE",
    "-addext",
    "keyUsage = critical, keyCertSign",
  ], dir) ??
    openssl([
      "req",
      "-new",
      ...p256,
      "-nodes",
      "-keyout",
      "leaf.key",
      "-out",
      "leaf.csr",
      "-subj",
      "/CN=localhost",
    ], dir) ??
    openssl([
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-set_serial",
      String(Date.now()),
      "-days",
      "30",
      "-extfile",
      "leaf.ext",
      "-out",
      "leaf.pem",
    ], dir);
}

/**
 * Fetch options that trust the CA in `caFile` (and the system's roots):
 * Deno's `client`, or Bun's `tls.ca` when the harness runs on Bun.
 */
export function trustingInit(caFile: string): RequestInit {
  const ca = readFileSync(caFile, "utf8");
  // Neither option is in the DOM's RequestInit; each runtime's fetch reads
  // its own.
  if (typeof Deno !== "undefined") {
    return { client: Deno.createHttpClient({ caCerts: [ca] }) } as RequestInit;
  }
  return { tls: { ca } } as RequestInit;
}

/**
 * What `openssl s_client` negotiates with the server on `port`, with
 * OpenSSL's defaults like wrk: e.g. "TLSv1.3, TLS_AES_128_GCM_SHA256,
 * X25519". Null when it cannot connect.
 */
export function negotiated(port: number, caFile: string): string | null {
  const run = spawnSync("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-brief",
    "-CAfile",
    caFile,
  ], { encoding: "utf8", input: "", timeout: 10_000 });
  // -brief writes its summary to stderr.
  const text = `${run.stdout ?? ""}${run.stderr ?? ""}`;
  const field = (name: string) =>
    text.match(new RegExp(`^${name}: (.+)$`, "m"))?.[1].trim();
  const version = field("Protocol version");
  if (!version) return null;
  const group = field("Server Temp Key")?.split(",")[0] ??
    field("Negotiated TLS1.3 group");
  return [version, field("Ciphersuite"), group].filter(Boolean).join(", ");
}
