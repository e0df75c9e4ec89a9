#!/usr/bin/env python3
"""Browser test of the chat page: two headless Chromium browsers (each its own profile, driven
through chromedriver's WebDriver API, standard library only) open http://127.0.0.1:PORT/ served
by a real `gatewire start` (every role, chat app). Two users pick names, see each other in the
room's user list, talk, whisper, switch rooms; a reload keeps the name and room; after
`gatewire restart --role gateway` both pages show "reconnecting…", come back with their name and
room, and talk again. Screenshots of both pages are saved at each step.
Usage: .ci/browser_chat.py GATEWIRE_BINARY OUTPUT_DIR"""

import base64
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_ports(n=1):
    """The first of `n` consecutive ports free now, below the ephemeral range (32768 up): a
    gateway's shards listen on start_port, start_port + 1, ..., and a port the kernel handed out
    for a connection (the browser's, the last run's) refuses a listener."""
    for _ in range(5000):
        start = random.randrange(20000, 32000 - n)
        held = []
        try:
            for port in range(start, start + n):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise SystemExit(f"no {n} consecutive free ports below 32000")


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} never opened")


class Browser:
    """One Chromium with a profile of its own (its own localStorage: a user of their own)."""

    def __init__(self, driver_port, name, profile):
        self.base = f"http://127.0.0.1:{driver_port}"
        self.name = name
        self.session = None
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=900,600",
                f"--user-data-dir={profile}"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": shutil.which("chromium") or "/usr/bin/chromium",
                                   "args": args}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        url = self.base + (f"/session/{self.session}" if self.session else "") + path
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["value"]

    def script(self, source, *args):
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def text(self, element):
        return self.script("return document.getElementById(arguments[0]).innerText", element)

    def wait_for(self, what, source, *args, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.script(source, *args):
                return
            time.sleep(0.1)
        raise SystemExit(f"{self.name}: timed out waiting for {what}; status "
                         f"{self.text('status')!r}; users {self.text('users')!r}; page log:\n"
                         f"{self.text('log')}")

    def open(self, url):
        self.call("POST", "/url", {"url": url})
        self.connected()

    def connected(self):
        self.wait_for("the page to connect",
                      "return document.getElementById('status').textContent === 'connected'")

    def enter(self, nick, room):
        self.script("document.getElementById('nick').value = arguments[0];"
                    "document.getElementById('room').value = arguments[1];"
                    "document.getElementById('enter').click();", nick, room)

    def say(self, text):
        self.script("document.getElementById('text').value = arguments[0];"
                    "document.getElementById('send').click();", text)

    def saw(self, line, times=1):
        self.wait_for(f"{line!r} (x{times})",
                      "const n = document.getElementById('log').innerText.split(arguments[0]).length - 1;"
                      "return n >= arguments[1]", line, times)

    def users_are(self, room, names):
        self.wait_for(f"the user list of {room} to be {names}",
                      "return document.getElementById('room-name').textContent === arguments[0] &&"
                      " [...document.querySelectorAll('#users li')].map(li => li.textContent)"
                      ".join(',') === arguments[1]", room, ",".join(sorted(names)))

    def screenshot(self, out_dir, step):
        path = os.path.join(out_dir, f"{step}-{self.name}.png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("GET", "/screenshot")))
        return path

    def close(self):
        try:
            self.call("DELETE", "")
        except OSError:
            pass


def main():
    binary, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp()
    register, public, inner, driver_port = free_ports(), free_ports(), free_ports(2), free_ports()
    config = os.path.join(work, "gatewire.toml")
    with open(config, "w") as f:
        f.write(f"""[run]
dir = "{os.path.join(work, 'run')}"
[register]
listen = "127.0.0.1:{register}"
[gateway]
listen = "websocket://127.0.0.1:{public}"
start_port = {inner}
shards = 2
register_address = "127.0.0.1:{register}"
[worker]
count = 1
register_address = "127.0.0.1:{register}"
app = "chat"
""")
    env = dict(os.environ, GATEWIRE_LOG="warn")
    procs = [subprocess.Popen([binary, "start", "-c", config], env=env)]
    browsers = []
    shots = []
    try:
        wait_port(public)
        procs.append(subprocess.Popen(["chromedriver", f"--port={driver_port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(driver_port)
        time.sleep(1)  # let the worker link up so the first clients are served
        url = f"http://127.0.0.1:{public}/"
        ann = Browser(driver_port, "ann", os.path.join(work, "profile-ann"))
        browsers.append(ann)
        ann.open(url)
        ann.enter("ann", "lobby")
        ann.saw("You are now ann")
        ann.users_are("lobby", ["ann"])

        ben = Browser(driver_port, "ben", os.path.join(work, "profile-ben"))
        browsers.append(ben)
        ben.open(url)
        ben.enter("ben", "lobby")
        ben.saw("You are now ben")
        ben.users_are("lobby", ["ann", "ben"])
        ann.saw("is now ben")
        ann.users_are("lobby", ["ann", "ben"])

        # Two users talk and whisper.
        ben.say("hello from ben")
        ann.saw("ben said hello from ben")
        ann.say("/msg ben psst")
        ben.saw("ann whispers psst")
        ann.saw("You whisper to ben: psst")
        ann.say("/msg nobody hi")
        ann.saw("error: no one called nobody is here")

        # A room switch: the lobby sees ben leave; dev has its own list.
        ben.enter("ben", "dev")
        ben.saw("You joined dev")
        ben.users_are("dev", ["ben"])
        ann.saw("* ben left lobby")
        ann.users_are("lobby", ["ann"])
        ann.enter("ann", "dev")
        ben.saw("* ann joined dev")
        ann.users_are("dev", ["ann", "ben"])
        ben.users_are("dev", ["ann", "ben"])
        ann.say("hi ben, dev is quieter")
        ben.saw("ann said hi ben, dev is quieter")
        shots += [ann.screenshot(out_dir, "1-chatting"), ben.screenshot(out_dir, "1-chatting")]

        # A reload keeps the name and the room.
        ann.call("POST", "/refresh", {})
        ann.connected()
        ann.saw("You are ann in dev.")
        ann.users_are("dev", ["ann", "ben"])
        ben.saw("* ann joined dev", times=2)

        # The gateway restarts: both pages say so, reconnect, and come back where they were.
        for b in (ann, ben):
            b.script("window.sawReconnecting = false;"
                     "new MutationObserver(() => { if (document.getElementById('status').textContent"
                     " === 'reconnecting…') window.sawReconnecting = true; })"
                     ".observe(document.getElementById('status'), {childList: true, subtree: true,"
                     " characterData: true});")
        restart = subprocess.run([binary, "restart", "--role", "gateway", "-c", config],
                                 env=env, capture_output=True, text=True, timeout=60)
        if restart.returncode != 0:
            raise SystemExit(f"restart --role gateway failed: {restart.stdout}{restart.stderr}")
        for b, seen in ((ann, 2), (ben, 1)):
            b.wait_for("the page to show reconnecting…", "return window.sawReconnecting")
            b.connected()
            b.saw(f"You are {b.name} in dev.", times=seen)
            b.users_are("dev", ["ann", "ben"])
        ben.say("still here")
        ann.saw("ben said still here")

        # A listing can be older than a join the page already saw (it is a snapshot taken on
        # every gateway while members come and go): the page must not let it undo that join.
        # Played into ben's page in the order that race delivers it; the page asks again and
        # the server's fresh listing is what the list ends as.
        fresh = "* in dev: ann, ben"
        before = ben.script("return document.getElementById('log').innerText"
                            ".split(arguments[0]).length - 1", fresh)
        ben.script('receive("You are ben in dev."); receive("* zed joined dev");'
                   ' receive("* in dev: ben");')
        ben.saw(fresh, times=before + 1)
        ben.users_are("dev", ["ann", "ben"])
        shots += [ann.screenshot(out_dir, "2-after-restart"),
                  ben.screenshot(out_dir, "2-after-restart")]
        print("browser chat test: ok (two users, user lists, whisper, room switch, reload, "
              "reconnect after restart --role gateway); screenshots:\n  " + "\n  ".join(shots))
    finally:
        for b in browsers:
            b.close()
        for p in procs:
            # SIGTERM: the supervisor stops its children before it ends (SIGKILL left them
            # holding their ports into the next run for a moment).
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
