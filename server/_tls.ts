/**
 * HTTPS options: Deno's `cert` and `key`, and Bun's `tls` (one object, or an
 * array of them for SNI), checked, read into bytes, and handed to C before
 * anything listens. A certificate, key or CA is PEM as a string, as bytes,
 * or as a Bun file (`Bun.file(path)`), which is read here synchronously from
 * its path, so `serve()` stays synchronous and a file that cannot be read
 * is an error from it.
 *
 * @module
 */
import { readBytes as readFile } from "../ffi/_host.ts";
import { EINVAL, ETLSCA, ETLSCERT, ETLSPASS } from "../ffi/symbols.ts";

/** A certificate, private key or CA certificates: PEM text, its bytes, or
 * a Bun file (`Bun.file(path)`, read from its path when the server
 * starts). */
export type TlsData = string | Uint8Array | Blob;

/** Bun's `tls` option: one site's certificate. */
export interface TlsOptions {
  /** The certificate (PEM; its intermediates may follow it), or one per
   * key type (RSA and ECDSA), each with the key at the same place in
   * `key`. */
  cert: TlsData | TlsData[];
  /** The certificate's private key (PEM, encrypted or not), or one per
   * certificate. */
  key: TlsData | TlsData[];
  /** CA certificates: OpenSSL completes the chain it sends from them when
   * `cert` has no intermediates. Client certificates are not asked for. */
  ca?: TlsData | TlsData[];
  /** The passphrase of an encrypted `key`. */
  passphrase?: string;
  /** The server name (SNI) this certificate is for, e.g. "example.com" or
   * "*.example.com"; without it, the default certificate. */
  serverName?: string;
}

/** One site's material as C takes it. */
export interface TlsSite {
  /** How the user named it in the options, for errors: "tls", "tls[1]",
   * or "" for Deno's top-level `cert` and `key`. */
  where: string;
  certs: Uint8Array[];
  keys: Uint8Array[];
  ca?: Uint8Array;
  passphrase?: string;
  serverName?: string;
}

/** Keys of a `tls` object that ymo takes. */
const TLS_KEYS = new Set(["cert", "key", "ca", "passphrase", "serverName"]);
/** Bun's `tls` keys that ymo refuses rather than ignore, and why. */
const TLS_NOT_YET: Record<string, string> = {
  requestCert: "client certificates are not supported",
  rejectUnauthorized: "client certificates are not supported",
  dhParamsFile: "only ECDHE key exchange is offered",
  ALPNProtocols: "ALPN always selects http/1.1",
  secureOptions: "the protocol versions and options are fixed",
  lowMemoryMode: "not supported",
};

/** The options this file reads. */
interface WithTls {
  cert?: TlsData;
  key?: TlsData;
  tls?: TlsOptions | TlsOptions[];
}

function isData(value: unknown): boolean {
  return typeof value === "string" || value instanceof Uint8Array ||
    (typeof Blob !== "undefined" && value instanceof Blob);
}

function checkData(value: unknown, name: string, many: boolean): void {
  if (many && Array.isArray(value)) {
    if (value.length === 0) {
      throw new TypeError(`Invalid ${name}: expected PEM, not an empty array`);
    }
    value.forEach((v, i) => checkData(v, `${name}[${i}]`, false));
    return;
  }
  if (!isData(value)) {
    throw new TypeError(
      `Invalid ${name}: expected PEM as a string, a Uint8Array or a Bun file`,
    );
  }
}

/** Throws a TypeError naming the first invalid TLS option. */
export function validateTls(options: WithTls): void {
  const { cert, key, tls } = options;
  if (tls !== undefined && (cert !== undefined || key !== undefined)) {
    throw new TypeError(
      "Invalid options: give cert and key (Deno) or tls (Bun), not both",
    );
  }
  if (cert !== undefined || key !== undefined) {
    if (cert === undefined) {
      throw new TypeError("Invalid options: key needs cert");
    }
    if (key === undefined) {
      throw new TypeError("Invalid options: cert needs key");
    }
    checkData(cert, "cert", false);
    checkData(key, "key", false);
  }
  if (tls === undefined) return;
  const list = Array.isArray(tls) ? tls : [tls];
  if (list.length === 0) {
    throw new TypeError("Invalid tls: expected an object, not an empty array");
  }
  const names = new Set<string>();
  list.forEach((site, i) => {
    const where = Array.isArray(tls) ? `tls[${i}]` : "tls";
    if (site === null || typeof site !== "object") {
      throw new TypeError(`Invalid ${where}: expected an object`);
    }
    for (const k of Object.keys(site)) {
      if (TLS_KEYS.has(k)) continue;
      const why = TLS_NOT_YET[k];
      throw new TypeError(
        why === undefined
          ? `Unknown option: ${where}.${k}`
          : `Unsupported option: ${where}.${k} (${why})`,
      );
    }
    if (site.cert === undefined) {
      throw new TypeError(`Invalid ${where}.cert: a certificate is needed`);
    }
    if (site.key === undefined) {
      throw new TypeError(`Invalid ${where}.key: a private key is needed`);
    }
    checkData(site.cert, `${where}.cert`, true);
    checkData(site.key, `${where}.key`, true);
    const n = (v: unknown) => Array.isArray(v) ? v.length : 1;
    if (n(site.cert) !== n(site.key)) {
      throw new TypeError(
        `Invalid ${where}.key: expected one key per certificate (${
          n(site.cert)
        }), got ${n(site.key)}`,
      );
    }
    if (site.ca !== undefined) checkData(site.ca, `${where}.ca`, true);
    if (site.passphrase !== undefined && typeof site.passphrase !== "string") {
      throw new TypeError(`Invalid ${where}.passphrase: expected a string`);
    }
    if (site.passphrase?.includes("\0")) {
      throw new TypeError(`Invalid ${where}.passphrase: it contains NUL`);
    }
    const name = site.serverName;
    if (name !== undefined) {
      if (
        typeof name !== "string" ||
        !/^(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$/.test(name) ||
        name.length > 253
      ) {
        throw new TypeError(
          `Invalid ${where}.serverName: expected a DNS name, or "*." and one`,
        );
      }
    }
    const id = (name ?? "").toLowerCase();
    if (names.has(id)) {
      throw new TypeError(
        `Invalid ${where}.serverName: ${
          name === undefined ? "a second default" : `"${name}" again`
        } (give several certificates of one site as arrays)`,
      );
    }
    names.add(id);
  });
}

const encoder = new TextEncoder();

/** The bytes of one value (never empty); a Bun file is read from its
 * path. */
function bytesOf(value: TlsData, name: string): Uint8Array {
  const bytes = readBytes(value, name);
  if (bytes.byteLength === 0) throw new TypeError(`Invalid ${name}: empty`);
  return bytes;
}

function readBytes(value: TlsData, name: string): Uint8Array {
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  const path = (value as { name?: unknown }).name;
  if (
    typeof path !== "string" ||
    (typeof File !== "undefined" && value instanceof File)
  ) {
    throw new TypeError(
      `Invalid ${name}: a Blob is read only as a Bun file with a path (Bun.file(path)); give its text or bytes`,
    );
  }
  try {
    return readFile(path);
  } catch (error) {
    throw new Error(
      `Cannot read ${name} from ${path}: ${
        error instanceof Error ? error.message : String(error)
      }`,
      { cause: error },
    );
  }
}

function allBytes(value: TlsData | TlsData[], name: string): Uint8Array[] {
  return Array.isArray(value)
    ? value.map((v, i) => bytesOf(v, `${name}[${i}]`))
    : [bytesOf(value, name)];
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(
    parts.reduce((n, p) => n + p.byteLength + 1, 0),
  );
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    out[at + part.byteLength] = 10; // "\n" between PEM files.
    at += part.byteLength + 1;
  }
  return out;
}

/**
 * The sites of validated options, with every file read (an unreadable one
 * throws an Error naming the option and the path), or undefined without
 * TLS.
 */
export function tlsSites(options: WithTls): TlsSite[] | undefined {
  const { cert, key, tls } = options;
  if (cert !== undefined && key !== undefined) {
    return [{
      where: "",
      certs: [bytesOf(cert, "cert")],
      keys: [bytesOf(key, "key")],
    }];
  }
  if (tls === undefined) return undefined;
  const list = Array.isArray(tls) ? tls : [tls];
  return list.map((site, i) => {
    const where = Array.isArray(tls) ? `tls[${i}]` : "tls";
    return {
      where,
      certs: allBytes(site.cert, `${where}.cert`),
      keys: allBytes(site.key, `${where}.key`),
      ca: site.ca === undefined
        ? undefined
        : concat(allBytes(site.ca, `${where}.ca`)),
      passphrase: site.passphrase,
      serverName: site.serverName,
    };
  });
}

/** The option a TLS error code of ymo.h is about, for its message. */
export function tlsOptionOf(site: TlsSite, code: number): string {
  const field = code === ETLSCERT
    ? "cert"
    : code === ETLSCA
    ? "ca"
    : code === ETLSPASS && site.where !== ""
    ? "passphrase"
    : code === EINVAL
    ? "serverName"
    : "key";
  return site.where === "" ? field : `${site.where}.${field}`;
}
