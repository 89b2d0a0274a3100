// server/_request.ts: the URL a handler sees is what `new URL()` makes of
// "http://" + Host + target. isCanonical() lets the Deno path skip the parse
// when the result would be the same string; it must never say yes wrongly.
import assert from "node:assert/strict";
import { test } from "./_shim.ts";
import { isCanonical } from "../server/_request.ts";

/** Whether the parser leaves the URL as it is (false when it refuses it). */
function parsedSame(host: string, target: string): boolean {
  const url = `http://${host}${target}`;
  try {
    return new URL(url).href === url;
  } catch {
    return false;
  }
}

const HOSTS = [
  "localhost",
  "localhost:8000",
  "127.0.0.1:8123",
  "example.com",
  "a-b.example.com:443",
  "LOCALHOST",
  "Example.com",
  "localhost:80",
  "localhost:080",
  "localhost:65535",
  "localhost:65536",
  "localhost:99999",
  "127.1",
  "127.0.0.01",
  "0x7f.0.0.1",
  "256.0.0.1",
  "1.2.3.4.",
  "example.",
  "a..b",
  "[::1]:8000",
  "[::1]",
  "xn--nxasmq6b.com",
  "xn--zz",
  "a_b",
  "1.2.3",
  "host.123",
  "host.0x1",
  "ex%41mple.com",
  "exa mple",
  "",
];
const TARGETS = [
  "/",
  "/a/b?c=d&e=f",
  "/%7e",
  "/%7E",
  "/%zz",
  "/./a",
  "/a/../b",
  "/a/.",
  "/.%2e/x",
  "/%2E",
  "/a//b",
  "/a b",
  "/a'b",
  "/a?b'c",
  "/a#b",
  "/a\\b",
  "/é",
  "/a<b>",
  "/a?<b>",
  "/a^b",
  "/a`b",
  "/a{b}",
  "/a|b",
  "/~user",
  "/a;b=c,d",
  "/@:!$&()*+",
  "/?",
  "/a?b?c",
  "/.hidden",
  "/a/.b",
];

test("isCanonical() says yes only where the parser would change nothing", () => {
  let yes = 0;
  for (const host of HOSTS) {
    for (const target of TARGETS) {
      if (!isCanonical(host, target)) continue;
      yes++;
      assert.ok(
        parsedSame(host, target),
        `http://${host}${target} is not what new URL() makes of it`,
      );
    }
  }
  // The common case is taken: a real shortcut, not one that never applies.
  assert.ok(isCanonical("127.0.0.1:8123", "/a/b?c=d"));
  assert.ok(isCanonical("localhost:8000", "/"));
  assert.ok(yes > 50, `only ${yes} pairs taken`);
});

test("isCanonical() holds over random hosts and targets", () => {
  const hostChars = "abcxz019.-:_AXé%[]";
  const targetChars = "/ab.%2eE?#&=' \\~@:;<>^`{}|é";
  let seed = 12345;
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pick = (chars: string, n: number) =>
    Array.from({ length: n }, () => chars[next(chars.length)]).join("");
  for (let i = 0; i < 20000; i++) {
    const host = next(3) === 0
      ? `${pick("abc", 3)}:${next(70000)}`
      : pick(hostChars, 1 + next(12));
    const target = "/" + pick(targetChars, next(12));
    if (isCanonical(host, target)) {
      assert.ok(parsedSame(host, target), `http://${host}${target}`);
    }
  }
});
