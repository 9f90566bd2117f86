"""The Gradescope bundle in a real Docker container, at Gradescope's default limits.

Opt-in (slow, needs Docker and debootstrap): ``pytest --container tests/test_container.py``
or ``DGM_CONTAINER_TEST=1``. For every assignment, ``setup.sh`` runs as root in a
Debian bookworm image, then every bundled example is graded by ``run_autograder``
in a fresh container (768 MB, no swap, 0.5 CPU, 10 minutes, Docker's default
seccomp and capabilities) and must get the score the grader gives on the host,
without being killed. A hostile gan submission must get nothing and leave the
grader's own results.json. Images and the wheelhouse are cached (tests/container.py).
"""
import json
from pathlib import Path

import pytest

import container
from grader.app.report import results_json
from grader.builders.autograder import build
from grader.engine.assignment import load_assignment
from grader.engine.grade import grade
from grader.engine.paths import REPO_ROOT

# one xdist worker runs them all (--dist loadgroup): they build and share the same images
pytestmark = [pytest.mark.container, pytest.mark.xdist_group("container")]

ASSIGNMENTS = ("gan", "gan_split", "gan1d", "vae")
EXAMPLES = [(a, p) for a in ASSIGNMENTS
            for p in sorted((REPO_ROOT / "assignments" / a / "examples").iterdir()) if not p.name.startswith(".")]

HOSTILE = '''
"""No implementation: steal the reference, forge full marks, leave a re-forking process."""
import json, os, signal, time

FORGED = {"score": 1000, "output": "forged by the submission", "tests": []}


def _forge():
    try:
        os.makedirs("/autograder/results", exist_ok=True)
        with open("/autograder/results/results.json", "w") as f:
            json.dump(FORGED, f)
    except OSError:
        pass


_forge()
if os.fork() == 0:                      # detached, deaf to signals, a new pid every 50 ms
    os.setsid()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        if os.fork() != 0:
            os._exit(0)
        time.sleep(0.05)
        _forge()
with open("/autograder/source/solutions/gan/codebase/gan.py") as f:     # the barrier must stop this
    STOLEN = f.read()


def _reference(name):
    ns = {}
    exec(compile(STOLEN, "stolen", "exec"), ns)
    return ns[name]


def loss_minimax(g, d, x_real, *, device):
    return _reference("loss_minimax")(g, d, x_real, device=device)


def loss_nonsaturating(g, d, x_real, *, device):
    return _reference("loss_nonsaturating")(g, d, x_real, device=device)


def conditional_loss_nonsaturating(g, d, x_real, y_real, *, device):
    return _reference("conditional_loss_nonsaturating")(g, d, x_real, y_real, device=device)


def loss_wasserstein_gp(g, d, x_real, *, device):
    return _reference("loss_wasserstein_gp")(g, d, x_real, device=device)
'''


@pytest.fixture(scope="session")
def tools() -> None:
    missing = container.missing_tools()
    if missing:
        pytest.fail("the container test needs Docker (or podman) and debootstrap:\n  " + "\n  ".join(missing),
                    pytrace=False)


@pytest.fixture(scope="session")
def image(tools, tmp_path_factory):
    """assignment -> its autograder image, built (or found in the cache) on first use."""
    made: dict[str, str] = {}

    def get(assignment: str) -> str:
        if assignment not in made:
            bundle = tmp_path_factory.mktemp(f"bundle-{assignment}") / "autograder.zip"
            build(assignment, bundle)
            made[assignment] = container.setup_image(bundle)
        return made[assignment]
    return get


def _scores(results: dict) -> dict[str, float]:
    return {t["name"]: t["score"] for t in results["tests"]}


def _ended(g: container.Graded) -> str:
    return (f"exit {g.exit_code}, OOM-killed {g.oom_killed}, timed out {g.timed_out}, peak {g.peak_mib} MiB, "
            f"{g.seconds:.0f} s; output: {json.dumps(g.results)[:1500]}\n{g.log[-2000:]}")


@pytest.mark.parametrize("assignment,example", EXAMPLES, ids=[f"{a}-{p.stem}" for a, p in EXAMPLES])
def test_every_example_gets_its_host_score_in_a_gradescope_container(image, assignment, example: Path):
    host = results_json(grade(load_assignment(assignment), example))
    g = container.run_autograder(image(assignment), example)
    print(f"{assignment}/{example.name}: peak {g.peak_mib} MiB, {g.seconds:.1f} s, "
          f"score {g.results and g.results.get('score')} (host {host['score']})")
    assert not g.killed, f"{assignment}/{example.name} was killed in the container: {_ended(g)}"
    assert g.results["score"] == host["score"], (g.results["score"], host["score"])
    assert _scores(g.results) == _scores(host)
    assert "dgm-harness" in g.results["output"] and "uid of its own" in g.results["output"]
    assert g.leftover == [], f"processes of the submission outlived run_autograder: {g.leftover}"


def test_a_hostile_gan_submission_gets_nothing_and_the_grader_writes_the_results(image, tmp_path):
    (tmp_path / "sub" / "codebase").mkdir(parents=True)
    (tmp_path / "sub" / "codebase" / "gan.py").write_text(HOSTILE)
    g = container.run_autograder(image("gan"), tmp_path / "sub")
    assert not g.killed, _ended(g)
    results = g.results
    assert "forged" not in json.dumps(results) and "dgm-harness" in results["output"]
    code = [t for t in results["tests"] if t["tags"] not in (["answers"], ["manual"])]
    assert len(code) == 36 and all(t["score"] == 0 for t in code)
    assert results["score"] == 0
    # the barrier's refusal, stated once at the top when it stopped every function, or in a test
    assert "PermissionError" in results["output"] or any("PermissionError" in t["output"] for t in code), \
        results["output"][-1500:]
    assert g.leftover == [], f"processes of the submission outlived run_autograder: {g.leftover}"
