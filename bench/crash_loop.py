#!/usr/bin/env python3
"""The seed's app under a request loop: every instance exits after each answer.

    python3 bench/crash_loop.py                  # builds supervise (release), ~1 minute
    python3 bench/crash_loop.py --seconds 30 --supervise target/release/supervise

Python 3 standard library only. The app is the one the product story starts from: a Node
HTTP server with a literal port, no LISTEN_FDS code, no signal handler, that calls
`process.exit(1)` after each answer. It runs as 3 instances of `node app.js` sharing one
`listen` address (the Node listen adapter makes `listen(PORT)` take the shared socket),
`max_restarts = 0` (never give up) and `min_uptime = "0s"` (a run is never "too short", so
it is not a crash loop: the restart is immediate, no backoff), while one client makes requests one after the
other, each on a new connection, each allowed 5 s. Then the same with
`listen_adapter = false`: what the app gets without the adapter.

Prints a Markdown table: requests answered, failed, restarts (from supervise's `started`
lines), and instances that could not listen (EADDRINUSE lines).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from common import REPO, machine, revision

APP = """const http = require('http');
http.createServer((req, res) => {
  res.end(`answered by ${process.pid}\\n`, () => process.exit(1));
}).listen(PORT, () => console.log('listening'));
"""

ECOSYSTEM = """[apps.web]
command = ["node", "app.js"]
instances = 3
listen = ["tcp://127.0.0.1:PORT"]
max_restarts = 0
min_uptime = "0s"
EXTRA
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.startswith(b"HTTP/1.1 200") and b"answered by" in data
    except OSError:
        return False


def run(binary: str, seconds: float, adapter: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="crash-loop-") as work:
        port = free_port()
        with open(os.path.join(work, "app.js"), "w") as f:
            f.write(APP.replace("PORT", str(port)))
        extra = "" if adapter else "listen_adapter = false"
        eco = os.path.join(work, "ecosystem.toml")
        with open(eco, "w") as f:
            f.write(ECOSYSTEM.replace("PORT", str(port)).replace("EXTRA", extra))
        out_path = os.path.join(work, "out")
        env = dict(os.environ, NO_COLOR="1", SUPERVISE_SOCKET=os.path.join(work, "s.sock"))
        with open(out_path, "w") as out:
            sup = subprocess.Popen([binary, eco], cwd=work, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                with open(out_path) as f:
                    if len(re.findall(r"^web\.\d+\s+\| listening", f.read(), re.M)) >= 1:
                        break
                time.sleep(0.05)
            answered = failed = 0
            began = time.monotonic()
            while time.monotonic() - began < seconds:
                if get(port, 5.0):
                    answered += 1
                else:
                    failed += 1
            elapsed = time.monotonic() - began
        finally:
            sup.send_signal(signal.SIGTERM)
            try:
                sup.wait(30)
            except subprocess.TimeoutExpired:
                sup.kill()
                sup.wait()
        with open(out_path) as f:
            text = f.read()
        starts = len(re.findall(r"^supervise \| web\.\d+ started \(pid", text, re.M))
        return {
            "answered": answered,
            "failed": failed,
            "seconds": elapsed,
            "restarts": max(0, starts - 3),
            "eaddrinuse": len(re.findall(r"EADDRINUSE", text)),
            "errored": len(re.findall(r"^supervise \| web\.\d+ .*errored", text, re.M)),
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20, help="seconds of requests per run")
    ap.add_argument("--supervise", help="the supervise binary (default: build the release one)")
    args = ap.parse_args()
    if args.supervise:
        binary = os.path.abspath(args.supervise)
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", "target")
        binary = os.path.join(REPO, target, "release", "supervise")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    rows = [("adapter (default)", run(binary, args.seconds, True)),
            ("`listen_adapter = false`", run(binary, args.seconds, False))]
    print(f"`python3 bench/crash_loop.py --seconds {args.seconds:g}`, commit {revision()}; "
          f"{machine()}; Node {node}.\n")
    print("| 3 instances of the seed's app | requests answered | failed | restarts "
          "| EADDRINUSE lines | instances errored |")
    print("|---|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['answered']} in {r['seconds']:.0f} s | {r['failed']} "
              f"| {r['restarts']} | {r['eaddrinuse']} | {r['errored']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
