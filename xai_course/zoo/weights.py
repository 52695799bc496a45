"""Shipped weights: saved with their sha256, checked before `torch.load(weights_only=True)`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).parent / "weights"
SUMS_FILE = WEIGHTS_DIR / "SHA256SUMS"


class WeightsNotCached(FileNotFoundError):
    """Weights that come from outside the package are not on this machine."""


class WeightsHashMismatch(RuntimeError):
    """A weights file does not have the sha256 it should: it is never loaded."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_sums(sums_file: Path = SUMS_FILE) -> dict[str, str]:
    """{file name: sha256} from a `sha256sum`-style file."""
    if not sums_file.exists():
        return {}
    sums = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    return sums


def load_checked(path: Path, digest: str) -> dict:
    """torch.load(path, weights_only=True), only if the file's sha256 starts with `digest`."""
    path = Path(path)
    if not path.exists():
        raise WeightsNotCached(f"weights file {path} does not exist")
    actual = sha256(path)
    if not actual.startswith(digest):
        raise WeightsHashMismatch(
            f"weights file {path} has sha256 {actual}, expected {digest}: the file is corrupt "
            f"or was replaced. Delete it and fetch or retrain it (`xai-course train NAME` for "
            f"the embedded models, `xai-course fetch-weights NAME` for the ImageNet ones)."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.pt"


def load_state(name: str, weights_dir: Path = WEIGHTS_DIR) -> dict:
    """The state dict of embedded model `name`, after its sha256 check."""
    path = Path(weights_dir) / f"{name}.pt"
    sums = expected_sums(Path(weights_dir) / "SHA256SUMS")
    if path.name not in sums:
        raise WeightsNotCached(
            f"no weights recorded for {name!r} in {weights_dir}/SHA256SUMS; train them with "
            f"`xai-course train {name}`"
        )
    return load_checked(path, sums[path.name])


def save_state(name: str, model: nn.Module, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Save `model`'s weights as `name.pt` (float32 on the CPU) and record their sha256."""
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / f"{name}.pt"
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, path)
    sums = expected_sums(weights_dir / "SHA256SUMS")
    sums[path.name] = sha256(path)
    (weights_dir / "SHA256SUMS").write_text(
        "".join(f"{digest}  {file}\n" for file, digest in sorted(sums.items()))
    )
    return path
