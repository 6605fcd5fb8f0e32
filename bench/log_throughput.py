#!/usr/bin/env python3
"""Log throughput: what capturing an app's output costs against writing it to a file directly.

Two shapes (issue 10 item 7), each beside its baseline measured in the same run:

- burst:  N_BURST bytes of 100-byte lines written in 64 KiB writes as fast as possible;
- single: N_SINGLE 100-byte lines, one write(2) each.

The app is `dd` copying a prepared file (so the app itself costs little). Baseline: `dd`
with its stdout redirected to a file. supervise: the same `dd`
as the one app of an ecosystem file, supervise's stdout redirected to a file (text format,
with prefixes, no colour); the time runs from starting supervise until its output file holds
every line. supervise's CPU (user + system, all its threads, not the app's) is read from
/proc at that moment and divided by the number of lines.

Python 3.11 standard library only, Linux. Nothing is asserted; ratios are printed and,
with --output, written as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from common import REPO, BenchError, machine, revision

LINE = 100  # bytes per line, newline included
def make_input(path: str, lines: int) -> None:
    """`lines` lines of LINE bytes, each starting with its number."""
    pad = b"x" * (LINE - 12)
    with open(path, "wb") as f:
        for start in range(0, lines, 10000):
            f.write(b"".join(b"%010d %s\n" % (i, pad)
                             for i in range(start, min(lines, start + 10000))))


def gen_argv(data: str, mode: str) -> list[str]:
    """dd copies the file in 64 KiB writes (burst) or one write(2) per line (single)."""
    bs = str(65536 // LINE * LINE) if mode == "burst" else str(LINE)
    return ["dd", f"if={data}", f"bs={bs}", "status=none"]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_ms(pid: int) -> tuple[float, float]:
    """CPU time (schedstat, ns precision) of supervise's loop (the main thread) and of its
    stdout writer thread, in ms."""
    loop = writer = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ms = int(f.read().split()[0]) / 1e6
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(tid) == pid:
            loop += ms
        elif comm == "supervise-outpu":  # "supervise-output", cut to 15 bytes
            writer += ms
    return loop, writer


def switches(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for l in f:
                    if "ctxt_switches" in l:
                        total += int(l.split()[1])
        except OSError:
            pass
    return total


def direct(work: str, data: str, mode: str, lines: int) -> dict:
    out = os.path.join(work, "direct.out")
    with open(out, "wb") as f:
        t0 = time.perf_counter()
        subprocess.run(gen_argv(data, mode), stdout=f, check=True)
        wall = time.perf_counter() - t0
    if os.path.getsize(out) != lines * LINE:
        raise BenchError(f"direct {mode}: {os.path.getsize(out)} bytes, not {lines * LINE}")
    os.unlink(out)
    return {"wall": wall, "lines": lines}


def supervised(work: str, binary: str, data: str, mode: str, lines: int) -> dict:
    # The ecosystem file in a folder of its own: supervise watches that folder, and its
    # output file there would cost an inotify event per write.
    os.makedirs(os.path.join(work, "conf"), exist_ok=True)
    eco = os.path.join(work, "conf", "eco.toml")
    out = os.path.join(work, "supervise.out")
    # The app stays up once done, so that supervise's CPU can be read.
    argv = ["sh", "-c", shlex.join(gen_argv(data, mode)) + " && exec sleep 100000"]
    with open(eco, "w") as f:
        f.write("[apps.bench]\ncommand = [" + ", ".join(json.dumps(a) for a in argv)
                + ']\nrestart = "never"\n')
    env = dict(os.environ, NO_COLOR="1", SUPERVISE_SOCKET=os.path.join(work, "s.sock"))
    prefix = len("bench.0   | ")  # names padded to the width of "supervise"
    want = lines * (LINE + prefix)
    with open(out, "wb") as f:
        t0 = time.perf_counter()
        p = subprocess.Popen([binary, eco], stdout=f, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, env=env, cwd=work,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while os.path.getsize(out) < want:
            if p.poll() is not None:
                raise BenchError(f"supervise exited early ({p.returncode})")
            if time.monotonic() > deadline:
                raise BenchError(f"supervise {mode}: timed out")
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(p.pid)
        loop_ms, writer_ms = thread_cpu_ms(p.pid)
        ctx = switches(p.pid)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    got = 0
    split = 0
    with open(out, "rb") as f:
        for l in f:
            if l.startswith(b"bench.0"):
                got += 1
                if len(l) != LINE + prefix:
                    split += 1
    os.unlink(out)
    if got != lines or split:
        raise BenchError(f"supervise {mode}: {got} of {lines} lines, {split} not whole")
    return {"wall": wall, "cpu": cpu, "lines": lines, "ctx": ctx, "loop_ms": loop_ms,
            "writer_ms": writer_ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-build", action="store_true", help="skip cargo build --release")
    ap.add_argument("--supervise", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "supervise"))
    ap.add_argument("--burst-bytes", type=int, default=200_000_000)
    ap.add_argument("--single-lines", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each; medians (default 3)")
    ap.add_argument("--output", default="", help="also write the Markdown table here")
    args = ap.parse_args()
    command = "python3 bench/log_throughput.py" + "".join(
        " " + shlex.quote(a) for a in sys.argv[1:])
    if not args.no_build:
        print("building: cargo build --release --bin supervise", file=sys.stderr)
        if subprocess.run(["cargo", "build", "--release", "--bin", "supervise"],
                          cwd=REPO).returncode != 0:
            return 2
    binary = os.path.abspath(args.supervise)
    rows = []
    with tempfile.TemporaryDirectory(prefix="supervise-logbench-", dir=os.environ.get(
            "BENCH_DIR", "/var/tmp")) as work:
        for mode, n in (("burst", args.burst_bytes), ("single", args.single_lines)):
            lines = n // LINE if mode == "burst" else n
            data = os.path.join(work, f"{mode}.in")
            make_input(data, lines)
            base, sup = [], []
            for r in range(args.rounds):
                print(f"bench: {mode} round {r + 1}", file=sys.stderr, flush=True)
                base.append(direct(work, data, mode, lines))
                sup.append(supervised(work, binary, data, mode, lines))
            b = statistics.median(x["wall"] for x in base)
            s = statistics.median(x["wall"] for x in sup)
            cpu = statistics.median(x["cpu"] for x in sup)
            ctx = statistics.median(x["ctx"] for x in sup)
            loop_ms = statistics.median(x["loop_ms"] for x in sup)
            writer_ms = statistics.median(x["writer_ms"] for x in sup)
            what = (f"{n / 1e6:g} MB of {LINE}-byte lines, 64 KiB writes" if mode == "burst"
                    else f"{n:,} lines of {LINE} bytes, one write each")
            rows.append(f"| {mode}: {what} | {b:.2f} s | {s:.2f} s | **{s / b:.2f}x** | "
                        f"{cpu:.2f} s | **{cpu / lines * 1e6:.2f} us** | {ctx / lines:.3f} | "
                        f"{loop_ms:.1f} / {writer_ms:.1f} ms |")
    text = "\n".join([
        "# Log throughput",
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"commit {revision()}, {machine()}; medians of {args.rounds} runs.",
        "",
        "| shape | direct to a file | through supervise | ratio | supervise CPU "
        "| CPU per line | context switches per line | CPU of the loop / the stdout writer |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
