/**
 * A shortcut for the commonest response bodies: a fixed string or bytes can
 * be sent at once, without reading them through a ReadableStream (on Deno
 * that read costs several times more than the rest of the response).
 *
 * Deno keeps such a body in the Response's inner state, reachable through a
 * symbol that Deno.serve itself uses; the shape is checked once on a probe
 * Response when this module loads, and if it is not what this code expects
 * (another Deno version, or Bun, whose Response is native) the shortcut is
 * off and every body takes the standard stream path. tests/static_body_test.ts
 * checks both paths give the same bytes.
 *
 * @module
 */

type StaticBody = string | Uint8Array;

interface InnerBody {
  streamOrStatic?: { body?: unknown; consumed?: unknown };
}

type Slots = Record<symbol, unknown>;

/** The symbol under which Deno keeps the inner response, checked on a probe
 * whose body Deno materializes (one with headers). */
function findInnerSymbol(): symbol | undefined {
  const probe = new Response("probe", { headers: { "x-probe": "1" } });
  for (const sym of Object.getOwnPropertySymbols(probe)) {
    if (sym.description !== "response") continue;
    const inner = (probe as unknown as Slots)[sym] as { body?: InnerBody };
    const fixed = inner?.body?.streamOrStatic;
    if (fixed?.body === "probe" && fixed.consumed === false) return sym;
  }
  return undefined;
}

/** The symbol under which Deno keeps a string body it has not yet wrapped
 * (a Response made from a string with no init). */
function findLazySymbol(): symbol | undefined {
  const probe = new Response("probe");
  for (const sym of Object.getOwnPropertySymbols(probe)) {
    if (
      sym.description === "lazy static body" &&
      (probe as unknown as Slots)[sym] === "probe"
    ) return sym;
  }
  return undefined;
}

const onDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
const INNER = onDeno ? findInnerSymbol() : undefined;
const LAZY = onDeno ? findLazySymbol() : undefined;

/**
 * The body of `response` when it is a fixed string or bytes that nobody has
 * read, else undefined (take the stream path).
 */
export function staticBody(response: Response): StaticBody | undefined {
  if (INNER === undefined || response.bodyUsed) return undefined;
  const slots = response as unknown as Slots;
  if (LAZY !== undefined) {
    const lazy = slots[LAZY];
    if (typeof lazy === "string") return lazy;
  }
  const inner = slots[INNER] as { body?: InnerBody } | undefined;
  const fixed = inner?.body?.streamOrStatic;
  if (fixed === undefined || fixed.consumed !== false) return undefined;
  const body = fixed.body;
  if (typeof body === "string" || body instanceof Uint8Array) return body;
  return undefined;
}

/** Whether the shortcut is available on this runtime (for tests). */
export const hasStaticBody: boolean = INNER !== undefined;
