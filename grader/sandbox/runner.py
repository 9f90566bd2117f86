"""Run probes on student code in an isolated worker process and bring back plain numbers.

Knows nothing about any assignment: it takes a folder, a module path and a list of probe
descriptions, and returns one :class:`ProbeOutcome` per probe. The worker is a
server that imports torch once and grades submission after submission
(:class:`WorkerServer`, kept in a pool, one per grading thread), so a class of
hundreds does not pay a cold torch import each. What isolates it is decided in
:mod:`grader.sandbox.isolation`; each layer is used where available and listed in
:attr:`WorkerRun.layers`:

* a separate process (always); resource limits and a per-probe timeout (POSIX);
* each submission runs as a uid of its own, leased from a reserved range (the
  grader as root, Docker and Gradescope included): grading material is made
  unreadable to it, its processes, IPC objects, keys and files are destroyed
  after it, and memory, processes and scratch disk are capped for all its
  processes together. Only then is a server reused for the next submission;
* bubblewrap: a fresh mount view holding only the system, Python, the worker
  code and a read-only copy of the submission, size-limited tmpfs scratch, no
  network, its own PID and IPC namespaces.
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import forkserver, isolation
from .isolation import bwrap_path, fork_mode  # noqa: F401  (re-exported: tests and the CLI ask here)
from .probing import decode_arrays
from .worker import cgroups, contain

PACKAGE = Path(__file__).resolve().parent.parent   # grader/ (this is grader/sandbox/runner.py)
WORKER_PKG = PACKAGE / "sandbox" / "worker"
SHARED = ("__init__.py", "sandbox/__init__.py", "sandbox/probing.py")   # of grader/, what the sandbox may import
STATUSES = ("ok", "error", "timeout", "crashed", "missing")
THP = "/sys/kernel/mm/transparent_hugepage"
TEMP_PREFIX = "dgm-"


@dataclass(frozen=True)
class Limits:
    """Resource limits: per probe (time, output), and per submission for all its processes together."""

    timeout_s: float = 20.0        # one probe's own time: wall clock less what it waited for a CPU
    backstop: float = 3.0          # wall clock a probe starved of CPU may take, in timeouts
    startup_s: float = 60.0        # wall clock for the worker to import torch
    memory_mb: int = 4096          # private memory of all the submission's processes together
    disk_mb: int = 1024            # scratch files of the submission (its /tmp, /dev/shm and scratch folder)
    fsize_mb: int = 16             # largest file a probe may write (its output log included)
    nproc: int = 64                # processes of the submission at once
    max_output_bytes: int = 32 << 20  # result bytes accepted from one probe


@dataclass(frozen=True)
class ProbeCode:
    """Trusted code the probes come from: the package ``package`` whose folder is ``root``, of which
    only ``files`` (relative paths) are visible to the sandbox. A probe names its module within it."""

    package: str
    root: Path
    files: tuple[str, ...]
    preload: tuple[str, ...] = ()   # libraries the starter imports, loaded once by each server

    @classmethod
    def for_starter(cls, package: str, root: Path, files: tuple[str, ...], starter: bytes) -> ProbeCode:
        """The probe code, with the libraries that code like ``starter`` (the starter's graded module,
        public) imports as its preload."""
        from .worker.main import preload_plan

        return cls(package, root, files, tuple(preload_plan(starter)))


@dataclass
class ProbeOutcome:
    """What came back from one probe: a status, a message for the student, and arrays."""

    probe: str
    status: str                               # one of STATUSES
    message: str = ""                         # why it failed, in plain words
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # float64, finite-checked later
    duration_s: float = 0.0
    log_tail: str = ""                        # last lines the student code printed


@dataclass
class WorkerRun:
    """All probe outcomes of one worker run and the isolation layers that were in force."""

    outcomes: dict[str, ProbeOutcome]
    layers: list[str]


# --------------------------------------------------------------------------- the worker's command


SANDBOX_MOUNTS = ("/scratch", "/submission", "/opt/dgm", "/proc", "/dev")   # (a venv under /tmp is fine)
HOST_FILE_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")


def _python_paths(repo_root: Path) -> list[str]:
    """Folders the worker's interpreter needs: its prefixes and the package folders on its path.

    Other path entries (the folder of a script that imported the grader, the
    current folder) are left out, since they may hold submissions or solutions;
    so are the repository and the sandbox's own mount points.
    """
    py = isolation.plan().python
    prefixes = {os.path.realpath(p) for p in py.prefixes}
    repo = os.path.realpath(repo_root)
    if {"site-packages", "dist-packages"} & set(Path(repo).parts):
        repo = "//nothing-to-hide"   # an installed package (a student bundle): no solutions there
    keep = []
    for real in isolation.python_folders(py):
        holds_repo = repo == real or repo.startswith(real.rstrip(os.sep) + os.sep)
        in_repo = real.startswith(repo + os.sep)
        in_env = any(real == q or real.startswith(q + os.sep) for q in prefixes if q != repo)
        if holds_repo or real == "/tmp" or (in_repo and not in_env and "site-packages" not in real) or any(
                real == m or real.startswith(m + os.sep) for m in SANDBOX_MOUNTS):
            continue   # a virtual environment inside the repository is fine, the rest of it is not
        if os.path.isdir(real):
            keep.append(real)
    return keep


def _bootstrap(code_parent: str, sys_paths: list[str]) -> str:
    """Python source run with ``-c`` in the sandbox: a clean sys.path, then the worker server."""
    return (
        "import sys\n"
        "sys.path[:] = [p for p in sys.path if p not in ('', '.')]  # nothing from the scratch folder\n"
        f"sys.path[:0] = [{code_parent!r}] + [p for p in {sys_paths!r} if p not in sys.path]\n"
        "from grader.sandbox.worker.main import main\n"
        "main(sys.argv[1])\n"
    )


def _parent_dirs(dests: list[str]) -> list[str]:
    """bwrap arguments creating the parents of ``dests`` world-traversable (bwrap's default is 0700)."""
    args: list[str] = []
    seen = {"/", "/usr", "/etc", "/tmp", "/scratch", "/proc", "/dev"}
    for dest in dests:
        for parent in reversed(Path(dest).parents):
            if str(parent) not in seen:
                seen.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _command(stage: Path, scratch: Path, repo_root: Path, limits: Limits,
             code: ProbeCode | None, group: cgroups.Group | None = None) -> tuple[list[str], list[str]]:
    """The worker server's command line (submissions appear under ``stage``) and its layers.

    ``group``: the server's cgroup, in which it makes one per submission (None: the watchdog caps)."""
    plan = isolation.plan()
    py = os.path.realpath(plan.python.executable)
    sys_paths = _python_paths(repo_root)
    config: dict = {"fork": plan.fork, "ipc_namespace": plan.own_uid}
    layers = plan.layers()
    if group is not None:
        layers.append(f"memory, processes and CPU shares enforced by the kernel (a cgroup v{group.version} "
                      "per submission)")
    if plan.bwrap:
        # /tmp is emptied after every submission unless an interpreter folder is mounted inside it
        wipe = ["/dev/shm"] + ([] if any(p.startswith("/tmp/") for p in sys_paths) else ["/tmp"])
        config.update(submission_root="/submission", scratch_root="/scratch", wipe=wipe,
                      tmpfs=["/scratch", "/tmp", "/dev/shm"], file_roots=["/scratch", "/tmp", "/dev/shm"])
        if code is not None:
            config["code"] = {"package": code.package, "root": "/opt/dgm/probes"}
            config["preload"] = list(code.preload)
        # each mount a little over the cap: the watchdog sees the cap crossed and names it, and the
        # kernel stops a writer faster than the watchdog could
        size = str((limits.disk_mb + 32) << 20)
        cmd = [plan.bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
               "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev",
               "--size", size, "--tmpfs", "/dev/shm", "--size", size, "--tmpfs", "/tmp",
               "--size", size, "--tmpfs", "/scratch"]
        for d in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"):
            if os.path.islink(d):
                cmd += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                cmd += ["--ro-bind", d, d]
        binds = [p for p in sys_paths if not p.startswith(("/usr/", "/lib", "/bin", "/etc/"))]
        binds = [p for p in binds if not any(p.startswith(q + os.sep) for q in binds)]
        # the worker and what it may import of the grader, and the probe code: nothing else of the repository
        files = [(str(WORKER_PKG), "/opt/dgm/grader/sandbox/worker")]
        files += [(str(PACKAGE / f), f"/opt/dgm/grader/{f}") for f in SHARED]
        files += [(str(code.root / f), f"/opt/dgm/probes/{f}") for f in code.files] if code else []
        cmd += _parent_dirs([*binds, *(dest for _, dest in files)])
        for p in binds:
            cmd += ["--ro-bind", p, p]
        if os.path.isdir(THP):   # glibc reads it to use huge pages (forkserver.HUGE_PAGES); settings only
            cmd += _parent_dirs([THP]) + ["--ro-bind", THP, THP]
        for src, dest in files:
            cmd += ["--ro-bind", src, dest]
        if group is not None:   # the server's cgroup folders, writable, at fixed places in the view
            inside = {c: f"/dgm-cgroup/{i}" for i, c in enumerate(dict.fromkeys(group.dirs.values()))}
            cmd += _parent_dirs(list(inside.values()))
            for src, dest in inside.items():
                cmd += ["--bind", src, dest]
            config["cgroup"] = {"version": group.version, "dirs": {k: inside[v] for k, v in group.dirs.items()}}
        cmd += ["--ro-bind", str(stage), "/submission",
                "--chdir", "/scratch", "--setenv", "HOME", "/scratch", "--setenv", "TMPDIR", "/tmp"]
        cmd += ["--", py, "-E", "-s", "-c", _bootstrap("/opt/dgm", sys_paths)]
    else:
        roots = [str(scratch), *(r for r in HOST_FILE_ROOTS if os.path.isdir(r))] if plan.own_uid else []
        if roots and plan.fork and contain.landlock_abi() > 0:
            layers.append("the submission writes files only in its scratch folder and the shared temporary "
                          "folders, where its disk cap counts them (Landlock)")
        config.update(submission_root=str(stage), scratch_root=str(scratch), file_roots=roots)
        if group is not None:
            config["cgroup"] = group.to_dict()
        if code is not None:
            config["code"] = {"package": code.package, "root": str(code.root)}
            config["preload"] = list(code.preload)
        cmd = [py, "-E", "-s", "-c", _bootstrap(str(PACKAGE.parent), sys_paths)]
    return cmd + [json.dumps(config)], layers


# --------------------------------------------------------------------------- results


MAX_HEADER_BYTES = 1 << 20


def _read_frames(stream, cap: int, frames: queue.Queue) -> None:
    """Parse DGM1 frames from the worker's stdout into ``frames``; None marks the end (a thread).

    A frame whose header or payload is larger than allowed ends the reading: the
    worker is then treated as crashed.
    """
    try:
        while True:
            head = stream.read(8)
            if len(head) < 8 or head[:4] != b"DGM1":
                break
            hlen = int.from_bytes(head[4:8], "big")
            if hlen > MAX_HEADER_BYTES:
                break
            header = json.loads(stream.read(hlen))
            plen = int.from_bytes(stream.read(8), "big")
            if plen > cap:
                break
            payload = stream.read(plen)
            if len(payload) < plen:
                break
            frames.put((header, payload))
    except (ValueError, RecursionError, OSError):
        pass  # a malformed stream ends the reading; the probes left are reported missing
    finally:
        frames.put(None)


def _outcome(header: object, payload: bytes) -> ProbeOutcome | None:
    """Validate one frame into a ProbeOutcome (None when the header is malformed)."""
    if not isinstance(header, dict) or not isinstance(header.get("id"), str):
        return None
    status = header.get("status")
    if status not in STATUSES:
        return None
    out = ProbeOutcome(
        probe=header["id"], status=status,
        message=str(header.get("message", ""))[:2000],
        duration_s=float(header.get("duration_s", 0.0) or 0.0),
        log_tail=str(header.get("log_tail", ""))[-2000:],
    )
    if status == "ok":
        try:
            out.arrays = decode_arrays(payload)
        except Exception as err:  # noqa: BLE001 - anything unreadable is the worker's fault
            out.status, out.message = "crashed", f"the worker returned unreadable data ({err})"
    return out


def _zygote_for(plan: isolation.Plan) -> forkserver.Zygote | None:
    """The zygote to fork this server from, or None to exec it: bubblewrap must exec its sandbox,
    and only a server running the grader's own interpreter can be its fork."""
    zygote = forkserver.get()
    if zygote is None or plan.bwrap or not plan.fork \
            or os.path.realpath(plan.python.executable) != os.path.realpath(sys.executable):
        return None
    return zygote


def _kill_group(proc: subprocess.Popen | forkserver.Server) -> None:
    """Kill the worker and its process group, reap it, then sweep orphans (Linux without bwrap)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()
    proc.wait()
    with _ACTIVE_LOCK:
        _ACTIVE.discard(proc.pid)
        if _SUBREAPER[0]:
            _sweep_orphans()


_GRADER_GROUP: list[cgroups.Group | None] = []   # this grader's cgroup (made once), or [None]
_GROUP_LOCK = threading.Lock()
_SERVERS_MADE = [0]
CGROUP_PREFIX = "dgm-"


def _server_group() -> cgroups.Group | None:
    """A cgroup for one new worker server, inside this grader's (None where none can be made, or
    without a uid per submission: then the server's own end takes everything with it)."""
    if not isolation.plan().own_uid or not isolation.plan().fork or os.environ.get("DGM_NO_CGROUPS"):
        return None
    with _GROUP_LOCK:
        if not _GRADER_GROUP:
            remove_stale_groups()
            _GRADER_GROUP.append(cgroups.create_for_grader(f"{CGROUP_PREFIX}{os.getpid()}"))
            if _GRADER_GROUP[0] is not None:
                isolation.on_exit(_remove_grader_group)
        if _GRADER_GROUP[0] is None:
            return None
        _SERVERS_MADE[0] += 1
        try:
            return _GRADER_GROUP[0].child(f"w{_SERVERS_MADE[0]}")
        except OSError:
            return None


def _remove_grader_group() -> None:
    with _GROUP_LOCK:
        group = _GRADER_GROUP[0] if _GRADER_GROUP else None
    if group is not None:
        _kill_and_remove_tree(group)


def _kill_and_remove_tree(group: cgroups.Group) -> None:
    """Kill every process in ``group`` and its subgroups, then remove them all."""
    for folder in dict.fromkeys(group.dirs.values()):
        for dirpath, _, _ in sorted(os.walk(folder), key=lambda t: -len(t[0])):
            cgroups.Group(group.version, {"unified" if group.version == 2 else "any": dirpath}).kill(wait_s=2.0)
    group.remove()


def remove_stale_groups(root: str = cgroups.ROOT) -> None:
    """Remove the cgroups of grader processes that no longer run (killed before they could clean up),
    killing whatever is still in them."""
    if not os.path.isdir(root):
        return
    controllers = ["unified"] if os.path.isfile(os.path.join(root, "cgroup.controllers")) else list(cgroups.V1_CONTROLLERS)
    for controller in controllers:
        base = root if controller == "unified" else os.path.join(root, controller)
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            pid = name[len(CGROUP_PREFIX):]
            if name.startswith(CGROUP_PREFIX) and pid.isdigit() and int(pid) != os.getpid() \
                    and not os.path.exists(f"/proc/{pid}"):
                version = 2 if controller == "unified" else 1
                _kill_and_remove_tree(cgroups.Group(version, {controller: os.path.join(base, name)}))


_ACTIVE: set[int] = set()           # worker processes running now (batch grading uses threads)
_ACTIVE_LOCK = threading.Lock()
_SUBREAPER = [False]


def _become_subreaper() -> None:
    """Make orphaned descendants of our workers our children, so that they can be killed."""
    if _SUBREAPER[0] or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0:  # PR_SET_CHILD_SUBREAPER
            _SUBREAPER[0] = True
    except (OSError, AttributeError):
        pass


def _sweep_orphans() -> None:
    """Kill and reap every child of ours that is not a running worker but carries our marker."""
    for _ in range(20):
        orphans = []
        try:
            for task in os.listdir("/proc/self/task"):
                with open(f"/proc/self/task/{task}/children") as f:
                    orphans += [int(p) for p in f.read().split() if int(p) not in _ACTIVE]
        except OSError:
            return
        orphans = [p for p in orphans if _is_orphan(p)]
        if not orphans:
            return
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def worker_marker() -> str:
    """The DGM_WORKER value of this grader's workers: its pid, so two graders never mix them up."""
    return str(os.getpid())


def _is_orphan(pid: int) -> bool:
    """True for processes carrying this grader's worker marker in their environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"DGM_WORKER={worker_marker()}".encode() in f.read().split(b"\0")
    except OSError:
        return False


# --------------------------------------------------------------------------- worker servers


def temp_base() -> str:
    """Where servers keep their folders: the temporary folder, if probe uids can pass through it
    (a TMPDIR inside a private home would lock them out), else /tmp."""
    base = tempfile.gettempdir()
    if isolation.plan().own_uid and not isolation.passable_by_others(base) and os.path.isdir("/tmp"):
        return "/tmp"
    return base


def _make_private_temp() -> Path:
    """A fresh folder for one server's staged submissions and scratch, with our pid inside it, so a
    later grader can remove what a killed one left (:func:`remove_stale_temp`)."""
    tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=temp_base()))
    (tmp / ".owner").write_text(str(os.getpid()))
    return tmp


STALE_NAME = re.compile(r"^dgm-[a-z]+-(\d+)\.")   # isolation.private_temp's folders name their grader


def remove_stale_temp() -> None:
    """Remove the folders of grader processes that no longer run (killed before they could clean up):
    the servers' (their pid in ``.owner``) and the private temporary folders (their pid in the name)."""
    base = Path(temp_base())
    for d in {*base.glob(TEMP_PREFIX + "*"), *Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*")}:
        try:
            if d.is_symlink() or not d.is_dir() or d.stat().st_uid != os.geteuid():
                continue
            named = STALE_NAME.match(d.name)
            pid = int(named.group(1)) if named else int((d / ".owner").read_text())
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            contain.remove_tree(str(d))


_STALE_DONE: list[bool] = []
_STALE_LOCK = threading.Lock()


def _remove_what_dead_graders_left() -> None:
    """Once per grader, before any uid is leased: the folders (staged copies included) and cgroups of
    graders that were killed outright (SIGKILL, out of memory) and could not clean up."""
    with _STALE_LOCK:
        if _STALE_DONE:
            return
        _STALE_DONE.append(True)
        remove_stale_temp()
        if isolation.plan().own_uid:
            remove_stale_groups()


def _stage_copy(src: Path, dest: Path, uid: int | None) -> None:
    """Copy a submission for the worker: readable by its uid alone (root-owned, group = uid), or by
    everyone when probes run as the grader's own user.

    The copy is made inside ``dest`` created private (0700) first, so no other uid can reach a file
    of it at any moment; only then is ``dest`` opened to the submission's uid."""
    os.mkdir(dest, 0o700)
    os.chmod(dest, 0o700)   # whatever the umask
    for entry in os.scandir(src):
        target = dest / entry.name
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, target, symlinks=False, ignore_dangling_symlinks=True)
        elif entry.is_file(follow_symlinks=False):
            shutil.copyfile(entry.path, target)
    dmode, fmode = (0o750, 0o640) if uid is not None else (0o755, 0o644)
    for root, dirs, files in os.walk(dest):
        for name, mode in [(d, dmode) for d in dirs] + [(f, fmode) for f in files]:
            path = os.path.join(root, name)
            if uid is not None:
                os.chown(path, 0, uid)
            os.chmod(path, mode)
    if uid is not None:
        os.chown(dest, 0, uid)
    os.chmod(dest, dmode)


class WorkerServer:
    """One sandboxed worker that imported torch once and grades submission after submission.

    Each submission is copied into a fresh folder of ``stage`` (which the sandbox
    sees read-only) for the length of its request and removed afterwards. A server
    serves one request at a time; :func:`run_probes` takes idle ones from a pool.
    """

    def __init__(self, repo_root: Path, limits: Limits, code: ProbeCode | None = None) -> None:
        with _LIVE_LOCK:
            if _CLOSING[0]:
                raise GraderStopping("the grader is stopping: no new worker")
            _LIVE.add(self)
        self.tmp = _make_private_temp()
        self.stage, self.scratch = self.tmp / "stage", self.tmp / "scratch"
        self.stage.mkdir()
        self.scratch.mkdir()
        for d in (self.tmp, self.stage, self.scratch):   # probe uids may pass, not list
            os.chmod(d, 0o711)
        self.group = _server_group()
        cmd, self.layers = _command(self.stage, self.scratch, repo_root, limits, code, self.group)
        zygote = _zygote_for(isolation.plan())
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(self.scratch),
               "DGM_WORKER": worker_marker(), **forkserver.HUGE_PAGES}
        if os.name == "nt":  # pragma: no cover - Windows needs its system variables to start Python
            env = {**os.environ, **{k: v for k, v in env.items() if k != "PATH"}}
        if bwrap_path() is None:
            _become_subreaper()
        with _ACTIVE_LOCK:
            if zygote is not None:   # forked: torch's pages shared with the grader (see grader.sandbox.forkserver)
                self.proc = zygote.spawn(cmd[-1], env, str(self.scratch),
                                         [str(PACKAGE.parent), *_python_paths(repo_root)])
            else:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, cwd=self.scratch, env=env,
                                             start_new_session=os.name == "posix")
            _ACTIVE.add(self.proc.pid)
        self.frames: queue.Queue = queue.Queue()
        threading.Thread(target=_read_frames, args=(self.proc.stdout, limits.max_output_bytes + (1 << 20),
                                                    self.frames), daemon=True).start()
        self.stderr_tail_bytes = b""
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.ready = False
        self.requests = 0
        self.startup_s = limits.startup_s
        self.clean = True          # the last request ended with nothing of its submission left
        self.uid_clean = True      # ... and nothing left under its uid (else the uid is retired)

    def wait_ready(self) -> str | None:
        """Wait for the server's ``ready`` frame (torch imported); None, or why it did not start."""
        if self.ready:
            return None
        try:
            item = self.frames.get(timeout=self.startup_s)
        except queue.Empty:
            return "the grader's sandbox did not start in time"
        self.ready = item is not None and isinstance(item[0], dict) and item[0].get("ready") is True
        return None if self.ready else "the grader's sandbox failed to start"

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (after it stopped)."""
        time.sleep(0.05)  # let the reader thread collect what the dead process left
        return self.stderr_tail_bytes.decode("utf-8", "replace")[-1500:]

    def _drain_stderr(self) -> None:
        """Keep reading the server's stderr for its whole life (a full pipe would stall it); keep the tail."""
        try:
            while chunk := self.proc.stderr.read1(1 << 16):
                self.stderr_tail_bytes = (self.stderr_tail_bytes + chunk)[-(1 << 16):]
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        """Stop the server and everything it started; remove its folders."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        _kill_group(self.proc)
        if self.group is not None:
            self.group.kill()
            self.group.remove()
        contain.remove_tree(str(self.tmp))
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def run(self, files_dir: Path, module: str, probes: list[dict], limits: Limits,
            outcomes: dict[str, ProbeOutcome], display: str, uid: int | None = None
            ) -> tuple[list[str], str | None]:
        """Serve one request into ``outcomes``, its probes running as ``uid``.

        Returns the probe ids left without an outcome and how the request ended:
        None (the server may serve another), "done" (finished, server not reusable),
        "timeout", "crashed", or "unclean uid" (nothing ran: the uid could not be emptied first).
        """
        self.requests += 1
        name = secrets.token_hex(8)   # not guessable by another server's probes
        sub_dir = self.stage / name
        _stage_copy(files_dir, sub_dir, uid)
        request = {"dir": name, "module": module, "display": display, "probes": probes, "uid": uid,
                   "timeout_s": limits.timeout_s, "wall_s": limits.timeout_s * max(1.0, limits.backstop),
                   "memory_mb": limits.memory_mb, "disk_mb": limits.disk_mb,
                   "fsize_mb": limits.fsize_mb, "nproc": limits.nproc,
                   "max_output_bytes": limits.max_output_bytes}
        try:
            return self._exchange(request, probes, limits, outcomes)
        finally:
            contain.remove_tree(str(sub_dir))

    def _exchange(self, request: dict, probes: list[dict], limits: Limits,
                  outcomes: dict[str, ProbeOutcome]) -> tuple[list[str], str | None]:
        body = json.dumps(request).encode()
        try:
            self.proc.stdin.write(len(body).to_bytes(8, "big") + body)
            self.proc.stdin.flush()
        except OSError:
            return [p["id"] for p in probes], "crashed"
        pending = [p["id"] for p in probes]
        # fork mode: the server times each probe, we only back it up (it also cleans up after
        # each probe and after the submission, which may take a few seconds); no-fork: we time them
        slack = 15.0 if fork_mode() else 0.5
        budget = limits.timeout_s * max(1.0, limits.backstop) if fork_mode() else limits.timeout_s
        deadline = time.monotonic() + budget + slack
        while True:
            try:
                item = self.frames.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return pending, "timeout"
            if item is None:
                return pending, "crashed"
            header, payload = item
            if isinstance(header, dict) and header.get("done") is True:
                self.clean = header.get("clean") is True
                self.uid_clean = header.get("uid_clean") is not False
                if header.get("unclean_uid") is not None:
                    return pending, "unclean uid"
                return pending, None if not pending and fork_mode() else "done"
            out = _outcome(header, payload)
            if out is not None and out.probe in pending:
                outcomes[out.probe] = out
                pending.remove(out.probe)
                deadline = time.monotonic() + budget + slack


_POOL: dict[tuple, list[WorkerServer]] = {}   # idle servers, by the sandbox configuration they were built for
_POOL_LOCK = threading.Lock()
_LIVE: set[WorkerServer] = set()               # every server not yet closed, idle or serving
_LIVE_LOCK = threading.Lock()   # its own lock: close() takes it, and _acquire closes dead servers under _POOL_LOCK
_CLOSING = [False]


class GraderStopping(BaseException):
    """The grader is being stopped (SIGTERM, Ctrl-C): a grading thread ends without a result.

    A BaseException, so that no handler turns it into a grade for the submission."""


def _pool_key(repo_root: Path, limits: Limits, code: ProbeCode | None) -> tuple:
    return (str(repo_root), isolation.plan(), limits.disk_mb, code)


def _acquire(repo_root: Path, limits: Limits, code: ProbeCode | None) -> WorkerServer:
    with _POOL_LOCK:
        idle = _POOL.get(_pool_key(repo_root, limits, code), [])
        while idle:
            server = idle.pop()
            if server.proc.poll() is None:
                return server
            server.close()
    return WorkerServer(repo_root, limits, code)


def _release(server: WorkerServer, key: tuple, reusable: bool) -> None:
    if not reusable or server.proc.poll() is not None:
        server.close()
        return
    with _POOL_LOCK:
        _POOL.setdefault(key, []).append(server)


def start_zygote(sources: tuple[bytes, ...] = ()) -> bool:
    """Fork the zygote now when this machine's servers would be its forks (Linux, no bubblewrap,
    this interpreter): one torch in memory for the grader and its servers. Call it first thing in
    an entry point, before anything secret is read (:func:`grader.sandbox.forkserver.start` refuses after).
    ``sources``: public code like the students', whose libraries are imported first and shared."""
    if not would_fork():
        return False
    return forkserver.start(sources)


def would_fork() -> bool:
    """True when this machine's worker servers are forked from a zygote (Linux, no bubblewrap, this
    interpreter), not exec'd."""
    plan = isolation.plan()
    return not plan.bwrap and plan.fork and \
        os.path.realpath(plan.python.executable) == os.path.realpath(sys.executable)


def prewarm(repo_root: Path, limits: Limits, code: ProbeCode | None = None) -> None:
    """Start an idle worker server now, so that its torch import overlaps the caller's own imports
    (a single `grader check` saves about 2 s); best effort: :func:`run_probes` reports any failure."""
    try:
        server = WorkerServer(repo_root, limits, code)
    except Exception:  # noqa: BLE001 - the real request will meet the same problem and say what it is
        return
    _release(server, _pool_key(repo_root, limits, code), True)


def shutdown_pool() -> None:
    """Stop every idle worker server (they also stop by themselves when the grader exits)."""
    with _POOL_LOCK:
        servers = [s for idle in _POOL.values() for s in idle]
        _POOL.clear()
    for server in servers:
        server.close()


def idle_server_pids() -> list[int]:
    """Process ids of the idle worker servers' outermost processes (for tests and diagnostics)."""
    with _POOL_LOCK:
        return [s.proc.pid for idle in _POOL.values() for s in idle]


def stop_all() -> None:
    """Stop every server, those serving a request too, and start no more: the grader is leaving
    (its grading threads may still be running, and must not wait for their probes)."""
    with _LIVE_LOCK:
        _CLOSING[0] = True
        servers = list(_LIVE)
    with _POOL_LOCK:
        _POOL.clear()
    for server in servers:
        server.close()


atexit.register(shutdown_pool)
isolation.on_exit(stop_all)


def _exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"the process was killed by signal {name} (a memory or CPU limit, or a crash)"
    return (f"the process exited with status {code} without returning a result "
            "(sys.exit() at import time, os._exit(), or a crash in native code?)")


# --------------------------------------------------------------------------- entry point


def run_probes(files_dir: Path, module: str, probes: list[dict], repo_root: Path,
               limits: Limits = Limits(), display: str = "", hidden: tuple[Path, ...] = (),
               code: ProbeCode | None = None) -> WorkerRun:
    """Run ``probes`` on ``module`` of the student's files in a sandboxed worker server.

    Args:
        files_dir: folder holding the student's files (and support files); copied, never changed
        module: path of the module to import, relative to ``files_dir`` (e.g. pkg/model.py)
        probes: dicts with ``id``, ``module`` (within ``code``), ``kind`` and ``args``
        repo_root: the repository, which the worker must never see
        limits: resource limits
        display: how messages name the student's file (e.g. the notebook it was extracted from)
        hidden: more paths the worker must never see (other submissions, the output folder)
        code: where the probes' code comes from

    Returns:
        A WorkerRun with one outcome per probe (status ``missing`` when nothing came back).

    Raises:
        isolation.IsolationError: the barrier this machine should have could not be put in place.
    """
    plan = isolation.plan()
    if plan.refuses():
        raise isolation.IsolationError("refusing to run student code as root with no isolation barrier: "
                                       + plan.why_no_barrier())
    outcomes: dict[str, ProbeOutcome] = {}
    remaining = list(probes)
    layers: list[str] = plan.layers()
    retried: set[str] = set()
    _remove_what_dead_graders_left()
    lease = isolation.lease_uid() if plan.own_uid else None
    try:
        if lease is not None and plan.barrier == "uid":
            isolation.protect([repo_root, *hidden], lease.uid)
        while remaining:
            server = _acquire(repo_root, limits, code)
            layers = server.layers
            why = server.wait_ready()
            if why:
                server.close()
                err = server.stderr_tail()
                for p in remaining:
                    outcomes[p["id"]] = ProbeOutcome(p["id"], "missing", why, log_tail=err)
                break
            uid = lease.uid if lease is not None else None
            pending, ended = server.run(files_dir, module, remaining, limits, outcomes, display, uid)
            if _CLOSING[0]:
                raise GraderStopping("the grader is stopping")
            reusable = ended is None and server.clean and plan.reuse_servers
            _release(server, _pool_key(repo_root, limits, code), reusable)
            if lease is not None and (ended == "unclean uid" or (ended is None and not server.uid_clean)):
                # what the uid left cannot be removed: it is never leased again (docs/security.md)
                lease.retire("the worker server could not empty it")
                lease = isolation.lease_uid() if remaining and ended == "unclean uid" else None
                if lease is not None and plan.barrier == "uid":
                    isolation.protect([repo_root, *hidden], lease.uid)
                if ended == "unclean uid":
                    continue
            if not reusable and lease is not None and not plan.bwrap:
                isolation.kill_uid(lease.uid)   # the server may have died before it cleaned up
            if pending:  # the first one was running when the server died or ran out of time
                first = pending[0]
                if ended == "crashed" and first not in retried:
                    retried.add(first)   # the server itself died: maybe not this probe's doing; once more
                elif ended == "timeout":
                    outcomes[first] = ProbeOutcome(first, "timeout", f"timed out after {limits.timeout_s:g} s "
                                                   "(an infinite loop, or far too slow)")
                else:
                    outcomes[first] = ProbeOutcome(first, "crashed", _exit_description(server.proc.returncode),
                                                   log_tail=server.stderr_tail())
            remaining = [p for p in remaining if p["id"] not in outcomes]
    finally:
        if lease is not None:
            lease.release()
    return WorkerRun(outcomes=outcomes, layers=layers)
