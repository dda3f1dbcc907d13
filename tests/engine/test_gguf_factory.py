"""The tiny GGUF test model really is a model llama-cpp-python 0.3.36 can use."""

from __future__ import annotations

import time
from pathlib import Path

import jinja2
import llama_cpp
import pytest
from gguf import GGUFReader
from gguf_factory import (
    BOS_ID,
    DEFAULT_CHAT_TEMPLATE,
    EOS_ID,
    N_EMBD,
    UNK_ID,
    tiny_vocab,
    write_tiny_gguf,
)

VOCAB = tiny_vocab()


def load(path: Path, n_ctx: int = 256) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)


@pytest.fixture(scope="module")
def llm(tiny_model_path: Path) -> llama_cpp.Llama:
    return load(tiny_model_path)


def vocab_of(model: llama_cpp.Llama):
    return llama_cpp.llama_model_get_vocab(model.model)


def attr(model: llama_cpp.Llama, token: int) -> int:
    return llama_cpp.llama_vocab_get_attr(vocab_of(model), token)


def tok_id(text: str) -> int:
    return VOCAB.index(text)


# -- loading and metadata ---------------------------------------------------


def test_loads_with_expected_shape(llm: llama_cpp.Llama) -> None:
    assert llm.n_vocab() == len(VOCAB)
    assert llm.n_embd() == N_EMBD
    assert llama_cpp.llama_model_n_ctx_train(llm.model) == 2048
    assert llm.metadata["general.architecture"] == "llama"
    assert llm.metadata["general.name"] == "tiny-test-model"


def test_vocab_size_is_what_was_written(tiny_model_path: Path, llm: llama_cpp.Llama) -> None:
    reader = GGUFReader(tiny_model_path)
    written = reader.fields["tokenizer.ggml.tokens"].contents()
    assert written == VOCAB
    assert 300 <= len(written) <= 600  # "a few hundred"
    assert llama_cpp.llama_vocab_n_tokens(vocab_of(llm)) == len(written)
    for i in (0, 1, 2, 3 + 0x41, len(VOCAB) - 1):
        assert llm._model.token_get_text(i) == VOCAB[i]


def test_special_token_ids(llm: llama_cpp.Llama) -> None:
    assert (llm.token_bos(), llm.token_eos()) == (BOS_ID, EOS_ID)
    assert VOCAB[UNK_ID] == "<unk>"
    assert llm.token_nl() == tok_id("<0x0A>")


def test_chat_template_readable_back(tiny_model_path: Path, llm: llama_cpp.Llama) -> None:
    reader = GGUFReader(tiny_model_path)
    assert reader.fields["tokenizer.chat_template"].contents() == DEFAULT_CHAT_TEMPLATE
    assert llm.metadata["tokenizer.chat_template"] == DEFAULT_CHAT_TEMPLATE
    assert llm.chat_format == "chat_template.default"


def test_no_chat_template(make_tiny_model) -> None:
    path = make_tiny_model(chat_template=None)
    assert "tokenizer.chat_template" not in GGUFReader(path).fields
    assert "tokenizer.chat_template" not in load(path).metadata


def test_custom_chat_template(make_tiny_model) -> None:
    template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
    path = make_tiny_model(chat_template=template)
    assert load(path).metadata["tokenizer.chat_template"] == template


def test_metadata_entries_are_written_and_override(make_tiny_model) -> None:
    path = make_tiny_model(
        metadata={
            "llama.context_length": 4096,  # overrides, keeps uint32 so llama.cpp accepts it
            "general.name": "renamed",
            "general.description": "a test model",
            "custom.flag": True,
            "custom.ratio": 0.5,
            "custom.count": 7,
        }
    )
    model = load(path)
    assert llama_cpp.llama_model_n_ctx_train(model.model) == 4096
    meta = model.metadata
    assert meta["general.name"] == "renamed"
    assert meta["general.description"] == "a test model"
    assert meta["custom.flag"] == "true"
    assert float(meta["custom.ratio"]) == 0.5
    assert meta["custom.count"] == "7"
    fields = GGUFReader(path).fields
    assert fields["custom.count"].contents() == 7
    assert list(fields).count("general.name") == 1


def test_context_length_and_name_arguments(make_tiny_model) -> None:
    model = load(make_tiny_model(context_length=512, name="Tiny X"), n_ctx=0)
    assert llama_cpp.llama_model_n_ctx_train(model.model) == 512
    assert model.n_ctx() == 512
    assert model.metadata["general.name"] == "Tiny X"


@pytest.mark.parametrize("arch", ["qwen2", "qwen3"])
def test_other_llama_like_architectures_load(make_tiny_model, arch: str) -> None:
    model = load(make_tiny_model(architecture=arch))
    assert model.metadata["general.architecture"] == arch
    assert model.create_completion("hello", max_tokens=4, seed=1)["usage"]["completion_tokens"] == 4


def test_unknown_architecture_is_refused(make_tiny_model) -> None:
    with pytest.raises(ValueError):
        load(make_tiny_model(architecture="not-an-arch"))


# -- tokenizer --------------------------------------------------------------


def test_hello_world_round_trip(llm: llama_cpp.Llama) -> None:
    tokens = llm.tokenize(b"hello world")
    assert tokens == [BOS_ID, tok_id("hello"), tok_id("\u2581world")]
    assert llm.detokenize(tokens) == b"hello world"
    assert llm.tokenize(b"hello world", add_bos=False) == tokens[1:]


def test_byte_fallback_round_trip(llm: llama_cpp.Llama) -> None:
    text = "é€😀".encode()
    tokens = llm.tokenize(text, add_bos=False)
    assert tokens == [tok_id(f"<0x{b:02X}>") for b in text]
    for t in tokens:
        assert attr(llm, t) & llama_cpp.LLAMA_TOKEN_ATTR_BYTE
    assert llm.detokenize(tokens) == text


def test_newline_is_byte_token(llm: llama_cpp.Llama) -> None:
    tokens = llm.tokenize(b"a\nb", add_bos=False)
    assert tokens == [tok_id("a"), tok_id("<0x0A>"), tok_id("b")]
    assert llm.detokenize(tokens) == b"a\nb"


def test_im_start_is_one_control_token(llm: llama_cpp.Llama) -> None:
    im_start = tok_id("<|im_start|>")
    assert llm.tokenize(b"<|im_start|>", add_bos=False, special=True) == [im_start]
    assert attr(llm, im_start) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
    # as plain text it is not parsed as the control token
    plain = llm.tokenize(b"<|im_start|>", add_bos=False, special=False)
    assert im_start not in plain and len(plain) > 1
    # control tokens are rendered only on request
    assert llm.detokenize([im_start]) == b""
    assert llm.detokenize([im_start], special=True) == b"<|im_start|>"


def test_chatml_prompt_tokenizes_exactly(llm: llama_cpp.Llama) -> None:
    prompt = jinja2.Environment().from_string(DEFAULT_CHAT_TEMPLATE).render(
        messages=[{"role": "user", "content": "hello world"}], add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n"
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    assert tokens[0] == tok_id("<|im_start|>")
    assert tokens.count(tok_id("<|im_start|>")) == 2
    assert tokens.count(tok_id("<|im_end|>")) == 1
    # no space prefix is inserted after special tokens: exact round trip
    assert llm.detokenize(tokens, special=True) == prompt.encode()


@pytest.mark.parametrize("text", ["<think>", "</think>", "<tool_call>", "</tool_call>"])
def test_user_defined_tokens(llm: llama_cpp.Llama, text: str) -> None:
    token = tok_id(text)
    for special in (True, False):  # user-defined tokens are always parsed ...
        assert llm.tokenize(text.encode(), add_bos=False, special=special) == [token]
    assert attr(llm, token) & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    assert llm.detokenize([token]) == text.encode()  # ... and always rendered


def test_extra_tokens(make_tiny_model) -> None:
    extra = ["<|custom|>", "[TOOL_CALLS]", "<think>"]  # duplicates are ignored
    vocab = tiny_vocab(extra)
    assert len(vocab) == len(VOCAB) + 2
    model = load(make_tiny_model(extra_tokens=extra))
    assert model.n_vocab() == len(vocab)
    for text in extra:
        assert model.tokenize(text.encode(), add_bos=False) == [vocab.index(text)]


def test_extra_tokens_must_be_nonempty() -> None:
    with pytest.raises(ValueError):
        tiny_vocab([""])


def test_end_of_generation_tokens(llm: llama_cpp.Llama) -> None:
    vocab = vocab_of(llm)
    eog = {VOCAB[t] for t in range(len(VOCAB)) if llama_cpp.llama_vocab_is_eog(vocab, t)}
    assert eog == {"</s>", "<|im_end|>"}
    assert llama_cpp.llama_vocab_eot(vocab) == tok_id("<|im_end|>")


def test_eog_by_text_for_extra_tokens(make_tiny_model) -> None:
    # llama.cpp marks some tokens EOG (and CONTROL) by their text alone
    extra = ["<|endoftext|>", "<end_of_turn>", "<start_of_turn>"]
    model = load(make_tiny_model(extra_tokens=extra))
    vocab = tiny_vocab(extra)
    is_eog = {t: llama_cpp.llama_vocab_is_eog(vocab_of(model), vocab.index(t)) for t in extra}
    assert is_eog == {"<|endoftext|>": True, "<end_of_turn>": True, "<start_of_turn>": False}


# -- generation ---------------------------------------------------------------


def test_completion_is_seeded(llm: llama_cpp.Llama) -> None:
    def run(seed: int) -> dict:
        return llm.create_completion("hello world", max_tokens=8, seed=seed)

    first, again = run(1234), run(1234)
    assert first["choices"][0]["text"] == again["choices"][0]["text"]
    assert first["usage"]["completion_tokens"] == 8
    assert first["choices"][0]["finish_reason"] == "length"
    texts = {run(seed)["choices"][0]["text"] for seed in range(5)}
    assert len(texts) > 1  # the seed matters


def test_generate_greedy_is_deterministic_across_loads(tiny_model_path: Path) -> None:
    def run() -> list[int]:
        model = load(tiny_model_path)
        out = []
        for token in model.generate(model.tokenize(b"hello"), temp=0.0):
            out.append(token)
            if len(out) == 8:
                break
        return out

    assert run() == run()


def test_sampled_text_is_printable_and_runs_to_max_tokens(llm: llama_cpp.Llama) -> None:
    out = llm.create_completion("hello", max_tokens=64, seed=7, temperature=1.0, top_k=0, top_p=1.0)
    assert out["usage"]["completion_tokens"] == 64
    text = out["choices"][0]["text"]
    assert text and text.isprintable() and text.isascii()


def test_eog_can_be_forced_with_a_logit_bias(llm: llama_cpp.Llama) -> None:
    out = llm.create_completion(
        "hello", max_tokens=8, seed=1, logit_bias={tok_id("<|im_end|>"): 30.0}
    )
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["choices"][0]["text"] == ""


def test_unsuppressed_model_samples_special_tokens(make_tiny_model) -> None:
    model = load(make_tiny_model(suppress_special=False))
    out = []
    for token in model.generate(model.tokenize(b"hello"), temp=1.0, top_k=0, top_p=1.0):
        out.append(token)
        if len(out) == 64:
            break
    assert any(VOCAB[t].startswith("<0x") for t in out)


def test_chat_completion_uses_template(llm: llama_cpp.Llama) -> None:
    out = llm.create_chat_completion(
        messages=[{"role": "user", "content": "hello"}], max_tokens=8, seed=3
    )
    assert out["choices"][0]["message"]["role"] == "assistant"
    assert out["usage"]["completion_tokens"] == 8
    # llama-cpp-python renders the GGUF template and adds no BOS of its own
    # (the template would have to emit it), so the prompt is exactly:
    prompt = b"<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert out["usage"]["prompt_tokens"] == len(llm.tokenize(prompt, add_bos=False, special=True))


# -- the writer -------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = write_tiny_gguf(tmp_path / "a.gguf", seed=3)
    b = write_tiny_gguf(tmp_path / "b.gguf", seed=3)
    c = write_tiny_gguf(tmp_path / "c.gguf", seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert a.stat().st_size == c.stat().st_size


def test_overwrites_in_place_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "m.gguf"
    write_tiny_gguf(path, seed=1)
    write_tiny_gguf(str(path), seed=2)
    assert path.read_bytes() == write_tiny_gguf(tmp_path / "ref.gguf", seed=2).read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.gguf"]


def test_write_and_load_are_fast(tmp_path: Path) -> None:
    # Generous bounds (typically ~10 ms each): catch an order-of-magnitude regression only.
    write_tiny_gguf(tmp_path / "warmup.gguf")
    t0 = time.perf_counter()
    path = write_tiny_gguf(tmp_path / "m.gguf")
    t1 = time.perf_counter()
    load(path)
    t2 = time.perf_counter()
    assert path.stat().st_size < 1_000_000
    assert t1 - t0 < 0.5
    assert t2 - t1 < 2.0
