#!/usr/bin/env python3
"""Zero-downtime reload under load: supervise's cluster mode against PM2's, same Node app.

    python3 bench/zero_downtime.py                 # builds supervise, then about 1.5 minutes
    python3 bench/zero_downtime.py --load python   # built-in load generator instead of wrk

Python 3.11 standard library only. Three runs of the same bounded load on 127.0.0.1
(default: wrk, 2 threads, 32 keep-alive connections, 15 s):

  baseline   one `node server.js` process, no reload (the throughput of one process);
  supervise  config-examples/cluster-node (4 instances sharing a `listen` socket), and during
             the load 3 rolling updates, each a new VERSION in the file's `env`;
  pm2        the same app under PM2 in cluster mode (`pm2 start -i 4`), and during the load
             3 `pm2 reload --update-env`, each with a new VERSION.

It prints a Markdown table (requests, req/s, failed requests) and writes it to
bench/zero_downtime.md. wrk comes from Debian (installed with apt-get when missing and run as
root); PM2 from npm into bench/pm2/node_modules (`npm ci` when missing). Everything it starts
is stopped at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from common import BenchError, machine, reap, revision  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "config-examples", "cluster-node")
PM2_DIR = os.path.join(REPO, "bench", "pm2")
INSTANCES = 4


def log(msg: str) -> None:
    print(f"zero_downtime: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- processes


def become_subreaper() -> None:
    """Orphans of what we start (the PM2 daemon) are reparented to us: cleanup finds them."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def parents() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{d}/stat") as f:
                    data = f.read()
                out[int(d)] = int(data[data.rindex(")") + 2:].split()[1])
    return out


def descendants(pid: int) -> list[int]:
    par = parents()
    found: list[int] = []
    frontier = {pid}
    while frontier:
        nxt = {p for p, pp in par.items() if pp in frontier and p not in found}
        found.extend(nxt)
        frontier = nxt
    return found


def kill_pids(pids: list[int], sig: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


class Procs:
    """Everything the benchmark starts; stopped (with the whole tree) by stop_all()."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, grace: float = 10.0) -> None:
        """SIGTERM, wait up to `grace`, then SIGKILL whatever is left of its tree."""
        tree = descendants(p.pid) if p.poll() is None else []
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=grace)
        if p.poll() is None:
            tree += descendants(p.pid)
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
        kill_pids(tree, signal.SIGKILL)
        reap()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(p)
        left = descendants(os.getpid())
        if left:
            kill_pids(left, signal.SIGTERM)
            time.sleep(0.5)
            kill_pids(descendants(os.getpid()), signal.SIGKILL)
        reap()


def wait_until(cond, timeout: float, what: str, check=None):
    """Poll cond() until truthy; check() may raise to fail early (a process died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if check:
            check()
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def tail(path: str, n: int = 20) -> str:
    with contextlib.suppress(OSError):
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()[-n:]
        return "\n" + "\n".join("    " + line for line in lines)
    return ""


# ----------------------------------------------------------------------------- HTTP


def http_get(port: int, timeout: float = 2.0) -> str | None:
    """Body of GET / on 127.0.0.1:port, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
        return None
    return body.decode(errors="replace")


def versions_served(port: int, n: int = 40) -> set[str]:
    out = set()
    for _ in range(n):
        body = http_get(port)
        m = re.search(r"version (\S+)", body or "")
        out.add(m.group(1) if m else "(no answer)")
    return out


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


# ----------------------------------------------------------------------------- load


MAX_LOAD_SECONDS = 600  # the generator's own bound; finish() ends it sooner


class Load:
    """A load started in the background; finish(t) ends it once it has run t seconds
    (SIGINT to wrk, SIGTERM to the Python workers: both then report) and returns the counts."""

    def __init__(self, procs: Procs, kind: str, port: int, threads: int, connections: int,
                 work: str, name: str):
        self.kind = kind
        self.out = os.path.join(work, f"load-{name}.out")
        url = f"http://127.0.0.1:{port}/"
        duration = MAX_LOAD_SECONDS
        self.started = time.monotonic()
        if kind == "wrk":
            argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s",
                    "--timeout", "2s", "--latency", url]
            self.procs = [procs.popen(argv, stdout=open(self.out, "w"),
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)]
        else:
            per = [connections // threads + (1 if i < connections % threads else 0)
                   for i in range(threads)]
            self.procs = [
                procs.popen([sys.executable, os.path.abspath(__file__), "--load-worker",
                             str(port), str(duration), str(c)],
                            stdout=open(f"{self.out}.{i}", "w"), stdin=subprocess.DEVNULL)
                for i, c in enumerate(per)
            ]

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def abort(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def finish(self, seconds: float) -> dict:
        while (left := seconds - self.elapsed()) > 0:
            for p in self.procs:
                if p.poll() is not None:
                    raise BenchError(f"the load generator exited early (code {p.returncode})"
                                     + tail(self.out if self.kind == "wrk" else self.out + ".0"))
            time.sleep(min(left, 0.1))
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGINT if self.kind == "wrk" else signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise BenchError("the load generator did not stop")
        if self.kind == "wrk":
            with open(self.out) as f:
                return parse_wrk(f.read())
        parts = []
        for i in range(len(self.procs)):
            with open(f"{self.out}.{i}") as f:
                parts.append(json.load(f))
        total = {k: sum(p[k] for p in parts)
                 for k in ("requests", "connect", "read", "write", "timeout", "status")}
        lat = sorted(x for p in parts for x in p["latencies_ms"])
        seconds = max(p["seconds"] for p in parts)
        total["seconds"] = seconds
        total["rps"] = total["requests"] / seconds if seconds else 0.0
        total["p99_ms"] = lat[max(0, int(len(lat) * 0.99) - 1)] if lat else None
        total["max_ms"] = lat[-1] if lat else None
        total["details"] = {}
        for p in parts:
            for k, v in p["details"].items():
                total["details"][k] = total["details"].get(k, 0) + v
        return total


def ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(text: str) -> dict:
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    if not m:
        raise BenchError("could not read wrk's output:\n" + text)
    out = {"requests": int(m.group(1)), "seconds": ms(m.group(2), m.group(3)) / 1000,
           "connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else out["requests"] / out["seconds"]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["connect"], out["read"], out["write"], out["timeout"] = map(int, m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["status"] = int(m.group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    out["p99_ms"] = ms(*m.groups()) if m else None
    m = re.search(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)", text, re.M)
    out["max_ms"] = ms(*m.groups()) if m else None
    return out


def load_worker(port: int, duration: float, connections: int) -> None:
    """The built-in load: `connections` threads, each a loop of one request per connection
    (no keep-alive), until SIGTERM or `duration`; prints the counts as JSON. Run as a process
    of its own (the GIL)."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    stop_at = time.monotonic() + duration
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()
    total = {"requests": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    latencies: list[float] = []
    details: dict[str, int] = {}

    def one() -> tuple[str | None, float]:
        t0 = time.monotonic()
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
        except socket.timeout:
            return "timeout connecting", 0
        except OSError:
            return "connect", 0
        with s:
            try:
                s.sendall(request)
            except socket.timeout:
                return "timeout", 0
            except OSError:
                return "write", 0
            data = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    return ("timeout waiting for the answer" if not data
                            else "timeout in the answer"), 0
                except OSError:
                    return "read", 0
                if not chunk:
                    break
                data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if not sep or not m or (length and len(body) < int(length.group(1))):
            return "read", 0  # closed before a whole response
        latency = (time.monotonic() - t0) * 1000
        return (None if 200 <= int(m.group(1)) < 400 else "status"), latency

    def client() -> None:
        mine = dict.fromkeys(total, 0)
        detail: dict[str, int] = {}
        lat = []
        while not stop.is_set() and time.monotonic() < stop_at:
            err, latency = one()
            if err in (None, "status"):
                mine["requests"] += 1  # as wrk: a non-2xx/3xx answer is a request served
                lat.append(latency)
            if err and err.startswith("timeout"):
                detail[err] = detail.get(err, 0) + 1
                err = "timeout"
            if err:
                mine[err] += 1
        with lock:
            for k, v in mine.items():
                total[k] += v
            for k, v in detail.items():
                details[k] = details.get(k, 0) + v
            latencies.extend(lat)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total["seconds"] = time.monotonic() - t0
    total["latencies_ms"] = latencies
    total["details"] = details
    json.dump(total, sys.stdout)


# ----------------------------------------------------------------------------- scenarios

# --app: the example's server.js as is, or changed in one place to show what the way an app
# stops does to the count (the change is applied to a copy; both supervisors run the copy).
VARIANTS = {
    "graceful": [],
    # http.Server.close(): since Node 19 it also closes idle keep-alive connections at once.
    "close": [("net.Server.prototype.close.call(server, () => {", "server.close(() => {")],
    # Stay a second after the last connection closed, before exiting.
    "linger": [("    process.exit(0);\n", "    setTimeout(() => process.exit(0), 1000);\n")],
    # Written for PM2: listen(PORT) itself, no LISTEN_FDS code, no signal handler (below).
    "unchanged": [],
}

# The app as a PM2 user writes it: supervise's Node listen adapter gives listen(PORT) the
# shared socket and drains it on SIGTERM; PM2's cluster module shares the port and, on
# reload, sends SIGINT, which kills it at once (no handler).
UNCHANGED = """'use strict';
const http = require('http');
const version = process.env.VERSION || '1';
const instance = process.env.SUPERVISE_INSTANCE || process.env.NODE_APP_INSTANCE || '-';
const port = Number(process.env.PORT || 3000);
http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end(`hello from instance ${instance} (pid ${process.pid}), version ${version}\\n`);
}).listen(port, () => console.log(`listening on port ${port}, version ${version}`));
"""


def copy_app(work: str, name: str, variant: str) -> str:
    """A copy of the cluster-node example with the --app variant applied; its folder."""
    dst = os.path.join(work, name)
    shutil.copytree(EXAMPLE, dst)
    path = os.path.join(dst, "server.js")
    with open(path) as f:
        text = f.read()
    if variant == "unchanged":
        text = UNCHANGED
    for old, new in VARIANTS[variant]:
        if text.count(old) != 1:
            raise BenchError(f"--app {variant}: server.js has changed, {old.strip()!r} "
                             "is not in it once")
        text = text.replace(old, new)
    with open(path, "w") as f:
        f.write(text)
    return dst


def node_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LISTEN_", "NOTIFY_SOCKET", "SUPERVISE_", "PM2_", "NODE_APP"))}
    env.update(NO_COLOR="1", **extra)
    return env


def run_baseline(procs: Procs, args, work: str, binary: str) -> dict:
    app = copy_app(work, "baseline", args.app)
    out = os.path.join(work, "baseline.out")
    node = procs.popen(["node", "server.js"], cwd=app, stdin=subprocess.DEVNULL,
                       stdout=open(out, "w"), stderr=subprocess.STDOUT,
                       env=node_env(PORT=str(args.port), VERSION="1"))

    def check():
        if node.poll() is not None:
            raise BenchError(f"node exited (code {node.returncode})" + tail(out))

    wait_until(lambda: http_get(args.port), 15, "the node process to answer", check)
    load = Load(procs, args.load, args.port, args.threads, args.connections, work, "baseline")
    try:
        res = load.finish(args.duration)
    except BaseException:
        load.abort()
        raise
    procs.stop(node)
    return res


STOPPING = re.compile(r"^supervise \| web\.\d+ \(old instance, pid (\d+)\) stopping", re.M)
EXITED = re.compile(r"^supervise \| web\.\d+ \(old instance, pid (\d+)\) "
                    r"(?:exited with|killed by) (.*)$", re.M)
RELOADED = re.compile(r"^supervise \| reloaded .*rolling update", re.M)
LISTENING = re.compile(r"^web\.\d+\s+\| listening on (?:fd 3|port \d+)", re.M)
WORRYING = re.compile(r"(?i)error|fail|timed out|not ready|SIGKILL|killed|refus|crash")


def set_version(eco: str, version: int) -> None:
    """Edit VERSION in the file's env and save it atomically, as editors do."""
    with open(eco) as f:
        text = f.read()
    new, n = re.subn(r'VERSION = "[^"]*"', f'VERSION = "{version}"', text)
    if n != 1:
        raise BenchError(f"no VERSION = \"...\" in {eco}")
    tmp = eco + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, eco)


def run_supervise(procs: Procs, args, work: str, binary: str) -> dict:
    app = copy_app(work, "cluster-node", args.app)
    eco = os.path.join(app, "ecosystem.toml")
    with open(eco) as f:
        text = f.read()
    text = text.replace("tcp://0.0.0.0:3000", f"tcp://0.0.0.0:{args.port}")
    text, n = re.subn(r"(?m)^instances = \d+", f"instances = {INSTANCES}", text)
    if n != 1:
        raise BenchError(f"no `instances = N` line in {eco}")
    with open(eco, "w") as f:
        f.write(text)
    out = os.path.join(work, "supervise.out")
    sup = procs.popen([binary, eco], cwd=app, stdin=subprocess.DEVNULL,
                      stdout=open(out, "w"), stderr=subprocess.STDOUT,
                      env=node_env(SUPERVISE_SOCKET=os.path.join(work, "supervise.sock"),
                                   PORT=str(args.port)))

    def text_now() -> str:
        with open(out, errors="replace") as f:
            return f.read()

    def check():
        if sup.poll() is not None:
            raise BenchError(f"supervise exited (code {sup.returncode})" + tail(out))

    wait_until(lambda: len(LISTENING.findall(text_now())) >= INSTANCES and http_get(args.port),
               20, f"{INSTANCES} instances listening", check)
    time.sleep(1)  # past the 500 ms readiness delay of the first instances
    load = Load(procs, args.load, args.port, args.threads, args.connections, work, "supervise")
    reloads = []
    try:
        time.sleep(args.warmup)
        for i in range(args.reloads):
            before = len(STOPPING.findall(text_now()))
            t0 = load.elapsed()
            set_version(eco, i + 2)
            wait_until(lambda: len(STOPPING.findall(text_now())) >= before + INSTANCES,
                       60, f"reload {i + 1}: {INSTANCES} old instances stopping", check)
            reloads.append((t0, load.elapsed()))
            log(f"supervise: reload {i + 1} done in {reloads[-1][1] - t0:.1f} s")
            time.sleep(args.gap)
        res = load.finish(max(args.duration, load.elapsed() + args.tail))
    except BaseException:
        load.abort()
        raise
    # Every old instance should have exited by itself after SIGTERM.
    expected = args.reloads * INSTANCES
    with contextlib.suppress(BenchError):
        wait_until(lambda: len(EXITED.findall(text_now())) >= expected, 15,
                   "the old instances to exit", check)
    res["versions_after"] = versions_served(args.port)
    final = text_now()
    res["reloads"] = reloads
    res["reloaded_lines"] = len(RELOADED.findall(final))
    exits = EXITED.findall(final)
    res["old_exits"] = exits
    # The unchanged app has no handler: drained by the adapter, it dies of SIGTERM.
    expected_end = re.compile(r"\(old instance, pid \d+\) killed by signal SIGTERM after")
    res["worrying"] = [line for line in final.splitlines()
                       if line.startswith("supervise |") and WORRYING.search(line)
                       and not (args.app == "unchanged" and expected_end.search(line))]
    procs.stop(sup)
    return res


def pm2_bin() -> str:
    return os.path.join(PM2_DIR, "node_modules", ".bin", "pm2")


def ensure_pm2() -> str:
    if not os.access(pm2_bin(), os.X_OK):
        if not shutil.which("npm"):
            raise BenchError("npm not found: cannot install PM2 into bench/pm2")
        cmd = ["npm", "ci" if os.path.exists(os.path.join(PM2_DIR, "package-lock.json"))
               else "install", "--no-audit", "--no-fund"]
        log(f"installing PM2: {' '.join(cmd)} (in bench/pm2)")
        if subprocess.run(cmd, cwd=PM2_DIR, stdout=sys.stderr).returncode != 0:
            raise BenchError("npm could not install PM2")
    return pm2_bin()


def run_pm2(procs: Procs, args, work: str, binary: str) -> dict:
    pm2 = ensure_pm2()
    home = os.path.join(work, "pm2-home")
    os.makedirs(home)
    out = os.path.join(work, "pm2-cli.out")
    app = os.path.join(copy_app(work, "cluster-node", args.app), "server.js")

    def cli(*argv: str, timeout: float = 60, **extra: str) -> str:
        env = node_env(PM2_HOME=home, PORT=str(args.port), BENCH_APP=app, **extra)
        with open(out, "a") as f:
            f.write(f"$ pm2 {' '.join(argv)}\n")
        p = subprocess.run([pm2, *argv], cwd=PM2_DIR, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        with open(out, "a") as f:
            f.write(p.stdout + p.stderr)
        if p.returncode != 0:
            raise BenchError(f"pm2 {' '.join(argv)} failed (code {p.returncode})" + tail(out))
        return p.stdout

    def online() -> int:
        text = cli("jlist")
        data = json.loads(text[text.index("["):])
        return sum(1 for a in data if a.get("pm2_env", {}).get("status") == "online")

    version = cli("--version").strip().splitlines()[-1]
    try:
        cli("start", "server-pm2.js", "-i", str(INSTANCES), "--name", "web", VERSION="1")
        wait_until(lambda: online() == INSTANCES and http_get(args.port), 30,
                   f"{INSTANCES} PM2 workers online")
        time.sleep(1)
        load = Load(procs, args.load, args.port, args.threads, args.connections, work, "pm2")
        reloads = []
        try:
            time.sleep(args.warmup)
            for i in range(args.reloads):
                t0 = load.elapsed()
                cli("reload", "web", "--update-env", VERSION=str(i + 2))
                reloads.append((t0, load.elapsed()))
                log(f"pm2: reload {i + 1} done in {reloads[-1][1] - t0:.1f} s")
                time.sleep(args.gap)
            res = load.finish(max(args.duration, load.elapsed() + args.tail))
        except BaseException:
            load.abort()
            raise
        res["versions_after"] = versions_served(args.port)
        res["reloads"] = reloads
        res["pm2_version"] = version
    finally:
        with contextlib.suppress(Exception):
            cli("kill", timeout=30)
    return res


# ----------------------------------------------------------------------------- report


def tool_version(argv: list[str]) -> str:
    with contextlib.suppress(Exception):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    return "?"


def failed(r: dict) -> int:
    return r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]


def fmt_ms(x: float | None) -> str:
    return "?" if x is None else (f"{x:.1f} ms" if x < 1000 else f"{x / 1000:.2f} s")


def fmt_reloads(r: dict) -> str:
    return ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in r.get("reloads", [])) or "—"


def median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def load_label(args, load: str) -> str:
    if load == "wrk":
        return (f"{tool_version(['wrk', '--version']).split(' [')[0]}, {args.threads} "
                f"threads, {args.connections} keep-alive connections")
    return (f"built-in Python client, {args.threads} processes, {args.connections} threads, "
            "a new connection per request")


def report_load(args, load: str, res: dict) -> list[str]:
    """The side-by-side table and the notes for one load generator."""
    keys = [k for k in ("baseline", "supervise", "pm2") if res.get(k)]
    pm2v = res["pm2"][0].get("pm2_version", "") if res.get("pm2") else ""
    heads = {
        "baseline": "baseline: one `node server.js`, no reload",
        "supervise": f"supervise: {INSTANCES} instances, `listen`, {args.reloads} rolling "
                     "updates",
        "pm2": f"PM2 {pm2v}: `-i {INSTANCES}` cluster, {args.reloads} × `pm2 reload`",
    }
    rounds = f", {args.rounds} rounds" if args.rounds > 1 else ""
    lines = [
        f"### Load: {load_label(args, load)}, {args.duration:g} s or until {args.tail:g} s "
        f"after the last reload{rounds}",
        "",
        "| | " + " | ".join(heads[k] for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]

    def row(label: str, fn) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(res[k]) for k in keys) + " |")

    tot = "" if args.rounds == 1 else " (all rounds)"
    row("requests served" + tot, lambda rs: str(sum(r["requests"] for r in rs)))
    row("seconds of load" + tot, lambda rs: f"{sum(r['seconds'] for r in rs):.1f}")
    row("req/s" + ("" if args.rounds == 1 else " (median of rounds)"),
        lambda rs: f"{median([r['rps'] for r in rs]):.0f}")
    row("**failed requests**" + tot, lambda rs: f"**{sum(failed(r) for r in rs)}**")
    row("socket errors: connect / read / write / timeout",
        lambda rs: " / ".join(str(sum(r[k] for r in rs))
                              for k in ("connect", "read", "write", "timeout")))
    row("answers not 2xx/3xx", lambda rs: str(sum(r["status"] for r in rs)))
    row("latency p99 / max" + ("" if args.rounds == 1 else " (worst round)"),
        lambda rs: f"{fmt_ms(max((r['p99_ms'] or 0) for r in rs))} / "
                   f"{fmt_ms(max((r['max_ms'] or 0) for r in rs))}")
    row("reloads, from the start of the load" + ("" if args.rounds == 1 else " (round 1)"),
        lambda rs: fmt_reloads(rs[0]))
    lines.append("")
    notes = []
    if args.rounds > 1:
        for k in keys:
            notes.append(f"{heads[k].split(':')[0]}, each round: " + "; ".join(
                f"{r['requests']} requests, {r['rps']:.0f} req/s, {failed(r)} failed"
                for r in res[k]))
    for k in keys:
        details: dict[str, int] = {}
        for r in res[k]:
            for d, n in r.get("details", {}).items():
                details[d] = details.get(d, 0) + n
        if details:
            notes.append(f"{heads[k].split(':')[0]} timeouts: " + ", ".join(
                f"{n} {d}" for d, n in sorted(details.items())))
    final = str(args.reloads + 1)
    for k in ("supervise", "pm2"):
        for i, r in enumerate(res.get(k, [])):
            versions = r["versions_after"]
            if versions != {final}:
                notes.append(f"**{k}, round {i + 1}: after the load, versions answering: "
                             f"{', '.join(sorted(versions))}; expected only {final}.**")
            if k == "supervise":
                codes = [c for _, c in r["old_exits"]]
                # The unchanged app has no handler: drained by the adapter, it dies of SIGTERM.
                clean = "signal SIGTERM" if args.app == "unchanged" else "code 0"
                unclean = [c for c in codes if not c.startswith(clean)]
                if r["reloaded_lines"] != args.reloads or len(codes) != args.reloads * INSTANCES \
                        or unclean:
                    notes.append(f"**supervise, round {i + 1}: {r['reloaded_lines']} reloads "
                                 f"logged, {len(codes)} old instances exited, not cleanly: "
                                 f"{', '.join(unclean) or 'none'}.**")
                if r["worrying"]:
                    notes.append(f"supervise, round {i + 1}, printed: " +
                                 "; ".join(f"`{w}`" for w in r["worrying"][:8]))
    if res.get("baseline") and res.get("supervise"):
        b = median([r["rps"] for r in res["baseline"]])
        sv = median([r["rps"] for r in res["supervise"]])
        text = f"Throughput against the baseline: supervise {sv / b:.2f}×"
        if res.get("pm2"):
            text += f", PM2 {median([r['rps'] for r in res['pm2']]) / b:.2f}×"
        notes.append(text + ".")
    lines.extend(f"- {n}" for n in notes)
    lines.append("")
    return lines


def report(args, command: str, res: dict, errors: list[str], loadavg: tuple[str, str]) -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    variant = {
        "graceful": "",
        "close": " **changed to stop with `server.close()`** (which closes idle keep-alive "
                 "connections at once)",
        "linger": " **changed to wait 1 s after draining before it exits**",
        "unchanged": " **replaced by the app as written for PM2** (`listen(PORT)` itself, "
                     "no `LISTEN_FDS` code, no signal handler; supervise's Node listen adapter "
                     "shares the socket and drains it)",
    }[args.app]
    built = ("" if not (args.no_build or args.supervise) else
             f"supervise binary {args.binary} (not built by this run, so maybe not of this "
             "commit); ")
    lines = [
        "## Zero-downtime reload under load",
        "",
        f"`{command}` on {now}, commit {revision()}; {built}{machine()}; "
        f"Node {tool_version(['node', '--version'])}; load average {loadavg[0]} before, "
        f"{loadavg[1]} after.",
        "",
        f"The same app, `config-examples/cluster-node/server.js`{variant}, {INSTANCES} "
        "instances, on "
        f"127.0.0.1:{args.port}; during the load, {args.reloads} reloads one after the "
        "other, each with a new `VERSION` in the app's environment:",
        "",
        "- **supervise**: the example's `ecosystem.toml` (one `listen` socket passed as fd 3, "
        "`ready = { delay = \"500ms\" }`), saved with a new `VERSION`; a reload is done when "
        f"all {INSTANCES} `(old instance ...) stopping` lines are out.",
        "- **PM2**: `bench/pm2/server-pm2.js` loads the same `server.js`, which without "
        "`LISTEN_FDS` listens on the port; PM2's master shares it with the workers (Node's "
        "`cluster`). A reload is `VERSION=n pm2 reload web --update-env`, done when the "
        "command returns.",
        "- **baseline**: one `node server.js` listening on the port, no reload: the "
        "throughput of a single process on this machine.",
        "- **failed** = socket errors as the load generator counts them (connect, read, "
        "write, and timeout: no answer within 2 s) + answers that are not 2xx/3xx. A request "
        "still in flight when the time is up is not counted.",
        "",
    ]
    for load in args.loads:
        if res.get(load):
            lines.extend(report_load(args, load, res[load]))
    for e in errors:
        lines.append(f"- **Not measured**: {e}")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- main


def supervise_binary(args) -> str:
    if args.supervise:
        return os.path.abspath(args.supervise)
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return os.path.join(REPO, target, "release", "supervise")  # join keeps an absolute target


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk not found: apt-get install -y wrk")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(cmd, env=env, stdout=sys.stderr).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, stdout=sys.stderr)
            subprocess.run(cmd, env=env, stdout=sys.stderr)
    if not shutil.which("wrk"):
        raise SystemExit("zero_downtime: wrk not found; install it (Debian: apt-get install "
                         "wrk) or run with --load python")


def loadavg() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/loadavg") as f:
            return f.read().split()[0]
    return "?"


def main() -> int:
    global INSTANCES
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--load", choices=["wrk", "python", "both"], default="wrk",
                    help="load generator: wrk (default, keep-alive), the built-in Python "
                         "client (a connection per request), or both one after the other")
    ap.add_argument("--duration", type=float, default=15,
                    help="seconds of load, at least (default 15; longer when the reloads "
                         "need it: the load goes on --tail seconds after the last one)")
    ap.add_argument("--threads", type=int, default=2,
                    help="wrk threads / Python client processes (default 2)")
    ap.add_argument("--connections", type=int, default=32, help="concurrent connections (32)")
    ap.add_argument("--reloads", type=int, default=3, help="reloads during the load (3)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat baseline, supervise, pm2 this many times (default 1)")
    ap.add_argument("--warmup", type=float, default=2,
                    help="seconds of load before the first reload (2)")
    ap.add_argument("--gap", type=float, default=1, help="seconds between reloads (1)")
    ap.add_argument("--tail", type=float, default=2,
                    help="seconds of load after the last reload, at least (2)")
    ap.add_argument("--port", type=int, default=3000, help="port on 127.0.0.1 (3000)")
    ap.add_argument("--instances", type=int, default=INSTANCES,
                    help=f"instances under each supervisor ({INSTANCES}; PM2's -i)")
    ap.add_argument("--app", choices=list(VARIANTS), default="graceful",
                    help="the example's server.js as is (graceful), or changed to stop with "
                         "http.Server.close() (close), or to wait 1 s before exiting (linger), "
                         "or the app as written for PM2: listen(PORT), no signal handler "
                         "(unchanged)")
    ap.add_argument("--only", default="baseline,supervise,pm2",
                    help="comma-separated runs (default baseline,supervise,pm2)")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    ap.add_argument("--supervise", help="the supervise binary (default: cargo's target dir)")
    ap.add_argument("--output", default=os.path.join(REPO, "bench", "zero_downtime.md"),
                    help="where to write the Markdown ('' = nowhere)")
    ap.add_argument("--load-worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    INSTANCES = args.instances
    if args.load_worker:
        port, duration, conns = args.load_worker
        load_worker(int(port), float(duration), int(conns))
        return 0
    args.loads = ["wrk", "python"] if args.load == "both" else [args.load]
    runs = [r for r in ("baseline", "supervise", "pm2")
            if r in {x.strip() for x in args.only.split(",")}]
    if not runs:
        raise SystemExit("zero_downtime: --only names none of baseline, supervise, pm2")
    command = "python3 bench/zero_downtime.py" + "".join(" " + shlex.quote(a)
                                                          for a in sys.argv[1:])
    if not shutil.which("node"):
        raise SystemExit("zero_downtime: node not found")
    if "wrk" in args.loads:
        ensure_wrk()
    binary = args.binary = supervise_binary(args)
    if "supervise" in runs:
        if not args.no_build and not args.supervise:
            log("building: cargo build --release --bin supervise")
            if subprocess.run(["cargo", "build", "--release", "--bin", "supervise"],
                              cwd=REPO).returncode != 0:
                log("the build failed")
                return 2
        if not os.access(binary, os.X_OK):
            log(f"{binary} not found or not executable")
            return 2

    become_subreaper()
    procs = Procs()
    res: dict = {}
    errors: list[str] = []
    before = loadavg()
    old_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for load in args.loads:
            args.load = load
            for rnd in range(args.rounds):
                for key in runs:
                    what = f"{key} ({load}" + (f", round {rnd + 1})" if args.rounds > 1
                                               else ")")
                    log(f"{what} ...")
                    try:
                        with tempfile.TemporaryDirectory(prefix="supervise-zd-") as work:
                            try:
                                wait_until(lambda: port_free(args.port), 15,
                                           f"port {args.port} to be free")
                                r = {"baseline": run_baseline, "supervise": run_supervise,
                                     "pm2": run_pm2}[key](procs, args, work, binary)
                            finally:
                                procs.stop_all()
                        res.setdefault(load, {}).setdefault(key, []).append(r)
                        log(f"{what}: {r['requests']} requests, {r['rps']:.0f} req/s, "
                            f"{failed(r)} failed")
                    except (BenchError, subprocess.SubprocessError, OSError, ValueError) as e:
                        log(f"{what} failed: {e}")
                        errors.append(f"{what}: {str(e).splitlines()[0]}")
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, old_term)

    text = report(args, command, res, errors, (before, loadavg()))
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        log(f"written to {args.output}")
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything it started is stopped")
        sys.exit(130)
