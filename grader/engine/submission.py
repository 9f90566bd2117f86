"""Turn what a student uploaded (a zip, a folder, a bare file) into a normalised folder.

Zip extraction refuses absolute paths, '..' entries and links, and caps the
number of files and their total size. The required student file is found
wherever the student put it (``codebase/gan.py`` at the top, inside a wrapper
folder, or alone) and placed at its canonical path.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from zlib import error as zlib_error

import yaml

from ..sandbox import bounded, isolation

MAX_FILES = 2000
MAX_TOTAL_BYTES = 200 << 20
MAX_CODE_BYTES = 1 << 20    # of a Python source, comments and blank lines not counted (a student's: < 50 KB)
SKIP_DIRS = {"__MACOSX", ".git", "__pycache__", ".ipynb_checkpoints"}


class SubmissionError(ValueError):
    """The upload cannot be read at all (corrupt or hostile zip); the message says why."""


@dataclass
class Submission:
    """A submission laid out as the assignment expects, in a private folder."""

    name: str                       # used for the output folder and the grades.csv row
    files_dir: Path                 # folder with the required files at their canonical paths
    sha256: str                     # content hash of the normalised files
    problems: list[str] = field(default_factory=list)   # e.g. a required file is missing
    _tmp: Path | None = None

    def cleanup(self) -> None:
        if self._tmp is not None:
            isolation.remove_temp(self._tmp)


def _entry_count(zip_path: Path) -> int | None:
    """Entries the zip says it holds, read from its end record alone (before anything is parsed)."""
    try:
        size = zip_path.stat().st_size
        with open(zip_path, "rb") as f:
            f.seek(max(0, size - (1 << 16) - 22))
            tail = f.read()
    except OSError:
        return None
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    count = int.from_bytes(tail[at + 10:at + 12], "little")
    return None if count == 0xFFFF else count   # 0xFFFF: a zip64 record says more


def _clashes(names: list[str]) -> str | None:
    """The first entry that is both a file and a folder of others (``a/b`` and ``a/b/c``), if any."""
    files = {n.rstrip("/") for n in names if not n.endswith("/")}
    for n in names:
        parts = n.rstrip("/").split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                return n
    return None


def safe_extract(zip_path: Path, dest: Path) -> None:
    """Extract ``zip_path`` into ``dest``, refusing anything that could land outside it."""
    if zip_path.stat().st_size > MAX_TOTAL_BYTES:
        raise SubmissionError(f"{zip_path.name} is larger than {MAX_TOTAL_BYTES >> 20} MB")
    count = _entry_count(zip_path)
    if count is not None and count > MAX_FILES:
        raise SubmissionError(f"{zip_path.name} has {count} entries; at most {MAX_FILES} are accepted")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise SubmissionError(f"{zip_path.name} is not a readable zip file ({err})") from err
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_FILES:
            raise SubmissionError(f"{zip_path.name} has {len(infos)} entries; at most {MAX_FILES} are accepted")
        total = 0
        names = []
        for info in infos:
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts or "\0" in name:
                raise SubmissionError(f"{zip_path.name} contains an unsafe path: {name!r}")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise SubmissionError(f"{zip_path.name} contains a symbolic link: {name!r}")
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                raise SubmissionError(f"{zip_path.name} unpacks to more than {MAX_TOTAL_BYTES >> 20} MB")
            names.append("/".join(p for p in parts if p not in ("", ".")) + ("/" if info.is_dir() else ""))
        clash = _clashes(names)
        if clash:
            raise SubmissionError(f"{zip_path.name} holds {clash!r} inside a path that is also a file; "
                                  "zip the folder again")
        for info, name in zip(infos, names):
            if not name.strip("/"):
                continue
            target = dest.joinpath(*name.rstrip("/").split("/"))
            written = 0
            try:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > info.file_size or written > MAX_TOTAL_BYTES:
                            raise SubmissionError(f"{info.filename!r} is larger than its header says")
                        out.write(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError,
                    RuntimeError, zlib_error) as err:
                raise SubmissionError(f"{zip_path.name} is corrupt ({info.filename}: {err})") from err


def _walk_files(root: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """Regular files under root (no links), skipping OS and editor clutter and the folders in ``skip``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and d not in skip
                             and not os.path.islink(os.path.join(dirpath, d)))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                out.append(p)
    return out


def tree_sha256(root: Path, skip: tuple[str, ...] = ()) -> str:
    """Content hash of the files under ``root`` (names and bytes), or of ``root`` itself if a file.

    Names are hashed as the bytes they are on disk (``os.fsencode``): a name that is
    not UTF-8 must not stop the batch. Contents are read in chunks.
    """
    root = Path(root)
    digest = hashlib.sha256()
    if root.is_file():
        _hash_file(digest, root)
    for f in _walk_files(root, skip) if root.is_dir() else []:
        digest.update(os.fsencode(f.relative_to(root).as_posix()) + b"\0")
        _hash_file(digest, f)
        digest.update(b"\0")
    return digest.hexdigest()


def _hash_file(digest, path: Path) -> None:
    """Feed the bytes of ``path`` to ``digest`` a megabyte at a time."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)


def _locate(root: Path, relpath: str) -> Path | None:
    """Find the student's copy of ``relpath`` (e.g. codebase/gan.py) anywhere under ``root``.

    Falls back to the upload's only file with the same suffix, since students rename
    files ("gan_1d (1).ipynb", "Lastname_gan_1d.ipynb").
    """
    want = PurePosixPath(relpath)
    files = _walk_files(root)
    for depth in range(len(want.parts), 0, -1):
        tail = want.parts[-depth:]
        hits = [p for p in files if p.relative_to(root).parts[-depth:] == tail]
        if hits:
            return min(hits, key=lambda p: len(p.relative_to(root).parts))
    same_suffix = [p for p in files if p.suffix == want.suffix]
    return same_suffix[0] if len(same_suffix) == 1 else None


def code_bytes(path: Path, cap: int = MAX_CODE_BYTES) -> int:
    """Bytes of code in a Python source (lines that are neither blank nor comments), counted in
    one streaming pass that stops just past ``cap``: every probe imports the file anew, so what
    it costs grows with its code, and a source far beyond any homework is refused instead."""
    total = 0
    with open(path, "rb") as f:
        for line in f:
            text = line.strip()
            if text and not text.startswith(b"#"):
                total += len(line)
                if total > cap:
                    break
    return total


def printable(text: str) -> str:
    """``text`` with undecodable bytes of a file name (surrogate escapes) shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def submission_name(path: Path) -> str:
    """The name a submission is reported under: its file or folder name without .zip/.ipynb/.py."""
    path = Path(path)
    return printable(path.stem if path.suffix.lower() in (".zip", ".ipynb", ".py") else path.name)


class _LenientLoader(yaml.SafeLoader):
    """SafeLoader that reads unknown tags (Ruby objects in Gradescope exports) as plain values."""


_LenientLoader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
    else loader.construct_sequence(node)))


def export_names(folder: Path) -> dict[str, str]:
    """Folder name -> who submitted it, from a Gradescope export's ``submission_metadata.yml``.

    Gradescope names the folders ``submission_<id>``; staff want names. Each
    submitter is reported by email (else name, else SID); group members are
    joined with '+'. Empty when the folder is not a Gradescope export or the
    file cannot be read.
    """
    meta = Path(folder) / "submission_metadata.yml"
    try:
        data = yaml.load(meta.read_text(encoding="utf-8"), Loader=_LenientLoader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    out: dict[str, str] = {}
    for key, entry in (data or {}).items() if isinstance(data, dict) else []:
        submitters = entry.get(":submitters") if isinstance(entry, dict) else None
        people = []
        for person in submitters if isinstance(submitters, list) else []:
            if isinstance(person, dict):
                who = person.get(":email") or person.get(":name") or person.get(":sid")
                if who:
                    people.append(str(who))
        if people:
            out[str(key)] = "+".join(people)
    return out


@bounded.task(SubmissionError)
def load_into(path: str, dest: str, required: list[str], optional_globs: list[str]) -> dict:
    """Normalise the upload at ``path`` into the empty folder ``dest``; its name, hash and problems.

    Runs in a bounded helper process (it reads the student's zip): plain data in, plain data out.
    """
    path_, tmp = Path(path), Path(dest)
    if not path_.exists():
        raise SubmissionError(f"{printable(str(path_))} does not exist")
    raw = tmp / "raw"
    raw.mkdir()
    if path_.is_dir():
        for f in _walk_files(path_):
            target = raw / f.relative_to(path_)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
    elif zipfile.is_zipfile(path_) or path_.suffix.lower() == ".zip":
        safe_extract(path_, raw)
    else:
        shutil.copyfile(path_, raw / path_.name)

    files = tmp / "files"
    files.mkdir()
    problems = []
    base = raw
    for rel in required:
        found = _locate(raw, rel)
        if found is None:
            problems.append(f"{rel} is missing from the submission")
            continue
        # keep the student's folder around the file (sample grids etc. sit next to codebase/)
        up = len(PurePosixPath(rel).parts) - 1
        base = found.parents[up] if up < len(found.relative_to(raw).parts) else raw
        if rel.endswith(".py") and code_bytes(found) > MAX_CODE_BYTES:
            problems.append(f"{rel} holds more than {MAX_CODE_BYTES >> 20} MB of code (comments and blank lines "
                            "not counted); a homework solution is far smaller: remove generated or pasted data")
            continue
        target = files / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, target)
    for pattern in optional_globs:
        for f in sorted(base.glob(pattern)):
            if f.is_file() and not f.is_symlink():
                target = files / f.relative_to(base)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
    shutil.rmtree(raw, ignore_errors=True)
    return {"name": submission_name(path_), "sha256": tree_sha256(files), "problems": problems}


@bounded.task()
def compile_sources(folder: str) -> int:
    """Compile every Python file under ``folder`` once, into ``__pycache__`` (run in a bounded helper
    process); the number compiled.

    Each graded function runs in a fresh process that imports the student's module:
    with the bytecode there, none of them compiles it again. The files are marked
    unchecked (the copy the worker reads never changes); a file that does not
    compile is left to the worker, which reports the error to the student.
    """
    import py_compile

    done = 0
    for f in _walk_files(Path(folder)):
        if f.suffix == ".py":
            try:
                py_compile.compile(str(f), doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
                done += 1
            except (py_compile.PyCompileError, SyntaxError, ValueError, RecursionError, MemoryError, OSError):
                pass
    return done


def load_submission(path: Path, required: tuple[str, ...], optional_globs: tuple[str, ...] = ()) -> Submission:
    """Normalise a zip, folder or single file into a private folder holding the required files.

    The upload is read by a bounded helper process (:mod:`grader.sandbox.bounded`): a zip
    built to exhaust time or memory costs this submission a message, nothing more.

    Raises:
        SubmissionError: the path does not exist or the upload is unreadable, unsafe or too large.
    """
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{printable(str(path))} does not exist")
    tmp = isolation.private_temp("dgm-sub-")
    try:
        try:
            info = bounded.call(load_into, path=os.fsdecode(os.path.abspath(path)), dest=str(tmp),
                                required=list(required), optional_globs=list(optional_globs))
        except bounded.InputTooLarge as err:
            raise SubmissionError(f"the upload could not be unpacked: {err}") from err
        return Submission(name=info["name"], files_dir=tmp / "files", sha256=info["sha256"],
                          problems=list(info["problems"]), _tmp=tmp)
    except BaseException:
        isolation.remove_temp(tmp)
        raise
