#!/usr/bin/env python3
"""Echo as an HTTP backend for gatewire's event hook: every message goes back to its sender.
The smallest backend there is, for benches/hook_echo.sh. Standard library only.

    python3 echo.py [PORT]
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOTHING = b'{"commands":[]}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        event = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        if event["event"] == "message" and "message" in event:
            body = json.dumps({"commands": [
                {"method": "sendToCurrentClient", "args": {"message": event["message"]}}
            ]}).encode()
        else:
            body = NOTHING
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
