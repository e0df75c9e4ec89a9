// Echo as an HTTP backend for gatewire's event hook: every message goes back to its sender.
// The smallest backend there is, for benches/hook_echo.sh. Standard library only.
//
//   node echo.js [PORT]
"use strict";
const http = require("http");

const nothing = '{"commands":[]}';
http
  .createServer({ keepAliveTimeout: 60000 }, (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const event = JSON.parse(Buffer.concat(chunks).toString());
      const body =
        event.event === "message" && "message" in event
          ? JSON.stringify({ commands: [{ method: "sendToCurrentClient", args: { message: event.message } }] })
          : nothing;
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    });
  })
  .listen(Number(process.argv[2] || 9000), "127.0.0.1");
