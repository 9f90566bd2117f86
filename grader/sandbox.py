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
        f"    os.chown(sys.argv[3], {NOBODY}, {NOBODY})\n"
        f"    os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        f"sys.path[:0] = [{worker_parent!r}] + [p for p in {sys_paths!r} if p not in sys.path]\n"
        f"from {worker_name}.main import main\n"
        "main(sys.argv[1], int(sys.argv[2]))\n"
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


def _command(sub_dir: Path, scratch: Path, request: dict, result_fd: int,
             repo_root: Path) -> tuple[list[str], dict, list[str]]:
    """The worker command line, the request as seen inside, and the layers it provides."""
    py = os.path.realpath(sys.executable)
    layers = ["separate process", "resource limits", "per-probe timeout"]
    bwrap = bwrap_path() if sys.platform.startswith("linux") else None
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
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
                json.dumps(inside), str(result_fd), "/scratch"]
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
           json.dumps(inside), str(result_fd), str(scratch)]
    layers.append("no bubblewrap: the file system and network are NOT isolated")
    return cmd, inside, layers


# --------------------------------------------------------------------------- results


def _read_frames(fd: int, cap: int, frames: list, done: threading.Event) -> None:
    """Read DGM1 frames from the worker until EOF (runs in a thread)."""
    buf = b""
    try:
        with os.fdopen(fd, "rb", buffering=0) as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                buf += chunk
                if len(buf) > cap:
                    break
                while True:
                    parsed = _parse_frame(buf)
                    if parsed is None:
                        break
                    header, payload, buf = parsed
                    frames.append((header, payload))
    finally:
        done.set()


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
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()
    proc.wait()


# --------------------------------------------------------------------------- entry point


def run_probes(files_dir: Path, module: str, probes: list[dict], repo_root: Path,
               limits: Limits = Limits()) -> WorkerRun:
    """Copy ``files_dir`` to a private folder and run ``probes`` on ``module`` in a worker.

    Args:
        files_dir: folder holding the student's files (and support files)
        module: path of the module to import, relative to ``files_dir`` (e.g. codebase/gan.py)
        probes: dicts with ``id``, ``kind`` and ``args``
        repo_root: the repository, which the worker must never see
        limits: resource limits per probe

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
        request = {"module": module, "probes": probes, "timeout_s": limits.timeout_s,
                   "memory_mb": limits.memory_mb, "fsize_mb": limits.fsize_mb, "nproc": limits.nproc,
                   "max_output_bytes": limits.max_output_bytes}
        r, w = os.pipe()
        cmd, _inside, layers = _command(sub_dir, scratch, request, w, repo_root)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(scratch)}
        proc = subprocess.Popen(cmd, pass_fds=(w,), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=scratch, env=env, start_new_session=True)
        os.close(w)
        frames: list = []
        done = threading.Event()
        cap = limits.max_output_bytes * max(1, len(probes)) + (1 << 20)
        reader = threading.Thread(target=_read_frames, args=(r, cap, frames, done), daemon=True)
        reader.start()
        deadline = time.monotonic() + limits.startup_s + len(probes) * (limits.timeout_s + 5)
        stderr_box: list[bytes] = []
        err_reader = threading.Thread(target=lambda: stderr_box.append(proc.stderr.read(1 << 16)),
                                      daemon=True)
        err_reader.start()
        finished = done.wait(max(0.0, deadline - time.monotonic()))
        _kill_group(proc)  # the worker is done (or overdue): nothing of it may outlive this point
        reader.join(timeout=5)
        err_reader.join(timeout=1)

        outcomes: dict[str, ProbeOutcome] = {}
        for header, payload in frames:
            out = _outcome(header, payload)
            if out is not None and out.probe not in outcomes:
                outcomes[out.probe] = out
        worker_err = (stderr_box[0] if stderr_box else b"").decode("utf-8", "replace")[-1500:]
        for probe in probes:
            if probe["id"] not in outcomes:
                why = ("the grader's time limit for this submission ran out" if not finished
                       else "the worker stopped before running this probe")
                outcomes[probe["id"]] = ProbeOutcome(probe["id"], "missing", why, log_tail=worker_err)
        return WorkerRun(outcomes=outcomes, layers=layers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
