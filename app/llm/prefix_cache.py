"""Keeps the KV cache of fixed prompt prefixes, so only a prompt's new part is processed.

llama.cpp already reuses the part of a prompt that matches the previous one.
That is lost as soon as another prompt runs in between: the Chinese answer
after an English one, an answer after a follow-up rewrite. This cache keeps
the KV state of each fixed prefix (system prompt and the user turn's
header) seen recently and puts it back before a prompt that starts with it.

Only sequence 0's KV cells are saved (a few MB for a few hundred tokens),
not the whole context state with its logits buffer.
"""

from __future__ import annotations

import ctypes
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

Reuse = Literal["live", "restored", "evaluated", "none"]


@dataclass(frozen=True)
class _Saved:
    tokens: tuple[int, ...]
    kv: bytes


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sequences share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixCache:
    """LRU of saved prefix states for one `llama_cpp.Llama` (not thread-safe: hold its lock)."""

    def __init__(self, llama: Any, slots: int) -> None:
        self._llama = llama
        self._slots = slots
        self._saved: OrderedDict[tuple[int, ...], _Saved] = OrderedDict()

    def __len__(self) -> int:
        return len(self._saved)

    def _live(self) -> list[int]:
        return [int(t) for t in self._llama.input_ids[: self._llama.n_tokens]]

    def prepare(self, prefix: Sequence[int]) -> Reuse:
        """Make the context hold `prefix` (with nothing after it) when that saves work."""
        if self._slots <= 0 or not prefix:
            return "none"
        key = tuple(prefix)
        if common_prefix(self._live(), key) == len(key):
            self._remember(key)
            return "live"  # llama.cpp's own prefix match will reuse it
        saved = self._saved.get(key)
        if saved is not None and self._restore(saved):
            self._saved.move_to_end(key)
            return "restored"
        shared = common_prefix(self._live(), key)
        self._llama.n_tokens = shared
        self._llama.eval(list(key[shared:]))
        self._remember(key, force=True)
        return "evaluated"

    def _remember(self, key: tuple[int, ...], *, force: bool = False) -> None:
        """Save the context's first len(key) tokens, which must be `key` and nothing beyond."""
        if key in self._saved and not force:
            self._saved.move_to_end(key)
            return
        if self._llama.n_tokens != len(key):
            return  # something follows the prefix in the live context: saved next time
        import llama_cpp

        ctx = self._llama.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        if written == 0:
            return
        self._saved[key] = _Saved(key, bytes(buf)[:written])
        self._saved.move_to_end(key)
        while len(self._saved) > self._slots:
            self._saved.popitem(last=False)

    def _restore(self, saved: _Saved) -> bool:
        import llama_cpp

        ctx = self._llama.ctx
        memory = llama_cpp.llama_get_memory(ctx)
        llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
        buf = (ctypes.c_uint8 * len(saved.kv)).from_buffer_copy(saved.kv)
        if llama_cpp.llama_state_seq_set_data(ctx, buf, len(saved.kv), 0) == 0:
            logger.warning("could not restore a cached prompt prefix; it is evaluated again")
            self._llama.n_tokens = 0
            return False
        n = len(saved.tokens)
        self._llama.input_ids[:n] = saved.tokens
        self._llama.n_tokens = n
        return True
