#!/usr/bin/env python3
"""Benchmark of supervise on this machine, against baselines measured in the same run.

    python3 bench/bench.py            # full run (20 respawns, 60 s idle window), ~2 minutes
    python3 bench/bench.py --quick    # smoke run (5 respawns, 5 s idle window)

Python 3.11 standard library only. Builds with `cargo build --release --bins --features testapp` first
(unless --no-build), prints a Markdown table and writes it to bench/results.md.
Figures are reported as ratios against a baseline measured in the same run; nothing is
asserted: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import glob
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from common import BenchError, machine, reap, revision  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLL = 0.0002  # seconds between polls of the starts file
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------- /proc


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def status_kib(pid: int, key: str) -> int:
    """VmRSS / VmHWM etc. in KiB."""
    value = proc_status(pid)[key]  # "1234 kB"
    return int(value.split()[0])


def proc_stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name; index 0 is field 3 (state)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2 :].split()


def ppid_of(pid: int) -> int:
    return int(proc_stat(pid)[1])


def comm_of(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def cpu_ticks(pid: int) -> int:
    fields = proc_stat(pid)
    return int(fields[11]) + int(fields[12])  # utime (14), stime (15)


def ctxt_switches(pid: int) -> int:
    """Voluntary + nonvoluntary context switches summed over all threads."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split(":")[1])
        except FileNotFoundError:  # thread ended meanwhile
            pass
    return total


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children_of(pid: int) -> list[int]:
    out = []
    for p in all_pids():
        try:
            if ppid_of(p) == pid:
                out.append(p)
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            pass
    return out


def descendants_of(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for p in all_pids():
        try:
            parents[p] = ppid_of(p)
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            pass
    found, frontier = [], {pid}
    while frontier:
        nxt = {p for p, pp in parents.items() if pp in frontier and p not in found}
        found.extend(nxt)
        frontier = nxt
    return found


# ----------------------------------------------------------------------------- processes


def become_subreaper() -> None:
    """Orphans of what we start are reparented to us, so the cleanup finds them all."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


class Procs:
    """Everything the benchmark starts; killed (with the whole tree) in stop_all()."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, grace: float = 5.0) -> None:
        """SIGTERM, wait up to `grace`, then SIGKILL the process and its whole tree."""
        if p.poll() is None:
            tree = descendants_of(p.pid)
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            tree += [q for q in descendants_of(p.pid) if q not in tree]
            kill_tree(tree)
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(p)
        # Anything left that was reparented to us (we are a subreaper).
        kill_tree(descendants_of(os.getpid()))
        reap()


def kill_tree(pids: list[int]) -> None:
    own_pgrp = os.getpgrp()
    for q in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            pgid = os.getpgid(q)
            if pgid != own_pgrp and pgid > 1:
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(q, signal.SIGKILL)
    reap()


def wait_until(cond, timeout: float, what: str, proc: subprocess.Popen | None = None,
               log: str | None = None, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"supervise exited (code {proc.returncode}) while waiting for {what}"
                             + tail(log))
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}" + tail(log))
        time.sleep(interval)


def tail(path: str | None, n: int = 15) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()[-n:]
    return "\n  supervise output (last lines):\n" + "\n".join("    " + l for l in lines)


# ----------------------------------------------------------------------------- helpers


def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def toml_array(items: list[str]) -> str:
    return "[" + ", ".join(toml_str(i) for i in items) + "]"


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def read_starts(path: str) -> list[tuple[int, int]]:
    try:
        with open(path) as f:
            data = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split("\n")[:-1]:  # only complete lines
        parts = line.split()
        if len(parts) == 2:
            out.append((int(parts[0]), int(parts[1])))
    return out


def count_started(log: str) -> int:
    with open(log, errors="replace") as f:
        return sum(1 for line in f if "started" in line and line.lstrip().startswith("supervise"))


class Supervise:
    def __init__(self, procs: Procs, binary: str, workdir: str, name: str, config: str):
        self.procs, self.binary, self.workdir = procs, binary, workdir
        self.eco = os.path.join(workdir, f"{name}.toml")
        self.log = os.path.join(workdir, f"{name}.out")
        with open(self.eco, "w") as f:
            f.write(config)
        env = dict(os.environ, NO_COLOR="1",
                   SUPERVISE_SOCKET=os.path.join(workdir, f"{name}.sock"))
        self._out = open(self.log, "wb")
        self.proc = procs.popen([binary, self.eco], cwd=workdir, env=env,
                                stdin=subprocess.DEVNULL, stdout=self._out,
                                stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def stop(self) -> None:
        self.procs.stop(self.proc)
        self._out.close()


# ----------------------------------------------------------------------------- 1. respawn


def respawn_config(testapp: str, starts: str, restart_delay: str) -> str:
    return (
        "[apps.bench]\n"
        f"command = {toml_array([testapp, '--report-start', starts])}\n"
        'min_uptime = "0s"\n'
        "max_restarts = 0\n"
        f"restart_delay = {toml_str(restart_delay)}\n"
    )


def bench_respawn(procs: Procs, sup_bin: str, testapp: str, work: str, n: int) -> dict:
    notes = []
    result = None
    for delay in ("0s", "1ms"):
        starts = os.path.join(work, f"starts-{delay}")
        sup = Supervise(procs, sup_bin, work, f"respawn-{delay}",
                        respawn_config(testapp, starts, delay))
        try:
            try:
                wait_until(lambda: read_starts(starts), 15, "the first start of bench.0",
                           sup.proc, sup.log)
            except BenchError:
                refused = sup.proc.poll() is not None and "restart_delay" in tail(sup.log, 50)
                if delay == "0s" and refused:
                    notes.append('`restart_delay = "0s"` was refused by supervise; '
                                 'measured with `restart_delay = "1ms"`.')
                    continue
                raise
            result = respawn_loop(sup, starts, n)
            result["restart_delay"] = delay
            break
        finally:
            sup.stop()
    if result is None:
        raise BenchError("supervise never started bench.0")
    result["notes"] = notes
    return result


def respawn_loop(sup: Supervise, starts: str, n: int) -> dict:
    times = []
    seen = read_starts(starts)
    for i in range(n):
        time.sleep(0.05)  # let supervise settle after the previous spawn
        pid = seen[-1][0]
        count = len(seen)
        t0 = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            seen = read_starts(starts)
            new = [s for s in seen[count:] if s[0] != pid]
            if new:
                times.append(new[0][1] - t0)
                break
            if sup.proc.poll() is not None:
                raise BenchError(f"supervise exited (code {sup.proc.returncode}) during respawn "
                                 f"{i + 1}" + tail(sup.log))
            if time.monotonic() > deadline:
                raise BenchError(f"respawn {i + 1}: no new start within 10 s after kill -9"
                                 + tail(sup.log))
            time.sleep(POLL)
    return {"times_ns": times}


def bench_direct(procs: Procs, testapp: str, work: str, n: int) -> dict:
    times = []
    for i in range(n):
        time.sleep(0.05)
        starts = os.path.join(work, f"direct-{i}")
        t0 = time.monotonic_ns()
        p = procs.popen([testapp, "--report-start", starts], stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                seen = read_starts(starts)
                if seen:
                    if seen[0][0] != p.pid:
                        raise BenchError(f"testapp reported pid {seen[0][0]}, expected {p.pid}")
                    times.append(seen[0][1] - t0)
                    break
                if p.poll() is not None:
                    raise BenchError(f"testapp exited (code {p.returncode}) before reporting")
                if time.monotonic() > deadline:
                    raise BenchError("testapp did not report its start within 10 s "
                                     "(does it support --report-start?)")
                time.sleep(POLL)
        finally:
            procs.stop(p, grace=0)
    return {"times_ns": times}


# ----------------------------------------------------------------------------- 2+3. memory, idle


def sleep_config(n: int) -> str:
    return f'[apps.sleep]\ncommand = ["sleep", "100000"]\ninstances = {n}\n'


def started_sleeps(sup: Supervise) -> list[int]:
    out = []
    for c in children_of(sup.pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if comm_of(c) == "sleep":
                out.append(c)
    return out


def bench_memory_idle(procs: Procs, sup_bin: str, work: str, n: int,
                      idle_seconds: float) -> dict:
    baseline = procs.popen(["sleep", "100000"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sup = Supervise(procs, sup_bin, work, f"sleep-{n}", sleep_config(n))
    try:
        wait_until(lambda: len(started_sleeps(sup)) >= n and count_started(sup.log) >= n,
                   30 + n * 0.2, f"{n} sleep instances started", sup.proc, sup.log)
        time.sleep(1.0)  # settle
        res = {
            "n": n,
            "rss": status_kib(sup.pid, "VmRSS"),
            "hwm": status_kib(sup.pid, "VmHWM"),
            "threads": int(proc_status(sup.pid)["Threads"]),
            "sleep_rss": status_kib(baseline.pid, "VmRSS"),
        }
        if idle_seconds > 0:
            pids = {"sup": sup.pid, "sleep": baseline.pid}
            before = {k: (cpu_ticks(p), ctxt_switches(p)) for k, p in pids.items()}
            t0 = time.monotonic()
            end = t0 + idle_seconds
            while time.monotonic() < end:
                if sup.proc.poll() is not None:
                    raise BenchError("supervise exited during the idle window" + tail(sup.log))
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            elapsed = time.monotonic() - t0
            after = {k: (cpu_ticks(p), ctxt_switches(p)) for k, p in pids.items()}
            res["idle_seconds"] = elapsed
            for k in pids:
                res[f"{k}_cpu_ms"] = (after[k][0] - before[k][0]) * 1000 / CLK_TCK
                res[f"{k}_wakeups"] = after[k][1] - before[k][1]
            res["running"] = len(started_sleeps(sup))
        return res
    finally:
        sup.stop()
        procs.stop(baseline, grace=0)


# ----------------------------------------------------------------------------- 4. scale

def build_fork_loop(work: str) -> str:
    """Compile bench/forkloop.c (the C baselines, shared with compare.py) in this run."""
    exe = os.path.join(work, "forkloop")
    try:
        r = subprocess.run(["cc", "-O2", "-o", exe, os.path.join(REPO, "bench", "forkloop.c")],
                           capture_output=True, text=True)
    except FileNotFoundError:
        raise BenchError("no C compiler (cc) for the fork+exec baseline")
    if r.returncode != 0:
        raise BenchError("cc failed: " + r.stderr.strip().splitlines()[-1])
    return exe


def time_to_n_starts(proc: subprocess.Popen, starts: str, n: int, t0: int, what: str,
                     log: str | None = None) -> int:
    """ns from t0 to the n-th start reported in `starts`."""
    seen = wait_until(lambda: (lambda s: s if len(s) >= n else None)(read_starts(starts)),
                      60 + n * 0.05, f"{n} starts ({what})", proc, log, interval=0.005)
    return max(t for _, t in seen[:n]) - t0


def scale_config(testapp: str, starts: str, n: int) -> str:
    return (
        "[apps.scale]\n"
        f"command = {toml_array([testapp, '--report-start', starts])}\n"
        f"instances = {n}\n"
    )


def bench_scale(procs: Procs, sup_bin: str, testapp: str, work: str, sizes: list[int],
                reps: int) -> dict:
    """N instances up: supervise against the fork+exec loop, interleaved, `reps` times."""
    loop = build_fork_loop(work)
    out: dict = {}
    for n in sizes:
        sup_ns, loop_ns, sup_cpu, loop_cpu = [], [], [], []
        for rep in range(reps):
            starts = os.path.join(work, f"loop-{n}-{rep}")
            t0 = time.monotonic_ns()
            p = procs.popen([loop, "spawn", str(n), testapp, "--report-start", starts],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
            try:
                loop_ns.append(time_to_n_starts(p, starts, n, t0, "fork loop"))
                loop_cpu.append(cpu_ticks(p.pid) * 1000 / CLK_TCK)
            finally:
                procs.stop(p, grace=0)
            time.sleep(0.5)  # let the machine settle after killing n processes
            starts = os.path.join(work, f"sup-{n}-{rep}")
            t0 = time.monotonic_ns()
            sup = Supervise(procs, sup_bin, work, f"scale-{n}-{rep}",
                            scale_config(testapp, starts, n))
            try:
                sup_ns.append(time_to_n_starts(sup.proc, starts, n, t0, "supervise",
                                               sup.log))
                sup_cpu.append(cpu_ticks(sup.pid) * 1000 / CLK_TCK)
            finally:
                sup.stop()
            time.sleep(0.5)
        out[n] = {"supervise_ns": sup_ns, "loop_ns": loop_ns,
                  "supervise_cpu_ms": sup_cpu, "loop_cpu_ms": loop_cpu}
    return out


# ----------------------------------------------------------------------------- report


def fmt_ms(ns: float) -> str:
    return f"{ns / 1e6:.2f} ms"


def fmt_kib(k: int) -> str:
    return f"{k / 1024:.1f} MiB"


def ratio(a: float, b: float) -> str:
    if b == 0:
        return "= (both 0)" if a == 0 else "n/a (baseline 0)"
    return f"{a / b:.1f}×"


def report(args, command: str, res: dict, errors: list[str]) -> str:
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "## Benchmark",
        "",
        f"`{command}` on {now}, commit {revision()}; {machine()}.",
        "",
        "| measure | supervise | baseline (same run) | ratio |",
        "|---|---|---|---|",
    ]
    r, d = res.get("respawn"), res.get("direct")
    if r or d:
        n = len((r or d)["times_ns"])
        for label, fn in ((f"median of {n}", statistics.median), (f"p90 of {n}", p90)):
            a = fn(r["times_ns"]) if r else None
            b = fn(d["times_ns"]) if d else None
            lines.append(f"| respawn after `kill -9`, {label} | "
                         f"{fmt_ms(a) if r else '—'} | "
                         f"direct spawn: {fmt_ms(b) if d else '—'} | "
                         f"{ratio(a, b) if r and d else '—'} |")
    for key in ("mem4", "mem100"):
        m = res.get(key)
        if m:
            lines.append(f"| resident memory, {m['n']} instances (VmRSS) | {fmt_kib(m['rss'])} | "
                         f"one `sleep`: {fmt_kib(m['sleep_rss'])} | "
                         f"{ratio(m['rss'], m['sleep_rss'])} |")
            lines.append(f"| peak resident memory, {m['n']} instances (VmHWM) | "
                         f"{fmt_kib(m['hwm'])} | | |")
    m = res.get("mem4")
    if m and "idle_seconds" in m:
        s = f"{m['idle_seconds']:.0f} s"
        lines.append(f"| idle CPU time over {s}, 4 instances | {m['sup_cpu_ms']:.0f} ms | "
                     f"`sleep`: {m['sleep_cpu_ms']:.0f} ms | "
                     f"{ratio(m['sup_cpu_ms'], m['sleep_cpu_ms'])} |")
        lines.append(f"| idle wakeups (context switches) over {s}, 4 instances | "
                     f"{m['sup_wakeups']} | `sleep`: {m['sleep_wakeups']} | "
                     f"{ratio(m['sup_wakeups'], m['sleep_wakeups'])} |")
    for n, sc in sorted((res.get("scale") or {}).items()):
        a, b = statistics.median(sc["supervise_ns"]), statistics.median(sc["loop_ns"])
        lines.append(f"| {n} instances up, median of {len(sc['loop_ns'])} | {fmt_ms(a)} | "
                     f"fork+exec loop in C: {fmt_ms(b)} | {ratio(a, b)} |")
        a, b = statistics.median(sc["supervise_cpu_ms"]), statistics.median(sc["loop_cpu_ms"])
        lines.append(f"| CPU time of the starter until {n} are up | {a:.0f} ms | "
                     f"fork+exec loop in C: {b:.0f} ms | {ratio(a, b)} |")
    lines.append("")
    notes = []
    if r:
        notes.append("Respawn: time from `kill -9` of the instance to the first instruction of "
                     "its replacement (the test app writes its CLOCK_MONOTONIC start time), "
                     "against `fork`+`exec` of the same program from Python; "
                     f'`min_uptime = "0s"`, `restart_delay = "{r["restart_delay"]}"`.')
        notes.extend(r.get("notes", []))
    if res.get("mem4"):
        notes.append("Memory: supervise's own VmRSS/VmHWM once every instance of "
                     "`sleep 100000` is running; supervise threads: "
                     f"{res['mem4']['threads']}.")
        if "idle_seconds" in res["mem4"]:
            notes.append("Idle: CPU time (utime+stime) and voluntary+involuntary context "
                         "switches of all of supervise's threads over the window; 0 wakeups "
                         "means no periodic timer.")
    if res.get("scale"):
        notes.append("Scale: from starting supervise (or the C loop, compiled with `cc -O2` "
                     "in this run, that forks and execs the same program N times) to the "
                     "N-th `supervise-testapp --report-start` timestamp; the two alternate.")
    notes.extend(f"**Not measured**: {e}" for e in errors)
    lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 5 respawns, 5 s idle")
    ap.add_argument("--no-build", action="store_true", help="skip cargo build --release --bins --features testapp")
    ap.add_argument("--bin-dir", default=os.path.join(REPO, "target", "release"),
                    help="folder holding supervise and supervise-testapp")
    ap.add_argument("--respawns", type=int, help="respawn samples (default 20, --quick 5)")
    ap.add_argument("--idle-seconds", type=float, help="idle window (default 60, --quick 5)")
    ap.add_argument("--scale", default="200,1000",
                    help="instance counts for the scale scenario ('' = skip; default 200,1000)")
    ap.add_argument("--scale-reps", type=int, help="repetitions per count (default 5, --quick 1)")
    ap.add_argument("--only", default="",
                    help="comma-separated parts to run: direct,respawn,mem4,mem100,scale")
    ap.add_argument("--output", default=os.path.join(REPO, "bench", "results.md"),
                    help="where to write the Markdown (default bench/results.md; '' = nowhere)")
    args = ap.parse_args()
    n = args.respawns or (5 if args.quick else 20)
    idle = args.idle_seconds if args.idle_seconds is not None else (5 if args.quick else 60)
    sizes = [int(x) for x in args.scale.split(",") if x]
    scale_reps = args.scale_reps or (1 if args.quick else 5)
    command = "python3 bench/bench.py" + ("".join(" " + shlex.quote(a) for a in sys.argv[1:]))

    if not args.no_build:
        print("building: cargo build --release --bins --features testapp", file=sys.stderr)
        if subprocess.run(["cargo", "build", "--release", "--bins", "--features", "testapp"], cwd=REPO).returncode != 0:
            print("bench: the build failed", file=sys.stderr)
            return 2
    sup_bin = os.path.abspath(os.path.join(args.bin_dir, "supervise"))
    testapp = os.path.abspath(os.path.join(args.bin_dir, "supervise-testapp"))
    for b in (sup_bin, testapp):
        if not os.access(b, os.X_OK):
            print(f"bench: {b} not found or not executable", file=sys.stderr)
            return 2

    become_subreaper()
    procs = Procs()
    res: dict = {}
    errors: list[str] = []
    old_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with tempfile.TemporaryDirectory(prefix="supervise-bench-") as work:
            steps = [
                ("direct", "direct spawn baseline",
                 lambda: bench_direct(procs, testapp, work, n)),
                ("respawn", "respawn after kill -9",
                 lambda: bench_respawn(procs, sup_bin, testapp, work, n)),
                ("mem4", "memory and idle cost with 4 instances",
                 lambda: bench_memory_idle(procs, sup_bin, work, 4, idle)),
                ("mem100", "memory with 100 instances",
                 lambda: bench_memory_idle(procs, sup_bin, work, 100, 0)),
            ]
            if sizes:
                steps.append(("scale", f"instances up ({args.scale}) against a fork loop",
                              lambda: bench_scale(procs, sup_bin, testapp, work, sizes,
                                                  scale_reps)))
            only = {p for p in args.only.split(",") if p}
            for key, what, fn in steps:
                if only and key not in only:
                    continue
                print(f"bench: {what} ...", file=sys.stderr, flush=True)
                try:
                    res[key] = fn()
                except BenchError as e:
                    print(f"bench: {what} failed: {e}", file=sys.stderr)
                    errors.append(f"{what}: {str(e).splitlines()[0]}")
                finally:
                    procs.stop_all()
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, old_term)

    text = report(args, command, res, errors)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        print(f"written to {args.output}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
