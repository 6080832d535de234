import hashlib
from pathlib import Path

import pytest

from app.models import ModelFileError, chat_model_path, embedding_model_path, verify_file

pytestmark = pytest.mark.unit


def test_verify_accepts_the_right_hash_and_remembers_it(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"weights")
    verify_file(path, hashlib.sha256(b"weights").hexdigest())
    assert (tmp_path / "m.gguf.verified.json").is_file()
    verify_file(path, hashlib.sha256(b"weights").hexdigest())  # second time from the marker


def test_verify_refuses_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    verify_file(path, good)
    path.write_bytes(b"tampered")  # new size/mtime: the marker no longer vouches for it
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        verify_file(path, good)


def test_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="make setup"):
        chat_model_path("qwen2.5-coder-1.5b", None, tmp_path)
    with pytest.raises(ModelFileError, match="MODEL_PATH does not exist"):
        chat_model_path("qwen2.5-coder-1.5b", tmp_path / "nope.gguf", tmp_path)
    with pytest.raises(ModelFileError, match="make setup"):
        embedding_model_path(None, tmp_path)
    with pytest.raises(ModelFileError, match="not a sentence-transformers dir"):
        embedding_model_path(tmp_path, tmp_path)


def test_explicit_gguf_path_is_used_as_is(tmp_path: Path) -> None:
    model = tmp_path / "mine.gguf"
    model.write_bytes(b"x")
    assert chat_model_path("qwen2.5-coder-1.5b", model, tmp_path / "cache") == model
