"""One copy of torch for the grader and all its worker servers (Linux, no bubblewrap).

Gradescope gives a submission 768 MB. The grader needs torch (it evaluates the
reference on the student's draws) and so does every worker server; two
separate imports cost two copies of torch's private memory (about 290 MiB each
with the CUDA build PyPI serves). Here the grader imports torch once, then
forks a *zygote* at a moment it has read nothing secret (before any assignment,
solution, check or answer key is loaded): the zygote forks the worker servers
on request, and all of them share torch's pages with the grader.

Clean by construction: :func:`start` refuses to fork once the grader has
loaded anything of an assignment (its modules in ``sys.modules``), so the
servers, and the student code they fork, can find nothing secret in their own
memory. Where the zygote cannot be used (bubblewrap must exec its sandbox; a
different worker interpreter; not started early), :mod:`grader.sandbox.runner` execs
its servers as before.

Protocol on a Unix socket pair: the grader sends a length-prefixed JSON
request, the zygote answers with a length-prefixed JSON reply, and for
``spawn`` also passes the server's stdin, stdout and stderr pipes
(``SCM_RIGHTS``). The zygote is a subreaper: what a dead server leaves comes
back to it and is killed.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import IO

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PRELOAD = ("numpy", "torch")          # what the grader and every server import anyway
SECRET_MODULE_PREFIXES = ("dgm_reference_", "dgm_assignments", "dgm_hidden")


class ForkServerError(RuntimeError):
    """The zygote is gone or answered nonsense (a grader fault)."""


def _prctl(option: int, value: int, name: bytes | None = None) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if name is not None:
            libc.prctl(option, name, 0, 0, 0)
        else:
            libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _send_msg(sock: socket.socket, data: dict, fds: list[int] = ()) -> None:
    body = json.dumps(data).encode()
    msg = len(body).to_bytes(4, "big") + body
    if fds:
        socket.send_fds(sock, [msg], list(fds))
    else:
        sock.sendall(msg)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _recv_msg(sock: socket.socket, want_fds: int = 0) -> tuple[dict, list[int]]:
    fds: list[int] = []
    if want_fds:
        head, fds, _, _ = socket.recv_fds(sock, 4, want_fds)
        if len(head) < 4:
            head += _recv_exact(sock, 4 - len(head))
    else:
        head = _recv_exact(sock, 4)
    return json.loads(_recv_exact(sock, int.from_bytes(head, "big"))), fds


# --------------------------------------------------------------------------- the zygote (child side)


def _children() -> list[int]:
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        pass
    return pids


def _server_main(request: dict, fds: tuple[int, int, int]) -> None:
    """In the forked server: its own session, pipes as 0/1/2, a clean environment, then the worker."""
    stdin_r, stdout_w, stderr_w = fds
    os.setsid()
    for target, fd in ((0, stdin_r), (1, stdout_w), (2, stderr_w)):
        os.dup2(fd, target)
    os.closerange(3, 1 << 16)
    # fresh text streams on 0, 1 and 2: the grader's own may wrap other descriptors (pytest's capture)
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.path[:] = list(request["sys_path"])
    sys.argv = ["dgm-worker"]
    from grader.sandbox.worker.main import main

    main(request["config"])


def _spawn(request: dict) -> tuple[int, list[int]]:
    """Fork one worker server; return its pid and the grader's ends of its pipes."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _server_main(request, (stdin_r, stdout_w, stderr_w))
        except BaseException:  # noqa: BLE001 - a server that cannot start says so on its stderr
            import traceback

            try:
                traceback.print_exc()
            except BaseException:  # noqa: BLE001
                pass
            code = 1
        finally:
            os._exit(code)
    for fd in (stdin_r, stdout_w, stderr_w):
        os.close(fd)
    return pid, [stdin_w, stdout_r, stderr_r]


def _zygote(sock: socket.socket) -> None:
    """Serve spawn and status requests until the grader hangs up; kill whatever orphans come back."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_NAME, 0, b"dgm-zygote")
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)
    servers: set[int] = set()
    exited: dict[int, int] = {}
    while True:
        while True:   # reap: servers' statuses are kept for the grader, orphans are killed
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in servers:
                servers.discard(pid)
                exited[pid] = os.waitstatus_to_exitcode(status)
        for pid in _children():
            if pid not in servers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        ready, _, _ = select.select([sock], [], [], 0.05)
        if not ready:
            continue
        try:
            request, _ = _recv_msg(sock)
        except (EOFError, OSError, ValueError):
            break
        op = request.get("op")
        if op == "spawn":
            pid, fds = _spawn(request)
            servers.add(pid)
            _send_msg(sock, {"pid": pid}, fds)
            for fd in fds:
                os.close(fd)
        elif op == "status":
            pid = int(request["pid"])
            if pid in exited:
                _send_msg(sock, {"exited": True, "code": exited[pid]})
            else:
                _send_msg(sock, {"exited": pid not in servers, "code": None if pid in servers else -9})
        else:
            _send_msg(sock, {"error": f"unknown op {op!r}"})
    for pid in list(servers):   # the grader is gone: so are its servers
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# --------------------------------------------------------------------------- the grader's side


class Server:
    """A worker server forked by the zygote, with the parts of ``subprocess.Popen`` the sandbox uses."""

    def __init__(self, zygote: Zygote, pid: int, fds: list[int]) -> None:
        self._zygote, self.pid = zygote, pid
        self.stdin: IO[bytes] = os.fdopen(fds[0], "wb")
        self.stdout: IO[bytes] = os.fdopen(fds[1], "rb")
        self.stderr: IO[bytes] = os.fdopen(fds[2], "rb")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal) once the server has ended, else None."""
        if self.returncode is None:
            self.returncode = self._zygote.status(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"worker server {self.pid} still runs")
            time.sleep(0.005)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Zygote:
    """The grader's handle on its zygote: spawn servers, ask how they ended."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid, self._sock = pid, sock
        self._lock = threading.Lock()

    def _ask(self, request: dict, want_fds: int = 0) -> tuple[dict, list[int]]:
        with self._lock:
            try:
                _send_msg(self._sock, request)
                return _recv_msg(self._sock, want_fds)
            except (EOFError, OSError, ValueError) as err:
                raise ForkServerError(f"the worker zygote is gone ({err})") from err

    def spawn(self, config: str, env: dict[str, str], cwd: str, sys_path: list[str]) -> Server:
        """Fork a worker server that runs ``grader.sandbox.worker.main.main(config)``."""
        reply, fds = self._ask({"op": "spawn", "config": config, "env": env, "cwd": cwd,
                                "sys_path": sys_path}, want_fds=3)
        if "pid" not in reply or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            raise ForkServerError(f"the worker zygote did not start a server ({reply})")
        return Server(self, int(reply["pid"]), fds)

    def status(self, pid: int) -> int | None:
        try:
            reply, _ = self._ask({"op": "status", "pid": pid})
        except ForkServerError:
            return None if os.path.exists(f"/proc/{pid}") and not _zombie(pid) else -9
        return reply.get("code") if reply.get("exited") else None

    def stop(self) -> None:
        """Hang up: the zygote kills its servers and leaves."""
        try:
            self._sock.close()
        except OSError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


# --------------------------------------------------------------------------- a clean start


KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
            "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MPLBACKEND",
            # the grader's own settings (docs/security.md)
            "DGM_NO_BWRAP", "DGM_NO_CGROUPS", "DGM_NO_FORK", "DGM_NO_ZYGOTE", "DGM_PYTHON_COPIES",
            "DGM_UID_RANGE", "DGM_WORKER_PYTHON")
# glibc 2.35+ then backs malloc's memory with transparent huge pages where the kernel offers them
# (its "madvise" mode included): forking a process that holds torch copies a few hundred page-table
# entries instead of tens of thousands, about 2 ms less per fork here (a probe is one fork, a
# submission five). Only for processes that fork per submission; older glibc ignores it.
HUGE_PAGES = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
CLEAN_FD = "DGM_CLEAN_FD"
PRELOAD_ASSIGNMENTS = "DGM_PRELOAD_ASSIGNMENTS"


def reexec_clean(module: str, assignments: list[str], huge_pages: bool = False) -> None:
    """Become a fresh ``python -m module`` whose environment and command line hold only the grader's
    own settings, so that the zygote it forks (and the student code forked below it) finds neither
    the caller's environment (tokens, passwords) nor its arguments (paths naming students) in its
    memory. The real arguments and environment follow in a memfd, read back by :func:`restore`
    after the zygote has forked. Returns only where this is not possible (then nothing changed).
    ``huge_pages``: start it with :data:`HUGE_PAGES` (a class: cheaper forks, a little more memory).
    """
    if os.environ.get(CLEAN_FD) or not hasattr(os, "memfd_create") or not sys.platform.startswith("linux"):
        return
    try:
        fd = os.memfd_create("dgm-args", 0)   # no close-on-exec: the new program reads it
        os.write(fd, json.dumps({"argv": sys.argv[1:], "env": dict(os.environ)}).encode())
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        return
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
    env.update({CLEAN_FD: str(fd), PRELOAD_ASSIGNMENTS: ",".join(assignments)}, **(HUGE_PAGES if huge_pages else {}))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, [sys.executable, "-m", module], env)
    except OSError:
        os.close(fd)


def clean_start() -> list[str] | None:
    """In a process made by :func:`reexec_clean`: the assignments to preload, else None."""
    if not os.environ.get(CLEAN_FD):
        return None
    return [n for n in os.environ.get(PRELOAD_ASSIGNMENTS, "").split(",") if n]


def restore() -> None:
    """After the zygote forked: the caller's real arguments and environment back, from the memfd."""
    fd = os.environ.get(CLEAN_FD)
    if not fd:
        return
    with os.fdopen(int(fd), "rb") as f:
        data = json.loads(f.read())
    os.environ.clear()
    os.environ.update(data["env"])
    os.environ.pop(CLEAN_FD, None)
    sys.argv[1:] = data["argv"]


_ZYGOTE: list[Zygote] = []
_START_LOCK = threading.Lock()


_TAINT: list[str] = []


def taint(what: str) -> None:
    """Record that this process has read grading material (a reference, a key): it forks no zygote."""
    _TAINT.append(what)


def secrets_loaded() -> list[str]:
    """What of an assignment, reference or key this process has loaded (then it must not fork one)."""
    return _TAINT + [m for m in sys.modules if m.startswith(SECRET_MODULE_PREFIXES)]


def start(sources: tuple[bytes, ...] = ()) -> bool:
    """Import torch here and fork the zygote now, while this process holds nothing secret.

    Call it first thing in an entry point (before any assignment is loaded).
    ``sources``: public code like the students' (the starter), whose libraries
    (torchvision, matplotlib...) are imported here first, so that the grader
    and every server share them. True when a zygote runs; False where forking
    is not possible or not safe.
    """
    with _START_LOCK:
        if _ZYGOTE:
            return True
        if not sys.platform.startswith("linux") or not hasattr(socket, "send_fds") \
                or os.environ.get("DGM_NO_FORK") or os.environ.get("DGM_NO_ZYGOTE") or secrets_loaded():
            return False
        for name in PRELOAD:
            __import__(name)
        import grader.sandbox.probing  # noqa: F401  (every server imports it; the fork shares it)
        from grader.sandbox.worker.main import preload_for

        saved = os.environ.get("MPLBACKEND")
        os.environ["MPLBACKEND"] = "Agg"   # matplotlib picks its backend once, at import: no display
        try:
            for source in sources:
                preload_for(source)
        finally:
            if saved is None:
                os.environ.pop("MPLBACKEND", None)
            else:
                os.environ["MPLBACKEND"] = saved
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                _zygote(theirs)
            finally:
                os._exit(0)
        theirs.close()
        _ZYGOTE.append(Zygote(pid, ours))
        from . import isolation

        isolation.on_exit(stop)
        return True


def get() -> Zygote | None:
    """The running zygote, if :func:`start` forked one."""
    return _ZYGOTE[0] if _ZYGOTE else None


def stop() -> None:
    """Stop the zygote (and so every server it forked)."""
    with _START_LOCK:
        while _ZYGOTE:
            _ZYGOTE.pop().stop()
