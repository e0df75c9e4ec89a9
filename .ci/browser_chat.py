#!/usr/bin/env python3
"""Browser test of the chat page: headless Chromium (driven through chromedriver's WebDriver API,
standard library only) opens http://127.0.0.1:PORT/ in two tabs served by a real `gatewire start`
(every role, chat app), both pick a nickname and room and exchange a message, and a screenshot is
saved. Usage: .ci/browser_chat.py GATEWIRE_BINARY OUTPUT_DIR"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} never opened")


class WebDriver:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None

    def call(self, method, path, body=None):
        url = self.base + (f"/session/{self.session}" if self.session else "") + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["value"]

    def start(self, user_data_dir):
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=900,700",
                f"--user-data-dir={user_data_dir}"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": shutil.which("chromium") or "/usr/bin/chromium",
                                   "args": args}}}}
        self.session = None
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def script(self, source, *args):
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def wait_for(self, what, source, *args, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.script(source, *args):
                return
            time.sleep(0.1)
        log = self.script("return document.getElementById('log').innerText")
        raise SystemExit(f"timed out waiting for {what}; page log:\n{log}")

    def enter(self, nick, room):
        self.script("document.getElementById('nick').value = arguments[0];"
                    "document.getElementById('room').value = arguments[1];"
                    "document.getElementById('enter').click();", nick, room)
        self.wait_for(f"{nick} to join {room}",
                      "return document.getElementById('log').innerText.includes('You joined ' + arguments[0])",
                      room)

    def say(self, text):
        self.script("document.getElementById('text').value = arguments[0];"
                    "document.getElementById('send').click();", text)

    def saw(self, line):
        self.wait_for(repr(line), "return document.getElementById('log').innerText.includes(arguments[0])", line)


def main():
    binary, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp()
    register, public, inner, driver_port = free_port(), free_port(), free_port(), free_port()
    config = os.path.join(work, "gatewire.toml")
    with open(config, "w") as f:
        f.write(f"""[run]
dir = "{os.path.join(work, 'run')}"
[register]
listen = "127.0.0.1:{register}"
[gateway]
listen = "websocket://127.0.0.1:{public}"
start_port = {inner}
shards = 1
register_address = "127.0.0.1:{register}"
[worker]
count = 1
register_address = "127.0.0.1:{register}"
app = "chat"
""")
    env = dict(os.environ, GATEWIRE_LOG="warn")
    procs = [subprocess.Popen([binary, "start", "-c", config], env=env)]
    try:
        wait_port(public)
        procs.append(subprocess.Popen(["chromedriver", f"--port={driver_port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(driver_port)
        time.sleep(1)  # let the worker link up so the first clients are served
        browser = WebDriver(driver_port)
        browser.start(os.path.join(work, "profile"))
        url = f"http://127.0.0.1:{public}/"
        browser.call("POST", "/url", {"url": url})
        browser.wait_for("tab 1 to connect", "return document.getElementById('status').textContent === 'connected'")
        first = browser.call("GET", "/window")
        browser.enter("ann", "lobby")

        second = browser.call("POST", "/window/new", {"type": "tab"})["handle"]
        browser.call("POST", "/window", {"handle": second})
        browser.call("POST", "/url", {"url": url})
        browser.wait_for("tab 2 to connect", "return document.getElementById('status').textContent === 'connected'")
        browser.enter("ben", "lobby")
        browser.say("hello from ben")
        browser.saw("ben said hello from ben")

        browser.call("POST", "/window", {"handle": first})
        browser.saw("ben said hello from ben")
        browser.say("hi ben")
        browser.saw("ann said hi ben")

        browser.call("POST", "/window", {"handle": second})
        browser.saw("ann said hi ben")
        png = base64.b64decode(browser.call("GET", "/screenshot"))
        path = os.path.join(out_dir, "chat.png")
        with open(path, "wb") as f:
            f.write(png)
        browser.call("DELETE", "")
        print(f"browser chat test: ok (two tabs exchanged messages; screenshot {path})")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
