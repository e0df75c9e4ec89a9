// The chat demo's logic as an HTTP backend for gatewire's event hook (`[worker] app = "http"`),
// in Node with its standard library only: the same lines as chat.py beside it.
//
//   node chat.js [PORT]     # then: gatewire start --set worker.app=http \
//                           #   --set worker.http.url=http://127.0.0.1:PORT/events
"use strict";
const http = require("http");

const reply = (text) => ({ method: "sendToCurrentClient", args: { message: text } });
const toRoom = (room, text) => ({ method: "sendToGroup", args: { group: room, message: text } });

// One event → the commands to run, in order.
function handle(event) {
  const session = event.session || {};
  let name = session.name || "guest-" + event.client_id.slice(-5);
  let room = session.room || "lobby";
  switch (event.event) {
    case "websocket_connect": {
      const query = (event.request && event.request.get) || {};
      name = query.name || name;
      room = query.room || room;
      return [
        reply("Hello " + event.client_id),
        { method: "bindUid", args: { uid: name } },
        { method: "joinGroup", args: { group: room } },
        { method: "setSession", args: { session: { name, room } } },
        toRoom(room, `* ${name} joined ${room}`),
      ];
    }
    case "close":
      return [toRoom(room, `* ${name} left ${room}`)];
    case "message":
      break;
    default:
      return [];
  }
  const text = (event.message || "").replace(/[\r\n]+$/, "");
  if (text.startsWith("/nick ")) {
    const next = text.slice(6).trim();
    return [
      { method: "bindUid", args: { uid: next } },
      { method: "updateSession", args: { session: { name: next } } },
      reply("You are now " + next),
    ];
  }
  if (text.startsWith("/join ")) {
    const next = text.slice(6).trim();
    return [
      { method: "leaveGroup", args: { group: room } },
      { method: "joinGroup", args: { group: next } },
      { method: "updateSession", args: { session: { room: next } } },
      reply("You joined " + next),
    ];
  }
  if (text.startsWith("/msg ")) {
    const rest = text.slice(5).trim();
    const space = rest.indexOf(" ");
    const to = space < 0 ? rest : rest.slice(0, space);
    const body = space < 0 ? "" : rest.slice(space + 1);
    return [
      { method: "sendToUid", args: { uid: to, message: `${name} whispers ${body}` } },
      reply(`You whisper to ${to}: ${body}`),
    ];
  }
  return [toRoom(room, `${name} said ${text}`)];
}

const port = Number(process.argv[2] || 9000);
http
  .createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const event = JSON.parse(Buffer.concat(chunks).toString() || "{}");
      const body = JSON.stringify({ commands: handle(event) });
      // A length, not chunks: the answer is known whole (gatewire reads either).
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    });
  })
  .listen(port, "127.0.0.1", () => console.log(`chat backend on http://127.0.0.1:${port}/events`));
