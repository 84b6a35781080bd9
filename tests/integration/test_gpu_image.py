"""The example's GPU image (several GB of CUDA wheels): `make test-gpu-image`, never `make test`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import toolkit
from toolkit import engine, image
from toolkit.config import load_config

pytestmark = [pytest.mark.docker, pytest.mark.gpu_image]
REPO = Path(__file__).resolve().parents[2]


def test_gpu_image_builds_without_a_gpu_and_carries_cuda_torch() -> None:
    stages_before = {i.id for i in engine.images("io.toolkit.stage=install")}
    built = toolkit("build", "--target", "gpu", cwd=REPO, timeout=3600)
    assert built.returncode == 0, built.stdout + built.stderr
    cfg = load_config(REPO / "toolkit.yaml")
    ref, _ = image.current_image(cfg, cfg.targets["gpu"])
    out = engine.run_once(ref, ["python", "-c", "import torch; print(torch.version.cuda)"])
    assert out.strip() == "13.0"
    stages_after = {i.id for i in engine.images("io.toolkit.stage=install")}
    assert stages_after <= stages_before  # the build's wheel-laden first stage was removed
