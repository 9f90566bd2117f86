"""Run probes on student code in an isolated worker process and bring back plain numbers.

Knows nothing about GANs: it takes a folder, a module path and a list of probe
descriptions, and returns one :class:`ProbeOutcome` per probe. Layers, each used
where available and listed in :attr:`WorkerRun.layers`:

* a separate process (always); resource limits and a per-probe timeout (POSIX);
* bubblewrap: a fresh mount view holding only the system, Python, the worker
  code and a read-only copy of the submission, tmpfs scratch, no network, its
  own PID namespace (every descendant dies with it);
* as root: the worker drops to the unprivileged user ``nobody`` before it
  imports anything that student code could touch.
"""
from __future__ import annotations

import functools
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WORKER_PKG = Path(__file__).resolve().parent / "worker"
NOBODY = 65534
STATUSES = ("ok", "error", "timeout", "crashed", "missing")


@dataclass(frozen=True)
class Limits:
    """Per-probe resource limits."""

    timeout_s: float = 20.0        # wall clock for one probe
    startup_s: float = 60.0        # wall clock for the worker to import torch
    memory_mb: int = 2048          # address space a probe may add
    fsize_mb: int = 16             # largest file a probe may write (its output log included)
    nproc: int = 64                # processes a probe may start
    max_output_bytes: int = 32 << 20  # result bytes accepted from one probe


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


# --------------------------------------------------------------------------- isolation


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    """Path of a working bubblewrap, or None (absent, or user namespaces blocked)."""
    exe = shutil.which("bwrap")
    if not exe or os.environ.get("DGM_NO_BWRAP"):
        return None
    try:
        probe = subprocess.run(
            [exe, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--dev", "/dev",
             "--proc", "/proc", "--", "/bin/true"],
            capture_output=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return exe if probe.returncode == 0 else None


def fork_mode() -> bool:
    """Fork one child per probe (Linux); elsewhere forking after importing torch is unsafe."""
    return sys.platform.startswith("linux") and not os.environ.get("DGM_NO_FORK")


def _python_paths(repo_root: Path) -> list[str]:
    """Folders the interpreter needs (prefixes and sys.path), minus the repository."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    keep = []
    for p in sorted(paths):
        real = os.path.realpath(p)
        if real == str(repo_root) or real.startswith(str(repo_root) + os.sep) and "site-packages" not in real:
            continue
        if os.path.isdir(real):
            keep.append(real)
    return keep


def _readable_by_nobody(path: str) -> bool:
    """True when every folder up to ``path`` lets 'other' users in and the path is readable."""
    p = Path(os.path.realpath(path))
    for parent in [*reversed(p.parents), p]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            return False
    return bool(p.stat().st_mode & 0o004)


def _bootstrap(worker_parent: str, worker_name: str, sys_paths: list[str], drop: bool) -> str:
    """Python source run with ``-c`` in the sandbox: drop privileges, then start the worker."""
    return (
        "import os, sys\n"
        f"if {drop!r} and os.getuid() == 0:\n"
        f"    os.chown(sys.argv[2], {NOBODY}, {NOBODY})\n"
        f"    os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        "sys.path[:] = [p for p in sys.path if p not in ('', '.')]  # nothing from the scratch folder\n"
        f"sys.path[:0] = [{worker_parent!r}] + [p for p in {sys_paths!r} if p not in sys.path]\n"
        f"from {worker_name}.main import main\n"
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


def _command(sub_dir: Path, scratch: Path, request: dict,
             repo_root: Path) -> tuple[list[str], dict, list[str]]:
    """The worker command line, the request as seen inside, and the layers it provides."""
    py = os.path.realpath(sys.executable)
    layers = ["separate process", "per-probe timeout"]
    if os.name == "posix":
        layers.append("resource limits")
    layers.append("one forked process per graded function" if fork_mode()
                  else "graded functions run one after another (restarted after a crash)")
    bwrap = bwrap_path() if sys.platform.startswith("linux") else None
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    request = dict(request, fork=fork_mode())
    sys_paths = _python_paths(repo_root)
    if bwrap:
        inside = dict(request, module_root="/submission", scratch="/scratch")
        cmd = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
               "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev",
               "--tmpfs", "/tmp", "--tmpfs", "/scratch"]
        for d in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"):
            if os.path.islink(d):
                cmd += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                cmd += ["--ro-bind", d, d]
        binds = [p for p in sys_paths if not p.startswith(("/usr/", "/lib", "/bin", "/etc/"))]
        binds = [p for p in binds if not any(p.startswith(q + os.sep) for q in binds)]
        cmd += _parent_dirs([*binds, "/opt/dgm/dgm_worker"])
        for p in binds:
            cmd += ["--ro-bind", p, p]
        cmd += ["--ro-bind", str(sub_dir), "/submission",
                "--ro-bind", str(WORKER_PKG), "/opt/dgm/dgm_worker",
                "--chdir", "/scratch", "--setenv", "HOME", "/scratch", "--setenv", "TMPDIR", "/tmp"]
        drop = is_root
        cmd += ["--", py, "-E", "-s", "-c",
                _bootstrap("/opt/dgm", "dgm_worker", sys_paths, drop),
                json.dumps(inside), "/scratch"]
        layers += ["bubblewrap: private file system view (repository and other submissions hidden)",
                   "no network", "PID namespace (all descendants killed)"]
        if drop:
            layers.append("runs as unprivileged user nobody")
        return cmd, inside, layers

    inside = dict(request, module_root=str(sub_dir), scratch=str(scratch))
    drop = is_root and _readable_by_nobody(py) and all(_readable_by_nobody(p) for p in sys_paths)
    if drop:
        os.chown(sub_dir, NOBODY, NOBODY)
        layers.append("runs as unprivileged user nobody")
    cmd = [py, "-E", "-s", "-c",
           _bootstrap(str(WORKER_PKG.parent.parent), "grader.worker", sys_paths, drop),
           json.dumps(inside), str(scratch)]
    if sys.platform.startswith("linux"):
        layers.append("orphaned descendants killed (subreaper)")
    layers.append("no bubblewrap: the file system and network are NOT isolated")
    return cmd, inside, layers


# --------------------------------------------------------------------------- results


def _read_frames(stream, cap: int, frames: queue.Queue) -> None:
    """Parse DGM1 frames from the worker's stdout into ``frames``; None marks the end (a thread)."""
    buf, total = b"", 0
    try:
        while True:
            chunk = stream.read1(1 << 20) if hasattr(stream, "read1") else stream.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > cap:
                break
            buf += chunk
            while (parsed := _parse_frame(buf)) is not None:
                header, payload, buf = parsed
                frames.put((header, payload))
    except (ValueError, RecursionError, OSError):
        pass  # a malformed stream ends the reading; the probes left are reported missing
    finally:
        frames.put(None)


def _parse_frame(buf: bytes) -> tuple[dict, bytes, bytes] | None:
    if len(buf) < 8:
        return None
    if buf[:4] != b"DGM1":
        raise ValueError("malformed frame from worker")
    hlen = int.from_bytes(buf[4:8], "big")
    if len(buf) < 8 + hlen + 8:
        return None
    header = json.loads(buf[8:8 + hlen])
    plen = int.from_bytes(buf[8 + hlen:16 + hlen], "big")
    end = 16 + hlen + plen
    if len(buf) < end:
        return None
    return header, buf[16 + hlen:end], buf[end:]


def decode_arrays(payload: bytes, max_elements: int = 8_000_000) -> dict[str, np.ndarray]:
    """Untrusted npz bytes -> dict of float64 arrays; no pickles, no objects, size-capped."""
    out: dict[str, np.ndarray] = {}
    total = 0
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:  # refuse a compressed bomb before unpacking
        if sum(i.file_size for i in zf.infolist()) > max_elements * 8 + (1 << 20):
            raise ValueError("the returned arrays are too large")
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        for key in npz.files:
            arr = npz[key]
            if arr.dtype != np.float64 or arr.ndim > 6:
                raise ValueError(f"array {key!r} has dtype {arr.dtype} / ndim {arr.ndim}")
            total += arr.size
            if total > max_elements:
                raise ValueError("too many numbers returned")
            out[str(key)] = np.array(arr, dtype=np.float64, copy=True)
    return out


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


def _kill_group(proc: subprocess.Popen) -> None:
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


# --------------------------------------------------------------------------- one worker run


def _run_worker(sub_dir: Path, scratch: Path, module: str, probes: list[dict], repo_root: Path,
                limits: Limits, outcomes: dict[str, ProbeOutcome], display: str = "") -> tuple[list[str], bool]:
    """Start one worker for ``probes``, collect its frames into ``outcomes``.

    Returns the isolation layers and whether another worker should be started
    for the probes left (after a crash or timeout in no-fork mode).
    """
    request = {"module": module, "display": display, "probes": probes, "timeout_s": limits.timeout_s,
               "memory_mb": limits.memory_mb, "fsize_mb": limits.fsize_mb, "nproc": limits.nproc,
               "max_output_bytes": limits.max_output_bytes}
    cmd, _inside, layers = _command(sub_dir, scratch, request, repo_root)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MPLBACKEND": "Agg",
           "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(scratch), "DGM_WORKER": worker_marker()}
    if os.name == "nt":  # pragma: no cover - Windows needs its system variables to start Python
        env = {**os.environ, **{k: v for k, v in env.items() if k != "PATH"}}
    if bwrap_path() is None:
        _become_subreaper()
    with _ACTIVE_LOCK:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=scratch, env=env,
                                start_new_session=os.name == "posix")
        _ACTIVE.add(proc.pid)
    frames: queue.Queue = queue.Queue()
    cap = limits.max_output_bytes * len(probes) + (1 << 20)
    threading.Thread(target=_read_frames, args=(proc.stdout, cap, frames), daemon=True).start()
    stderr_box: list[bytes] = []
    threading.Thread(target=lambda: stderr_box.append(proc.stderr.read(1 << 16)), daemon=True).start()

    ready, pending = False, [p["id"] for p in probes]
    # fork mode: the worker parent times each probe, we only back it up; no-fork: we time them
    slack = 5.0 if fork_mode() else 0.5
    deadline = time.monotonic() + limits.startup_s
    failure = None
    exited_at = None
    while pending:
        now = time.monotonic()
        if now >= deadline:
            failure = "timeout"
            break
        try:
            item = frames.get(timeout=min(0.1, deadline - now))
        except queue.Empty:
            # the worker may be gone while a descendant still holds its stdout open
            if proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > 0.5:
                    failure = "crashed"
                    break
            continue
        if item is None:
            failure = "crashed"
            break
        header, payload = item
        if not ready:
            ready = isinstance(header, dict) and header.get("ready") is True
            deadline = time.monotonic() + limits.timeout_s + slack
            continue
        out = _outcome(header, payload)
        if out is not None and out.probe in pending:
            outcomes[out.probe] = out
            pending.remove(out.probe)
            deadline = time.monotonic() + limits.timeout_s + slack
    _kill_group(proc)  # nothing of the worker may outlive this point
    err = (stderr_box[0] if stderr_box else b"").decode("utf-8", "replace")[-1500:]
    if not pending:
        return layers, False
    if not ready:  # the worker never started: every probe is lost, and retrying would not help
        why = ("the grader's sandbox did not start in time" if failure == "timeout"
               else "the grader's sandbox failed to start")
        for pid in pending:
            outcomes[pid] = ProbeOutcome(pid, "missing", why, log_tail=err)
        return layers, False
    first = pending[0]  # the probe that was running when the worker died or ran out of time
    if failure == "timeout":
        outcomes[first] = ProbeOutcome(first, "timeout", f"timed out after {limits.timeout_s:g} s "
                                       "(an infinite loop, or far too slow)")
    else:
        outcomes[first] = ProbeOutcome(first, "crashed", _exit_description(proc.returncode), log_tail=err)
    return layers, True


def _exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"the process was killed by signal {name} (a memory or CPU limit, or a crash)"
    return (f"the process exited with status {code} without returning a result "
            "(sys.exit() at import time, os._exit(), or a crash in native code?)")


# --------------------------------------------------------------------------- entry point


def run_probes(files_dir: Path, module: str, probes: list[dict], repo_root: Path,
               limits: Limits = Limits(), display: str = "") -> WorkerRun:
    """Copy ``files_dir`` to a private folder and run ``probes`` on ``module`` in a worker.

    Args:
        files_dir: folder holding the student's files (and support files)
        module: path of the module to import, relative to ``files_dir`` (e.g. codebase/gan.py)
        probes: dicts with ``id``, ``kind`` and ``args``
        repo_root: the repository, which the worker must never see
        limits: resource limits per probe
        display: how messages name the student's file (e.g. the notebook it was extracted from)

    Returns:
        A WorkerRun with one outcome per probe (status ``missing`` when nothing came back).
    """
    tmp = Path(tempfile.mkdtemp(prefix="dgm-"))
    try:
        sub_dir, scratch = tmp / "submission", tmp / "scratch"
        shutil.copytree(files_dir, sub_dir, symlinks=False, ignore_dangling_symlinks=True)
        scratch.mkdir()
        for root, dirs, files in os.walk(tmp):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        os.chmod(tmp, 0o755)
        os.chmod(scratch, 0o777)
        outcomes: dict[str, ProbeOutcome] = {}
        remaining = list(probes)
        layers: list[str] = []
        while remaining:
            layers, ran = _run_worker(sub_dir, scratch, module, remaining, repo_root, limits, outcomes, display)
            remaining = [p for p in remaining if p["id"] not in outcomes]
            if not ran:
                break
        return WorkerRun(outcomes=outcomes, layers=layers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
