"""The real (small) GGUF model through llama.cpp: template from metadata, streaming, stop."""

import threading

import pytest

from app.llm.base import LLM, ChatMessage

pytestmark = pytest.mark.integration


def test_streams_an_answer_with_the_gguf_chat_template(small_llm: LLM) -> None:
    messages = [
        ChatMessage("system", "Answer with one word."),
        ChatMessage("user", "What colour is the clear daytime sky?"),
    ]
    pieces = list(small_llm.stream(messages, max_tokens=8))
    assert len(pieces) >= 1
    assert "blue" in "".join(pieces).lower()


def test_stop_event_ends_generation_early(small_llm: LLM) -> None:
    stop = threading.Event()
    pieces = []
    for piece in small_llm.stream(
        [ChatMessage("user", "Count from 1 to 200, separated by commas.")],
        max_tokens=200,
        stop=stop,
    ):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
    assert len(pieces) <= 4


def test_counts_tokens_with_the_models_own_tokenizer(small_llm: LLM) -> None:
    assert small_llm.count_tokens("退货政策") < small_llm.count_tokens("退货政策" * 10)
    assert small_llm.context_window >= 2048


def test_fixed_prefix_is_kept_across_other_prompts(small_llm: LLM) -> None:
    """The system prompt's KV cache comes back after another prompt ran in between,
    and the answer is the same as when the whole prompt is processed from scratch."""
    from app.llm.llamacpp import LlamaCppLLM

    assert isinstance(small_llm, LlamaCppLLM)
    sky = [
        ChatMessage("system", "You are a weather assistant. Answer with one word."),
        ChatMessage("user", "What colour is the clear daytime sky?"),
    ]
    other = [ChatMessage("system", "Translate to French."), ChatMessage("user", "Good morning")]
    prefix = small_llm.prefix_tokens(sky)
    assert 0 < len(prefix) < small_llm.count_tokens(sky[0].content) + 16

    with small_llm.lock:
        small_llm.llama.n_tokens = 0  # a cold context
    cold = "".join(small_llm.stream(sky, max_tokens=8))
    "".join(small_llm.stream(other, max_tokens=8))
    assert small_llm.last.prefix in ("evaluated", "restored")
    warm = "".join(small_llm.stream(sky, max_tokens=8))
    assert small_llm.last.prefix == "restored"
    assert small_llm.last.cached_tokens == len(prefix)
    assert warm == cold
    "".join(small_llm.stream([sky[0], ChatMessage("user", "And at night?")], max_tokens=4))
    assert small_llm.last.prefix == "live"  # the previous prompt still holds the prefix


def test_each_completion_frees_its_sampler_chain(small_llm: LLM) -> None:
    """llama-cpp-python leaves each completion's sampler in a reference cycle that only a
    full garbage collection frees (1.7 MB of native memory each): the server grew under
    load until the wrapper closed it. With the collector off, no chain may outlive its
    completion, whether the completion ran to its end or was stopped part-way."""
    import gc

    from llama_cpp._internals import LlamaSampler

    def live_chains() -> int:
        return sum(
            1 for o in gc.get_objects() if isinstance(o, LlamaSampler) and o.sampler is not None
        )

    gc.collect()
    before = live_chains()
    gc.disable()
    try:
        for _ in range(3):
            "".join(small_llm.stream([ChatMessage("user", "Say hello.")], max_tokens=4))
        stop = threading.Event()
        for _piece in small_llm.stream(
            [ChatMessage("user", "Count to 50.")], max_tokens=50, stop=stop
        ):
            stop.set()
        assert live_chains() == before == 0
    finally:
        gc.enable()
