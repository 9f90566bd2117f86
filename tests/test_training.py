"""The training scripts train on current PyTorch: one step moves both networks downhill."""
import copy
import shutil
import subprocess
import sys

import pytest
import torch

from grader.engine.paths import SOLUTIONS_DIR
from idx import write_idx

sys.path.insert(0, str(SOLUTIONS_DIR / "gan"))
from codebase import gan, utils  # noqa: E402
from codebase.network import (  # noqa: E402
    ConditionalDiscriminator,
    ConditionalGenerator,
    Discriminator,
    Generator,
)

CASES = [
    ("nonsaturating", gan.loss_nonsaturating, False),
    ("minimax", gan.loss_minimax, False),
    ("wasserstein_gp", gan.loss_wasserstein_gp, False),
    ("conditional", gan.conditional_loss_nonsaturating, True),
]


def _losses(loss_fn, g, d, x, y, seed=0):
    torch.manual_seed(seed)  # the same z (and alpha) for every evaluation
    args = (x, y) if y is not None else (x,)
    d_loss, g_loss = loss_fn(g, d, *args, device=torch.device("cpu"))
    return d_loss.item(), g_loss.item()


@pytest.mark.parametrize("name,loss_fn,conditional", CASES, ids=[c[0] for c in CASES])
def test_one_step_moves_both_networks_downhill(name, loss_fn, conditional):
    torch.manual_seed(1)
    g = ConditionalGenerator() if conditional else Generator()
    d = ConditionalDiscriminator() if conditional else Discriminator()
    g.eval(), d.eval()  # fixed batch-norm statistics, so losses are comparable across weights
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    y = torch.arange(16) % 10 if conditional else None
    g0, d0 = copy.deepcopy(g), copy.deepcopy(d)
    d_before, g_before = _losses(loss_fn, g, d, x, y)

    g_opt = torch.optim.SGD(g.parameters(), lr=1e-4)
    d_opt = torch.optim.SGD(d.parameters(), lr=1e-4)
    args = (x, y) if conditional else (x,)
    torch.manual_seed(0)
    utils.train_step(loss_fn, g, d, g_opt, d_opt, *args, device=torch.device("cpu"))

    changed = lambda a, b: any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # noqa: E731
    assert changed(g, g0) and changed(d, d0), "both networks must be updated"
    d_after, _ = _losses(loss_fn, g0, d, x, y)   # new D against the old G
    _, g_after = _losses(loss_fn, g, d0, x, y)   # new G against the old D
    assert d_after < d_before, f"{name}: the D step did not lower d_loss ({d_before} -> {d_after})"
    assert g_after < g_before, f"{name}: the G step did not lower g_loss ({g_before} -> {g_after})"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    shutil.copytree(SOLUTIONS_DIR / "gan", root / "hw", ignore=shutil.ignore_patterns("__pycache__"))
    write_idx(root / "data", n_train=150)
    return root


@pytest.mark.parametrize("script,args,out", [   # each script as documented: tests/test_docs.py
    ("run_gan.py", ["--loss_type", "wasserstein_gp"], "out_wasserstein_gp"),
])
def test_script_options_stop_early_and_take_a_data_folder(workdir, script, args, out):
    proc = subprocess.run(
        [sys.executable, script, *args, "--data-dir", str(workdir / "data"), "--device", "cpu",
         "--max-steps", "3"], cwd=workdir / "hw", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = workdir / "hw" / out
    assert (folder / "fake_0002.png").is_file()  # 150 images / batch 64, drop_last: 2 steps an epoch
    assert (folder / "learning_curve.png").is_file()
    lines = (folder / "losses.csv").read_text().splitlines()
    assert lines[0] == "step,d_loss,g_loss" and len(lines) == 3


def test_failed_download_says_what_to_do(tmp_path, workdir):
    env = {"PATH": "/usr/bin:/bin", "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "run_gan.py", "--data-dir", str(tmp_path / "none"), "--max-steps", "1"],
                          cwd=workdir / "hw", capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    assert "Could not download Fashion-MNIST" in proc.stderr
    assert str(tmp_path / "none" / "FashionMNIST" / "raw") in proc.stderr
