#!/usr/bin/env python3
"""Figures for running in containers (issue 12), one command:

    python3 bench/containers.py [--skip-build]

1. The static (musl) release build against the glibc release build: file size, stripped
   size, and supervise's resident memory once 4 instances of `sleep` run, idle.
2. With `settings.http` set (when the build has it): latency of a GET /metrics with 500
   instances (median and p90 of 50 scrapes on one keep-alive-free connection each), and
   supervise's CPU time over 10 s with nobody scraping (must be 0).

Stdlib only. Release builds: `cargo build --release` and
`cargo build --release --target x86_64-unknown-linux-musl`.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import REPO, machine, revision

MUSL = "x86_64-unknown-linux-musl"
GLIBC_BIN = os.path.join(REPO, "target", "release", "supervise")
MUSL_BIN = os.path.join(REPO, "target", MUSL, "release", "supervise")


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                pass
    return out


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def start(binary: str, config: str, instances: int, tmp: str) -> subprocess.Popen:
    env = dict(os.environ, SUPERVISE_SOCKET=os.path.join(tmp, "ctl.sock"), NO_COLOR="1")
    proc = subprocess.Popen([binary, config], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    wait_until(lambda: len(children(proc.pid)) >= instances, 60, f"{instances} instances")
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)


def idle_rss(binary: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "eco.toml")
        with open(config, "w") as f:
            f.write('[apps.idle]\ncommand = ["sleep", "infinity"]\ninstances = 4\n')
        proc = start(binary, config, 4, tmp)
        time.sleep(2)  # settle: let start-up allocations be freed
        rss = status_kib(proc.pid, "VmRSS")
        stop(proc)
        return rss


def http_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_figures(binary: str) -> tuple[list[float], int, int]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "eco.toml")
        with open(config, "w") as f:
            f.write(f'[settings]\nhttp = "127.0.0.1:{port}"\n'
                    '[apps.idle]\ncommand = ["sleep", "infinity"]\ninstances = 500\n')
        proc = start(binary, config, 500, tmp)
        wait_until(lambda: b" 200 " in http_get(port, "/readyz").split(b"\r\n")[0] + b" ",
                   60, "/readyz 200")
        times = []
        size = 0
        for _ in range(50):
            t0 = time.perf_counter()
            body = http_get(port, "/metrics")
            times.append((time.perf_counter() - t0) * 1000)
            size = len(body)
        time.sleep(1)
        before = cpu_ticks(proc.pid)
        time.sleep(10)
        idle = cpu_ticks(proc.pid) - before
        stop(proc)
        return times, size, idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-build", action="store_true")
    args = parser.parse_args()
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
        subprocess.run(["cargo", "build", "--release", "--target", MUSL], cwd=REPO, check=True)
    print(f"# {machine()}; revision {revision()}; {time.strftime('%Y-%m-%d')}")
    print("| build | file | stripped | idle RSS, 4 instances |")
    print("|---|---|---|---|")
    for name, binary in [("glibc (dynamic)", GLIBC_BIN), ("musl (static)", MUSL_BIN)]:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "stripped")
            subprocess.run(["strip", "-o", out, binary], check=True)
            stripped = os.path.getsize(out)
        rss = idle_rss(binary)
        print(f"| {name} | {os.path.getsize(binary) / 2**20:.2f} MiB | "
              f"{stripped / 2**20:.2f} MiB | {rss / 1024:.1f} MiB |")
    try:
        times, size, idle = http_figures(GLIBC_BIN)
    except SystemExit as e:
        print(f"http figures skipped: {e}", file=sys.stderr)
        return
    times.sort()
    print(f"\nGET /metrics with 500 instances ({size / 1024:.0f} KiB): median "
          f"{statistics.median(times):.2f} ms, p90 {times[int(len(times) * 0.9)]:.2f} ms "
          f"over {len(times)} scrapes")
    print(f"supervise CPU over 10 s with http set and nobody scraping: {idle} ticks")


if __name__ == "__main__":
    main()
