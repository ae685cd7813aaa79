"""A real Spark standalone cluster on 127.0.0.1 for tests: one master, N workers, all started
from the installed `pyspark` (no download), each its own process group, stopped by pid.

    with StandaloneCluster(tmp_path / "cluster") as cluster:
        done = cluster.submit(["--py-files", wheel, "job.py", ...], env=env)
        cluster.applications()   # what the master registered: ids, names, states

Local mode runs the driver and the executors in one JVM; here the executors are separate JVMs
(and separate Python workers) that see only what the driver ships them. Everything the
cluster writes (work dirs, logs, temp files) stays under `workdir`. `isolated_python` gives
the drivers and executors a Python where `featurebank` is importable only from what
`spark-submit --py-files` ships, so a missing wheel fails here as it would on EMR.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pyspark

SPARK_HOME = Path(pyspark.__file__).resolve().parent
STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Application:
    """One application as the standalone master's JSON lists it."""

    id: str  # app-YYYYMMDDhhmmss-NNNN
    name: str
    state: str  # RUNNING | FINISHED | FAILED | KILLED ...
    cores: int  # the most cores it was granted while watched


class ClusterError(RuntimeError):
    """The cluster did not come up, or a process of it misbehaved; the message holds log tails."""


class StandaloneCluster:
    """A standalone master and `workers` workers on 127.0.0.1 (context manager).

    `start()` returns once every worker is ALIVE in the master's JSON, `stop()` (also on
    `__exit__`, whatever happened) ends every process it started by pid, process group
    first with SIGTERM, then SIGKILL after `STOP_TIMEOUT_S`. `env` is added to the
    environment of the master and the workers, hence of every executor (e.g. `TZ`).
    """

    def __init__(self, workdir: Path, *, workers: int = 2, worker_cores: int = 1, worker_memory: str = "2g",
                 env: Mapping[str, str] | None = None, startup_timeout: float = 180.0) -> None:
        self.workdir = Path(workdir).resolve()
        self.workers = workers
        self.worker_cores = worker_cores
        self.worker_memory = worker_memory
        self.startup_timeout = startup_timeout
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.web_port = free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.logs = self.workdir / "logs"
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._submissions = 0
        self._peak_cores: dict[str, int] = {}  # application id -> most cores seen granted

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> StandaloneCluster:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the master, then the workers; wait until all workers are ALIVE.

        Raises ClusterError (with the log tails) if a process exits or the workers do not
        register within `startup_timeout`; whatever was started is stopped first.
        """
        for sub in ("logs", "conf", "tmp", "local"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        try:
            self._spawn("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                   "--port", str(self.port), "--webui-port", str(self.web_port)])
            for n in range(1, self.workers + 1):
                work = self.workdir / f"worker-{n}"
                work.mkdir(exist_ok=True)
                self._spawn(f"worker-{n}", ["org.apache.spark.deploy.worker.Worker", self.master_url,
                                            "--host", "127.0.0.1", "--cores", str(self.worker_cores),
                                            "--memory", self.worker_memory, "--webui-port", str(free_port()),
                                            "--work-dir", str(work)])
            self._wait_for_workers()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> list[int]:
        """Stop every process this cluster started (workers first, then the master), by pid
        and process group; then end any process still running inside `workdir` (executors,
        their Python workers) by pid. Returns the pids of such stragglers (normally none)."""
        for _name, process in reversed(self._processes):
            _terminate(process.pid, process)
        self._processes.clear()
        stragglers = processes_under(self.workdir)
        for pid in stragglers:
            _terminate(pid, None, group=False)
        return stragglers

    # --- the master's view -----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The master's JSON status page (`/json/`): workers, cores, active and completed apps."""
        with urllib.request.urlopen(f"{self.web_url}/json/", timeout=10) as response:
            return json.loads(response.read().decode())  # type: ignore[no-any-return]

    def applications(self) -> list[Application]:
        """Every application the master registered, oldest first; `cores` is the most the
        master granted it as far as this cluster saw (see `submit`)."""
        status = self.status()
        found = []
        for key in ("activeapps", "completedapps"):
            for app in status.get(key, []) or []:
                cores = max(int(app.get("cores", 0)), self._peak_cores.get(str(app["id"]), 0))
                found.append(Application(id=str(app["id"]), name=str(app.get("name", "")),
                                         state=str(app.get("state", "")), cores=cores))
        return sorted(found, key=lambda a: a.id)

    # --- submitting ------------------------------------------------------------------------

    def submit(self, args: Sequence[str], *, env: Mapping[str, str], timeout: float = 900.0,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run `spark-submit --master <this cluster> --deploy-mode client *args` and wait.

        `env` is the driver's whole environment. The driver is its own process group and
        is killed with it on timeout (then `subprocess.TimeoutExpired` is raised). Output
        goes to `logs/submit-<n>.{out,err}` and is returned. While it runs, the master is
        polled so `applications()` can tell the cores an application was granted (the
        master reports 0 once it has finished).
        """
        self._submissions += 1
        command = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", self.master_url,
                   "--deploy-mode", "client", *args]
        out_path = self.logs / f"submit-{self._submissions}.out"
        err_path = self.logs / f"submit-{self._submissions}.err"
        with out_path.open("w") as out, err_path.open("w") as err:
            process = subprocess.Popen(command, env={**self._env(), **env}, cwd=cwd or self.workdir, stdout=out,
                                       stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(command, timeout)
                self._watch_applications()
                try:
                    process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:
            _terminate(process.pid, process)
            raise
        return subprocess.CompletedProcess(command, process.returncode, out_path.read_text(errors="replace"),
                                           err_path.read_text(errors="replace"))

    def log_tails(self, lines: int = 30) -> str:
        """The last `lines` lines of every log under `logs/`, for failure messages."""
        parts = []
        for path in sorted(self.logs.glob("*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    # --- helpers ---------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_CONF_DIR": str(self.workdir / "conf"), "SPARK_LOCAL_DIRS": str(self.workdir / "local"),
               "SPARK_DAEMON_MEMORY": "512m", "TMPDIR": str(self.workdir / "tmp"), **self.extra_env}
        env.pop("PYSPARK_GATEWAY_PORT", None)
        return env

    def _spawn(self, name: str, args: list[str]) -> None:
        out = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen([str(SPARK_HOME / "bin" / "spark-class"), *args], env=self._env(),
                                   cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self._processes.append((name, process))

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        alive = 0
        while time.monotonic() < deadline:
            for name, process in self._processes:
                if process.poll() is not None:
                    raise ClusterError(f"{name} exited with {process.returncode} while starting\n{self.log_tails()}")
            try:
                workers = self.status().get("workers", []) or []
                alive = sum(1 for w in workers if w.get("state") == "ALIVE")
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                alive = 0  # the master's web UI is not up yet
            if alive >= self.workers:
                return
            time.sleep(0.5)
        raise ClusterError(f"{alive} of {self.workers} workers ALIVE after {self.startup_timeout:.0f}s\n{self.log_tails()}")

    def _watch_applications(self) -> None:
        try:
            running = self.status().get("activeapps", []) or []
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return
        for app in running:
            key = str(app["id"])
            self._peak_cores[key] = max(self._peak_cores.get(key, 0), int(app.get("cores", 0)))


def isolated_python(directory: Path) -> Path:
    """Write `directory/python`: this venv's interpreter and libraries (pandas, pyarrow, ...)
    but without `.pth` processing, so the editable `featurebank` install is invisible and the
    package imports only from a path Spark adds (the `--py-files` wheel). Returns its path.

    `-S` skips `site` (hence every `.pth`); the venv's site-packages comes back through
    PYTHONPATH, which never processes `.pth` files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "python"
    site_packages = sysconfig.get_paths()["purelib"]
    script.write_text(
        "#!/bin/sh\n"
        "# featurebank only from what spark-submit ships (--py-files), never the editable install\n"
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site_packages}" exec "{sys.executable}" -S "$@"\n'
    )
    script.chmod(0o755)
    return script


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_under(directory: Path) -> list[int]:
    """Pids of running processes whose working directory is `directory` or below it
    (executors run in their worker's work dir, their Python workers too)."""
    root = str(Path(directory).resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + os.sep):
            found.append(int(entry.name))
    return sorted(found)


def _terminate(pid: int, process: subprocess.Popen[str] | subprocess.Popen[bytes] | None, *,
               group: bool = True) -> None:
    """SIGTERM the process group led by `pid` (with `group`) or the lone pid, wait until
    nothing of it runs, else SIGKILL after STOP_TIMEOUT_S. `process` is reaped if given."""
    def send(sig: signal.Signals) -> None:
        try:
            (os.killpg if group else os.kill)(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def gone() -> bool:
        if process is not None:
            process.poll()
        leader_gone = process.returncode is not None if process is not None else not _stat(pid)
        return leader_gone and not (group and _group_members(pid))

    send(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while not gone():
        if time.monotonic() > deadline:
            send(signal.SIGKILL)
            break
        time.sleep(0.2)
    if process is not None:
        process.wait(timeout=STOP_TIMEOUT_S)


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...); [] if the
    process is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []
    return [] if fields[0] == "Z" else fields


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members
