"""Worker entry point: import torch once, then run the probes.

Fork mode (Linux): this process (the worker parent) never imports student
code. Each probe runs in a forked child that starts a new session, applies
resource limits, sends its output to a log, imports the student module, runs
one probe and sends ``b"OK" + npz`` or ``b"ER" + text`` back over a pipe. The
worker parent enforces the per-probe timeout and kills the child's process
group and every orphan reparented to it (it is a subreaper).

No-fork mode (macOS, Windows, or when asked): probes run one after another in
this process; the grader enforces the timeouts and restarts the worker for the
probes left after one that crashed.

Results go to the grader over a duplicate of the original stdout, one frame
per probe (after a ``ready`` frame once torch is imported): b"DGM1", header
length (4 bytes, big-endian), JSON header, payload length (8 bytes), payload
(npz bytes, possibly empty). Anything student code prints goes to a log file.
"""
import ctypes
import errno
import importlib
import io
import json
import os
import signal
import sys
import time
import traceback

try:  # POSIX only; on Windows the worker runs without resource limits
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass


def _children() -> list[int]:
    """Direct children of this process (Linux), including orphans reparented to it."""
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def _kill_descendants(pgid: int) -> None:
    """Kill the probe's process group and every orphan that was reparented to us; reap them."""
    for _ in range(50):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in _children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                break
        if not _children():
            return
        time.sleep(0.01)


def _count_own_processes() -> int:
    uid, n = os.getuid(), 0
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += 1
            except OSError:
                pass
    return n


def _set_limits(req: dict, cpu: int | None = None) -> None:
    """CPU seconds, address space, file size, process count and no core dumps for this process."""
    if resource is None:
        return

    def setl(which: int, soft: int) -> None:
        try:
            _, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(which, (soft, soft if hard == resource.RLIM_INFINITY else hard))
        except (ValueError, OSError):
            pass

    cpu = cpu or int(req["timeout_s"]) + 2
    setl(resource.RLIMIT_CPU, cpu)
    setl(resource.RLIMIT_CORE, 0)
    setl(resource.RLIMIT_FSIZE, int(req["fsize_mb"]) << 20)
    try:
        with open("/proc/self/statm") as f:
            vm_now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        setl(resource.RLIMIT_AS, vm_now + (int(req["memory_mb"]) << 20))
    except OSError:
        pass
    if hasattr(resource, "RLIMIT_NPROC") and os.getuid() != 0:
        setl(resource.RLIMIT_NPROC, _count_own_processes() + int(req["nproc"]))


_FSIZE_MB = [16]


def req_fsize_mb() -> int:
    return _FSIZE_MB[0]


def _describe(err: BaseException, module_root: str) -> str:
    """A student-readable account of an exception: its type and text, and where in their code."""
    if isinstance(err, SystemExit):
        return f"the code called sys.exit({err.code!r}); a graded function must return instead"
    if isinstance(err, NotImplementedError):
        return "not implemented (the function still raises NotImplementedError)"
    if isinstance(err, SyntaxError):
        where = os.path.relpath(err.filename, module_root) if err.filename else "the file"
        return f"SyntaxError in {where}, line {err.lineno}: {err.msg}"
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith(module_root)]
    where = ""
    if frames:
        f = frames[-1]
        where = f" (at {os.path.relpath(f.filename, module_root)}, line {f.lineno}: {(f.line or '').strip()})"
    text = str(err)
    if isinstance(err, OSError) and err.errno == errno.EFBIG:
        text = f"the code printed or wrote more than {req_fsize_mb()} MB (the output limit)"
    if isinstance(err, MemoryError) or "can't allocate memory" in text or "DefaultCPUAllocator" in text:
        text = "out of memory (the memory limit was exceeded)"
    if isinstance(err, NameError) and str(module_root):
        text += (" (in a notebook the grader runs only imports, functions, classes and constant "
                 "assignments; compute anything else inside your function)")
    return f"{type(err).__name__}: {text[:800]}{where}"


def _run_child(probe: dict, req: dict) -> bytes:
    """Body of a probe child: import the student module, run the probe, return npz bytes."""
    import numpy as np

    from . import PROBE_KINDS

    module_root = req["module_root"]
    sys.path.insert(0, module_root)
    rel = req["module"]
    name = rel[:-3].replace("/", ".") if rel.endswith(".py") else rel
    module = importlib.import_module(name)
    function = probe["args"].get("function")
    if function and not callable(getattr(module, function, None)):
        raise LookupError(f"{req.get('display') or rel} defines no function named {function!r}")
    arrays = PROBE_KINDS[probe["kind"]](module, probe["args"])
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()})
    return buf.getvalue()


def _redirect_output(log_path: str) -> None:
    """Send fd 0 to /dev/null and fds 1 and 2 to the probe's log (capped by RLIMIT_FSIZE)."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the cap, writes fail with EFBIG instead


def _run_inline(probe: dict, req: dict) -> tuple[dict, bytes]:
    """No-fork mode: run one probe in this process, output to its log; the grader times it."""
    log_path = os.path.join(req["scratch"], f"{probe['id']}.log")
    saved = os.dup(1), os.dup(2)
    start = time.monotonic()
    try:
        _redirect_output(log_path)
        data = b"OK" + _run_child(probe, req)
    except BaseException as err:  # noqa: BLE001 - the student's SystemExit too
        data = b"ER" + _describe(err, req["module_root"]).encode("utf-8", "replace")
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
    header = {"id": probe["id"], "duration_s": round(time.monotonic() - start, 4), "log_tail": _tail(log_path)}
    if data.startswith(b"OK"):
        header.update(status="ok", message="")
        return header, data[2:]
    header.update(status="error", message=data[2:].decode("utf-8", "replace")[:2000])
    return header, b""


def _fork_probe(probe: dict, req: dict, result_fd: int) -> tuple[dict, bytes]:
    """Run one probe in a forked child under limits; return (header, payload)."""
    r, w = os.pipe()
    log_path = os.path.join(req["scratch"], f"{probe['id']}.log")
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        msg = b"ER internal"
        try:
            os.close(r)
            os.close(result_fd)
            os.setsid()
            _set_limits(req)
            _redirect_output(log_path)
            msg = b"OK" + _run_child(probe, req)
        except BaseException as err:  # SystemExit and KeyboardInterrupt too: the child reports all
            try:
                msg = b"ER" + _describe(err, req["module_root"]).encode("utf-8", "replace")
            except BaseException:
                msg = b"ER" + type(err).__name__.encode()
        finally:
            try:
                view = memoryview(len(msg).to_bytes(8, "big") + msg)
                while view:
                    view = view[os.write(w, view):]
            finally:
                os._exit(0)

    import select

    os.close(w)
    # Read the length-prefixed message; never wait for EOF, since descendants of the
    # child may hold the pipe open. Stop when the message is complete or the child is gone.
    deadline = start + float(req["timeout_s"])
    buf, timed_out, exited = b"", False, None
    cap = int(req["max_output_bytes"])
    while True:
        want = 8 + int.from_bytes(buf[:8], "big") if len(buf) >= 8 else None
        if want is not None and (len(buf) >= want or want > cap + 8):
            break
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([r], [], [], min(left, 0.05))
        if ready:
            chunk = os.read(r, 1 << 20)
            if not chunk:
                break
            buf += chunk
        elif exited is None:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                exited = code
        elif not ready:
            break  # the child is gone and nothing more arrives
    os.close(r)
    chunks = []
    if len(buf) >= 8:
        size = int.from_bytes(buf[:8], "big")
        if size > cap:
            chunks = [b"ER" + f"the probe returned more than {cap} bytes".encode()]
        elif len(buf) >= 8 + size:
            chunks = [buf[8:8 + size]]
    status = _wait_status(pid, timed_out, exited)
    _kill_descendants(pid)
    duration = time.monotonic() - start
    data = b"".join(chunks)
    header = {"id": probe["id"], "duration_s": round(duration, 4), "log_tail": _tail(log_path)}
    if timed_out:
        header.update(status="timeout", message=f"timed out after {req['timeout_s']} s (an infinite loop, or far too slow)")
        return header, b""
    if data.startswith(b"OK"):
        header.update(status="ok", message="")
        return header, data[2:]
    if data.startswith(b"ER"):
        header.update(status="error", message=data[2:].decode("utf-8", "replace")[:2000])
        return header, b""
    header.update(status="crashed", message=status)
    return header, b""


def _wait_status(pid: int, timed_out: bool, code: int | None = None) -> str:
    """Reap the probe child and describe how it ended (for children that sent nothing)."""
    try:
        os.killpg(pid, signal.SIGKILL)  # the child and anything still in its process group
    except (ProcessLookupError, PermissionError):
        pass
    if code is None:
        try:
            _, code = os.waitpid(pid, 0)
        except ChildProcessError:
            return "the process ended without returning a result"
    if os.WIFSIGNALED(code):
        sig = os.WTERMSIG(code)
        hint = {signal.SIGXCPU: " (CPU time limit)", signal.SIGKILL: " (killed: memory or time limit?)",
                signal.SIGSEGV: " (segmentation fault)"}.get(sig, "")
        return f"the process was killed by signal {signal.Signals(sig).name}{hint}"
    return (f"the process exited with status {os.WEXITSTATUS(code)} without returning a result "
            "(os._exit() or a crash in native code?)")


def _tail(path: str, n: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _send(fd: int, header: dict, payload: bytes) -> None:
    head = json.dumps(header).encode()
    frame = b"DGM1" + len(head).to_bytes(4, "big") + head + len(payload).to_bytes(8, "big") + payload
    view = memoryview(frame)
    while view:
        view = view[os.write(fd, view):]


# Libraries worth importing once in the worker parent when the student module imports them:
# each forked child would otherwise pay for them again (torchvision alone takes seconds).
# A fixed list: importing an arbitrary name could run anything.
PRELOAD = ("torchvision", "matplotlib", "matplotlib.pyplot", "scipy", "PIL", "tqdm", "pandas", "sklearn")


def _preload_imports(req: dict) -> None:
    """Import the PRELOAD libraries that the student module imports (found by parsing, not running it)."""
    import ast

    path = os.path.join(req["module_root"], req["module"])
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            source = f.read()
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return
    if "optim" in source:  # the first optimiser built in a process pays ~1.7 s of lazy imports
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    wanted = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            wanted |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            wanted.add(node.module)
    for name in PRELOAD:
        if name in wanted or any(w.startswith(name + ".") for w in wanted):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the child will report its own import error
                pass


def main(request_json: str) -> None:
    """Run every probe of the request and stream one frame per probe to the grader."""
    req = json.loads(request_json)
    _FSIZE_MB[0] = int(req["fsize_mb"])
    result_fd = os.dup(1)                 # the grader reads frames from our original stdout
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)                   # stray prints can no longer corrupt the frames
    os.close(devnull)
    _prctl(PR_SET_DUMPABLE, 0)            # children (same uid) cannot read our fds via /proc
    _prctl(PR_SET_CHILD_SUBREAPER, 1)     # detached grandchildren come back to us to be killed
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy  # noqa: F401  (imported once, shared by every forked child)
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("MPLBACKEND", "Agg")
    _preload_imports(req)
    _send(result_fd, {"ready": True}, b"")
    if not req.get("fork", True):
        _set_limits(req, cpu=int(req["timeout_s"] * len(req["probes"])) + 5)
    for probe in req["probes"]:
        if req.get("fork", True):
            header, payload = _fork_probe(probe, req, result_fd)
        else:
            header, payload = _run_inline(probe, req)
        _send(result_fd, header, payload)
    os.close(result_fd)
