"""The one way checks compare a student's numbers with the reference's, and report a mismatch.

Tolerance policy (the same for every assignment; docs/grading.md):

* values (losses, per-example bounds, KL terms): elementwise,
  ``|got - expected| <= ATOL + RTOL * |expected|`` with RTOL = 1e-4, ATOL = 1e-5.
  Both sides are computed in float32 by the same formula up to rearrangement,
  which moves the result by about 1e-6 relative; the mistakes worth catching
  (a factor of 2, a sign, a missing term) move it by far more;
* gradients (one vector over all parameters of a network): by norm,
  ``||got - expected|| <= GRAD_RTOL * ||expected|| + ATOL`` with GRAD_RTOL = 2e-3:
  float32 sums over thousands of terms in another order differ by more than
  1e-4 in single entries, never in norm.

NaN and inf in ``got`` never match. Mismatches are reported the way
``pytest.approx`` does: shape first, then how many elements differ, the largest
differences and a few of them.
"""
from __future__ import annotations

import numpy as np

RTOL = 1e-4
ATOL = 1e-5
GRAD_RTOL = 2e-3


def fmt(x: float) -> str:
    return f"{x:.6g}"


def close(got: float, expected: float) -> bool:
    """One value within the tolerance policy (NaN and inf never are)."""
    got, expected = float(got), float(expected)
    return bool(np.isfinite(got)) and abs(got - expected) <= ATOL + RTOL * abs(expected)


def allclose(got: np.ndarray, expected: np.ndarray) -> bool:
    """Every value within the tolerance policy, shapes equal."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return got.shape == expected.shape and bool(np.all(np.isfinite(got))) and bool(
        np.all(np.abs(got - expected) <= ATOL + RTOL * np.abs(expected)))


def compare(name: str, got: np.ndarray, expected: np.ndarray) -> str | None:
    """None when ``got`` matches ``expected`` (:func:`allclose`), else a message saying how it differs."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return f"{name}: shape {got.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(got)):
        bad = int(np.sum(~np.isfinite(got)))
        return f"{name}: {bad} of {got.size} values are NaN or infinite"
    within = np.abs(got - expected) <= ATOL + RTOL * np.abs(expected)
    if np.all(within):
        return None
    if got.size == 1:
        return f"{name}: got {fmt(got.item())}, expected {fmt(expected.item())}"
    diff = np.abs(got - expected)
    rel = diff / np.maximum(np.abs(expected), 1e-12)
    idx = np.flatnonzero(~within.reshape(-1))
    lines = [f"{name}: mismatched elements: {idx.size} / {got.size}",
             f"  max abs diff {fmt(diff.max())}, max rel diff {fmt(rel.max())}",
             "  index | obtained | expected"]
    for i in idx[:3]:
        lines.append(f"  {i} | {fmt(got.reshape(-1)[i])} | {fmt(expected.reshape(-1)[i])}")
    return "\n".join(lines)


def close_vector(got: np.ndarray, expected: np.ndarray) -> bool:
    """A gradient within the policy: ``||got - expected|| <= GRAD_RTOL * ||expected|| + ATOL``."""
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    if got.shape != expected.shape or not np.all(np.isfinite(got)):
        return False
    return float(np.linalg.norm(got - expected)) <= GRAD_RTOL * float(np.linalg.norm(expected)) + ATOL


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """``||got - expected|| / ||expected||``, for messages."""
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    return float(np.linalg.norm(got - expected) / max(float(np.linalg.norm(expected)), 1e-12))
