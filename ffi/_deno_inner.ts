/**
 * Shortcuts through Deno's own Request and Response internals, the ones
 * Deno.serve uses, for the three costliest steps of a request on Deno:
 *
 * - **Making the Request.** `new Request(url, init)` costs ~4.5 us and ~3 KB
 *   of garbage on Deno 2.9 (init dictionary conversion, URL parsing, header
 *   validation). Deno.serve instead makes an empty branded Request and hangs
 *   an "inner request" on it whose method, URL and header list are produced
 *   only when read. {@linkcode fastRequest} does the same with an inner
 *   request of ours (~0.1 us).
 * - **Reading the response headers.** Iterating `response.headers` sorts and
 *   combines them into new arrays (~1 us, ~2 KB); the response's inner header
 *   list is already what goes on the wire ({@linkcode headerList}).
 * - **Reading a fixed body.** A string or bytes body is in the response's
 *   inner state; reading it through a ReadableStream costs several times the
 *   rest of the response ({@linkcode staticBody}).
 *
 * None of this is public API, and only the Deno backend (`deno.ts`) uses it.
 * Every shortcut is checked when this module loads, on probe objects, against
 * the standard path; if Deno moves anything (or on Bun, whose Request and
 * Response are native and fail the probes) the shortcut is off and the
 * standard path is taken. tests/deno_inner_test.ts fails if a shortcut is off
 * on Deno, so an upgrade that breaks one is noticed, not just slower.
 *
 * @module
 */

type Slots = Record<symbol, unknown>;

function symbolOf(object: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(object).find((s) =>
    s.description === description
  );
}

// ------------------------------------------------------------ fixed bodies

type StaticBody = string | Uint8Array;

interface InnerBody {
  streamOrStatic?: { body?: unknown; consumed?: unknown };
}

interface InnerResponse {
  body?: InnerBody;
  headerList?: unknown;
}

/** The symbol under which Deno keeps the inner response, checked on a probe
 * whose body Deno materializes (one with headers). */
function findInnerSymbol(): symbol | undefined {
  const probe = new Response("probe", { headers: { "x-probe": "1" } });
  const sym = symbolOf(probe, "response");
  if (sym === undefined) return undefined;
  const inner = (probe as unknown as Slots)[sym] as InnerResponse | undefined;
  const fixed = inner?.body?.streamOrStatic;
  return fixed?.body === "probe" && fixed.consumed === false ? sym : undefined;
}

/** The symbol under which Deno keeps a string body it has not yet wrapped
 * (a Response made from a string with no init). */
function findLazySymbol(): symbol | undefined {
  const probe = new Response("probe");
  const sym = symbolOf(probe, "lazy static body");
  if (sym === undefined || (probe as unknown as Slots)[sym] !== "probe") {
    return undefined;
  }
  // Any use of the body makes the real one and empties the slot: a body
  // still in it is unused (staticBody relies on it).
  void probe.body;
  return (probe as unknown as Slots)[sym] === null ? sym : undefined;
}

const INNER = findInnerSymbol();
const LAZY = findLazySymbol();

/**
 * The body of `response` when it is a fixed string or bytes that nobody has
 * read, else undefined (take the stream path).
 */
export function staticBody(response: Response): StaticBody | undefined {
  if (INNER === undefined) return undefined;
  const slots = response as unknown as Slots;
  // Checked before `bodyUsed`, whose getter makes the lazy body real (a
  // stream and ~340 B of garbage per response).
  if (LAZY !== undefined) {
    const lazy = slots[LAZY];
    if (typeof lazy === "string") return lazy;
  }
  if (response.bodyUsed) return undefined;
  const inner = slots[INNER] as InnerResponse | undefined;
  const fixed = inner?.body?.streamOrStatic;
  if (fixed === undefined || fixed.consumed !== false) return undefined;
  const body = fixed.body;
  if (typeof body === "string" || body instanceof Uint8Array) return body;
  return undefined;
}

/** Whether the fixed-body shortcut is available on this runtime. */
export const hasStaticBody: boolean = INNER !== undefined;

/** The flag with which Deno.serve marks a Response it has sent as used,
 * checked on probes of both kinds of fixed body (a lazy string, and bytes
 * with headers): setting it must make `bodyUsed` true. */
function findConsumedSymbol(): symbol | undefined {
  if (INNER === undefined) return undefined;
  const probes = [
    new Response("probe"),
    new Response(new Uint8Array(1), { headers: { "x-probe": "1" } }),
  ];
  const sym = symbolOf(probes[0], "serve fast consumed");
  if (sym === undefined) return undefined;
  for (const probe of probes) {
    const slots = probe as unknown as Slots;
    if (slots[sym] !== false || probe.bodyUsed) return undefined;
    slots[sym] = true;
    if (!probe.bodyUsed) return undefined;
  }
  return sym;
}

const CONSUMED = findConsumedSymbol();

/**
 * C has copied `body`, the fixed body {@linkcode staticBody} gave for
 * `response`: the Response is used from now on, as after Deno.serve sent it
 * (`bodyUsed`, and a second send or read throws), so its bytes can be given
 * back at once. Deno made them for this Response alone (the constructor
 * copies what it is given) and counts them as external memory until a
 * collection frees them; at 16 KiB per response that count, not the heap,
 * set off a full mark-compact every ~50 ms on the benchmark's 16k workload.
 * Detaching frees them now. Nothing can reach them any more: every read of
 * a used body throws, and `clone()` too.
 */
export function bodySent(response: Response, body: StaticBody): void {
  if (CONSUMED === undefined) return;
  (response as unknown as Slots)[CONSUMED] = true;
  if (typeof body === "string" || body.byteLength === 0) return;
  const buffer = body.buffer;
  // Only a buffer the body spans whole, as the constructor's copy does.
  if (
    buffer instanceof ArrayBuffer && body.byteOffset === 0 &&
    body.byteLength === buffer.byteLength && !buffer.resizable
  ) {
    buffer.transfer(0);
  }
}

/** Whether sent bodies are marked used (and their bytes given back). */
export const hasBodySent: boolean = CONSUMED !== undefined;

// -------------------------------------------------------- response headers

/** Header fields as [name, value] pairs, names in any case. */
export type HeaderPairs = readonly (readonly [string, string])[];

const TEXT_PLAIN = "text/plain;charset=UTF-8";

/** Where a Response keeps a Content-Type it has not yet put in its header
 * list (a string body with no init, Response.json(), or an init whose only
 * field is the default Content-Type). */
const LAZY_TYPE = LAZY === undefined
  ? undefined
  : symbolOf(new Response("probe"), "lazy static content type");

/** One-field lists of the Content-Types that responses keep aside, shared
 * from one response to the next (a few types in any real app; the cap keeps
 * a strange one from growing it). */
const typeOnly = new Map<string, HeaderPairs>();

function contentTypeOnly(type: string): HeaderPairs {
  let list = typeOnly.get(type);
  if (list === undefined) {
    if (typeOnly.size >= 64) typeOnly.clear();
    list = Object.freeze([Object.freeze(["content-type", type] as const)]);
    typeOnly.set(type, list);
  }
  return list;
}

/**
 * The fields of `response` from its inner header list. A Response that
 * keeps its body or Content-Type aside (made with no init, or only the
 * default Content-Type) has an empty list and the Content-Type implied:
 * the kept one, or a string body's text/plain. Anything else gives
 * undefined, and its Headers are read.
 */
function innerHeaderList(response: Response): HeaderPairs | undefined {
  const slots = response as unknown as Slots;
  const list = (slots[INNER!] as InnerResponse | undefined)?.headerList;
  if (!Array.isArray(list)) return undefined;
  const lazyType = slots[LAZY_TYPE!];
  const lazyBody = slots[LAZY!];
  if (lazyType == null && lazyBody == null) return list as HeaderPairs;
  if (list.length !== 0) return undefined;
  if (typeof lazyType === "string") return contentTypeOnly(lazyType);
  return lazyType == null && typeof lazyBody === "string"
    ? contentTypeOnly(TEXT_PLAIN)
    : undefined;
}

/** The same fields, compared as sets: names lowercased, sorted. */
function sameFields(a: HeaderPairs, b: Headers): boolean {
  const norm = (pairs: Iterable<readonly [string, string]>) =>
    [...pairs].map(([n, v]) => `${n.toLowerCase()}: ${v}`).sort().join("\n");
  return norm(a) === norm(b);
}

/** Checks the inner header list against `headers` on probe responses. */
function checkHeaderList(): boolean {
  if (INNER === undefined || LAZY === undefined || LAZY_TYPE === undefined) {
    return false;
  }
  const dup = new Headers();
  dup.append("Set-Cookie", "a=1");
  dup.append("set-cookie", "b=2");
  dup.append("X-Dup", "1");
  dup.append("x-dup", "2");
  const probes: (() => Response)[] = [
    () => new Response("probe"),
    () => new Response(""),
    () => Response.json({ a: 1 }),
    () => new Response("probe", { headers: { "X-Up": "A" } }),
    () => new Response("probe", { headers: { "content-type": TEXT_PLAIN } }),
    () => new Response("probe", { headers: { "content-type": "text/html" } }),
    () => new Response("probe", { status: 201 }),
    () => new Response(new Uint8Array(3), { headers: dup }),
    () => new Response(null, { status: 204 }),
    () => Response.redirect("http://probe/", 302),
  ];
  let used = 0;
  for (const make of probes) {
    const list = innerHeaderList(make());
    if (list === undefined) continue; // Headers are read for this one.
    if (!sameFields(list, make().headers)) return false;
    used++;
  }
  return used > 0;
}

const HEADER_LIST = checkHeaderList();

/**
 * The header fields `response` will send, without iterating its Headers
 * (which sorts and copies them), or undefined: read `response.headers`.
 */
export function headerList(response: Response): HeaderPairs | undefined {
  return HEADER_LIST ? innerHeaderList(response) : undefined;
}

/** Whether the header-list shortcut is available on this runtime. */
export const hasHeaderList: boolean = HEADER_LIST;

// ---------------------------------------------------------------- requests

/** A request body as C handed it over: whole bytes, a stream, or none. */
export type RequestBody = Uint8Array<ArrayBuffer> | ReadableStream | null;

type InnerBodyClass = new (body: unknown) => unknown;

/**
 * The inner request behind a fast Request: the members Deno's Request
 * reads from the inner request Deno.serve gives it (method, url(),
 * headerList, body), produced when first read.
 */
class ServerInnerRequest {
  readonly method: string;
  body: unknown;
  #url: string;
  #fields: readonly string[];
  #list: [string, string][] | null = null;

  constructor(
    method: string,
    url: string,
    fields: readonly string[],
    body: unknown,
  ) {
    this.method = method;
    this.#url = url;
    this.#fields = fields;
    this.body = body;
  }

  url(): string {
    return this.#url;
  }

  /** What a constructed Request reports (Deno.serve's say undefined). */
  get redirectMode(): string {
    return "follow";
  }

  get headerList(): [string, string][] {
    if (this.#list === null) {
      const fields = this.#fields;
      const list: [string, string][] = [];
      for (let i = 0; i < fields.length; i += 2) {
        list.push([fields[i].toLowerCase(), fields[i + 1]]);
      }
      this.#list = list;
    }
    return this.#list;
  }
}

/** Makes Requests the way Deno.serve does; see the module's notes. */
export interface FastRequest {
  /** Pass to `super()` in a Request subclass: an empty branded Request. */
  readonly brand: symbol;
  /**
   * Gives `request` (made with `brand`) its method, URL, header fields
   * (flat: name, value, name, value...) and body.
   */
  fill(
    request: Request,
    method: string,
    url: string,
    fields: readonly string[],
    body: RequestBody,
  ): void;
}

function makeFastRequest(): FastRequest | undefined {
  const plain = new Request("http://probe/", { method: "POST", body: "x" });
  const brand = symbolOf(plain, "[[webidl.brand]]");
  const slot = symbolOf(plain, "request");
  const guard = symbolOf(plain, "headers guard");
  if (brand === undefined || slot === undefined || guard === undefined) {
    return undefined;
  }
  const sample = (plain as unknown as Slots)[slot] as { body?: object };
  const InnerBody = sample?.body?.constructor as InnerBodyClass | undefined;
  if (typeof InnerBody !== "function") return undefined;
  return {
    brand,
    fill(request, method, url, fields, body) {
      const slots = request as unknown as Slots;
      const inner = body === null ? null : new InnerBody(
        body instanceof Uint8Array ? { body, consumed: false } : body,
      );
      slots[slot] = new ServerInnerRequest(method, url, fields, inner);
      slots[guard] = "request";
    },
  };
}

const encoder = new TextEncoder();

/** Checks a fast Request against what a standard one would do. */
async function checkFastRequest(
  kit: FastRequest,
): Promise<FastRequest | undefined> {
  class Probe extends Request {
    constructor() {
      super(kit.brand as unknown as string);
    }
  }
  const make = (method: string, body: RequestBody) => {
    const request = new Probe();
    const fields = ["Host", "probe:1", "X-Dup", "1", "x-dup", "2"];
    fields.push("Set-Cookie", "a=1", "Set-Cookie", "b=2");
    kit.fill(request, method, "http://probe:1/p?q=1", fields, body);
    return request;
  };
  const post = make("POST", encoder.encode("body"));
  if (
    post.method !== "POST" || post.url !== "http://probe:1/p?q=1" ||
    post.headers.get("host") !== "probe:1" ||
    post.headers.get("x-dup") !== "1, 2" ||
    post.headers.getSetCookie().join() !== "a=1,b=2" ||
    post.bodyUsed || !(post.body instanceof ReadableStream) ||
    await post.clone().text() !== "body" || await post.text() !== "body" ||
    !post.bodyUsed
  ) return undefined;
  const get = make("GET", null);
  const copy = new Request(get);
  if (
    get.body !== null || copy.url !== get.url || copy.method !== "GET" ||
    copy.headers.get("x-dup") !== "1, 2" ||
    !(get.signal instanceof AbortSignal)
  ) return undefined;
  const streamed = make(
    "PUT",
    new ReadableStream({
      start(controller) {
        controller.enqueue(encoder.encode("str"));
        controller.enqueue(encoder.encode("eam"));
        controller.close();
      },
    }),
  );
  if (await streamed.text() !== "stream") return undefined;
  return kit;
}

async function probeFastRequest(): Promise<FastRequest | undefined> {
  try {
    const kit = makeFastRequest();
    return kit === undefined ? undefined : await checkFastRequest(kit);
  } catch {
    return undefined;
  }
}

/** Deno.serve's way of making Requests, or undefined: use the constructor. */
export const fastRequest: FastRequest | undefined = await probeFastRequest();
