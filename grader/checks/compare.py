"""Compare numbers the way pytest.approx reports them: shape, mismatch count, worst differences."""
from __future__ import annotations

import numpy as np


def fmt(x: float) -> str:
    return f"{x:.6g}"


def compare(name: str, got: np.ndarray, expected: np.ndarray, *, rtol: float = 1e-4,
            atol: float = 1e-6) -> str | None:
    """None when ``got`` matches ``expected`` elementwise, else a message saying how it differs.

    NaN and inf in ``got`` never match. Arrays are compared as float64.
    """
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return f"{name}: shape {got.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(got)):
        bad = int(np.sum(~np.isfinite(got)))
        return f"{name}: {bad} of {got.size} values are NaN or infinite"
    close = np.abs(got - expected) <= atol + rtol * np.abs(expected)
    if np.all(close):
        return None
    if got.size == 1:
        return f"{name}: got {fmt(got.item())}, expected {fmt(expected.item())}"
    diff = np.abs(got - expected)
    rel = diff / np.maximum(np.abs(expected), 1e-12)
    idx = np.flatnonzero(~close.reshape(-1))
    lines = [f"{name}: mismatched elements: {idx.size} / {got.size}",
             f"  max abs diff {fmt(diff.max())}, max rel diff {fmt(rel.max())}",
             "  index | obtained | expected"]
    for i in idx[:3]:
        lines.append(f"  {i} | {fmt(got.reshape(-1)[i])} | {fmt(expected.reshape(-1)[i])}")
    return "\n".join(lines)


def close_vector(got: np.ndarray, expected: np.ndarray, rtol: float = 2e-3) -> bool:
    """True when two gradient vectors agree in norm: ||got - expected|| <= rtol * ||expected||."""
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    if got.shape != expected.shape or not np.all(np.isfinite(got)):
        return False
    return float(np.linalg.norm(got - expected)) <= rtol * max(float(np.linalg.norm(expected)), 1e-8)
