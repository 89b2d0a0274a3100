// The app that tests/cli_test.ts serves with scripts/serve.ts to check that
// the CLI takes a Bun app's `routes`, with no `fetch` at all.
export default {
  routes: {
    "/hello/:name": (req: Request & { params: Record<string, string> }) =>
      new Response(`hello ${req.params.name}`),
    "/fixed": new Response("fixed"),
  },
};
