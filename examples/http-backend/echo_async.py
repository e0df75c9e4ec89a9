#!/usr/bin/env python3
"""Echo as an HTTP backend for gatewire's event hook, on asyncio: one event loop serves every
kept-alive connection the hook opens (no thread per connection), so it takes the events of a
connection storm that http.server's threads cannot. Standard library only; it speaks just the
HTTP/1.1 the hook sends (POST with a Content-Length, kept alive).

    python3 echo_async.py [PORT]
"""

import asyncio
import json
import sys

NOTHING = b'{"commands":[]}'
MAX_BODY = 16 << 20


def answer(event):
    if event.get("event") == "message" and "message" in event:
        return json.dumps({"commands": [
            {"method": "sendToCurrentClient", "args": {"message": event["message"]}}
        ]}).encode()
    return NOTHING


def respond(writer, status, body):
    writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                 % (status, b"OK" if status == 200 else b"Bad Request", len(body)) + body)


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length > MAX_BODY:
                respond(writer, 400, b'{"error":"body too large"}')
                break
            body = await reader.readexactly(length)
            try:
                respond(writer, 200, answer(json.loads(body)))
            except ValueError:
                respond(writer, 400, b'{"error":"not JSON"}')
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9000))
