"""Worker entry point: a server that imports torch once, then runs requests from the grader.

The grader writes requests to our stdin (8-byte big-endian length, then JSON:
the submission's folder name, its module, the probes and the limits). The
submission lies read-only under ``submission_root/<dir>``; each request gets a
fresh scratch folder, removed afterwards.

Fork mode (Linux): this process (the server) never imports student code, so
one server grades submission after submission without paying torch's import
again. Each probe runs in a forked child that starts a new session, drops to
the submission's own uid (when the server runs as root; see ``contain``),
applies resource limits,
sends its output to a log, imports the student module, runs one probe and
sends ``b"OK" + arrays`` or ``b"ER" + text`` back over a pipe. The server enforces
the per-probe timeout and kills the child's process group and every orphan
reparented to it (it is a subreaper).

No-fork mode (macOS, Windows, or when asked): probes run one after another in
this process, which then exits; the grader enforces the timeouts and restarts
the worker for the probes left after one that crashed.

Results go to the grader over a duplicate of the original stdout, one frame
per probe (after a ``ready`` frame once torch is imported, and followed by a
``done`` frame per request): b"DGM1", header length (4 bytes, big-endian),
JSON header, payload length (8 bytes), payload (the arrays as ``probing.encode_arrays`` writes
them, possibly empty).
Anything student code prints goes to a log file.
"""
import ctypes
import errno
import importlib
import json
import os
import re
import signal
import sys
import tempfile
import time
import traceback

from . import cgroups, contain

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
    """Direct children of this process (Linux), including orphans reparented to it, but not our
    own helper (see ``contain.AsUid``)."""
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return [p for p in pids if p not in contain.helper_pids()]


def _kill_descendants(pgid: int | None, wait_s: float = 10.0) -> None:
    """Kill the probe's process group (if given) and every child or orphan reparented to us; reap them.

    Rounds go on until none is left (a tree that keeps re-forking at its bottom
    loses a generation each round: a process with SIGKILL pending cannot fork).
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if pgid is not None:
                os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in _children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        contain.reap()
        if not _children() or time.monotonic() > deadline:
            return
        time.sleep(0.002)


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
    """CPU seconds, address space, file size, process count, no message queues, no core dumps.

    Memory and processes are capped for the submission as a whole: its processes
    share one uid, so ``RLIMIT_NPROC`` counts all of them, and the server's
    watchdog sums their memory; the address-space limit only stops one process
    from asking for far more than the cap at once.
    """
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
        fresh = req.get("uid") is not None    # a uid of its own: nothing else counts against it
        setl(resource.RLIMIT_NPROC, int(req["nproc"]) + (0 if fresh else _count_own_processes()))
    contain.forbid_message_queues()


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


def _install_code(code: dict | None) -> None:
    """Make the probe code importable: the package ``code["package"]`` is the folder ``code["root"]``."""
    if code and code["package"] not in sys.modules:
        import types

        pkg = types.ModuleType(code["package"])
        pkg.__path__ = [code["root"]]
        sys.modules[code["package"]] = pkg


def probe_function(probe: dict, code: dict | None):
    """The function of the probe kind ``probe["kind"]`` declared in module ``probe["module"]`` (imported now)."""
    from grader.sandbox.probing import specs_in

    if not code:
        raise LookupError("no probe code was given to the worker")
    module = importlib.import_module(f"{code['package']}.{probe['module']}")
    specs = specs_in(module)
    if probe["kind"] not in specs:
        raise LookupError(f"{probe['module']} declares no probe {probe['kind']!r}")
    return specs[probe["kind"]].fn


def _run_child(probe: dict, req: dict, imported_fd: int | None = None) -> bytes:
    """Body of a probe child: import the student module, run the probe, return its arrays' bytes.
    ``imported_fd``: written to once the import is done (the server then knows a timeout came later)."""

    fn = probe_function(probe, req.get("code"))
    module_root = req["module_root"]
    sys.path.insert(0, module_root)
    rel = req["module"]
    name = rel[:-3].replace("/", ".") if rel.endswith(".py") else rel
    module = importlib.import_module(name)
    if imported_fd is not None:
        os.write(imported_fd, b"i")
        os.close(imported_fd)
    function = probe["args"].get("function")
    if function and not callable(getattr(module, function, None)):
        raise LookupError(f"{req.get('display') or rel} defines no function named {function!r}")
    arrays = fn(module, probe["args"])
    from grader.sandbox.probing import encode_arrays

    return encode_arrays(arrays)


def _close_all_but(*keep: int) -> None:
    """Close every descriptor from 3 up except ``keep``."""
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


def _redirect_output(log_fd: int) -> None:
    """Send fd 0 to /dev/null and fds 1 and 2 to the probe's log (capped by RLIMIT_FSIZE)."""
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the cap, writes fail with EFBIG instead


def _open_log(req: dict, probe: dict) -> int:
    """A fresh log file for ``probe`` in the server's private folder; children get only the
    descriptor, so a child can never point the server at another file (e.g. with a symlink)."""
    name = "".join(c if c.isalnum() else "_" for c in str(probe["id"]))
    path = os.path.join(req["log_dir"], f"{name}.log")
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)


def _drop_privileges(uid: int | None) -> None:
    """Become ``uid`` for good (only when running as root and given one)."""
    if uid is not None and hasattr(os, "getuid") and os.getuid() == 0:
        contain.become(uid)


def _probe_folder(req: dict) -> str:
    """A fresh, empty working folder (and HOME) for one probe, owned by the submission's uid: what
    one graded function leaves there never reaches the next. A random name, so nothing made
    earlier can stand in its way."""
    path = tempfile.mkdtemp(prefix="w", dir=req["scratch"])
    if req.get("uid") is not None:
        os.chown(path, req["uid"], req["uid"])
    return path


def _enter(folder: str) -> None:
    os.environ["HOME"] = folder
    os.chdir(folder)


def _run_inline(probe: dict, req: dict) -> tuple[dict, bytes]:
    """No-fork mode: run one probe in this process, output to its log; the grader times it."""
    log_fd = _open_log(req, probe)
    saved = os.dup(1), os.dup(2)
    start = time.monotonic()
    work = None
    try:
        work = _probe_folder(req)
        _enter(work)
        _redirect_output(os.dup(log_fd))
        data = b"OK" + _run_child(probe, req)
    except BaseException as err:  # noqa: BLE001 - the student's SystemExit too
        data = b"ER" + _describe(err, req["module_root"]).encode("utf-8", "replace")
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        _enter(req["scratch"])
        if work is not None:
            contain.remove_tree(work)
    header = {"id": probe["id"], "duration_s": round(time.monotonic() - start, 4), "log_tail": _tail(log_fd)}
    os.close(log_fd)
    if data.startswith(b"OK"):
        header.update(status="ok", message="")
        return header, data[2:]
    header.update(status="error", message=data[2:].decode("utf-8", "replace")[:2000])
    return header, b""


def _fork_probe(probe: dict, req: dict, keep_fds: tuple[int, ...]) -> tuple[dict, bytes]:
    """Run one probe in a forked child under limits, watched by the caps; return (header, payload)."""
    r, w = os.pipe()
    log_fd = _open_log(req, probe)
    work = _probe_folder(req)
    marker_r, marker_w = os.pipe()   # the child says here when the student's module is imported
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        msg = b"ER internal"
        try:
            os.close(r)
            os.close(marker_r)
            for fd in keep_fds:  # the result stream and the request pipe stay the server's
                os.close(fd)
            _close_all_but(w, log_fd, marker_w)   # and so does everything else it holds (its helper's pipes)
            os.setsid()
            if req.get("group") is not None:
                req["group"].join()   # as root, before the uid: all it starts is charged to the group
            _drop_privileges(req.get("uid"))
            if req.get("uid") is not None and req.get("write_roots") and contain.landlock_abi() > 0:
                if not contain.confine_writes(req["write_roots"]):   # so that every file it makes is counted
                    raise RuntimeError("the grader could not confine this function's writes (Landlock)")
            _enter(work)
            _set_limits(req)
            _redirect_output(log_fd)
            msg = b"OK" + _run_child(probe, req, marker_w)
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
    os.close(marker_w)
    watchdog = req["watchdog"]
    # Read the length-prefixed message; never wait for EOF, since descendants of the
    # child may hold the pipe open. Stop when the message is complete or the child is gone.
    # Its time is its own: wall clock less what it waited, ready to run, for a CPU that other
    # submissions' processes held; the wall clock is only a backstop (a starved probe is not blamed).
    timeout_s = float(req["timeout_s"])
    wall_s = max(timeout_s, float(req.get("wall_s", timeout_s)))
    buf, timed_out, exited, breach, waited, used = b"", False, None, None, 0.0, 0.0
    cap = int(req["max_output_bytes"])
    while True:
        want = 8 + int.from_bytes(buf[:8], "big") if len(buf) >= 8 else None
        if want is not None and (len(buf) >= want or want > cap + 8):
            break
        elapsed = time.monotonic() - start
        waited = max(waited, _run_delay_s(pid))
        own = elapsed - waited
        if elapsed >= timeout_s:   # waiting is excused only for a probe that did not itself use the CPU
            used = max(used, _cpu_s(watchdog.pids() + [pid]))
            own = max(own, used)
        left = min(timeout_s - own, wall_s - elapsed)
        if left <= 0:
            timed_out = True
            break
        breach = watchdog.breach()
        if breach:
            break
        ready, _, _ = select.select([r], [], [], min(left, 0.02))
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
    if breach is None and watchdog.group is not None:
        breach = watchdog.breach()   # the kernel's out-of-memory kill may be what ended the child
    chunks = []
    if len(buf) >= 8 and not breach:
        size = int.from_bytes(buf[:8], "big")
        if size > cap:
            chunks = [b"ER" + f"the probe returned more than {cap} bytes".encode()]
        elif len(buf) >= 8 + size:
            chunks = [buf[8:8 + size]]
    status = _wait_status(pid, timed_out or bool(breach), exited)
    _end_probe_processes(pid, req)
    contain.remove_tree(work)   # nobody of the submission is left to write in it
    duration = time.monotonic() - start
    data = b"".join(chunks)
    header = {"id": probe["id"], "duration_s": round(duration, 4), "log_tail": _tail(log_fd)}
    os.close(log_fd)
    os.set_blocking(marker_r, False)
    try:
        imported = bool(os.read(marker_r, 1))
    except OSError:
        imported = False
    os.close(marker_r)
    if breach:
        header.update(status="crashed", message=breach)
        return header, b""
    if timed_out and not imported:
        where = req.get("display") or req["module"]
        header.update(status="timeout", import_timeout=True,
                      message=f"importing {where} timed out after {req['timeout_s']} s (code at the top level of "
                              "the file runs on import: an infinite loop, a wait, or far too slow)")
        return header, b""
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


def _run_delay_s(pid: int) -> float:
    """Seconds process ``pid``'s main thread has been ready to run but waiting for a CPU (the
    kernel's schedstat); 0 where the kernel does not say, so the wall clock alone then counts."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds ``pids`` used, with those of their children already reaped (a helper process
    doing the work while the probe's main thread made itself wait counts too)."""
    total = 0
    for p in set(pids):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])   # utime, stime, cutime, cstime
        except (OSError, ValueError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def _end_probe_processes(pid: int, req: dict) -> None:
    """Nothing a probe started outlives it: every process of the submission's uid, or else every
    descendant of ours, is killed and reaped."""
    if req.get("group") is not None:
        req["group"].kill()
    if req.get("uid") is not None:
        contain.kill_uid(req["uid"])
    _kill_descendants(pid)


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


def _tail(fd: int, n: int = 2000) -> str:
    """The last ``n`` bytes of the log open at ``fd``, as text."""
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, n, max(0, size - n)).decode("utf-8", "replace")
    except (OSError, AttributeError):  # pread is POSIX-only
        try:
            os.lseek(fd, max(0, os.fstat(fd).st_size - n), 0)
            return os.read(fd, n).decode("utf-8", "replace")
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


PRELOAD_SCAN_BYTES = 2 << 20
IMPORT_LINE = re.compile(rb"^[ \t]*(?:import[ \t]+([\w. ,\t]+)|from[ \t]+([\w.]+)[ \t]+import)", re.M)


def _preload_imports(req: dict) -> None:
    """Import the PRELOAD libraries that the student module imports (see :func:`preload_for`)."""
    path = os.path.join(req["module_root"], req["module"])
    try:
        with open(path, "rb") as f:
            source = f.read(PRELOAD_SCAN_BYTES)
    except OSError:
        return
    preload_for(source)


def preload_plan(source: bytes) -> list[str]:
    """What to load once for code like ``source``: the warm-ups ("optim", "autograd") and the
    PRELOAD libraries it imports.

    Never parses the source as Python: a regular expression finds its import
    lines in the first ``PRELOAD_SCAN_BYTES`` (linear time, bounded memory);
    anything it misses is imported by the child itself.
    """
    source = source[:PRELOAD_SCAN_BYTES]
    plan = [w for w in ("optim", "autograd") if w.encode() in source]
    wanted = set()
    for names, module in IMPORT_LINE.findall(source):
        for name in (names.split(b",") if names else [module]):
            wanted.add(name.strip().split(b" ")[0].decode("ascii", "replace"))
    return plan + [n for n in PRELOAD if n in wanted or any(w.startswith(n + ".") for w in wanted)]


_WARM: list[bool] = []


def _warm_autograd(torch) -> None:
    """Run the kinds of operations every probe runs once, here, so that the lazy set-up of torch's
    operators and of autograd is done before the fork and not again in each child (a few ms each)."""
    import torch.nn.functional as F

    state = torch.get_rng_state()   # the global generator is left as it was
    try:
        x = torch.randn(4, 8, requires_grad=True)
        h = torch.nn.Linear(8, 1)(torch.tanh(x)).squeeze(1)
        loss = (F.logsigmoid(h).mean() + F.softplus(-h).mean() + torch.sigmoid(h).log().mean()
                + F.binary_cross_entropy_with_logits(h, torch.ones(4)))
        (grad,) = torch.autograd.grad(loss, x, create_graph=True)
        ((grad.reshape(4, -1).norm(2, dim=1) - 1) ** 2).mean().backward()
    except Exception:  # noqa: BLE001 - only a warm-up
        pass
    finally:
        torch.set_rng_state(state)


def preload(plan: list[str]) -> None:
    """Import once, here, what forked children would each import again (see :func:`preload_plan`).

    The grader calls it with the starter's plan before forking its zygote, and a
    server with it at start (``config["preload"]``), so that those libraries'
    memory is shared; a request's handler adds what the student's own code imports."""
    import torch

    if not _WARM:
        _WARM.append(True)
        _warm_autograd(torch)
    for item in plan:
        if item == "optim":  # the first optimiser built in a process pays ~1.7 s of lazy imports
            torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        elif item == "autograd":  # autograd.grad(..., grad_outputs=...) lazily imports sympy (~0.7 s)
            try:
                importlib.import_module("torch.fx.experimental.symbolic_shapes")
            except Exception:  # noqa: BLE001 - only a warm-up
                pass
        elif item in PRELOAD:
            try:
                importlib.import_module(item)
            except Exception:  # noqa: BLE001 - the child will report its own import error
                pass


def preload_for(source: bytes) -> None:
    """:func:`preload` what code like ``source`` imports."""
    preload(preload_plan(source))


def _read_exact(fd: int, n: int) -> bytes | None:
    """Read exactly ``n`` bytes from ``fd``; None at end of input."""
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _next_request(fd: int) -> dict | None:
    """The next request from the grader (8-byte length, then JSON), or None when it hung up."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    body = _read_exact(fd, int.from_bytes(head, "big"))
    return None if body is None else json.loads(body)


def _empty(folder: str) -> bool:
    """Remove everything inside ``folder`` (left by the last submission), keeping the folder; True
    when it is empty."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return all([contain.remove_tree(os.path.join(folder, name)) for name in names])


def _serve_one(req: dict, config: dict, result_fd: int, request_fd: int) -> None:
    """Run every probe of one request, one frame per probe, then a ``done`` frame.

    With a uid for the submission, everything it owns is destroyed before its
    first probe (what a crashed earlier grader left) and after its last; the
    ``done`` frame says whether that left the server clean, so the grader can
    retire a server it cannot trust. When the uid cannot be emptied before the
    first probe, no probe runs: the frame names the uid, and the grader retires it.
    """
    name = str(req["dir"])
    if not name.isalnum():
        raise ValueError(f"bad submission folder name {name!r}")
    given = req.get("uid") if os.getuid() == 0 else None
    if given is not None and (not isinstance(given, int) or given < 1000):
        raise ValueError(f"bad uid {given!r}")
    # fork mode: probe children switch to the uid; no-fork: this process does, before the probes
    uid, req["uid_inline"] = (given, None) if config["fork"] else (None, given)
    req["uid"] = uid
    req["code"] = config.get("code")
    for probe in req["probes"]:   # imported now, as root: probes run as a uid that may not read them
        probe_function(probe, req["code"])
    roots = list(config.get("file_roots", []))
    if uid is not None:
        if config.get("ipc_namespace"):
            contain.new_ipc_namespace()   # the last submission's IPC objects go with the old one
        if not contain.purge(uid, roots):   # something of it survives: no student code runs beside it
            _send(result_fd, {"done": True, "clean": False, "unclean_uid": uid}, b"")
            return
    req["module_root"] = os.path.join(config["submission_root"], name)
    req["scratch"] = os.path.join(config["scratch_root"], name)
    req["log_dir"] = os.path.join(config["scratch_root"], "." + name + "-logs")
    os.makedirs(req["log_dir"], mode=0o700)
    # probes work in fresh folders inside it (see _probe_folder); they may pass, not write here
    os.makedirs(req["scratch"], mode=0o711 if uid is not None else 0o700)
    req["group"] = None
    if config.get("cgroup") and config["fork"]:   # caps the kernel enforces (see cgroups)
        req["group"] = cgroups.Group.from_dict(config["cgroup"]).child(name)
        req["group"].limit(int(req["memory_mb"]) << 20, int(req["nproc"]) + 16)
    req["write_roots"] = [req["scratch"], *roots] if roots else []
    req["watchdog"] = contain.Watchdog(os.getpid(), uid, int(req["memory_mb"]), int(req["disk_mb"]),
                                       list(config.get("tmpfs", [])), [req["scratch"], *roots],
                                       group=req["group"])
    _FSIZE_MB[0] = int(req["fsize_mb"])
    _preload_imports(req)
    if not config["fork"]:   # student code runs in this very process, as the submission's uid
        if req.get("uid_inline") is not None and os.getuid() == 0:
            contain.purge(req["uid_inline"], roots)   # what a crashed earlier grader left under this uid
            for folder in (req["scratch"], req["log_dir"]):
                os.chown(folder, req["uid_inline"], req["uid_inline"])
            _drop_privileges(req["uid_inline"])
        os.environ["HOME"] = req["scratch"]
        os.chdir(req["scratch"])
        _set_limits(req, cpu=int(req["timeout_s"] * len(req["probes"])) + 5)
    stuck = None   # importing the module timed out: it would again, for every function
    for probe in req["probes"]:
        if stuck is not None:
            header, payload = {"id": probe["id"], "status": "timeout", "message": stuck, "duration_s": 0.0}, b""
        elif config["fork"]:
            header, payload = _fork_probe(probe, req, (result_fd, request_fd))
            if header.pop("import_timeout", False):
                stuck = header["message"]
        else:
            header, payload = _run_inline(probe, req)
        _send(result_fd, header, payload)
    clean = True
    if req["group"] is not None:
        clean = req["group"].kill()
        req["group"].remove()
    uid_clean = True
    if uid is not None:
        uid_clean = contain.purge(uid, roots) or contain.purge(uid, roots)   # once more before giving up
        clean = uid_clean and clean
    _kill_descendants(None)
    clean = contain.remove_tree(req["scratch"]) and clean
    contain.remove_tree(req["log_dir"])
    for folder in config.get("wipe", []):  # private /tmp of the sandbox: nothing carries over
        clean = _empty(folder) and clean
    _send(result_fd, {"done": True, "clean": clean, "uid_clean": uid_clean}, b"")


def main(config_json: str) -> None:
    """Serve requests from stdin until the grader closes it (one request in no-fork mode).

    ``config``: ``fork`` (bool); ``submission_root`` and ``scratch_root`` (folders);
    ``file_roots`` (folders where a submission's uid could leave files, searched
    after it); ``tmpfs`` (the sandbox's size-limited mounts, whose usage is the
    submission's disk use); ``wipe`` (private folders emptied after every
    request); ``ipc_namespace`` (give each submission a fresh IPC namespace).
    Each request names the uid its probes run as (None when we are not root).
    """
    config = json.loads(config_json)
    result_fd = os.dup(1)                 # the grader reads frames from our original stdout
    request_fd = os.dup(0)                # and writes requests to our original stdin
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)                   # stray prints can no longer corrupt the frames
    os.close(devnull)
    _prctl(PR_SET_DUMPABLE, 0)            # children cannot read our memory or fds via /proc
    _prctl(PR_SET_CHILD_SUBREAPER, 1)     # detached grandchildren come back to us to be killed
    if os.getuid() == 0 and config["fork"]:
        contain.start_helper()            # forked while we are small: it kills a uid's processes fast
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy  # noqa: F401  (imported once, shared by every forked child)
    import torch

    _install_code(config.get("code"))
    torch.set_num_threads(1)
    os.environ.setdefault("MPLBACKEND", "Agg")
    preload([str(p) for p in config.get("preload", [])])   # the starter's libraries (public)
    _send(result_fd, {"ready": True}, b"")
    while (req := _next_request(request_fd)) is not None:
        if not config["fork"]:
            _serve_one(req, config, result_fd, request_fd)
            break   # student code ran in this process: it must not grade another submission
        _import_probes(req, config)
        _serve_in_handler(req, config, result_fd, request_fd)
        _kill_descendants(None)   # whatever came back to us from the handler's tree
    os.close(result_fd)


def _import_probes(req: dict, config: dict) -> None:
    """Import the request's probe modules here, in the server, once: each handler forked for a
    submission then has them already (trusted, public code; about 10 ms a submission otherwise).
    A module that fails to import is left to the handler, which reports it on the probe."""
    for probe in req.get("probes", []):
        try:
            probe_function(probe, config.get("code"))
        except Exception:  # noqa: BLE001 - reported by the handler, per probe
            pass


def _serve_in_handler(req: dict, config: dict, result_fd: int, request_fd: int) -> None:
    """Serve one request in a child of ours that ends with it.

    Everything of the submission this side reads (its source for the preload
    scan, its logs, its results) lands in the handler's memory and dies with it;
    the server itself never holds any, so the next student's probes, forked from
    a fresh handler, find nothing of the last one in their memory.
    """
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
            _serve_one(req, config, result_fd, request_fd)
        except BaseException:  # noqa: BLE001 - the grader sees a request with no done frame
            code = 1
        finally:
            os._exit(code)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            status = 0
            break
    if status != 0:   # the handler died: the grader must not reuse us blindly
        _kill_descendants(None)
        _send(result_fd, {"done": True, "clean": False}, b"")
