"""llama.cpp in process: a quantized GGUF, all layers on the GPU when the build has one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from app.config import LLMSettings
from app.llm.base import ChatMessage, LLMError

logger = logging.getLogger(__name__)


class LlamaCppLLM:
    """Wraps `llama_cpp.Llama`. The chat template comes from the GGUF's own metadata.

    llama.cpp keeps the KV cache of the previous prompt and re-evaluates only
    what differs, so a fixed system prompt at the start is processed once.
    """

    def __init__(self, model_path: Path, settings: LLMSettings) -> None:
        from llama_cpp import Llama

        self._settings = settings
        self._llm = Llama(
            model_path=str(model_path),
            n_ctx=settings.n_ctx,
            n_gpu_layers=settings.n_gpu_layers,
            n_threads=settings.n_threads,
            n_batch=settings.n_batch,
            verbose=False,
        )
        self._name = model_path.name
        self._lock = threading.Lock()
        logger.info(
            "chat model %s loaded (n_ctx=%d, n_gpu_layers=%d, template=%s)",
            self._name,
            settings.n_ctx,
            settings.n_gpu_layers,
            self._llm.chat_format,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return int(self._llm.n_ctx())

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        payload: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        with self._lock:  # one context, one completion at a time
            try:
                chunks = self._llm.create_chat_completion(
                    payload,
                    max_tokens=max_tokens,
                    temperature=self._settings.temperature,
                    seed=self._settings.seed,
                    stream=True,
                )
                for chunk in cast(Iterator[dict[str, Any]], chunks):
                    if stop is not None and stop.is_set():
                        break
                    piece = chunk["choices"][0]["delta"].get("content")
                    if isinstance(piece, str) and piece:
                        yield piece
            except (RuntimeError, ValueError) as exc:
                raise LLMError(f"generation failed: {exc}") from exc
