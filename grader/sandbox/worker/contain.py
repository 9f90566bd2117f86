"""Containment of one submission inside the worker server (standard library only).

Each submission's code runs as a uid of its own, given by the grader from a
reserved range, so that what it leaves behind can be found by owner and
destroyed whatever it did:

* processes at any depth (setsid, re-forking, ignoring signals): a helper
  running as that uid calls ``kill(-1, SIGKILL)``; the kernel signals every
  process of the uid at once, and a process with SIGKILL pending cannot fork;
* System V IPC objects (found in ``/proc/sysvipc``), kernel keyring keys
  (the uid's user keyrings are cleared), files it owns in the folders it could
  write; POSIX message queues cannot be created at all (``RLIMIT_MSGQUEUE`` 0);
* where the server may, each submission also gets a fresh IPC namespace.

:class:`Watchdog` caps what all processes of a submission use together:
private memory summed over them (with the memory-backed files, System V segments
and socket buffers it holds), and scratch disk (tmpfs usage in the
sandbox, else the size of the files the uid owns).
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
import socket
import stat
import struct
import time
from collections.abc import Iterator

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None

try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - Windows
    _LIBC = None

PR_SET_NO_NEW_PRIVS = 38
PR_SET_NAME = 15
HELPER_NAME = b"dgm-as-uid"
CLONE_NEWIPC = 0x08000000
IPC_RMID = 0
KEYCTL_CLEAR = 7
KEY_SPEC_USER_KEYRING = -4
KEY_SPEC_USER_SESSION_KEYRING = -5
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "arm64": 219}.get(platform.machine())
SYSVIPC = (("shm", "shmid", "shmctl"), ("msg", "msqid", "msgctl"), ("sem", "semid", "semctl"))


def become(uid: int) -> None:
    """Switch this (forked, root) process to ``uid`` for good: no groups, no way back, no setuid gains."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def forbid_message_queues() -> None:
    """POSIX message queues live in the kernel and outlive processes: allow none (``RLIMIT_MSGQUEUE`` 0)."""
    if resource is not None and hasattr(resource, "RLIMIT_MSGQUEUE"):
        try:
            resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))
        except (ValueError, OSError):
            pass


def new_ipc_namespace() -> bool:
    """Move this process (and its future children) to a fresh IPC namespace; False where not allowed.

    The previous namespace, with every object the last submission made in it,
    disappears once the last process in it is gone.
    """
    if _LIBC is None or not hasattr(_LIBC, "unshare"):
        return False
    return _LIBC.unshare(CLONE_NEWIPC) == 0


def pids_of(uid: int) -> list[int]:
    """Processes (zombies included) whose effective uid is ``uid``, as this process's /proc shows them."""
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
            except OSError:
                pass
    return out


def reap() -> None:
    """Collect every child of ours that has ended (orphans come back to us: we are a subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _as_uid(uid: int, body) -> None:
    """Run ``body()`` in a forked child that became ``uid``; wait for it."""
    pid = os.fork()
    if pid == 0:
        try:
            become(uid)
            body()
        finally:
            os._exit(0)
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _kill_all_of_uid() -> None:
    """In a process running as the uid: SIGKILL to every process it may signal.

    One call is enough: the kernel signals them all while holding the task list,
    and a process with SIGKILL pending cannot fork any more. (Its return value
    says nothing: it is 0 whenever any other process exists.)
    """
    for _ in range(2):
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            return


def _clear_keyrings() -> None:
    """In a process running as the uid: empty its user keyrings (keys are not namespaced: they outlive
    every process and would reach the next submission given this uid)."""
    if _LIBC is None or SYS_KEYCTL is None:
        return
    for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
        _LIBC.syscall(SYS_KEYCTL, KEYCTL_CLEAR, ctypes.c_long(ring))


_OPS = {"kill": _kill_all_of_uid, "keys": _clear_keyrings}


class AsUid:
    """A small root helper that runs :data:`_OPS` as a given uid, on request.

    Forked before the server imports torch: forking a process that holds torch
    costs tens of milliseconds, forking this one about one. Without it (not
    started, or gone) the work is done by forking the caller.
    """

    def __init__(self) -> None:
        self.pid = 0
        if not hasattr(os, "fork"):
            return
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                if _LIBC is not None:
                    _LIBC.prctl(PR_SET_NAME, HELPER_NAME, 0, 0, 0)   # told apart from probes by its name
                os.closerange(3, req_r)
                os.closerange(req_r + 1, resp_w)
                os.closerange(resp_w + 1, 1 << 16)
                self._serve(req_r, resp_w)
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(resp_w)
        self.pid, self._req, self._resp = pid, req_w, os.fdopen(resp_r, "rb")

    @staticmethod
    def _serve(req: int, resp: int) -> None:
        with os.fdopen(req, "rb") as requests:
            for line in requests:
                op, _, uid = line.decode().partition(" ")
                if op in _OPS and uid.strip().isdigit() and int(uid) >= 1000:   # never root or a system user
                    _as_uid(int(uid), _OPS[op])
                os.write(resp, b"ok\n")

    def run(self, op: str, uid: int) -> None:
        """Run ``op`` ("kill" or "keys") as ``uid`` and wait until it is done."""
        if self.pid:
            try:
                os.write(self._req, f"{op} {uid}\n".encode())
                if self._resp.readline() == b"ok\n":
                    return
            except OSError:
                pass
            self.pid = 0
        _as_uid(uid, _OPS[op])


_HELPER: list[AsUid] = []


def start_helper() -> None:
    """Start the :class:`AsUid` helper (call before importing anything large)."""
    if not _HELPER:
        _HELPER.append(AsUid())


def helper_pids() -> set[int]:
    """The pid of our helper (a child of the server that must not be swept with the probes' processes)."""
    return {h.pid for h in _HELPER if h.pid}


def _as(op: str, uid: int) -> None:
    if _HELPER:
        _HELPER[0].run(op, uid)
    else:
        _as_uid(uid, _OPS[op])


def _alive(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def kill_uid(uid: int, wait_s: float = 10.0) -> bool:
    """Kill every process of ``uid`` and reap what comes back to us; True when none is left."""
    deadline = time.monotonic() + wait_s
    while True:
        if any(_alive(p) for p in pids_of(uid)):
            _as("kill", uid)
        reap()
        left = pids_of(uid)
        if not left or time.monotonic() > deadline:
            return not left
        time.sleep(0.002)   # dying processes (or zombies of a dying parent) take a moment


def remove_ipc(uid: int) -> int:
    """Remove the System V shared memory, queues and semaphores that ``uid`` owns or created; the count."""
    removed = 0
    if _LIBC is None:
        return removed
    for kind, id_col, ctl in SYSVIPC:
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        if not lines:
            continue
        header = lines[0].split()
        for line in lines[1:]:
            row = dict(zip(header, line.split()))
            try:
                if uid in (int(row["uid"]), int(row["cuid"])):
                    ident = int(row[id_col])
                    rc = (_LIBC.semctl(ident, 0, IPC_RMID) if ctl == "semctl"
                          else getattr(_LIBC, ctl)(ident, IPC_RMID, None))
                    removed += rc == 0
            except (KeyError, ValueError):
                continue
    return removed


MAX_FILES = 100_000   # files and folders one submission may make (each costs kernel memory)


class Uncountable(Exception):
    """A walk met more entries than it may count, or a folder it could not read."""


def _walk(roots: list[str], descend, owned=None, limit: int | None = None
          ) -> Iterator[tuple[str, os.stat_result]]:
    """(path, lstat) of every entry under ``roots``, entering the folders for which ``descend(st)``
    is true; links are never followed, and there is no recursion.

    With ``limit``, raises :class:`Uncountable` once more than ``limit`` entries satisfy
    ``owned(st)``, or when a folder it enters cannot be listed (too deep for a path, say):
    a count that stopped early must never pass for a small one.
    """
    seen = 0
    stack = [r for r in roots if os.path.isdir(r) and not os.path.islink(r)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue   # removed meanwhile
        except OSError:
            if limit is not None:
                raise Uncountable(folder) from None
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError:
                if limit is not None:   # e.g. a path longer than PATH_MAX
                    raise Uncountable(entry.path) from None
                continue
            if limit is not None and (owned is None or owned(st)):
                seen += 1
                if seen > limit:
                    raise Uncountable(folder)
            if stat.S_ISDIR(st.st_mode) and descend(st):
                stack.append(entry.path)
            yield entry.path, st


def _writable_by(uid: int):
    """``descend`` for the folders where ``uid`` may have made entries without owning the folder."""
    return lambda st: st.st_uid != uid and bool(st.st_mode & stat.S_IWOTH)


def remove_files(uid: int, roots: list[str]) -> bool:
    """Delete every file and folder that ``uid`` owns under ``roots``; True when none is left.

    The uid can only create entries in folders it owns or that are world-writable,
    so only those are searched; a folder it owns is removed whole. Links are
    never followed. There is no limit on entries or depth; a second walk checks
    that nothing of the uid is left.
    """
    for path, st in list(_walk(roots, _writable_by(uid))):
        if st.st_uid == uid:
            remove(path, stat.S_ISDIR(st.st_mode))
    return not any(st.st_uid == uid for _, st in _walk(roots, _writable_by(uid)))


_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_dir(name: str, dir_fd: int) -> int:
    """Open the folder ``name`` in ``dir_fd``, never through a link; when we may not read it (a
    folder of ours made 0o000), make it u+rwx first."""
    try:
        return os.open(name, _DIR | _NOFOLLOW, dir_fd=dir_fd)
    except PermissionError:
        path_fd = os.open(name, getattr(os, "O_PATH", os.O_RDONLY) | _NOFOLLOW | getattr(os, "O_DIRECTORY", 0),
                          dir_fd=dir_fd)
        try:
            os.chmod(f"/proc/self/fd/{path_fd}", stat.S_IRWXU)   # the folder itself, whatever its name
        finally:
            os.close(path_fd)
        return os.open(name, _DIR | _NOFOLLOW, dir_fd=dir_fd)


def _empty_here(fd: int) -> tuple[list[str], bool]:
    """Unlink every non-folder in the open folder ``fd``; (its subfolders, whether all went)."""
    folders, ok, fixed = [], True, False
    try:
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.name)
                        continue
                    try:
                        os.unlink(entry.name, dir_fd=fd)
                    except PermissionError:
                        if fixed:
                            raise
                        os.fchmod(fd, stat.S_IRWXU)   # a folder of ours we may not write
                        fixed = True
                        os.unlink(entry.name, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except OSError:
                    ok = False
    except OSError:
        ok = False
    return folders, ok


def remove_tree(path: str) -> bool:
    """Delete ``path`` (a file, a link, or a folder with everything in it); True when it is gone.

    Iterative, with one folder open at a time: no recursion limit, no entry limit,
    paths longer than PATH_MAX are fine. Links are never followed. Folders we may
    not read or write (ours, made 0o000) are made u+rwx first. Errors never
    escape; what could not be removed makes the answer False.
    """
    parent, name = os.path.split(os.path.abspath(path))
    try:
        top = os.open(parent, _DIR)
    except OSError:
        return not os.path.lexists(path)
    try:
        try:
            st = os.stat(name, dir_fd=top, follow_symlinks=False)
        except FileNotFoundError:
            return True
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=top)
            return True
        return _remove_folder(top, name)
    except OSError:
        return False
    finally:
        os.close(top)


def _remove_folder(top: int, name: str) -> bool:
    """Body of :func:`remove_tree` for a folder ``name`` in the open folder ``top``."""
    ok = True
    cur = _open_dir(name, top)
    stack: list[list] = [[name, None, 0]]   # per level: its name, subfolders left to visit, times emptied
    try:
        while stack:
            level = stack[-1]
            if level[1] is None:
                level[1], emptied = _empty_here(cur)
                level[2] += 1
                ok = ok and emptied
            if level[1]:
                sub = level[1].pop()
                try:
                    child = _open_dir(sub, cur)
                except FileNotFoundError:
                    continue
                except OSError:
                    ok = False
                    continue
                os.close(cur)
                cur = child
                stack.append([sub, None, 0])
                continue
            up = top if len(stack) == 1 else os.open("..", _DIR, dir_fd=cur)
            os.close(cur)
            cur = up
            try:
                os.rmdir(level[0], dir_fd=up)
            except FileNotFoundError:
                pass
            except OSError as err:
                if err.errno == errno.ENOTEMPTY and level[2] < 3:   # something appeared: once more
                    cur = _open_dir(level[0], up)
                    level[1] = None
                    if up != top:
                        os.close(up)
                    continue
                ok = False
            stack.pop()
        return ok
    finally:
        if cur != top:
            os.close(cur)


def remove(path: str, is_dir: bool = False) -> bool:
    """Delete a file, link or (whole) folder; True when it is gone. Never raises."""
    return remove_tree(path)


def purge(uid: int, file_roots: list[str]) -> bool:
    """Destroy everything of ``uid``: processes, keys, IPC objects, files. True when nothing is left
    (else the server that ran it must not serve another submission)."""
    clean = kill_uid(uid)
    _as("keys", uid)
    reap()
    remove_ipc(uid)
    files_gone = remove_files(uid, file_roots)
    return clean and files_gone and not pids_of(uid)


# --------------------------------------------------------------------------- landlock

SYS_LANDLOCK = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446), "arm64": (444, 445, 446)}.get(
    platform.machine())
LANDLOCK_RULE_PATH_BENEATH = 1
FS_WRITE_FILE, FS_REMOVE_DIR, FS_REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
FS_MAKE = sum(1 << b for b in range(6, 13))          # char, dir, reg, sock, fifo, block, sym
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14             # Landlock ABI 2 and 3


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where it has none or a seccomp profile refuses it."""
    if _LIBC is None or SYS_LANDLOCK is None:
        return 0
    version = _LIBC.syscall(SYS_LANDLOCK[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, version)


def confine_writes(roots: list[str], devices: tuple[str, ...] = ("/dev", "/proc")) -> bool:
    """From now on this process and its children may create, remove or write files only beneath
    ``roots`` (and write to the existing files of ``devices``: /dev/null, /proc/self/...); True when
    the kernel enforces it (Landlock). What the submission writes is then all where the caps look.
    Descriptors already open keep working."""
    abi = landlock_abi()
    if abi < 1:
        return False
    create, add_rule, restrict = SYS_LANDLOCK
    handled = FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE
    handled |= (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    attr = ctypes.c_uint64(handled)
    ruleset = _LIBC.syscall(create, ctypes.byref(attr), ctypes.c_size_t(8), ctypes.c_uint32(0))
    if ruleset < 0:
        return False
    try:
        for path, access in [*((r, handled) for r in roots),
                             *((d, FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0)) for d in devices)]:
            try:
                fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                rule = _PathBeneath(access, fd)
                _LIBC.syscall(add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0)
            finally:
                os.close(fd)
        _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        return _LIBC.syscall(restrict, ruleset, 0) == 0
    finally:
        os.close(ruleset)


# --------------------------------------------------------------------------- the watchdog


def private_kb(pid: int) -> int:
    """Memory that process ``pid`` holds, in KiB; 0 when it is gone: its private pages and swap, and
    its share of the shared memory it maps (``Pss_Shmem``: pages shared between a submission's
    processes count once in the sum over them; one process's own shared mapping counts twice).

    Pages a forked child still shares with the worker server (torch, already
    loaded) are not counted: they cost nothing more.
    """
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:", "Swap:", "Pss_Shmem:")):
                    total += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return total


_TMPFS: list[tuple[str, ...]] = []


def _tmpfs_mounts() -> tuple[str, ...]:
    """Mount points of memory-backed file systems (read once)."""
    if not _TMPFS:
        found = []
        try:
            with open("/proc/self/mounts") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) > 2 and parts[2] in ("tmpfs", "ramfs", "hugetlbfs"):
                        found.append(parts[1])
        except OSError:
            pass
        _TMPFS.append(tuple(found))
    return _TMPFS[0]


def sysv_shm_kb(uid: int | None) -> int:
    """KiB of System V shared memory segments ``uid`` owns or created (they outlive every mapping)."""
    if uid is None:
        return 0
    try:
        with open("/proc/sysvipc/shm") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    if not lines:
        return 0
    header = lines[0].split()
    total = 0
    for line in lines[1:]:
        row = dict(zip(header, line.split()))
        try:
            if uid in (int(row["uid"]), int(row["cuid"])):
                total += int(row["size"]) // 1024
        except (KeyError, ValueError):
            continue
    return total


def held_files_kb(pids: list[int]) -> tuple[int, int]:
    """(memory, disk) KiB of files that only open descriptors of ``pids`` keep alive: deleted files
    and memfd files, which no walk of the folders finds. Memory-backed ones (memfd, tmpfs) count
    as memory, the others as disk."""
    seen: set[tuple[int, int]] = set()
    memory = disk = 0
    for pid in pids:
        entries = []
        try:
            entries += [f"/proc/{pid}/fd/{name}" for name in os.listdir(f"/proc/{pid}/fd")]
            with open(f"/proc/{pid}/maps") as f:   # and those only mapped, their descriptor closed
                entries += [f"/proc/{pid}/map_files/{line.split()[0]}" for line in f
                            if line.rstrip().endswith("(deleted)") or "/memfd:" in line]
        except OSError:
            pass
        for path in entries:
            try:
                st = os.stat(path)
                target = os.readlink(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_nlink or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            kb = st.st_blocks // 2
            if target.startswith("/memfd:") or any(target == m or target.startswith(m.rstrip("/") + "/")
                                                   for m in _tmpfs_mounts()):
                memory += kb
            else:
                disk += kb
    return memory, disk


# sock_diag (netlink): the kernel's list of sockets with the memory each holds and its owner's uid
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
NLM_F_REQUEST, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE = 0x1, 0x300, 2, 3
UDIAG_SHOW_RQLEN, UDIAG_SHOW_MEMINFO, UDIAG_SHOW_UID = 0x10, 0x20, 0x40
UNIX_DIAG_RQLEN, UNIX_DIAG_MEMINFO, UNIX_DIAG_UID = 4, 5, 7
TCP_LISTEN = 10
INET_DIAG_SKMEMINFO = 7
SK_MEMINFO_RMEM_ALLOC, SK_MEMINFO_WMEM_ALLOC, SK_MEMINFO_WMEM_QUEUED = 0, 2, 5


def _diag_dump(request: bytes) -> Iterator[bytes]:
    """The payloads of one sock_diag dump (no privilege needed); raises OSError where netlink is
    refused."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as s:
        s.sendto(struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY,
                             NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + request, (0, 0))
        while True:
            data, off = s.recv(1 << 16), 0
            if not data:
                return
            while off + 16 <= len(data):
                size, kind = struct.unpack_from("=IH", data, off)
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    raise OSError(-struct.unpack_from("=i", data, off + 16)[0], "sock_diag refused")
                if size < 16:
                    return
                yield data[off + 16:off + size]
                off += (size + 3) & ~3


def _diag_attrs(payload: bytes, off: int) -> Iterator[tuple[int, bytes]]:
    while off + 4 <= len(payload):
        size, kind = struct.unpack_from("=HH", payload, off)
        if size < 4:
            return
        yield kind, payload[off + 4:off + size]
        off += (size + 3) & ~3


def _meminfo_bytes(value: bytes) -> int:
    """Bytes queued on a socket: received, being sent, and queued to send (TCP)."""
    mem = struct.unpack_from(f"={len(value) // 4}I", value)
    return sum(mem[i] for i in (SK_MEMINFO_RMEM_ALLOC, SK_MEMINFO_WMEM_ALLOC, SK_MEMINFO_WMEM_QUEUED)
               if i < len(mem))


def sockets() -> Iterator[tuple[int | None, int, int]]:
    """(owner uid, inode, bytes queued) of every Unix, TCP and UDP socket of this network namespace,
    those in flight between processes (sent over a Unix socket, their descriptors closed) included."""
    request = struct.pack("=BBHIIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0,
                          UDIAG_SHOW_RQLEN | UDIAG_SHOW_MEMINFO | UDIAG_SHOW_UID, 0xFFFFFFFF, 0xFFFFFFFF)
    try:
        for msg in _diag_dump(request):
            owner, queued = None, 0
            for kind, value in _diag_attrs(msg, 16):
                if kind == UNIX_DIAG_MEMINFO:
                    queued += _meminfo_bytes(value)
                elif kind == UNIX_DIAG_RQLEN and len(value) >= 4 and msg[2] != TCP_LISTEN:
                    # bytes waiting to be read: a closed sender's data stays here, charged to nobody listed
                    queued += struct.unpack_from("=I", value)[0]
                elif kind == UNIX_DIAG_UID and len(value) >= 4:
                    owner = struct.unpack_from("=I", value)[0]
            yield owner, struct.unpack_from("=I", msg, 4)[0], queued
    except OSError:
        pass
    for family in (socket.AF_INET, socket.AF_INET6):
        for protocol in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
            request = struct.pack("=BBBBI", family, protocol, 1 << (INET_DIAG_SKMEMINFO - 1), 0,
                                  0xFFFFFFFF) + bytes(48)
            try:
                for msg in _diag_dump(request):
                    owner, inode = struct.unpack_from("=II", msg, 64)
                    queued = sum(_meminfo_bytes(v) for k, v in _diag_attrs(msg, 72) if k == INET_DIAG_SKMEMINFO)
                    yield owner, inode, queued
            except OSError:
                continue


def _socket_inodes(pids: list[int]) -> set[int]:
    """Inodes of the sockets that ``pids`` hold open."""
    found = set()
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(int(target[8:-1]))
    return found


def socket_kb(uid: int | None, pids: list[int]) -> int:
    """KiB queued in socket buffers (kernel memory, in no process's smaps): every socket ``uid``
    owns, or without a uid those ``pids`` hold open."""
    inodes = _socket_inodes(pids) if uid is None else set()
    total = sum(queued for owner, inode, queued in sockets()
                if (owner == uid if uid is not None else inode in inodes))
    return total >> 10


def descendants(root: int) -> list[int]:
    """``root``'s children, their children, and so on (orphans come back to a subreaper)."""
    out, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids = [int(p) for p in f.read().split()]
            except (OSError, ValueError):
                continue
            out += kids
            frontier += kids
    return out


def _du_kb(uid: int | None, roots: list[str], limit: int = MAX_FILES) -> int | None:
    """KiB in files under ``roots`` (only those of ``uid`` when given); None when there are more
    than ``limit`` entries of its or a folder cannot be read (then the count would be a lie)."""
    def descend(st: os.stat_result) -> bool:
        # its own folders, and the shared ones of the system (/tmp's kind, root's): another uid's
        # world-writable folder is that uid's to count, and may be a trap (too deep to walk)
        return uid is None or st.st_uid == uid or (st.st_uid == 0 and bool(st.st_mode & stat.S_IWOTH))

    def mine(st: os.stat_result) -> bool:
        return uid is None or st.st_uid == uid

    try:
        return sum(st.st_blocks // 2 for _, st in _walk(roots, descend, mine, limit)
                   if not stat.S_ISDIR(st.st_mode) and mine(st))
    except Uncountable:
        return None


def tmpfs_used_kb(mounts: list[str], max_files: int = MAX_FILES) -> int | None:
    """KiB used on the given (private, size-limited) tmpfs mounts; None when they hold more than
    ``max_files`` files and folders together (empty files use no blocks, but kernel memory)."""
    total = files = 0
    for m in mounts:
        try:
            st = os.statvfs(m)
            total += (st.f_blocks - st.f_bfree) * st.f_frsize // 1024
            files += st.f_files - st.f_ffree
        except OSError:
            pass
    return None if files > max_files else total


class Watchdog:
    """Caps on everything one submission's processes hold together, checked every few tens of ms.

    Args:
        server: our own pid (without a uid, the submission's processes are our descendants)
        uid: the submission's uid, or None when the server cannot switch users
        memory_mb: cap on the private memory of all its processes together
        disk_mb: cap on its scratch files (tmpfs usage in the sandbox, else files it owns)
        tmpfs: the sandbox's private tmpfs mounts ([] without the sandbox)
        file_roots: folders searched for its files when there is no tmpfs to ask
    """

    def __init__(self, server: int, uid: int | None, memory_mb: int, disk_mb: int,
                 tmpfs: list[str], file_roots: list[str], group=None) -> None:
        self.server, self.uid = server, uid
        self.group = group   # a cgroups.Group: then the kernel caps memory and the watchdog reads its verdict
        self.oom_seen = group.oom_kills() if group is not None else 0
        self.memory_kb, self.disk_kb = memory_mb << 10, disk_mb << 10
        self.memory_mb, self.disk_mb = memory_mb, disk_mb
        self.tmpfs, self.file_roots = tmpfs, file_roots
        self.next_memory = self.next_disk = 0.0

    def pids(self) -> list[int]:
        """Every process of the submission now."""
        if self.uid is not None:
            return pids_of(self.uid)
        return descendants(self.server)

    def memory_kb_used(self) -> int:
        pids = self.pids()
        return (sum(private_kb(p) for p in pids) + held_files_kb(pids)[0] + sysv_shm_kb(self.uid)
                + socket_kb(self.uid, pids))

    def disk_kb_used(self) -> int | None:
        """KiB of its files; None when it made more files than are counted (over the cap too)."""
        if self.tmpfs:
            return tmpfs_used_kb(self.tmpfs)
        du = _du_kb(self.uid, self.file_roots)
        return None if du is None else du + held_files_kb(self.pids())[1]

    def breach(self) -> str | None:
        """None, or which cap the submission went over (a sentence for the student)."""
        now = time.monotonic()
        if self.group is not None:
            if self.group.oom_kills() > self.oom_seen:
                self.oom_seen = self.group.oom_kills()
                return (f"the submission's processes together used more than {self.memory_mb} MB of "
                        "memory (the memory cap of a submission, enforced by the kernel)")
        elif now >= self.next_memory:
            self.next_memory = now + 0.03
            if self.memory_kb_used() > self.memory_kb:
                return (f"the submission's processes together used more than {self.memory_mb} MB of "
                        "memory (the memory cap of a submission)")
        if now >= self.next_disk:
            self.next_disk = now + (0.1 if self.tmpfs else 0.5)
            used = self.disk_kb_used()
            if used is None:
                return (f"the submission made more than {MAX_FILES} files and folders, or folders nested "
                        "too deeply to count (the scratch disk cap of a submission)")
            if used > self.disk_kb:
                return (f"the submission wrote more than {self.disk_mb} MB of files "
                        "(the scratch disk cap of a submission)")
        return None
