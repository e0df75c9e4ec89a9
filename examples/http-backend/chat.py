#!/usr/bin/env python3
"""The chat demo's logic as an HTTP backend for gatewire's event hook (`[worker] app = "http"`),
in Python's standard library only. Each event arrives as a JSON POST; the answer lists the
commands to run (docs/http-api.md, "Events to an HTTP backend").

    python3 chat.py [PORT]          # then: gatewire start --set worker.app=http \
                                    #   --set worker.http.url=http://127.0.0.1:PORT/events

Lines the clients see: "Hello <client_id>", "<name> said <text>" to the room, "/nick NAME",
"/join ROOM", "/msg NAME TEXT" (answered "You are now NAME", "You joined ROOM",
"You whisper to NAME: TEXT"), and "* NAME joined ROOM" / "* NAME left ROOM" to the room.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def reply(text):
    return {"method": "sendToCurrentClient", "args": {"message": text}}


def to_room(room, text):
    return {"method": "sendToGroup", "args": {"group": room, "message": text}}


def handle(event):
    """One event → the commands to run, in order."""
    session = event.get("session") or {}
    name = session.get("name") or "guest-" + event["client_id"][-5:]
    room = session.get("room") or "lobby"
    kind = event["event"]
    if kind == "websocket_connect":
        query = (event.get("request") or {}).get("get") or {}
        name = query.get("name") or name
        room = query.get("room") or room
        return [
            reply("Hello " + event["client_id"]),
            {"method": "bindUid", "args": {"uid": name}},
            {"method": "joinGroup", "args": {"group": room}},
            {"method": "setSession", "args": {"session": {"name": name, "room": room}}},
            to_room(room, "* %s joined %s" % (name, room)),
        ]
    if kind == "close":
        return [to_room(room, "* %s left %s" % (name, room))]
    if kind != "message":
        return []
    text = event.get("message", "").rstrip("\r\n")
    if text.startswith("/nick "):
        new = text[6:].strip()
        return [
            {"method": "bindUid", "args": {"uid": new}},
            {"method": "updateSession", "args": {"session": {"name": new}}},
            reply("You are now " + new),
        ]
    if text.startswith("/join "):
        new = text[6:].strip()
        return [
            {"method": "leaveGroup", "args": {"group": room}},
            {"method": "joinGroup", "args": {"group": new}},
            {"method": "updateSession", "args": {"session": {"room": new}}},
            reply("You joined " + new),
        ]
    if text.startswith("/msg "):
        to, _, body = text[5:].strip().partition(" ")
        return [
            {"method": "sendToUid", "args": {"uid": to, "message": "%s whispers %s" % (name, body)}},
            reply("You whisper to %s: %s" % (to, body)),
        ]
    return [to_room(room, "%s said %s" % (name, text))]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: gatewire pools its connections

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        event = json.loads(self.rfile.read(length) or b"{}")
        body = json.dumps({"commands": handle(event)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("chat backend on http://127.0.0.1:%d/events" % port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
