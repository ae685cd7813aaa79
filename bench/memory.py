"""Peak memory of a measured subprocess and everything it starts (the Spark JVM, Python).

Read from /proc, no extra dependency: every `interval` seconds the sampler walks the process
tree under the child and reads each process's `VmHWM` (the kernel's own high-water mark of
resident memory, so a peak between two samples is not missed) and `VmRSS` (for the
tree's total at that instant). Linux only, which is where the benchmark runs.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field


@dataclass
class MemoryPeak:
    """Peak resident memory in bytes: the largest JVM, the largest Python process, and the
    largest sum over the whole tree seen at one sample. The sum uses PSS (proportional set
    size), because the JVM forks short-lived helpers (Hadoop's local file system runs chmod
    and friends) whose RSS would count the JVM's shared pages twice."""

    jvm_bytes: int = 0
    python_bytes: int = 0
    total_bytes: int = 0
    processes: dict[int, str] = field(default_factory=dict)  # pid -> kind, every one seen

    def as_dict(self) -> dict[str, int]:
        return {"jvm_bytes": self.jvm_bytes, "python_bytes": self.python_bytes, "total_bytes": self.total_bytes}


def _children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # the command name may contain spaces and parentheses: the ppid follows the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(name))
    return tree


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, now."""
    tree = _children_map()
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(tree.get(p, []))
    return found


def _pss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _status(pid: int) -> tuple[str, int, int] | None:
    """(kind, VmHWM bytes, PSS bytes — VmRSS where PSS is unavailable) of one process, or
    None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    hwm = int(fields.get("VmHWM", "0 kB").split()[0]) * 1024
    rss = _pss(pid)
    if rss is None:
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    base = os.path.basename(cmd)
    kind = "jvm" if base == "java" else "python" if base.startswith("python") else "other"
    return kind, hwm, rss


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and every live process below it,
    plus what their already-exited, waited-for children used. Less sensitive than wall time
    to other work on a shared machine, so it is reported beside it."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().decode(errors="replace").rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based from state
        total += sum(int(x) for x in fields[11:15])
    return total / ticks


class MemorySampler:
    """Samples the tree under `pid` on a background thread until `stop()`.

    Usage:
        sampler = MemorySampler(proc.pid).start()
        proc.wait()
        peak = sampler.stop()
    """

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = MemoryPeak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        """Take one sample now (also called by the thread)."""
        total = 0
        for p in descendants(self.pid):
            status = _status(p)
            if status is None:
                continue
            kind, hwm, rss = status
            self.peak.processes[p] = kind
            total += rss
            if kind == "jvm":
                self.peak.jvm_bytes = max(self.peak.jvm_bytes, hwm)
            elif kind == "python":
                self.peak.python_bytes = max(self.peak.python_bytes, hwm)
        self.peak.total_bytes = max(self.peak.total_bytes, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> MemoryPeak:
        """Stop sampling and return the peaks seen."""
        self._stop.set()
        self._thread.join()
        return self.peak
