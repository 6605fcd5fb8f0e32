"""The four supervisors bench/compare.py measures, behind one small interface.

Each peer turns a list of `App`s into its own configuration (supervise's TOML, PM2's JSON
ecosystem, supervisord's INI, one horust service file per instance), starts its
supervisor in a work folder, names the process whose cost is measured (PM2: its daemon),
and can restart or reload an app where it has a way to. Installation into a scratch
folder is here too: PM2 from npm, supervisord from PyPI (a venv), horust from crates.io
(`cargo install --root`), wrk, tini and dumb-init from Debian. A peer that cannot be
installed is skipped with a note.

Only processes the benchmark started are ever signalled, by pid (bench.py's Procs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

from bench import Procs, wait_until
from common import REPO, BenchError

PM2_VERSION = "7.0.4"
SUPERVISOR_VERSION = "4.3.0"
HORUST_VERSION = "0.1.14"


def log(msg: str) -> None:
    print(f"compare: {msg}", file=sys.stderr, flush=True)


class NotSupported(Exception):
    """The peer has no way to do this (shown as n/a)."""


@dataclasses.dataclass
class App:
    name: str
    argv: list[str]
    instances: int = 1
    env: dict = dataclasses.field(default_factory=dict)
    cwd: str | None = None
    # Restart at once after any exit, no backoff, no limit (crash loop, respawn).
    eager: bool = False
    # Cluster: a port on 127.0.0.1 that the instances share (supervise `listen`, PM2
    # cluster mode); peers without a way to share one run a single instance on it.
    port: int | None = None
    # The app's own output goes to this file where the peer writes a file per app.
    out: str | None = None


# ----------------------------------------------------------------------------- install


def run_quiet(argv: list[str], cwd: str | None = None, timeout: float = 1200,
              env: dict | None = None) -> bool:
    try:
        p = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"{' '.join(argv[:4])}: {e}")
        return False
    if p.returncode != 0:
        log(f"{' '.join(argv[:4])} failed ({p.returncode}):\n"
            + "\n".join("    " + l for l in (p.stdout + p.stderr).splitlines()[-8:]))
    return p.returncode == 0


def install_apt(programs: list[str]) -> None:
    missing = [p for p in programs if not shutil.which(p)]
    if not missing or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    log(f"apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not run_quiet(["apt-get", "install", "-y", "-q", *missing], env=env):
        run_quiet(["apt-get", "update", "-q"], env=env)
        run_quiet(["apt-get", "install", "-y", "-q", *missing], env=env)


def install_pm2(scratch: str) -> str | None:
    folder = os.path.join(scratch, "pm2")
    binary = os.path.join(folder, "node_modules", ".bin", "pm2")
    if not os.access(binary, os.X_OK):
        if not shutil.which("npm") or not shutil.which("node"):
            log("PM2 skipped: node/npm not found")
            return None
        os.makedirs(folder, exist_ok=True)
        log(f"installing PM2 {PM2_VERSION} (npm) into {folder}")
        if not run_quiet(["npm", "install", "--no-audit", "--no-fund", "--prefix", folder,
                          f"pm2@{PM2_VERSION}"]):
            return None
    return binary if os.access(binary, os.X_OK) else None


def install_supervisord(scratch: str) -> str | None:
    venv = os.path.join(scratch, "supervisord")
    binary = os.path.join(venv, "bin", "supervisord")
    if not os.access(binary, os.X_OK):
        log(f"installing supervisor {SUPERVISOR_VERSION} (pip, a venv) into {venv}")
        if not run_quiet([sys.executable, "-m", "venv", venv]):
            return None
        if not run_quiet([os.path.join(venv, "bin", "pip"), "install", "-q",
                          f"supervisor=={SUPERVISOR_VERSION}"]):
            return None
    return binary if os.access(binary, os.X_OK) else None


def install_horust(scratch: str) -> str | None:
    root = os.path.join(scratch, "horust")
    binary = os.path.join(root, "bin", "horust")
    if not os.access(binary, os.X_OK):
        if not shutil.which("cargo"):
            log("horust skipped: cargo not found")
            return None
        log(f"installing horust {HORUST_VERSION} (cargo install, a few minutes) into {root}")
        if not run_quiet(["cargo", "install", "--locked", "--root", root,
                          "--version", HORUST_VERSION, "horust"], timeout=1800):
            if not run_quiet(["cargo", "install", "--root", root, "--version",
                              HORUST_VERSION, "horust"], timeout=1800):
                return None
    return binary if os.access(binary, os.X_OK) else None


def build_forkloop(scratch: str) -> str | None:
    binary = os.path.join(scratch, "forkloop")
    source = os.path.join(REPO, "bench", "forkloop.c")
    if (not os.access(binary, os.X_OK)
            or os.path.getmtime(binary) < os.path.getmtime(source)):
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc or not run_quiet([cc, "-O2", "-o", binary, source]):
            return None
    return binary


def tool_version(argv: list[str]) -> str:
    with contextlib.suppress(Exception):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        text = (p.stdout + p.stderr).strip()
        m = re.search(r"\d+\.\d+(\.\d+)?", text)
        return m.group(0) if m else text.splitlines()[0]
    return "?"


# ----------------------------------------------------------------------------- peers


def toml_str(s: str) -> str:
    return json.dumps(s)


def node_free_env(extra: dict | None = None) -> dict:
    """Our environment without what would confuse a supervisor or its children."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LISTEN_", "NOTIFY_SOCKET", "SUPERVISE_", "PM2_",
                                "NODE_APP", "SUPERVISOR_"))}
    env["NO_COLOR"] = "1"
    env.update(extra or {})
    return env


class Peer:
    name = "?"
    version = "?"

    def __init__(self, procs: Procs, work: str):
        self.procs, self.work = procs, work
        self.proc: subprocess.Popen | None = None
        self.apps: list[App] = []
        self.log = os.path.join(work, f"{self.key}.out")

    key = "peer"

    def start(self, apps: list[App]) -> None:
        raise NotImplementedError

    def pid(self) -> int:
        """The process whose cost is measured."""
        assert self.proc is not None
        return self.proc.pid

    def out_file(self, app: App) -> str:
        """Where the app's stdout lands."""
        return app.out or self.log

    def restart(self, app: App) -> None:
        raise NotSupported(f"{self.name} has no restart command")

    def reload(self, app: App, version: str) -> None:
        raise NotSupported(f"{self.name} has no reload")

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited (code {self.proc.returncode})"
                             + tail(self.log))

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None

    def popen(self, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        out = open(self.log, "ab")
        try:
            return self.procs.popen(argv, cwd=self.work, env=env or node_free_env(),
                                    stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)
        finally:
            out.close()


def tail(path: str, n: int = 12) -> str:
    with contextlib.suppress(OSError):
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 8192))
            lines = f.read().decode(errors="replace").splitlines()[-n:]
        return "\n" + "\n".join("    " + l for l in lines)
    return ""


class Supervise(Peer):
    name, key = "supervise", "supervise"

    def __init__(self, procs: Procs, work: str, binary: str):
        super().__init__(procs, work)
        self.binary = binary
        self.version = tool_version([binary, "--version"])
        self.eco = os.path.join(work, "ecosystem.toml")
        self.socket = os.path.join(work, "supervise.sock")

    def config(self, apps: list[App]) -> str:
        out = []
        for a in apps:
            out.append(f"[apps.{a.name}]")
            out.append("command = [" + ", ".join(toml_str(x) for x in a.argv) + "]")
            out.append(f"instances = {a.instances}")
            if a.cwd:
                out.append(f"cwd = {toml_str(a.cwd)}")
            env = dict(a.env, **({"PORT": str(a.port)} if a.port else {}))
            if env:
                out.append("env = { " + ", ".join(f"{k} = {toml_str(v)}"
                                                  for k, v in env.items()) + " }")
            if a.eager:
                out += ['restart_delay = "0s"', 'backoff_max = "0s"', 'min_uptime = "0s"',
                        "max_restarts = 0"]
            if a.port:
                out.append(f'listen = ["tcp://127.0.0.1:{a.port}"]')
                out.append('ready = { delay = "500ms" }')
                out.append('stop_timeout = "5s"')
            out.append("")
        return "\n".join(out)

    def start(self, apps: list[App]) -> None:
        self.apps = apps
        with open(self.eco, "w") as f:
            f.write(self.config(apps))
        self.proc = self.popen([self.binary, self.eco],
                               node_free_env({"SUPERVISE_SOCKET": self.socket}))

    def out_file(self, app: App) -> str:
        return self.log  # supervise prints its apps' output on its own stdout

    def restart(self, app: App) -> None:
        p = subprocess.run([self.binary, "restart", app.name], capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL,
                           env=node_free_env({"SUPERVISE_SOCKET": self.socket}))
        if p.returncode != 0:
            raise BenchError(f"supervise restart {app.name}: {p.stdout}{p.stderr}")

    def reload(self, app: App, version: str) -> None:
        """Save the file with a new VERSION in the app's env, as an editor does."""
        app.env["VERSION"] = version
        tmp = self.eco + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.config(self.apps))
        os.replace(tmp, self.eco)


class PM2(Peer):
    name, key = "PM2", "pm2"

    def __init__(self, procs: Procs, work: str, binary: str):
        super().__init__(procs, work)
        self.binary = binary
        self.home = os.path.join(work, "pm2-home")
        os.makedirs(self.home, exist_ok=True)
        self.version = PM2_VERSION
        self.eco = os.path.join(work, "ecosystem.config.json")

    def cli(self, *argv: str, env: dict | None = None, timeout: float = 300) -> str:
        e = node_free_env({"PM2_HOME": self.home, **(env or {})})
        with open(self.log, "a") as f:
            f.write(f"$ pm2 {' '.join(argv)}\n")
        try:
            p = subprocess.run([self.binary, *argv], cwd=self.work, env=e,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"pm2 {' '.join(argv)} did not return within {timeout:g} s")
        with open(self.log, "a") as f:
            f.write(p.stdout + p.stderr)
        if p.returncode != 0:
            raise BenchError(f"pm2 {' '.join(argv)} failed ({p.returncode})" + tail(self.log))
        return p.stdout

    def config(self, apps: list[App]) -> dict:
        out = []
        for a in apps:
            cluster = a.port is not None
            entry = {
                "name": a.name,
                "script": a.argv[0] if not cluster else a.argv[-1],
                "args": a.argv[1:] if not cluster else [],
                "instances": a.instances,
                "exec_mode": "cluster" if cluster else "fork",
                "autorestart": True,
                "merge_logs": True,
                "out_file": self.out_file(a),
                "error_file": self.out_file(a),
                "pid_file": os.path.join(self.home, f"{a.name}.pid"),
                "env": dict(a.env, **({"PORT": str(a.port)} if cluster else {})),
                "kill_timeout": 5000,
            }
            if not cluster:
                entry["interpreter"] = "none"
            if a.cwd:
                entry["cwd"] = a.cwd
            if a.eager:
                entry.update(restart_delay=0, min_uptime=0, max_restarts=100_000_000)
            out.append(entry)
        return {"apps": out}

    def out_file(self, app: App) -> str:
        return app.out or os.path.join(self.work, f"pm2-{app.name}.log")

    def start(self, apps: list[App]) -> None:
        self.apps = apps
        with open(self.eco, "w") as f:
            json.dump(self.config(apps), f, indent=1)
        self.cli("start", self.eco)

    def pid(self) -> int:
        path = os.path.join(self.home, "pm2.pid")
        return wait_until(lambda: read_int(path), 30, "PM2's daemon pid file")

    def check(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            pid = read_int(os.path.join(self.home, "pm2.pid"))
            if pid:
                os.kill(pid, 0)
                return
        raise BenchError("PM2's daemon is gone" + tail(self.log))

    def restart(self, app: App) -> None:
        self.cli("restart", app.name)

    def reload(self, app: App, version: str) -> None:
        app.env["VERSION"] = version
        self.cli("reload", app.name, "--update-env", env={"VERSION": version})

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.cli("kill", timeout=60)
        # The daemon was reparented to us (a subreaper): Procs.stop_all() finds what is left.


def read_int(path: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            return int(f.read().strip())
    return None


class Supervisord(Peer):
    name, key = "supervisord", "supervisord"

    def __init__(self, procs: Procs, work: str, binary: str):
        super().__init__(procs, work)
        self.binary = binary
        self.ctl = os.path.join(os.path.dirname(binary), "supervisorctl")
        self.version = SUPERVISOR_VERSION
        self.conf = os.path.join(work, "supervisord.conf")

    def config(self, apps: list[App]) -> str:
        w = self.work
        out = [
            "[supervisord]", "nodaemon=true", f"logfile={w}/supervisord.log",
            f"pidfile={w}/supervisord.pid", "minfds=16384", "minprocs=4096",
            f"childlogdir={w}", "loglevel=warn", "",
            "[unix_http_server]", f"file={w}/supervisord.sock", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "", "[supervisorctl]", f"serverurl=unix://{w}/supervisord.sock", "",
        ]
        for a in apps:
            n = 1 if a.port else a.instances
            env = dict(a.env, **({"PORT": str(a.port)} if a.port else {}))
            out += [
                f"[program:{a.name}]",
                "command=" + " ".join(shlex.quote(x).replace("%", "%%") for x in a.argv),
                f"numprocs={n}",
                "process_name=%(program_name)s_%(process_num)d",
                "autorestart=true",
                "startsecs=0" if a.eager or not a.port else "startsecs=1",
                "startretries=100000000",
                "stopwaitsecs=5",
                "redirect_stderr=true",
                f"stdout_logfile={self.out_file(a)}",
                "stdout_logfile_maxbytes=0",
            ]
            if a.cwd:
                out.append(f"directory={a.cwd}")
            if env:
                out.append("environment=" + ",".join(
                    f'{k}="{v}"' for k, v in env.items()))
            out.append("")
        return "\n".join(out)

    def out_file(self, app: App) -> str:
        return app.out or os.path.join(self.work, f"supervisord-{app.name}.log")

    def start(self, apps: list[App]) -> None:
        self.apps = apps
        with open(self.conf, "w") as f:
            f.write(self.config(apps))
        self.proc = self.popen([self.binary, "-n", "-c", self.conf])

    def ctl_run(self, *argv: str) -> None:
        p = subprocess.run([self.ctl, "-c", self.conf, *argv], capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        if p.returncode != 0 or "ERROR" in p.stdout:
            raise BenchError(f"supervisorctl {' '.join(argv)}: {p.stdout}{p.stderr}")

    def restart(self, app: App) -> None:
        self.ctl_run("restart", f"{app.name}:*")

    def reload(self, app: App, version: str) -> None:
        """A new VERSION in the file, then `supervisorctl update` (restarts the group)."""
        app.env["VERSION"] = version
        with open(self.conf, "w") as f:
            f.write(self.config(self.apps))
        self.ctl_run("update")


class Horust(Peer):
    name, key = "horust", "horust"

    def __init__(self, procs: Procs, work: str, binary: str):
        super().__init__(procs, work)
        self.binary = binary
        self.version = HORUST_VERSION
        self.services = os.path.join(work, "horust-services")
        self.uds = os.path.join(work, "horust-uds")

    def start(self, apps: list[App]) -> None:
        self.apps = apps
        os.makedirs(self.services, exist_ok=True)
        os.makedirs(self.uds, exist_ok=True)
        for a in apps:
            n = 1 if a.port else a.instances
            env = dict(a.env, **({"PORT": str(a.port)} if a.port else {}))
            for i in range(n):
                lines = [
                    f'command = {toml_str(shlex.join(a.argv))}',
                    f"working-directory = {toml_str(a.cwd or self.work)}",
                    f"stdout = {toml_str(self.out_file(a))}",
                    'stderr = "STDOUT"',
                    "[restart]",
                    'strategy = "always"',
                    'backoff = "0s"',
                    "attempts = 0",
                    "[termination]",
                    'wait = "5s"',
                    "[environment]",
                    "keep-env = true",
                ]
                if env:
                    lines.append("additional = { " + ", ".join(
                        f"{k} = {toml_str(v)}" for k, v in env.items()) + " }")
                with open(os.path.join(self.services, f"{a.name}-{i}.toml"), "w") as f:
                    f.write("\n".join(lines) + "\n")
        self.proc = self.popen([self.binary, "--services-path", self.services,
                                "--uds-folder-path", self.uds])

    def out_file(self, app: App) -> str:
        return app.out or os.path.join(self.work, f"horust-{app.name}.log")


PEERS = {"pm2": PM2, "supervisord": Supervisord, "horust": Horust, "supervise": Supervise}
