// The WebSocket pub/sub app that tests/websocket_test.ts runs on worker
// threads: /sub subscribes to "room"; what /pub receives is published to it
// with ws.publish, and "server:..." messages with the server's publish.
import type { ServeHandlerInfo, ServerWebSocket } from "../mod.ts";

type Data = { path: string; server: ServeHandlerInfo };

export default {
  fetch(request: Request, server: ServeHandlerInfo): Response | undefined {
    const path = new URL(request.url).pathname;
    if (server.upgrade(request, { data: { path, server } })) return undefined;
    return new Response("not a socket", { status: 400 });
  },
  websocket: {
    open(ws: ServerWebSocket<Data>) {
      if (ws.data.path === "/sub") {
        ws.subscribe("room");
        ws.send(`subscribed ${ws.isSubscribed("room")}`);
      }
    },
    message(ws: ServerWebSocket<Data>, message: string | Uint8Array) {
      if (ws.data.path !== "/pub") return;
      if (typeof message === "string" && message.startsWith("server:")) {
        ws.data.server.publish("room", message);
      } else ws.publish("room", message);
    },
  },
};
