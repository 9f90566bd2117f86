"""Run a Gradescope autograder bundle in a real container, the way Gradescope does.

Used by ``tests/test_container.py`` and ``bench/bench_container.py``. Needs Docker
(or podman: ``DGM_CONTAINER_ENGINE=podman``) and debootstrap; no image registry:

- ``base_image``: Debian bookworm minbase from debootstrap, ``docker import``-ed.
- ``wheelhouse``: torch, torchvision and the bundle's pinned requirements, copied
  by ``pip download`` on the host (its pip config may point at local mirrors),
  so that ``setup.sh`` installs offline and fast.
- ``setup_image``: the bundle's ``setup.sh`` run as root in
  ``/autograder/source``; committed once per ``setup.sh`` + requirements (the
  slow install) and then per bundle zip (a quick rerun on top).
- ``run_autograder``: one submission in a fresh container with Gradescope's
  limits and Docker's default seccomp and capabilities.

Images are cached by tag, the wheelhouse in ``DGM_WHEELHOUSE``
(default ``/var/cache/dgm-harness/wheels``): reruns build nothing that exists.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

BASE_TAG = "dgm-bookworm-base"
IMAGE_REPO = "dgm-autograder"
SUITE = "bookworm"
MIRROR = os.environ.get("DGM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
WHEELHOUSE = Path(os.environ.get("DGM_WHEELHOUSE", "/var/cache/dgm-harness/wheels"))
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CONTAINER_PYTHON = "3.11.2"          # Debian bookworm's python3.11
# Wheels that bookworm's glibc 2.36 can load (pip does not widen an explicit --platform itself).
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
# Gradescope's defaults: 768 MB of memory (no swap), half a CPU, 10 minutes.
MEMORY = "768m"
CPUS = "0.5"
TIMEOUT_S = 600
UID_RANGE = (60100, 60999)

# Run inside the grading container: the autograder, then what we read back from the inside.
# The pause lets a surviving process of the submission overwrite results.json, if any survived.
PROBE = rf"""
/autograder/run_autograder
status=$?
sleep 1
echo "dgm-status $status"
for f in /sys/fs/cgroup/memory.peak /sys/fs/cgroup/memory/memory.max_usage_in_bytes; do
  if [ -r "$f" ]; then echo "dgm-peak $(cat "$f")"; break; fi
done
for s in /proc/[0-9]*/status; do
  awk -v lo={UID_RANGE[0]} -v hi={UID_RANGE[1]} '/^Uid:/ && $2 >= lo && $2 <= hi {{print "dgm-left " FILENAME}}' "$s" 2>/dev/null
done
"""


class ContainerError(RuntimeError):
    """The container tooling is missing or failed: never a reason to pass quietly."""


@dataclass
class Graded:
    """What one ``run_autograder`` in a container left: results.json, peak memory, how it ended."""

    results: dict | None
    peak_mib: float | None
    exit_code: int
    oom_killed: bool
    timed_out: bool
    seconds: float
    leftover: list[str] = field(default_factory=list)
    log: str = ""

    @property
    def killed(self) -> bool:
        """True when the container or the grader was killed (memory, timeout) rather than finishing."""
        text = json.dumps(self.results or {})
        return (self.oom_killed or self.timed_out or self.exit_code != 0 or self.results is None
                or "could not grade this submission" in text or "(status 137)" in text)


def engine() -> list[str]:
    """The container command to use (docker, or podman with runc); raises when none answers."""
    name = os.environ.get("DGM_CONTAINER_ENGINE", "docker")
    exe = shutil.which(name)
    if exe is None:
        raise ContainerError(f"{name} is not installed (apt-get install docker.io debootstrap)")
    cmd = [exe, "--runtime", "runc"] if name == "podman" else [exe]
    probe = subprocess.run([*cmd, "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise ContainerError(f"`{name} info` failed; is the daemon running (dockerd &)?\n{probe.stderr[-2000:]}")
    return cmd


def missing_tools() -> list[str]:
    """What this module needs that is absent or not working here, in words."""
    missing = []
    try:
        engine()
    except ContainerError as err:
        missing.append(str(err))
    if not (shutil.which("mmdebstrap") or shutil.which("debootstrap")):
        missing.append("neither debootstrap nor mmdebstrap is installed")
    return missing


def _sh(args: list[str], *, timeout: float | None = None, **kw) -> subprocess.CompletedProcess:
    """Run a command; raise ContainerError with its output when it fails."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if proc.returncode != 0:
        raise ContainerError(f"{' '.join(args[:4])} ... failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def image_exists(tag: str) -> bool:
    """True when an image with this tag is in the local store."""
    return subprocess.run([*engine(), "image", "inspect", tag], capture_output=True).returncode == 0


def base_image() -> str:
    """Debian bookworm minbase as an image, built with debootstrap (or mmdebstrap) when missing."""
    if image_exists(BASE_TAG):
        return BASE_TAG
    with tempfile.TemporaryDirectory(prefix="dgm-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        if shutil.which("mmdebstrap"):
            _sh(["mmdebstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR], timeout=1800)
        else:
            _sh(["debootstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR], timeout=1800)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([*engine(), "import", "-", BASE_TAG], stdin=tar.stdout, capture_output=True,
                                  text=True)
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise ContainerError(f"importing the bookworm root file system failed:\n{imported.stderr}")
    return BASE_TAG


def wheelhouse(requirements: str, torch_pins: list[str]) -> Path:
    """A folder of wheels for torch and the bundle's requirements, copied once with ``pip download``.

    Fetched for the container's Python (bookworm's 3.11.2), not this host's: the
    newest release of a dependency may need a later 3.11 (soupsieve 4.1 needs 3.11.5).
    """
    wanted = sorted({*torch_pins, *requirements.split(), "pip", "setuptools"})
    stamp = WHEELHOUSE / ".dgm-requirements"
    if stamp.is_file() and stamp.read_text().split() == [CONTAINER_PYTHON, *wanted]:
        return WHEELHOUSE
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    target = ["--python-version", CONTAINER_PYTHON, "--only-binary=:all:"]
    target += [arg for p in PLATFORMS for arg in ("--platform", p)]
    _sh([sys.executable, "-m", "pip", "download", "-q", "-d", str(WHEELHOUSE), *target, *wanted], timeout=3600)
    stamp.write_text("\n".join([CONTAINER_PYTHON, *wanted]) + "\n")
    return WHEELHOUSE


def unpack(bundle: Path, dest: Path) -> None:
    """Unpack the zip as Gradescope does: files keep their executable bits, folders are 0755."""
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(dest)
        for info in zf.infolist():
            if (info.external_attr >> 16) & stat.S_IXUSR:
                os.chmod(dest / info.filename, 0o755)
    for dirpath, dirnames, _ in os.walk(dest):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
    os.chmod(dest, 0o755)


def _digest(*parts: bytes) -> str:
    """A short hex digest of the parts, for image tags."""
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def _setup(image: str, bundle: Path, tag: str, wheels: Path) -> None:
    """Run the bundle's setup.sh as root in /autograder/source of ``image``; commit the result as ``tag``.

    The install environment (wheelhouse, host CA bundle) goes in through the
    command line, not ``-e``: a committed image keeps ``-e`` variables.
    """
    cmd = engine()
    name = f"dgm-setup-{os.getpid()}-{time.monotonic_ns()}"
    env = ["DGM_TORCH_INDEX=pypi", "PIP_FIND_LINKS=/mnt/dgm-wheels", "PIP_NO_INDEX=1",
           "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_CERT=/mnt/dgm-ca.crt", "SSL_CERT_FILE=/mnt/dgm-ca.crt",
           "REQUESTS_CA_BUNDLE=/mnt/dgm-ca.crt"]
    # As Gradescope's image build: the zip in /autograder/source, setup.sh, run_autograder copied up.
    script = ("rm -rf /autograder/source && mkdir -p /autograder && mv /tmp/dgm-source /autograder/source "
              f"&& env {' '.join(env)} /autograder/source/setup.sh "
              "&& cp /autograder/source/run_autograder /autograder/run_autograder")
    mounts = ["-v", f"{wheels}:/mnt/dgm-wheels:ro"]
    if HOST_CA.is_file():
        mounts += ["-v", f"{HOST_CA}:/mnt/dgm-ca.crt:ro"]
    with tempfile.TemporaryDirectory(prefix="dgm-bundle-") as tmp:
        src = Path(tmp) / "dgm-source"
        unpack(bundle, src)
        _sh([*cmd, "create", "--name", name, *mounts, image, "bash", "-c", script])
        try:
            _sh([*cmd, "cp", str(src), f"{name}:/tmp/"])
            run = subprocess.run([*cmd, "start", "-a", name], capture_output=True, text=True, timeout=3600)
            if run.returncode != 0:
                raise ContainerError(f"setup.sh failed in the container ({run.returncode}):\n"
                                     f"{run.stdout[-6000:]}\n{run.stderr[-3000:]}")
            _sh([*cmd, "commit", name, tag])
        finally:
            subprocess.run([*cmd, "rm", "-f", name], capture_output=True)


def setup_image(bundle: Path) -> str:
    """The autograder image for this bundle, as Gradescope builds it; cached by the zip's hash.

    The slow install (apt, torch) is committed once per setup.sh + requirements.txt
    (the "venv" image); each bundle then reruns its setup.sh on top of it, which
    finds everything installed.
    """
    data = bundle.read_bytes()
    with zipfile.ZipFile(bundle) as zf:
        setup, requirements = zf.read("setup.sh"), zf.read("requirements.txt")
        assignment = re.search(r"--assignment (\w+)", zf.read("run_autograder").decode()).group(1)
    tag = f"{IMAGE_REPO}:{assignment}-{_digest(data)}"
    if image_exists(tag):
        return tag
    venv = f"{IMAGE_REPO}:venv-{_digest(setup, requirements)}"
    pins = [w for w in setup.decode().split() if w.startswith(("torch==", "torchvision=="))]
    wheels = wheelhouse(requirements.decode(), sorted(set(pins)))
    if not image_exists(venv):
        _setup(base_image(), bundle, venv, wheels)
        _prune("venv-", keep=venv)
    _setup(venv, bundle, tag, wheels)
    _prune(f"{assignment}-", keep=tag)
    return tag


def _prune(prefix: str, keep: str) -> None:
    """Remove this module's older images whose tag starts with ``prefix`` (each new bundle or
    requirements set makes one); an image still in use by another stays."""
    cmd = engine()
    listed = subprocess.run([*cmd, "images", IMAGE_REPO, "--format", "{{.Repository}}:{{.Tag}}"],
                            capture_output=True, text=True).stdout.split()
    for old in listed:
        if old != keep and old.startswith(f"{IMAGE_REPO}:{prefix}"):
            subprocess.run([*cmd, "rmi", old], capture_output=True)


def run_autograder(image: str, submission: Path, *, memory: str | None = MEMORY, cpus: str = CPUS,
                   timeout_s: int = TIMEOUT_S) -> Graded:
    """Grade one submission (a folder, or a single file) in a fresh container from ``image``.

    Default seccomp and capabilities, no swap beyond ``memory`` (None: no limit);
    the submission is copied into /autograder/submission as Gradescope does.
    """
    cmd = engine()
    name = f"dgm-grade-{os.getpid()}-{time.monotonic_ns()}"
    limits = ["--cpus", cpus]
    if memory:
        limits += ["--memory", memory, "--memory-swap", memory]
    with tempfile.TemporaryDirectory(prefix="dgm-run-") as tmp:
        stage = Path(tmp) / "submission"
        if submission.is_dir():
            shutil.copytree(submission, stage)
        else:
            stage.mkdir()
            shutil.copy2(submission, stage / submission.name)
        _sh([*cmd, "create", "--name", name, *limits, image, "sh", "-c", PROBE])
        try:
            _sh([*cmd, "cp", str(stage), f"{name}:/autograder/"])
            start = time.monotonic()
            timed_out = False
            try:
                run = subprocess.run([*cmd, "start", "-a", name], capture_output=True, text=True, timeout=timeout_s)
                out, code = run.stdout + run.stderr, run.returncode
            except subprocess.TimeoutExpired as err:
                subprocess.run([*cmd, "kill", name], capture_output=True)
                out, code, timed_out = str(err.stdout or ""), 137, True
            seconds = time.monotonic() - start
            state = json.loads(_sh([*cmd, "inspect", "-f", "{{json .State}}", name]).stdout)
            got = Path(tmp) / "results.json"
            copied = subprocess.run([*cmd, "cp", f"{name}:/autograder/results/results.json", str(got)],
                                    capture_output=True)
            results = json.loads(got.read_text()) if copied.returncode == 0 and got.is_file() else None
        finally:
            subprocess.run([*cmd, "rm", "-f", name], capture_output=True)
    peak = next((int(line.split()[1]) / 2**20 for line in out.splitlines()
                 if line.startswith("dgm-peak ") and line.split()[1:2] and line.split()[1].isdigit()), None)
    status = next((int(line.split()[1]) for line in out.splitlines() if line.startswith("dgm-status ")), code)
    return Graded(results=results, peak_mib=peak, exit_code=status if code == 0 else code,
                  oom_killed=bool(state.get("OOMKilled")), timed_out=timed_out, seconds=seconds,
                  leftover=[line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("dgm-left ")],
                  log=out)
