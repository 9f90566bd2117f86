"""Caps the kernel enforces for one submission: a cgroup holding all its processes (Linux, root).

Where the grader may create cgroups (root on a host with cgroup v1 hierarchies
or a cgroup v2 tree with the memory, pids and cpu controllers), every
submission's probes run in a group of their own:

* memory: everything the kernel charges to it counts toward the cap, pages
  shared between its processes, memory-backed files (``/dev/shm``, memfd)
  and the page cache it dirties included, and an out-of-memory kill picks
  one of its processes, never the grader or another student's;
* pids: its processes at once;
* cpu: groups graded at the same time get equal shares, however many busy
  processes one of them starts.

Where none can be created (inside Docker, as on Gradescope; not root), the
server's watchdog caps memory instead (``contain.Watchdog``). Standard library
only: the grader and the worker server both use it.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
V2_CONTROLLERS = ("memory", "pids", "cpu")


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _stat_value(text: str, key: str) -> int:
    """The number after ``key`` in a flat-keyed cgroup file (memory.events, cpu.stat, oom_control)."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


@dataclass
class Group:
    """One cgroup: a folder per v1 hierarchy (memory, pids, cpu, cpuacct), or one v2 folder."""

    version: int
    dirs: dict[str, str] = field(default_factory=dict)   # controller -> folder (v2: "unified" -> folder)

    def to_dict(self) -> dict:
        return {"version": self.version, "dirs": self.dirs}

    @classmethod
    def from_dict(cls, data: dict) -> Group:
        return cls(int(data["version"]), {str(k): str(v) for k, v in data["dirs"].items()})

    def _folders(self) -> list[str]:
        return list(dict.fromkeys(self.dirs.values()))

    def _dir(self, controller: str) -> str:
        return self.dirs["unified"] if self.version == 2 else self.dirs[controller]

    def child(self, name: str) -> Group:
        """A new group inside this one (controllers enabled for its own children on v2)."""
        dirs = {}
        for controller, folder in self.dirs.items():
            dirs[controller] = os.path.join(folder, name)
        for folder in dict.fromkeys(dirs.values()):
            os.makedirs(folder, exist_ok=True)
        return Group(self.version, dirs)

    def enable_controllers(self) -> None:
        """v2: let this group's children use the memory, pids and cpu controllers."""
        if self.version == 2:
            _write(os.path.join(self.dirs["unified"], "cgroup.subtree_control"),
                   " ".join("+" + c for c in V2_CONTROLLERS))

    def limit(self, memory_bytes: int, pids: int) -> None:
        """Cap the group's memory (no swap beyond it) and its processes at once."""
        if self.version == 2:
            d = self.dirs["unified"]
            _write(os.path.join(d, "memory.max"), str(memory_bytes))
            if os.path.exists(os.path.join(d, "memory.swap.max")):
                _write(os.path.join(d, "memory.swap.max"), "0")
            _write(os.path.join(d, "pids.max"), str(pids))
            return
        _write(os.path.join(self.dirs["memory"], "memory.limit_in_bytes"), str(memory_bytes))
        memsw = os.path.join(self.dirs["memory"], "memory.memsw.limit_in_bytes")
        if os.path.exists(memsw):
            try:
                _write(memsw, str(memory_bytes))
            except OSError:
                pass
        _write(os.path.join(self.dirs["pids"], "pids.max"), str(pids))

    def join(self, pid: int = 0) -> None:
        """Move ``pid`` (0: the calling process) into the group, in every hierarchy."""
        for folder in self._folders():
            _write(os.path.join(folder, "cgroup.procs"), str(pid))

    def procs(self) -> list[int]:
        """Processes in the group (and, on v2, not in its children)."""
        out: set[int] = set()
        for folder in self._folders():
            try:
                out.update(int(p) for p in _read(os.path.join(folder, "cgroup.procs")).split())
            except (OSError, ValueError):
                pass
        return sorted(out)

    def oom_kills(self) -> int:
        """How many of its processes the kernel killed for going over the memory cap."""
        try:
            if self.version == 2:
                return _stat_value(_read(os.path.join(self.dirs["unified"], "memory.events")), "oom_kill")
            return _stat_value(_read(os.path.join(self.dirs["memory"], "memory.oom_control")), "oom_kill")
        except (OSError, ValueError):
            return 0

    def memory_failures(self) -> int:
        """How often an allocation of the group hit the cap (v1 failcnt, v2 memory.events max)."""
        try:
            if self.version == 2:
                return _stat_value(_read(os.path.join(self.dirs["unified"], "memory.events")), "max")
            return int(_read(os.path.join(self.dirs["memory"], "memory.failcnt")))
        except (OSError, ValueError):
            return 0

    def cpu_seconds(self) -> float:
        """CPU time all its processes have used."""
        try:
            if self.version == 2:
                return _stat_value(_read(os.path.join(self.dirs["unified"], "cpu.stat")), "usage_usec") / 1e6
            return int(_read(os.path.join(self.dirs["cpuacct"], "cpuacct.usage"))) / 1e9
        except (OSError, ValueError):
            return 0.0

    def kill(self, wait_s: float = 10.0) -> bool:
        """Kill every process in the group; True when it is empty."""
        deadline = time.monotonic() + wait_s
        kill_file = os.path.join(self.dirs.get("unified", ""), "cgroup.kill")
        while True:
            pids = self.procs()
            if not pids:
                return True
            if self.version == 2 and os.path.exists(kill_file):
                try:
                    _write(kill_file, "1")
                except OSError:
                    pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if time.monotonic() > deadline:
                return not self.procs()
            time.sleep(0.002)

    def remove(self) -> None:
        """Remove the (empty) group's folders; what cannot be removed yet stays."""
        for folder in reversed(self._folders()):
            try:
                for name in os.listdir(folder):
                    sub = os.path.join(folder, name)
                    if os.path.isdir(sub):
                        Group(self.version, {"x": sub}).remove()
                os.rmdir(folder)
            except OSError:
                pass


def _v2_usable(root: str) -> bool:
    try:
        available = _read(os.path.join(root, "cgroup.controllers")).split()
    except OSError:
        return False
    return all(c in available for c in V2_CONTROLLERS)


def create_for_grader(name: str, root: str = ROOT) -> Group | None:
    """A group ``name`` for one grader process's submissions, or None where cgroups cannot be made.

    cgroup v2 (``root`` is a cgroup2 mount with memory, pids and cpu), else the
    v1 hierarchies under ``root``. Nothing is left half made: on any failure
    what was created is removed and None returned.
    """
    if os.environ.get("DGM_NO_CGROUPS") or not os.path.isdir(root) or os.geteuid() != 0:
        return None
    made: Group | None = None
    try:
        if _v2_usable(root):
            base = Group(2, {"unified": root})
            _write(os.path.join(root, "cgroup.subtree_control"), " ".join("+" + c for c in V2_CONTROLLERS))
            made = base.child(name)
            made.enable_controllers()
            return made
        dirs = {c: os.path.join(root, c) for c in V1_CONTROLLERS}
        if not all(os.path.isfile(os.path.join(d, "cgroup.procs")) for d in dirs.values()):
            return None
        made = Group(1, dirs).child(name)
        _write(os.path.join(made.dirs["memory"], "memory.limit_in_bytes"), "-1")   # writable: caps will be
        _write(os.path.join(made.dirs["pids"], "pids.max"), "max")
        return made
    except OSError:
        if made is not None:
            made.remove()
        return None
