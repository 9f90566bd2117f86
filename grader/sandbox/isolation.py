"""Who student code runs as, and what it must never reach (parent side, standard library only).

The barrier that holds everywhere the grader runs as root, Docker (Gradescope)
included, is the uid: every submission's code runs as a uid of its own, leased
from a reserved range (``DGM_UID_RANGE``, default 60100-60999; uids with a
passwd entry are skipped), and grading material is made unreadable to it.
Bubblewrap, where it works, adds a private file system, network and PID view.

:func:`plan` decides once per process what holds here and lists it, so that
every report can say which layers were in force.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import pwd
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_UID_RANGE = "60100-60999"
LOCK_DIRS = ("/run/dgm-harness", os.path.join(tempfile.gettempdir(), "dgm-harness-uids"))


class IsolationError(RuntimeError):
    """The barrier this machine should have cannot be put in place (a grader fault, never the student's)."""


# --------------------------------------------------------------------------- the worker's interpreter


@dataclass(frozen=True)
class Interpreter:
    """The Python that runs the worker: its executable, prefixes and package folders."""

    executable: str
    prefixes: tuple[str, ...]
    paths: tuple[str, ...]        # sys.path of that interpreter (absolute entries)
    version: str


@functools.lru_cache(maxsize=4)
def interpreter(executable: str | None = None) -> Interpreter:
    """The worker's interpreter: ``DGM_WORKER_PYTHON`` if set, else this one.

    A separate interpreter (same Python version, with torch) lets a grader whose
    own Python is private (say under /root) run probes as an unprivileged uid.
    """
    exe = executable or os.environ.get("DGM_WORKER_PYTHON") or sys.executable
    if os.path.realpath(exe) == os.path.realpath(sys.executable):
        return Interpreter(sys.executable, tuple(dict.fromkeys((sys.prefix, sys.base_prefix, sys.exec_prefix))),
                           tuple(p for p in sys.path if p and os.path.isabs(p)),
                           "{}.{}".format(*sys.version_info[:2]))
    code = ("import json, sys; print(json.dumps([sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}), "
            "sys.path, '%d.%d' % sys.version_info[:2]]))")
    try:
        out = subprocess.run([exe, "-E", "-s", "-c", code], capture_output=True, text=True, timeout=60,
                             check=True).stdout
        prefixes, paths, version = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        raise IsolationError(f"DGM_WORKER_PYTHON={exe} does not run ({err})") from err
    return Interpreter(exe, tuple(prefixes), tuple(p for p in paths if p and os.path.isabs(p)), version)


def passable_by_others(path: str) -> bool:
    """True when a uid that is neither owner nor group member can pass through every folder to ``path``."""
    p = Path(os.path.realpath(path))
    try:
        return all(q.stat().st_mode & 0o001 for q in [*reversed(p.parents), p])
    except OSError:
        return False


def readable_by_others(path: str) -> bool:
    """True when a uid that is neither owner nor group member can reach and read ``path``."""
    p = Path(os.path.realpath(path))
    try:
        for parent in [*reversed(p.parents), p]:
            if not parent.stat().st_mode & 0o001:
                return False
        return bool(p.stat().st_mode & 0o004)
    except OSError:
        return False


# --------------------------------------------------------------------------- the plan


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    """Path of a working bubblewrap, or None (absent, disabled by ``DGM_NO_BWRAP``, or namespaces blocked)."""
    exe = shutil.which("bwrap")
    if not exe or os.environ.get("DGM_NO_BWRAP") or not sys.platform.startswith("linux"):
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


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class Plan:
    """What isolates student code on this machine, decided once per grader process."""

    bwrap: str | None        # a working bubblewrap
    fork: bool               # one forked child per probe from a warm server
    own_uid: bool            # each submission runs as a leased uid of its own
    python: Interpreter

    @property
    def reuse_servers(self) -> bool:
        """A warm server may grade submission after submission only when each gets its own uid:
        then whatever one leaves can be found by owner and destroyed. Otherwise one server each."""
        return self.fork and self.own_uid

    @property
    def barrier(self) -> str:
        """``bubblewrap``, ``uid`` (root without bubblewrap: Docker, Gradescope) or ``none``."""
        return "bubblewrap" if self.bwrap else "uid" if self.own_uid else "none"

    def layers(self) -> list[str]:
        """The isolation layers in force, in words, for every report."""
        out = ["separate process", "per-probe timeout"]
        if os.name == "posix":
            out.append("resource limits; memory, processes and scratch disk capped per submission")
        out.append("one forked process per graded function" if self.fork
                   else "graded functions run one after another (restarted after a crash)")
        if self.bwrap:
            out += ["bubblewrap: private file system view (repository and other submissions hidden)",
                    "no network", "PID namespace (all descendants killed)"]
        if self.own_uid:
            out.append("runs as an unprivileged uid of its own; everything that uid owns is destroyed after it")
        if self.barrier == "uid":
            out.append("no bubblewrap: grading material is hidden by file permissions; the network is NOT closed")
        if self.barrier == "none":
            out.append(f"NO isolation barrier ({self.why_no_barrier()}): student code runs with the grader's "
                       "own rights and could read anything it can")
        return out

    def why_no_barrier(self) -> str:
        """Why no barrier holds, and what would make one (for an instructor)."""
        if not is_root():
            return ("not root: student code runs as you, fine for checking your own code; to grade others' "
                    "install bubblewrap or grade as root")
        return (f"the worker's Python ({self.python.executable}) is not readable by other users and no "
                f"readable copy could be made in {copies_dir()}; install bubblewrap, or set "
                "DGM_WORKER_PYTHON to a Python with torch that every user can read")

    def summary(self) -> str:
        """The isolation in force, in one short line (printed once at the start of every run)."""
        if self.bwrap:
            return "isolation: bubblewrap sandbox" + (", a uid per submission" if self.own_uid else "")
        if self.own_uid:
            return "isolation: a uid per submission, grading material hidden by permissions (network open)"
        return f"isolation: none ({self.why_no_barrier()})"

    def refuses(self) -> bool:
        """True when student code would run as root with nothing in between: then nothing is graded."""
        return self.barrier == "none" and is_root() and sys.platform.startswith("linux")


@functools.lru_cache(maxsize=1)
def plan() -> Plan:
    """The isolation of this grader process (cached; tests clear it with ``plan.cache_clear()``)."""
    py = interpreter()
    bwrap = bwrap_path()
    fork = fork_mode()
    own_uid = False
    if is_root() and sys.platform.startswith("linux"):
        # inside bubblewrap the interpreter is mounted world-readable; without it, it must already be,
        # or a copy that is (a Python under /root, as pyenv installs it)
        if not bwrap and not readable(py):
            py = readable_copy(py) or py
        own_uid = bool(bwrap) or readable(py)
    return Plan(bwrap=bwrap, fork=fork, own_uid=own_uid, python=py)


def readable(py: Interpreter) -> bool:
    """True when every uid can run ``py`` and read its libraries."""
    return readable_by_others(py.executable) and all(readable_by_others(p) for p in python_folders(py))


def copies_dir() -> str:
    """Where readable copies of private interpreters are kept (``DGM_PYTHON_COPIES``)."""
    return os.environ.get("DGM_PYTHON_COPIES", "/var/lib/dgm-harness/python")


def _copy_roots(py: Interpreter) -> list[str]:
    """The folders to copy for ``py``: its prefixes and package folders, none inside another."""
    folders = sorted({os.path.realpath(p) for p in (*py.prefixes, *python_folders(py))})
    return [f for f in folders if not any(f.startswith(g + os.sep) for g in folders if g != f)]


def readable_copy(py: Interpreter) -> Interpreter | None:
    """A copy of ``py`` that every uid can read, made of hard links (seconds, no disk), once per
    machine and interpreter state; None where it cannot be made (another file system, not root).

    The copy keeps the absolute layout under :func:`copies_dir`, so paths map one to one. It is
    made again when a package folder changes (``pip install``), and older copies are removed.
    """
    roots = _copy_roots(py)
    exe = os.path.realpath(py.executable)
    # the package folders inside the copied roots too: `pip install` changes site-packages, not its prefix
    inside = {os.path.realpath(p) for p in (*py.paths, *python_folders(py))
              if any(os.path.realpath(p) == r or os.path.realpath(p).startswith(r + os.sep) for r in roots)}
    state = [(r, os.stat(r).st_mtime_ns) for r in sorted({*roots, *inside}) if os.path.isdir(r)]
    key = hashlib.sha256(json.dumps([exe, state]).encode()).hexdigest()[:16]
    base = copies_dir()
    dest = os.path.join(base, key)

    def mapped(path: str) -> str:
        return os.path.join(dest, os.path.realpath(path).lstrip(os.sep))

    copy = Interpreter(mapped(exe), tuple(mapped(p) for p in py.prefixes), tuple(mapped(p) for p in py.paths),
                       py.version)
    if _ours(base) and _ours(dest) and _ours(os.path.join(dest, ".complete")) and readable(copy):
        return copy   # made by root and writable by nobody else: not a Python a student planted
    with _COPY_LOCK:
        lock = -1
        try:
            os.makedirs(base, mode=0o755, exist_ok=True)
            if not _ours(base):
                return None   # a folder others may write: what we make there could be replaced
            for d in [*reversed(Path(base).parents), Path(base)]:
                if not os.stat(d).st_mode & 0o001:
                    return None   # the copies would be as private as the original
            # one maker at a time across processes (parallel test workers, two graders): the others
            # wait, then find its copy, instead of replacing it under the servers already using it
            lock = os.open(os.path.join(base, ".lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _ours(dest) and _ours(os.path.join(dest, ".complete")) and readable(copy):
                return copy
            part = tempfile.mkdtemp(prefix=key + ".part-", dir=base)
            os.chmod(part, 0o755)
            for root in roots:
                target = os.path.join(part, root.lstrip(os.sep))
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                if subprocess.run(["cp", "-al", root, target], capture_output=True).returncode != 0:
                    shutil.rmtree(part, ignore_errors=True)
                    return None
            for old in os.listdir(base):   # copies for an older state, a day unused (a grader may still run one)
                older = os.path.join(base, old)
                if old != key and old != ".lock" and time.time() - os.lstat(older).st_mtime > 86400:
                    shutil.rmtree(older, ignore_errors=True)
            shutil.rmtree(dest, ignore_errors=True)
            os.rename(part, dest)
            Path(dest, ".complete").write_text(exe + "\n")
        except OSError:
            return None
        finally:
            if lock >= 0:
                os.close(lock)
    return copy if readable(copy) else None


_COPY_LOCK = threading.Lock()


def _ours(path: str) -> bool:
    """True when ``path`` exists, belongs to this (root) process's user and no one else may write it."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode)


def python_folders(py: Interpreter) -> list[str]:
    """The interpreter's prefixes and the package folders on its path (what a probe may import from)."""
    prefixes = {os.path.realpath(p) for p in py.prefixes}
    out = set(prefixes) | {os.path.dirname(os.path.realpath(py.executable))}
    for p in py.paths:
        real = os.path.realpath(p)
        if os.path.isdir(real) and (os.path.basename(real) in ("site-packages", "dist-packages")
                                    or any(real.startswith(q + os.sep) for q in prefixes)):
            out.add(real)
    return sorted(out)


# --------------------------------------------------------------------------- uid leases


def uid_range() -> range:
    """The reserved uids (``DGM_UID_RANGE=first-last``)."""
    text = os.environ.get("DGM_UID_RANGE", DEFAULT_UID_RANGE)
    try:
        first, last = (int(x) for x in text.split("-"))
    except ValueError as err:
        raise IsolationError(f"DGM_UID_RANGE={text!r}: expected FIRST-LAST, e.g. {DEFAULT_UID_RANGE}") from err
    if not 1000 <= first <= last < 2**31:
        raise IsolationError(f"DGM_UID_RANGE={text!r}: uids must lie between 1000 and 2^31")
    return range(first, last + 1)


def _lock_dir() -> str:
    """A root-only folder for the uid lock files, shared by every grader process on the machine."""
    for d in LOCK_DIRS:
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            st = os.lstat(d)
            if st.st_uid == os.geteuid() and not st.st_mode & 0o077 and os.path.isdir(d) \
                    and not os.path.islink(d):
                return d
        except OSError:
            continue
    raise IsolationError(f"no private folder for uid locks (tried {', '.join(LOCK_DIRS)})")


class UidLease:
    """One reserved uid, held (by a lock file every grader process respects) until released."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid, self._fd = uid, fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)   # closing drops the lock
            self._fd = -1

    def retire(self, why: str) -> None:
        """Never lease this uid again (on this machine, by any grader): something it left could not
        be removed, and the next submission given it would find it. Course staff may delete the
        ``<uid>.retired`` file in the lock folder once they have cleaned up."""
        try:
            report = f"{time.strftime('%Y-%m-%d %H:%M:%S')} uid {self.uid} retired: {why}\n"
            fd = os.open(os.path.join(_lock_dir(), f"{self.uid}.retired"),
                         os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
            try:
                os.write(fd, report.encode())
            finally:
                os.close(fd)
            print(f"grader: {report.strip()} (see docs/security.md)", file=sys.stderr)
        finally:
            self.release()


_LEASE_LOCK = threading.Lock()


def lease_uid(wait_s: float = 120.0) -> UidLease:
    """A reserved uid that no other submission (of any grader process here) is using.

    Processes an earlier, crashed grader left under that uid are killed first.
    """
    uids = uid_range()
    lock_dir = _lock_dir()
    deadline = time.monotonic() + wait_s
    while True:
        start = random.randrange(len(uids))
        retired = 0
        for i in range(len(uids)):
            uid = uids[(start + i) % len(uids)]
            try:
                pwd.getpwuid(uid)
                continue            # a real account: never ours to kill
            except KeyError:
                pass
            path = os.path.join(lock_dir, f"{uid}.lock")
            if os.path.lexists(os.path.join(lock_dir, f"{uid}.retired")):
                retired += 1
                continue            # something of an earlier submission survived under it
            with _LEASE_LOCK:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
            if pids_of(uid):
                kill_uid(uid)
            return UidLease(uid, fd)
        if retired == len(uids):
            raise IsolationError(f"all {len(uids)} reserved uids ({uids.start}-{uids.stop - 1}) are retired: "
                                 f"something each ran could not be removed (see the .retired files in {lock_dir})")
        if time.monotonic() > deadline:
            raise IsolationError(f"all {len(uids)} reserved uids ({uids.start}-{uids.stop - 1}) are in use"
                                 + (f" or retired ({retired})" if retired else ""))
        time.sleep(0.1)


def pids_of(uid: int) -> list[int]:
    """Processes of ``uid`` that this process can see."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
            except OSError:
                pass
    return out


def kill_uid(uid: int, wait_s: float = 10.0) -> bool:
    """Kill every process of ``uid`` from here (a shell running as that uid signals them all).

    Used when a worker server died before it could clean up after a submission.
    Children of ours among them (orphans come back to us, a subreaper) are reaped.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            subprocess.run(["/bin/sh", "-c", "kill -9 -1 2>/dev/null; exit 0"], user=uid, group=uid,
                           extra_groups=[], env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, cwd="/")
        except (OSError, subprocess.SubprocessError):
            pass
        for pid in pids_of(uid):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        left = pids_of(uid)
        if not left or time.monotonic() > deadline:
            return not left
        time.sleep(0.01)


# --------------------------------------------------------------------------- what the uid must not reach


_PROTECTED: set[str] = set()
_PROTECT_LOCK = threading.Lock()


def _exposed(path: str, uid: int) -> bool:
    """True when ``uid`` can list, traverse or read ``path`` (asked of the kernel, ACLs included)."""
    try:
        test = 'if [ -d "$1" ]; then test -r "$1" || test -x "$1"; else test -r "$1"; fi'
        r = subprocess.run(["/bin/sh", "-c", test, "sh", path], user=uid,
                           group=uid, extra_groups=[], env={"PATH": "/usr/bin:/bin"}, cwd="/",
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=20)
    except (OSError, subprocess.SubprocessError) as err:
        raise IsolationError(f"cannot check what uid {uid} may read ({err})") from err
    return r.returncode == 0


def _targets(path: str, keep: list[str]) -> list[str]:
    """``path``, or, when a folder the worker needs lies inside it, its other entries (recursively)."""
    inside = [k for k in keep if k == path or k.startswith(path.rstrip(os.sep) + os.sep)]
    if not inside:
        return [path]
    if path in inside or not os.path.isdir(path):
        return []
    out = []
    for name in sorted(os.listdir(path)):
        out += _targets(os.path.join(path, name), keep)
    return out


def protect(paths: list[Path | str], uid: int) -> list[str]:
    """Make ``paths`` unreachable for probe uids (root without bubblewrap); the paths changed.

    Removes the 'other' permissions of each path (of the entries beside the
    worker's interpreter where that lies inside it), then asks the kernel, as
    ``uid``, whether it can still reach them: if it can (an ACL, a read-only
    file system), grading stops rather than run student code beside the
    solutions.
    """
    changed = []
    keep = python_folders(plan().python)
    with _PROTECT_LOCK:
        for path in paths:
            real = os.path.realpath(path)
            if real in _PROTECTED or not os.path.exists(real):
                continue
            for target in _targets(real, keep):
                try:
                    mode = os.lstat(target).st_mode
                    if mode & 0o007 and not os.path.islink(target):
                        os.chmod(target, mode & ~0o007)
                        changed.append(target)
                except OSError:
                    pass
                if _exposed(target, uid):
                    raise IsolationError(
                        f"{target} stays readable by other users (an ACL or a read-only file system?); student "
                        f"code running as uid {uid} could read it. Make it private, or install bubblewrap.")
            _PROTECTED.add(real)
    return changed


# --------------------------------------------------------------------------- leaving nothing behind


_CLEANUPS: list = []


def on_exit(fn) -> None:
    """Register ``fn()`` to run when the grader exits by :func:`run_then_clean_up` (worker pools do)."""
    _CLEANUPS.append(fn)


_TEMPS: set[str] = set()


def private_temp(prefix: str) -> Path:
    """A fresh temporary folder that :func:`clean_up` removes if the grader is stopped before its
    owner could (SIGTERM in the middle of a batch); its owner removes it with :func:`remove_temp`.
    Its name carries our pid (``<prefix><pid>.<random>``), so that a grader started after one that
    was killed outright can tell it is stale (``sandbox.remove_stale_temp``)."""
    path = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.")
    _TEMPS.add(path)
    return Path(path)


def remove_temp(path: Path) -> None:
    """Remove a folder made by :func:`private_temp` (whatever depth a submission gave it)."""
    from .worker.contain import remove_tree

    remove_tree(str(path))
    _TEMPS.discard(str(path))


def clean_up() -> None:
    """Stop every worker and helper and remove their folders (each registered clean-up, once),
    then every temporary folder still registered."""
    while _CLEANUPS:
        fn = _CLEANUPS.pop()
        try:
            fn()
        except Exception:  # noqa: BLE001 - one failed clean-up must not stop the others
            pass
    for path in list(_TEMPS):
        remove_temp(Path(path))


def run_then_clean_up(main) -> int:
    """Run ``main()`` and return its exit status; whatever ends it (an exception, Ctrl-C, SIGTERM
    from ``timeout``), workers are stopped and temporary folders removed first.

    Callers then leave with ``os._exit`` (skipping torch's slow teardown), which
    would skip ``atexit``: hence this explicit clean-up.
    """
    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                signal.signal(sig, handler)
    code = 1
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)   # a second Ctrl-C must not cut the clean-up short
        clean_up()
    return code
