// Every text message any client sends goes to every client (the ws package's broadcast as its
// README shows it). Usage: node server.js HOST:PORT
const { WebSocketServer, WebSocket } = require('ws');

const [host, port] = (process.argv[2] || '127.0.0.1:9002').split(':');
const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    }
  });
});
console.error(`node-ws-broadcast listening on ${host}:${port}`);
