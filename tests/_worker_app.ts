// The app that tests/workers_test.ts runs on worker threads. Each thread
// loads this module on its own, so `id` tells the threads apart.
const id = crypto.randomUUID();

export default {
  async fetch(req: Request): Promise<Response> {
    const { pathname } = new URL(req.url);
    if (pathname === "/crash") {
      // An uncaught error outside any handler kills the thread.
      setTimeout(() => {
        throw new Error("worker crash requested by the test");
      }, 0);
      return new Response(id);
    }
    if (pathname === "/hang") {
      await new Promise(() => {});
    }
    if (pathname === "/echo") return new Response(await req.text());
    return new Response(id);
  },
};
