#!/usr/bin/env python3
"""supervise beside PM2, supervisord and horust, each figure against a same-run baseline.

    python3 bench/compare.py            # installs the peers, about 15 minutes
    python3 bench/compare.py --quick    # 1 repetition, shorter windows: a few minutes

Installs PM2 (npm), supervisord (PyPI, a venv) and horust (crates.io) into a scratch folder
(--scratch, kept between runs), wrk, tini and dumb-init from Debian (as root), builds
supervise and supervise-testapp (release) and a tiny C fork loop, then runs every scenario
on every peer, interleaved (each repetition runs each scenario on every peer, in a rotated
order), and prints a Markdown table of medians with ratios against the baseline measured
in the same run. A peer that cannot be installed is skipped with a note. Only processes it
started are signalled, by pid; load goes to 127.0.0.1 only; every loop is bounded.
Python 3.11 standard library only, Linux. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import resource
import shlex
import shutil
import signal
import socket
import select
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import (CLK_TCK, Procs, become_subreaper, bench_direct, comm_of,  # noqa: E402
                   cpu_ticks, descendants_of, read_starts, status_kib, wait_until)
from common import REPO, BenchError, machine, revision  # noqa: E402
from peers import (HORUST_VERSION, PEERS, PM2_VERSION, SUPERVISOR_VERSION, App, NotSupported, build_forkloop, install_apt,  # noqa: E402
                   install_horust, install_pm2, install_supervisord, log, node_free_env,
                   tool_version)
from log_throughput import LINE, gen_argv, make_input  # noqa: E402
from zero_downtime import http_get, parse_wrk, port_free  # noqa: E402

ORDER = ["pm2", "supervisord", "horust", "supervise"]
EXAMPLE = os.path.join(REPO, "config-examples", "cluster-node", "server.js")
# An app that knows nothing of supervisors: a literal listen on PORT, no signal handler.
UNCHANGED_JS = """'use strict';
const http = require('http');
const version = process.env.VERSION || '1';
http.createServer((req, res) => {
  res.end(`hello from pid ${process.pid}, version ${version}\\n`);
}).listen(Number(process.env.PORT || 3000));
"""


# ----------------------------------------------------------------------------- /proc


def voluntary_switches(pid: int) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            total += int(line.split(":")[1])
    return total


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def count_named(root: int, name: str) -> int:
    n = 0
    for p in descendants_of(root):
        with contextlib.suppress(OSError):
            if comm_of(p) == name:
                n += 1
    return n


def count_lines(path: str) -> int:
    with contextlib.suppress(OSError):
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    return 0


# ----------------------------------------------------------------------------- context


class Ctx:
    """What every scenario needs: binaries, the run's knobs, and a fresh folder per run."""

    def __init__(self, args, procs: Procs, binaries: dict, sup: str, testapp: str,
                 forkloop: str | None, scratch: str):
        self.args, self.procs, self.binaries = args, procs, binaries
        self.sup, self.testapp, self.forkloop, self.scratch = sup, testapp, forkloop, scratch
        self.port = args.port

    def peer(self, key: str, work: str):
        cls = PEERS[key]
        return cls(self.procs, work, self.binaries[key])

    @contextlib.contextmanager
    def folder(self, name: str):
        with tempfile.TemporaryDirectory(prefix=f"compare-{name}-", dir=self.scratch) as w:
            try:
                yield w
            finally:
                self.procs.stop_all()

    @contextlib.contextmanager
    def running(self, key: str, apps: list[App], name: str):
        with self.folder(name) as work:
            peer = self.peer(key, work)
            try:
                peer.start(apps)
                yield peer, work
            finally:
                peer.stop()


def wait_port(port: int, timeout: float, check) -> None:
    deadline = time.monotonic() + timeout
    while not http_get(port, timeout=1.0):
        check()
        if time.monotonic() > deadline:
            raise BenchError(f"nothing answered on port {port} within {timeout:g} s")
        time.sleep(0.05)


# ----------------------------------------------------------------------------- scenarios


def idle(ctx: Ctx, keys: list[str]) -> dict[str, list[dict]]:
    """All peers at once, each with 4 `sleep` instances, and tini / dumb-init each with
    one: RSS and PSS of the supervisor, its voluntary context switches, over each of
    --windows consecutive windows (one sample per window)."""
    out: dict = {}
    with ctx.folder("idle") as work:
        peers = {}
        for k in keys:
            d = os.path.join(work, k)
            os.makedirs(d)
            peers[k] = ctx.peer(k, d)
        try:
            for k, p in peers.items():
                p.start([App("idle", [shutil.which("sleep") or "/bin/sleep", "100000"],
                             instances=4)])
            bases = {}
            for b in ("tini", "dumb-init"):
                if shutil.which(b):
                    bases[b] = ctx.procs.popen([b, "--", "sleep", "100000"],
                                               stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)
            if not bases:
                bases["sleep"] = ctx.procs.popen(["sleep", "100000"],
                                                 stdin=subprocess.DEVNULL)
            pids = {k: p.pid() for k, p in peers.items()}
            for k, p in peers.items():
                wait_until(lambda: (p.check(), count_named(pids[k], "sleep") >= 4)[1], 60,
                           f"{k}: 4 sleep instances")
            for b, proc in bases.items():
                if b != "sleep":
                    wait_until(lambda: count_named(proc.pid, "sleep") >= 1, 10,
                               f"{b}: its sleep")
            pids.update({b: p.pid for b, p in bases.items()})
            time.sleep(ctx.args.settle)  # past start-up work (PM2 settles for a while)
            for _ in range(ctx.args.windows):
                before = {k: voluntary_switches(p) for k, p in pids.items()}
                t0 = time.monotonic()
                time.sleep(ctx.args.idle_seconds)
                elapsed = time.monotonic() - t0
                for k, p in pids.items():
                    w = voluntary_switches(p) - before[k]
                    out.setdefault(k, []).append({
                        "rss": status_kib(p, "VmRSS") / 1024, "pss": pss_kib(p) / 1024,
                        "wakeups": w * 30 / elapsed})
        finally:
            for p in peers.values():
                with contextlib.suppress(Exception):
                    p.stop()
    return out


def settle(limit: float = 5.0) -> None:
    """Before a timed run: wait (at most `limit` s) until the CPUs have been at least 90%
    idle for two 100 ms windows in a row, so that no run pays for the teardown of the
    one before (a thousand processes exiting, a daemon's last writes)."""
    def idle_total() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    deadline, quiet = time.monotonic() + limit, 0
    while quiet < 2 and time.monotonic() < deadline:
        i0, t0 = idle_total()
        time.sleep(0.1)
        i1, t1 = idle_total()
        quiet = quiet + 1 if (i1 - i0) >= 0.9 * max(1, t1 - t0) else 0


def kill_and_time(ctx: Ctx, starts: str, check, times: int) -> dict:
    """`times` times: kill -9 the last started copy; ms until its replacement's first
    instruction, from the kill (`ms`) and from the death (`death_ms`: when a pidfd of
    the victim turned readable, which is when its parent is told)."""
    wait_until(lambda: (check(), read_starts(starts))[1], 60, "the first start")
    from_kill, from_death = [], []
    for i in range(times):
        time.sleep(0.2)
        settle()
        seen = read_starts(starts)
        pid = seen[-1][0]
        pidfd = os.pidfd_open(pid)
        try:
            t0 = time.monotonic_ns()
            os.kill(pid, signal.SIGKILL)
            select.select([pidfd], [], [], 15)
            dead = time.monotonic_ns()
        finally:
            os.close(pidfd)
        new = wait_until(lambda: [s for s in read_starts(starts)[len(seen):]
                                  if s[0] != pid], 15, f"respawn {i + 1}", interval=0.0005)
        from_kill.append((new[0][1] - t0) / 1e6)
        from_death.append((new[0][1] - dead) / 1e6)
    return {"ms": statistics.median(from_kill), "death_ms": statistics.median(from_death)}


def respawn(ctx: Ctx, key: str) -> dict:
    """Kill -9 the one instance, time until its replacement's first instruction."""
    with ctx.folder("respawn") as work:
        starts = os.path.join(work, "starts")
        app = App("respawn", [ctx.testapp, "--report-start", starts], eager=True)
        peer = ctx.peer(key, work)
        try:
            peer.start([app])
            return kill_and_time(ctx, starts, peer.check, ctx.args.respawns)
        finally:
            peer.stop()


def respawn_baseline(ctx: Ctx) -> dict:
    """The same kills, answered by the least a supervisor can do: a C loop waiting for its
    child and fork+exec'ing it again (from Python without a C compiler: fork+exec alone).
    Also fork+exec's own latency (`exec_ms`), which leaves out the death and its notice."""
    with ctx.folder("direct") as work:
        if not ctx.forkloop:
            r = bench_direct(ctx.procs, ctx.testapp, work, ctx.args.respawns)
            return {"ms": statistics.median(r["times_ns"]) / 1e6}
        starts = os.path.join(work, "starts")
        settle()
        p = subprocess.run([ctx.forkloop, "direct", str(ctx.args.respawns), ctx.testapp,
                            "--report-start", starts], capture_output=True, text=True,
                           timeout=60 + ctx.args.respawns, stdin=subprocess.DEVNULL)
        forked = [int(x) for x in p.stdout.split()]
        seen = read_starts(starts)
        if len(seen) != len(forked):
            raise BenchError(f"forkloop: {len(forked)} forks, {len(seen)} starts reported")
        exec_ms = statistics.median((s[1] - t) / 1e6 for s, t in zip(seen, forked))
        starts = os.path.join(work, "respawn-starts")
        loop = ctx.procs.popen([ctx.forkloop, "respawn", str(ctx.args.respawns), ctx.testapp,
                                "--report-start", starts], stdin=subprocess.DEVNULL)
        try:
            check = lambda: None  # noqa: E731
            times = kill_and_time(ctx, starts, check, ctx.args.respawns)
            os.kill(read_starts(starts)[-1][0], signal.SIGKILL)  # the loop then ends
            loop.wait(timeout=10)
        finally:
            ctx.procs.stop(loop, grace=0)
    return dict(times, exec_ms=exec_ms)


def crash_loop(ctx: Ctx, key: str) -> dict:
    """An app that exits 1 at once, tuned to restart at once: starts and the supervisor's
    CPU time over the window."""
    with ctx.folder("crash") as work:
        starts = os.path.join(work, "starts")
        app = App("crash", [ctx.testapp, "--report-start", starts, "--exit-after", "0",
                            "--exit-code", "1"], eager=True)
        peer = ctx.peer(key, work)
        try:
            peer.start([app])
            wait_until(lambda: (peer.check(), read_starts(starts))[1], 60, "the first start")
            pid = peer.pid()
            c0, n0, t0 = cpu_ticks(pid), count_lines(starts), time.monotonic()
            time.sleep(ctx.args.crash_seconds)
            c1, n1, t1 = cpu_ticks(pid), count_lines(starts), time.monotonic()
        finally:
            peer.stop()
    scale = ctx.args.crash_seconds / (t1 - t0)
    starts, cpu = (n1 - n0) * scale, (c1 - c0) / CLK_TCK * scale
    return {"starts": starts, "cpu": cpu, "per_start": cpu * 1000 / starts if starts else None}


def crash_baseline(ctx: Ctx) -> dict | None:
    if not ctx.forkloop:
        return None
    with ctx.folder("serial") as work:
        starts = os.path.join(work, "starts")
        p = subprocess.run([ctx.forkloop, "serial", str(ctx.args.crash_seconds), ctx.testapp,
                            "--report-start", starts, "--exit-after", "0", "--exit-code", "1"],
                           capture_output=True, text=True, timeout=ctx.args.crash_seconds + 60)
    runs, cpu = int(p.stdout.split()[0]), float(p.stdout.split()[1])
    return {"starts": runs, "cpu": cpu, "per_start": cpu * 1000 / runs if runs else None}


def scale(ctx: Ctx, key: str, n: int) -> dict:
    """From starting the supervisor (PM2: `pm2 start`) until n instances have run their
    first instruction."""
    with ctx.folder(f"scale{n}") as work:
        starts = os.path.join(work, "starts")
        app = App("scale", [ctx.testapp, "--report-start", starts], instances=n)
        peer = ctx.peer(key, work)
        settle()
        try:
            t0 = time.monotonic_ns()
            peer.start([app])
            wait_until(lambda: (peer.check(), count_lines(starts) >= n)[1], 60 + n * 0.2,
                       f"{n} instances up", interval=0.002)
            last = max(ts for _, ts in read_starts(starts))
        finally:
            peer.stop()
    return {"s": (last - t0) / 1e9}


def scale_baseline(ctx: Ctx, n: int) -> dict | None:
    if not ctx.forkloop:
        return None
    with ctx.folder(f"fork{n}") as work:
        starts = os.path.join(work, "starts")
        settle()
        t0 = time.monotonic_ns()
        p = ctx.procs.popen([ctx.forkloop, "spawn", str(n), ctx.testapp, "--report-start",
                             starts], stdin=subprocess.DEVNULL)
        wait_until(lambda: count_lines(starts) >= n, 60 + n * 0.2, f"{n} forks up",
                   interval=0.002)
        last = max(ts for _, ts in read_starts(starts))
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    return {"s": (last - t0) / 1e9}


def wrk(ctx: Ctx, seconds: float) -> dict:
    p = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds:g}s", "--timeout", "2s",
                        f"http://127.0.0.1:{ctx.port}/"], capture_output=True, text=True,
                       timeout=seconds + 60, stdin=subprocess.DEVNULL)
    r = parse_wrk(p.stdout)
    r["failed"] = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
    return r


def node_app(work: str, kind: str) -> str:
    """A copy of the draining example (`server.js`) or the unchanged app; its path."""
    path = os.path.join(work, "app.js")
    if kind == "draining":
        shutil.copy(EXAMPLE, path)
    else:
        with open(path, "w") as f:
            f.write(UNCHANGED_JS)
    return path


def cluster_app(ctx: Ctx, script: str) -> App:
    return App("web", [shutil.which("node") or "node", script], instances=2,
               env={"VERSION": "1", "NODE_ENV": "production"}, port=ctx.port,
               cwd=os.path.dirname(script))


def throughput(ctx: Ctx, key: str) -> dict:
    """2 instances of the draining example sharing one port, under wrk."""
    if key not in ("supervise", "pm2"):
        raise NotSupported("no way to share one port between instances")
    with ctx.folder("wrk") as work:
        wait_until(lambda: port_free(ctx.port), 30, f"port {ctx.port} free")
        app = cluster_app(ctx, node_app(work, "draining"))
        peer = ctx.peer(key, work)
        try:
            peer.start([app])
            wait_port(ctx.port, 60, peer.check)
            time.sleep(1.0)  # both instances past their readiness delay
            r = wrk(ctx, ctx.args.wrk_seconds)
        finally:
            peer.stop()
    return {"rps": r["rps"], "failed": r["failed"]}


def one_node(ctx: Ctx) -> dict:
    with ctx.folder("node") as work:
        wait_until(lambda: port_free(ctx.port), 30, f"port {ctx.port} free")
        script = node_app(work, "draining")
        node = ctx.procs.popen(["node", script], cwd=work, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               env=node_free_env({"PORT": str(ctx.port)}))
        wait_port(ctx.port, 30, lambda: None)
        r = wrk(ctx, ctx.args.wrk_seconds)
        ctx.procs.stop(node)
    return {"rps": r["rps"], "failed": r["failed"]}


def under_load(ctx: Ctx, key: str, kind: str, op: str) -> dict:
    """wrk for --wrk-seconds; --op-at seconds in, one reload (a new VERSION) or restart of
    the app. Failed requests and req/s over the whole window."""
    with ctx.folder(f"{op}-{kind}") as work:
        wait_until(lambda: port_free(ctx.port), 30, f"port {ctx.port} free")
        app = cluster_app(ctx, node_app(work, kind))
        peer = ctx.peer(key, work)
        try:
            peer.start([app])
            wait_port(ctx.port, 60, peer.check)
            time.sleep(1.0)
            out = os.path.join(work, "wrk.out")
            with open(out, "w") as f:
                load = ctx.procs.popen(
                    ["wrk", "-t2", "-c32", f"-d{ctx.args.wrk_seconds:g}s", "--timeout", "2s",
                     f"http://127.0.0.1:{ctx.port}/"], stdout=f, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL)
            try:
                time.sleep(ctx.args.op_at)
                t0 = time.monotonic()
                (peer.reload(app, "2") if op == "reload" else peer.restart(app))
                took = time.monotonic() - t0
                load.wait(timeout=ctx.args.wrk_seconds + 60)
            finally:
                if load.poll() is None:
                    load.kill()
                    load.wait()
            with open(out) as f:
                r = parse_wrk(f.read())
        finally:
            peer.stop()
    return {"rps": r["rps"], "failed": r["connect"] + r["read"] + r["write"] + r["timeout"]
            + r["status"], "op_s": took}


def make_data(ctx: Ctx, lines: int) -> str:
    path = os.path.join(ctx.scratch, f"lines-{lines}.txt")
    if not os.path.exists(path) or os.path.getsize(path) != lines * LINE:
        make_input(path + ".tmp", lines)
        os.replace(path + ".tmp", path)
    return path


def log_argv(ctx: Ctx, data: str, mode: str, starts: str) -> list[str]:
    """log_throughput.py's `dd`, after the test app has noted the start time."""
    return ["/bin/sh", "-c",
            f"{shlex.quote(ctx.testapp)} --report-start {shlex.quote(starts)} --exit-after 0;"
            f" {shlex.join(gen_argv(data, mode))}; exec sleep 100000"]


def warm(path: str) -> None:
    """Read the app's input once, so that every column finds it in the page cache: the
    file is written once and kept, and the kernel may reclaim its pages in between
    (DAMON reclaim does on this kind of VM), which only the first reader would pay."""
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def last_line_seen(path: str, marker: bytes) -> bool:
    with contextlib.suppress(OSError):
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            return marker in f.read()
    return False


def log_capture(ctx: Ctx, key: str | None, mode: str) -> dict:
    """From the app's start until the whole output is in the file the peer writes
    (supervise: its stdout; the others: the app's log file; direct: the app's stdout)."""
    lines = ctx.args.burst_lines if mode == "burst" else ctx.args.single_lines
    data = make_data(ctx, lines)
    marker = b"%010d x" % (lines - 1)
    with ctx.folder(f"log-{mode}") as work:
        starts = os.path.join(work, "starts")
        argv = log_argv(ctx, data, mode, starts)
        capture = os.path.join(work, "captured.log")
        peer = None
        warm(data)
        settle()
        try:
            if key is None:
                with open(capture, "wb") as f:
                    app = ctx.procs.popen(argv, stdout=f, stdin=subprocess.DEVNULL)
                check = lambda: None  # noqa: E731
            else:
                peer = ctx.peer(key, work)
                app_def = App("logs", argv, out=capture)
                peer.start([app_def])
                capture = peer.out_file(app_def)
                check = peer.check
            wait_until(lambda: (check(), read_starts(starts))[1], 60, "the app's start")
            t0 = read_starts(starts)[0][1]
            wait_until(lambda: (check(), last_line_seen(capture, marker))[1], 120,
                       "the last line captured", interval=0.002)
            t1 = time.monotonic_ns()
        finally:
            if peer is not None:
                peer.stop()
    return {"s": (t1 - t0) / 1e9}


# ----------------------------------------------------------------------------- the run


def median_of(samples: list[dict], field: str) -> float | None:
    values = [s[field] for s in samples if s is not None and s.get(field) is not None]
    return statistics.median(values) if values else None


class Results:
    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], list[dict]] = {}
        self.errors: dict[tuple[str, str], str] = {}

    def add(self, row: str, col: str, value: dict | None) -> None:
        if value is not None:
            self.samples.setdefault((row, col), []).append(value)

    def get(self, row: str, col: str, field: str) -> float | None:
        return median_of(self.samples.get((row, col), []), field)


def attempt(res: Results, row: str, col: str, fn) -> None:
    label = f"{row} / {col}"
    log(f"{label} ...")
    t0 = time.monotonic()
    try:
        value = fn()
        res.add(row, col, value)
        log(f"{label}: {value} ({time.monotonic() - t0:.1f} s)")
    except NotSupported as e:
        res.errors.setdefault((row, col), f"n/a: {e}")
    except (BenchError, subprocess.SubprocessError, OSError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        log(f"{label} failed: {e}")
        res.errors[(row, col)] = first


def run(ctx: Ctx, keys: list[str], res: Results) -> None:
    a = ctx.args
    scenarios = a.only.split(",") if a.only else [
        "idle", "respawn", "crash", "scale", "logs", "wrk", "cluster"]
    for rep in range(a.reps):
        order = keys[rep % len(keys):] + keys[:rep % len(keys)]
        log(f"repetition {rep + 1} of {a.reps}, order {', '.join(order)}")
        # The long scenarios run in the first repetition only (see --heavy-reps).
        heavy = rep < a.heavy_reps
        if "idle" in scenarios and heavy:
            log("idle ...")
            try:
                for k, samples in idle(ctx, order).items():
                    for v in samples:
                        res.add("idle", k, v)
            except (BenchError, OSError) as e:
                log(f"idle failed: {e}")
                res.errors[("idle", "all")] = str(e).splitlines()[0]
        if "respawn" in scenarios:
            attempt(res, "respawn", "baseline", lambda: respawn_baseline(ctx))
            for k in order:
                attempt(res, "respawn", k, lambda: respawn(ctx, k))
        if "crash" in scenarios and heavy:
            attempt(res, "crash", "baseline", lambda: crash_baseline(ctx))
            for k in order:
                attempt(res, "crash", k, lambda: crash_loop(ctx, k))
        if "scale" in scenarios:
            for n in a.scale:
                if n > 200 and not heavy:
                    continue
                for _ in range(a.scale_samples):
                    attempt(res, f"scale{n}", "baseline", lambda: scale_baseline(ctx, n))
                    for k in order:
                        attempt(res, f"scale{n}", k, lambda: scale(ctx, k, n))
        if "logs" in scenarios:
            for mode in ("burst", "single"):
                # Several samples: a burst takes a tenth of a second, and one sample moves
                # by half from the next on a 2-CPU machine.
                for _ in range(a.log_samples):
                    attempt(res, f"log-{mode}", "baseline", lambda: log_capture(ctx, None, mode))
                    for k in order:
                        attempt(res, f"log-{mode}", k, lambda: log_capture(ctx, k, mode))
        if "wrk" in scenarios or "cluster" in scenarios:
            attempt(res, "wrk", "baseline", lambda: one_node(ctx))
        if "wrk" in scenarios:
            for k in order:
                attempt(res, "wrk", k, lambda: throughput(ctx, k))
        if "cluster" in scenarios and heavy:
            for kind in ("draining", "unchanged"):
                for op in ("reload", "restart"):
                    for k in order:
                        if k == "horust":
                            res.errors[(f"{op}-{kind}", k)] = "n/a: no reload or restart command"
                            continue
                        attempt(res, f"{op}-{kind}", k, lambda: under_load(ctx, k, kind, op))


# ----------------------------------------------------------------------------- report


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "—"
    if b == 0:
        return "=" if a == 0 else "—"
    return f"{a / b:.2f}×"


def report(ctx: Ctx, keys: list[str], res: Results, versions: dict, command: str,
           started: str, minutes: float, notes: list[str]) -> str:
    a = ctx.args
    names = {"pm2": f"PM2 {versions.get('pm2', '')}",
             "supervisord": f"supervisord {versions.get('supervisord', '')}",
             "horust": f"horust {versions.get('horust', '')}",
             "supervise": f"supervise {versions.get('supervise', '')}"}
    cols = [k for k in ORDER if k in keys]
    lines = [
        "## supervise beside PM2, supervisord and horust",
        "",
        f"`{command}` on {started} ({minutes:.0f} min), commit {revision()}; {machine()}. "
        f"{a.reps} repetition(s), interleaved (the idle figures: {a.windows} windows of "
        f"{a.idle_seconds:g} s; crash loop, 1000 instances and reload/restart under load: "
        f"{a.heavy_reps} run(s)); medians. Each cell: the figure, then (in brackets) its "
        "ratio to the baseline measured in the same run.",
        "",
        "| figure | " + " | ".join(names[k] for k in cols)
        + " | baseline (same run) | supervise ÷ baseline | supervise ÷ best other |",
        "|---|" + "---:|" * (len(cols) + 3),
    ]

    def cell(row: str, col: str, field: str, base: float | None, digits: int) -> str:
        v = res.get(row, col, field)
        if v is None:
            err = res.errors.get((row, col))
            return "n/a" if err and err.startswith("n/a") else ("failed" if err else "—")
        r = ratio(v, base)
        return fmt(v, digits) + (f" ({r})" if r != "—" else "")

    def add(label: str, row: str, field: str, base_row: str, base_col: str,
            base_label: str, digits: int = 1, lower_better: bool = True,
            base_field: str | None = None) -> None:
        base = res.get(base_row, base_col, base_field or field)
        values = {k: res.get(row, k, field) for k in cols}
        if base is None and all(v is None for v in values.values()) and not any(
                r == row for r, _ in res.errors):
            return  # not run
        others = [v for k, v in values.items() if k != "supervise" and v is not None]
        best = (min(others) if lower_better else max(others)) if others else None
        sv = values.get("supervise")
        lines.append(f"| {label} | " + " | ".join(cell(row, k, field, base, digits)
                                                   for k in cols)
                     + f" | {base_label}{fmt(base, digits)} | {ratio(sv, base)} | "
                     f"{ratio(sv, best)} |")

    idle_base = "tini" if res.get("idle", "tini", "rss") is not None else "sleep"
    add("idle, 4 instances: RSS MiB", "idle", "rss", "idle", idle_base, f"{idle_base} ")
    add("idle, 4 instances: PSS MiB", "idle", "pss", "idle", idle_base, f"{idle_base} ")
    wake_base = "dumb-init" if res.get("idle", "dumb-init", "wakeups") is not None else idle_base
    add("idle: voluntary wakeups per 30 s", "idle", "wakeups", "idle", wake_base,
        f"{wake_base} ", digits=0)
    add("respawn after kill -9, ms", "respawn", "ms", "respawn", "baseline",
        "C waitpid+fork+exec loop " if res.get("respawn", "baseline", "exec_ms") is not None
        else "direct fork+exec ", digits=1)
    add("respawn, from the death to the first instruction, ms", "respawn", "death_ms",
        "respawn", "baseline", "fork+exec alone ", digits=2, base_field="exec_ms")
    add(f"crash loop, restart at once: starts in {a.crash_seconds:g} s", "crash", "starts",
        "crash", "baseline", "C fork+exec+wait loop ", digits=0, lower_better=False)
    add(f"crash loop: supervisor CPU s in {a.crash_seconds:g} s", "crash", "cpu", "crash",
        "baseline", "that loop ", digits=2)
    add("crash loop: supervisor CPU ms per start", "crash", "per_start", "crash",
        "baseline", "that loop ", digits=2)
    for n in a.scale:
        add(f"{n} instances up, s", f"scale{n}", "s", f"scale{n}", "baseline",
            "C fork+exec loop ", digits=2)
    add(f"log capture, {a.burst_lines * LINE / 1e6:g} MB burst (64 KiB writes), s",
        "log-burst", "s", "log-burst", "baseline", "direct to a file ", digits=2)
    add(f"log capture, {a.single_lines:,} single-line writes, s", "log-single", "s",
        "log-single", "baseline", "direct to a file ", digits=2)
    add("2 instances on one port, wrk req/s", "wrk", "rps", "wrk", "baseline", "one node ",
        digits=0, lower_better=False)
    for kind in ("draining", "unchanged"):
        for op in ("reload", "restart"):
            add(f"{op} of 2 instances under wrk, {kind} app: failed requests",
                f"{op}-{kind}", "failed", "wrk", "baseline", "one node, no reload ", digits=0)
            add(f"{op} under wrk, {kind} app: req/s", f"{op}-{kind}", "rps", "wrk",
                "baseline", "one node ", digits=0, lower_better=False)
    lines.append("")
    lines += [
        "- Idle: every peer at once, each running 4 `sleep 100000`; RSS/PSS of the "
        "supervisor process (PM2: its daemon), its voluntary context switches (all threads) "
        f"per {a.idle_seconds:g} s window, scaled to 30 s; tini and dumb-init each run one "
        "`sleep`.",
        "- Respawn: `supervise-testapp --report-start` writes its CLOCK_MONOTONIC start "
        "first; kill -9 to the replacement's start, restart tuned to happen at once "
        f"({a.respawns} kills per repetition); baseline: the same kills answered by a C "
        "loop that waits for its child and fork+execs it again (`forkloop respawn`), the "
        "least any supervisor does. From the death: from the moment a pidfd of the "
        "victim turns readable (when its parent is told; the kill itself takes the victim "
        "0.2-0.5 ms) to the replacement's first instruction, against fork+exec alone: "
        "`forkloop direct`, from just before fork() to the same first instruction. "
        "Every timed run starts once the CPUs have been 90% idle for 0.2 s (at most 5 s).",
        "- Crash loop: the app exits 1 at once; restart delay 0, no limit (supervise: "
        '`restart_delay = backoff_max = min_uptime = "0s"`, PM2: `restart_delay: 0, '
        "min_uptime: 0`, supervisord: `startsecs=0`, horust: `backoff = \"0s\"`).",
        "- Instances up: from starting the supervisor (PM2: `pm2 start`, daemon included) "
        "until the last instance's first instruction; baseline: a C loop forking and "
        f"exec'ing the same program; {a.scale_samples} sample(s) of each per repetition.",
        "- Log capture: `dd` of numbered 100-byte lines (64 KiB writes, or one write per "
        "line), from the app's start until the last line is in the file the supervisor "
        "writes (supervise: its own stdout, prefixed; PM2/supervisord: the app's log file; "
        "horust opens the file for the app itself, so it captures nothing); "
        f"{a.log_samples} sample(s) of each per repetition.",
        f"- wrk: `wrk -t2 -c32 -d{a.wrk_seconds:g}s` on 127.0.0.1; the draining app is "
        "`config-examples/cluster-node/server.js`, the unchanged one a plain "
        "`http.createServer(...).listen(PORT)` with no signal handler. supervise: "
        "`listen` + 2 instances; PM2: cluster mode, 2 instances; supervisord: one instance "
        "(no way to share a port); the reload or restart starts "
        f"{a.op_at:g} s into the load (supervise: the file saved with a new VERSION / "
        "`supervise restart`; PM2: `pm2 reload --update-env` / `pm2 restart`; "
        "supervisord: `supervisorctl update` after the edit / `supervisorctl restart`). "
        "wrk counts every refused or reset connection as a failure, so a window with no "
        "listener at all shows as tens of thousands.",
    ]
    for (row, col), err in sorted(res.errors.items()):
        if not err.startswith("n/a"):
            lines.append(f"- **{row} / {col} failed**: {err}")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition, short windows, smaller sizes: a trial run")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--heavy-reps", type=int, default=1,
                    help="repetitions of the long scenarios: idle (its windows are the "
                         "samples), crash loop, 1000 instances, reload/restart under load "
                         "(default 1)")
    ap.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(),
                                                      "supervise-compare"),
                    help="where the peers are installed and the runs happen (kept)")
    ap.add_argument("--peers", default=",".join(ORDER), help="comma-separated subset")
    ap.add_argument("--only", default="",
                    help="comma-separated scenarios: idle,respawn,crash,scale,logs,wrk,cluster")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    ap.add_argument("--port", type=int, default=3300, help="port on 127.0.0.1 (3300)")
    ap.add_argument("--output", default=os.path.join(REPO, "bench", "compare.md"),
                    help="where to write the Markdown ('' = nowhere)")
    args = ap.parse_args()
    q = args.quick
    args.reps = args.reps or (1 if q else 3)
    args.idle_seconds = 5.0 if q else 30.0
    args.windows = 1 if q else 3
    args.settle = 2.0 if q else 5.0
    args.respawns = 3 if q else 5
    args.crash_seconds = 3.0 if q else 10.0
    args.scale = [200, 1000]
    args.scale_samples = 1 if q else 3
    args.log_samples = 1 if q else 3
    args.burst_lines = 200_000 if q else 2_000_000
    args.single_lines = 100_000 if q else 1_000_000
    args.wrk_seconds = 5.0 if q else 8.0
    args.op_at = 1.5 if q else 3.0
    command = "python3 bench/compare.py" + "".join(" " + shlex.quote(x) for x in sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t_start = time.monotonic()

    os.makedirs(args.scratch, exist_ok=True)
    install_apt(["wrk", "tini", "dumb-init"])
    notes: list[str] = []
    if not args.no_build:
        log("building: cargo build --release --bins --features testapp")
        if subprocess.run(["cargo", "build", "--release", "--bins", "--features", "testapp"],
                          cwd=REPO).returncode != 0:
            log("the build failed")
            return 2
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    sup = os.path.join(target, "release", "supervise")
    testapp = os.path.join(target, "release", "supervise-testapp")
    wanted = [k.strip() for k in args.peers.split(",") if k.strip() in PEERS]
    binaries = {"supervise": sup}
    installers = {"pm2": install_pm2, "supervisord": install_supervisord,
                  "horust": install_horust}
    for k in wanted:
        if k in installers:
            b = installers[k](args.scratch)
            if b:
                binaries[k] = b
            else:
                notes.append(f"{PEERS[k].name} skipped: it could not be installed.")
    keys = [k for k in ORDER if k in wanted and k in binaries]
    forkloop = build_forkloop(args.scratch)
    if not forkloop:
        notes.append("No C compiler: the fork-loop baselines are missing.")
    if not shutil.which("wrk"):
        notes.append("wrk is missing: the load scenarios failed.")
    versions = {"supervise": tool_version([sup, "--version"]), "pm2": PM2_VERSION,
                "supervisord": tool_version([binaries["supervisord"], "--version"])
                if "supervisord" in binaries else SUPERVISOR_VERSION,
                "horust": HORUST_VERSION}
    # 1000 instances with a pipe or two each: let every supervisor have the fds.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    become_subreaper()
    procs = Procs()
    ctx = Ctx(args, procs, binaries, sup, testapp, forkloop, args.scratch)
    res = Results()
    old_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(ctx, keys, res)
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, old_term)
    text = report(ctx, keys, res, versions, command, started,
                  (time.monotonic() - t_start) / 60, notes)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        log(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything it started is stopped")
        sys.exit(130)
