"""Write tiny MNIST-format data sets (IDX files in torchvision's raw layout) for tests."""
import struct
from pathlib import Path

import numpy as np


def write_idx(root: Path, dataset: str = "FashionMNIST", n_train: int = 160, n_test: int = 32,
              seed: int = 0) -> Path:
    """Uncompressed ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` under root/<dataset>/raw."""
    raw = Path(root) / dataset / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
    return Path(root)
