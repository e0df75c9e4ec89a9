#!/usr/bin/env python3
"""docs/worker.md's first example, built as a user builds it: its Cargo.toml and src/main.rs
are taken from the page's first ```toml and ```rust blocks into a crate of their own outside
the repository (the path dependency pointed at this clone's engine/, the repository's
Cargo.lock copied in), built with cargo, started with `start --single-process` on free loopback
ports, and spoken to over a real WebSocket: the greeting arrives, and a message comes back
shouted. Usage: .ci/worker_example.py [TARGET_DIR]"""

import base64
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blocks(text, language):
    return re.findall(r"```" + language + r"\n(.*?)```", text, re.S)


def free_port():
    """A port free now, below the ephemeral range (32768 up), where no connection's port can
    take it before the gateway listens."""
    for _ in range(5000):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port below 32000")


def read_frame(sock):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise SystemExit("the server closed the connection")
            data += chunk
        return data
    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(exactly(8), "big")
    return first & 0x0F, exactly(length)


def send_text(sock, text):
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)


def websocket(port, timeout=20):
    deadline = time.time() + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(1)
                if not chunk:
                    break
                head += chunk
            if head.startswith(b"HTTP/1.1 101"):
                return sock
            sock.close()
        except OSError:
            pass
        if time.time() > deadline:
            raise SystemExit(f"no WebSocket served on port {port}")
        time.sleep(0.2)


def main():
    target = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
    page = open(os.path.join(ROOT, "docs", "worker.md")).read()
    manifest, source = blocks(page, "toml")[0], blocks(page, "rust")[0]
    work = tempfile.mkdtemp()
    try:
        crate = os.path.join(work, "app")
        os.makedirs(os.path.join(crate, "src"))
        engine = os.path.join(ROOT, "engine")
        manifest = re.sub(r'path = "[^"]*"', f'path = "{engine}"', manifest)
        if manifest == blocks(page, "toml")[0]:
            raise SystemExit("docs/worker.md's first toml block has no path dependency")
        with open(os.path.join(crate, "Cargo.toml"), "w") as f:
            f.write(manifest)
        with open(os.path.join(crate, "src", "main.rs"), "w") as f:
            f.write(source)
        shutil.copy(os.path.join(ROOT, "Cargo.lock"), crate)
        env = dict(os.environ)
        if target:
            env["CARGO_TARGET_DIR"] = target
        subprocess.run(["cargo", "build", "--quiet"], cwd=crate, env=env, check=True)
        name = re.search(r'name = "([^"]+)"', manifest).group(1)
        binary = os.path.join(target or os.path.join(crate, "target"), "debug", name)

        register, public, inner = free_port(), free_port(), free_port()
        config = os.path.join(work, "app.toml")
        with open(config, "w") as f:
            f.write(f"""[register]
listen = "127.0.0.1:{register}"
[gateway]
listen = "websocket://127.0.0.1:{public}"
start_port = {inner}
shards = 1
register_address = "127.0.0.1:{register}"
[worker]
count = 1
register_address = "127.0.0.1:{register}"
""")
        server = subprocess.Popen([binary, "start", "--single-process", "-c", config],
                                  env=dict(env, GATEWIRE_LOG="warn"))
        try:
            sock = websocket(public)
            sock.settimeout(10)
            opcode, greeting = read_frame(sock)
            if greeting != b"welcome":
                raise SystemExit(f"expected the greeting, got {greeting!r}")
            send_text(sock, "hello there")
            opcode, shouted = read_frame(sock)
            if shouted != b"HELLO THERE":
                raise SystemExit(f"expected the message shouted back, got {shouted!r}")
            sock.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
        print("worker example: ok (docs/worker.md's app built as its own crate, greeted and "
              "shouted back over a WebSocket)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
