from pathlib import Path

import pytest

from app.config import Settings
from app.container import build_embedder, build_llm
from app.embeddings import Embedder
from app.llm.base import LLM
from tests.support.settings import real_settings


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return real_settings(tmp_path_factory.mktemp("shop"), llm={"model": "qwen2.5-coder-0.5b"})


@pytest.fixture(scope="session")
def embedder(settings: Settings) -> Embedder:
    return build_embedder(settings)


@pytest.fixture(scope="session")
def small_llm(settings: Settings) -> LLM:
    return build_llm(settings)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
