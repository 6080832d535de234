"""llama.cpp in process: a quantized GGUF, all layers on the GPU when the build has one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from app.config import LLMSettings
from app.llm.base import ChatMessage, Deadline, LLMError
from app.llm.prefix_cache import PrefixCache, Reuse

logger = logging.getLogger(__name__)


_SPLIT = "\u2063SHOPDESK-PREFIX-END\u2063"


@dataclass
class GenerationStats:
    """How the last completion's fixed prefix was served, and its length in tokens."""

    prefix: Reuse = "none"
    cached_tokens: int = 0


class LlamaCppLLM:
    """Wraps `llama_cpp.Llama`. The chat template comes from the GGUF's own metadata.

    A prompt's fixed prefix (everything before the last user message's text:
    the system prompt and the turn header) is kept in a `PrefixCache`, so a
    request processes only its passages and question. A generation past its deadline
    stops with LLMTimeout: at its next token, or, while the prompt is being read, through
    llama.cpp's abort callback. The deadline is the one `stream` is given (`GatedLLM`
    starts it when the call joins the queue), else `timeout_s` from when it took the model.
    """

    def __init__(self, model_path: Path, settings: LLMSettings) -> None:
        import llama_cpp
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
        self._prefixes = PrefixCache(self._llm, settings.prefix_cache_slots)
        self._template = _template(self._llm)
        self.last = GenerationStats()
        self._deadline: Deadline | None = None
        # Both kept on the object: ctypes frees a callback that nothing references.
        self._abort = llama_cpp.ggml_abort_callback(self._past_deadline)
        self._no_abort = llama_cpp.ggml_abort_callback()
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

    @property
    def llama(self) -> Any:
        """The bare `llama_cpp.Llama` (the benchmark compares against it)."""
        return self._llm

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prefix_tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Tokens of the rendered prompt up to the last user message's text ([] if unknown).

        Rendered with the GGUF's template and tokenised the way llama.cpp
        tokenises the whole prompt, so they are a true prefix of it.
        """
        if self._template is None or not messages or messages[-1].role != "user":
            return []
        head = [{"role": m.role, "content": m.content} for m in messages[:-1]]
        rendered = self._template(messages=[*head, {"role": "user", "content": _SPLIT}])
        text = rendered.prompt.split(_SPLIT, 1)[0]
        return list(self._llm.tokenize(text.encode("utf-8"), special=True))

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        """Process and keep the fixed prefix of prompts shaped like `messages` (at start-up)."""
        prefix = self.prefix_tokens(messages)
        with self._lock:
            self._prefixes.prepare(prefix)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        payload: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        prefix = self.prefix_tokens(messages)
        with self._lock:  # one context, one completion at a time
            if deadline is None:  # ungated: waiting for the lock is not counted
                deadline = Deadline(self._settings.timeout_s)
            self._watch_prompt(deadline)
            chunks: object = None
            try:
                reuse = self._prefixes.prepare(prefix)
                self.last = GenerationStats(reuse, len(prefix) if reuse != "none" else 0)
                chunks = self._llm.create_chat_completion(
                    payload,
                    max_tokens=max_tokens,
                    temperature=self._settings.temperature,
                    seed=self._settings.seed,
                    stream=True,
                )
                for chunk in cast(Iterator[dict[str, Any]], chunks):
                    if self._deadline is not None:
                        self._watch_prompt(None)  # the prompt is read: tokens check from here
                    if stop is not None and stop.is_set():
                        break
                    deadline.check()
                    piece = chunk["choices"][0]["delta"].get("content")
                    if isinstance(piece, str) and piece:
                        yield piece
            except LLMError:  # the deadline's LLMTimeout, kept as it is
                raise
            except (RuntimeError, ValueError) as exc:
                if deadline.passed():  # llama_decode aborted by the callback
                    raise deadline.timeout() from exc
                raise LLMError(f"generation failed: {exc}") from exc
            finally:
                self._watch_prompt(None)
                if isinstance(chunks, Generator):
                    chunks.close()  # a completion left part-way (stop, deadline) ends here
                _release_sampler(self._llm)

    def _watch_prompt(self, deadline: Deadline | None) -> None:
        """Let llama.cpp stop a decode under way once `deadline` passes (None: never).

        Installed only while a prompt is read: llama.cpp asks the callback some tens of
        times a second then, but hundreds of times a token while generating, each call
        taking the GIL, and between tokens the deadline is checked anyway. An aborted
        decode leaves the context as it was before that batch (llama.cpp removes its
        entries), so the next request finds a consistent cache.
        """
        import llama_cpp

        self._deadline = deadline
        callback = self._abort if deadline is not None else self._no_abort
        llama_cpp.llama_set_abort_callback(self._llm.ctx, callback, None)

    def _past_deadline(self, _data: Any) -> bool:
        deadline = self._deadline
        return deadline is not None and deadline.passed()


def _release_sampler(llama: Any) -> None:
    """Free the sampler chain of the completion that just ended, now.

    llama-cpp-python (0.3.x) builds a new `LlamaSampler` for each completion and
    drops the old one, but the object sits in a reference cycle (its own free
    callback refers to it), so only Python's full garbage collection frees its
    native chain, about 1.7 MB each for this model's vocabulary. A server with a
    large heap rarely runs one: measured, the bare model grew 1.74 MB per
    completion and the server 7-8 MB a minute under load. Closing it breaks the
    cycle and frees the chain at once; the next completion builds its own.
    """
    sampler = getattr(llama, "_sampler", None)
    if sampler is not None and hasattr(sampler, "close"):
        sampler.close()
        llama._sampler = None


def _template(llama: Any) -> Any:
    """The GGUF's chat template as llama-cpp-python renders it, or None when it has none."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None

    def text(token: int) -> str:
        return bytes(llama.detokenize([token], special=True)).decode("utf-8", "replace")

    eos, bos = llama.token_eos(), llama.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=text(eos) if eos != -1 else "",
        bos_token=text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )
