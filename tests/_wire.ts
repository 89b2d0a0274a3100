/**
 * Helpers for wire-level conformance tests: send exact bytes, collect every
 * response the server sends until it closes (or a deadline passes), and
 * describe what came back in failure messages.
 *
 * Unlike `rawRequest` in `_http.ts`, `exchange()` never throws on a missing
 * close: it reports what it saw, so a test can say "expected 400 and a close,
 * got 200 with the connection open" instead of timing out.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  delay,
  parseResponse,
  RawConnection,
  type RawResponse,
} from "./_http.ts";

/** What the server sent back for some bytes. */
export interface Exchange {
  /** Complete responses, in order (1xx interim responses included). */
  responses: RawResponse[];
  /** True if the server closed the connection. */
  closed: boolean;
  /** Bytes after the last complete response. */
  rest: Uint8Array;
  /** Everything received. */
  raw: Uint8Array;
}

/** Options for `exchange()`. */
export interface ExchangeOptions {
  /** Methods of the requests in order, so HEAD responses parse right. */
  methods?: string[];
  /**
   * Stop once this many final (non-1xx) responses have come, or "close"
   * (the default) to wait for the server to close the connection.
   */
  until?: number | "close";
  /** Give up waiting after this long, in ms (default 5000). */
  timeoutMs?: number;
  /** Pause between writes, in ms (default 20), so each is its own read. */
  gapMs?: number;
}

/** Shows bytes or a string as a JSON string literal, shortened. */
export function show(data: string | Uint8Array, max = 160): string {
  const s = typeof data === "string"
    ? data
    : Buffer.from(data).toString("latin1");
  return JSON.stringify(s.length > max ? s.slice(0, max) + "..." : s);
}

/** Parses every complete response in `raw`. */
export function parseAll(
  raw: Uint8Array,
  eof: boolean,
  methods: string[] = [],
): { responses: RawResponse[]; rest: Uint8Array } {
  const buf = Buffer.from(raw);
  const responses: RawResponse[] = [];
  let offset = 0;
  let finals = 0;
  for (;;) {
    let parsed;
    try {
      parsed = parseResponse(buf, offset, {
        head: methods[finals] === "HEAD",
        eof,
      });
    } catch (error) {
      throw new Error(
        `Malformed response after ${responses.length} good ones: ${
          (error as Error).message
        }; bytes: ${show(buf.subarray(offset))}`,
      );
    }
    if (parsed === null) break;
    responses.push(parsed.response);
    if (parsed.response.status >= 200) finals++;
    offset = parsed.end;
    if (offset >= buf.length) break;
  }
  return { responses, rest: new Uint8Array(buf.subarray(offset)) };
}

/**
 * Opens a connection to 127.0.0.1:`port`, writes each of `writes` in turn
 * (with a short pause between them so they arrive as separate reads), and
 * collects responses as `opts.until` says. Always closes the connection.
 */
export async function exchange(
  port: number,
  writes: string | Uint8Array | (string | Uint8Array)[],
  opts: ExchangeOptions = {},
): Promise<Exchange> {
  const parts = Array.isArray(writes) ? writes : [writes];
  const until = opts.until ?? "close";
  const deadline = Date.now() + (opts.timeoutMs ?? 5_000);
  const conn = await RawConnection.open(port);
  try {
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) await delay(opts.gapMs ?? 20);
      // Once the server has answered or closed, write no more: a write that
      // fails with EPIPE makes Node's socket drop the bytes it has received
      // and not yet handed over, which would hide the answer.
      if (i > 0 && (conn.ended || conn.pending.length > 0)) break;
      await conn.write(parts[i]).catch(() => {});
    }
    for (;;) {
      const raw = conn.pending;
      const { responses, rest } = parseAll(raw, conn.ended, opts.methods);
      const finals = responses.filter((r) => r.status >= 200).length;
      const done = until === "close" ? conn.ended : finals >= until;
      if (done || conn.ended || Date.now() >= deadline) {
        return { responses, closed: conn.ended, rest, raw };
      }
      await delay(5);
    }
  } finally {
    conn.destroy();
  }
}

/** A one-line account of an exchange for failure messages. */
export function describe(ex: Exchange): string {
  const statuses = ex.responses.map((r) => r.status).join(", ") || "none";
  return `responses [${statuses}], connection ${
    ex.closed ? "closed" : "left open"
  }, received ${show(ex.raw, 300)}`;
}

const IMF_FIXDATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * Why a response's Date field is not one IMF-fixdate within a minute of
 * now (RFC 9110 section 5.6.7 and 6.6.1), or null if it is.
 */
export function dateProblem(res: RawResponse): string | null {
  const dates = res.getAll("date");
  if (dates.length !== 1) return `${dates.length} Date fields`;
  if (!IMF_FIXDATE.test(dates[0])) return `Date ${show(dates[0])}`;
  const skew = Math.abs(Date.parse(dates[0]) - Date.now());
  if (!(skew < 60_000)) return `Date ${dates[0]} is ${skew} ms off`;
  return null;
}
