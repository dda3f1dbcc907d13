"""Write tiny random-weight GGUF models for tests, benchmarks and TUI snapshots.

The files are real llama.cpp models (llama architecture, SentencePiece-style
vocabulary with byte fallback, ChatML control tokens, an embedded chat
template) but have only a few hundred thousand parameters, so writing one
takes a few milliseconds and ``llama_cpp.Llama`` loads it in a few more.
Weights are random normal values from a seeded numpy generator: the same
arguments always give a byte-identical file.  The model "speaks" gibberish,
which is all the engine and UI tests need; by default it never "says" byte,
control or user-defined tokens, so output is printable and runs to
``max_tokens`` (see ``suppress_special``).

This is a plain module (no pytest import) so that benchmarks and snapshot
apps can use it too::

    from gguf_factory import write_tiny_gguf
    path = write_tiny_gguf(tmp_dir / "tiny.gguf")

Things worth knowing when writing tests against these files:

* ``</s>`` (id 2, eos) and ``<|im_end|>`` are end-of-generation tokens;
  llama.cpp also marks by *text* any extra token such as ``<|endoftext|>``,
  ``<|eot_id|>``, ``<end_of_turn>``, ``<|end|>``... as EOG (and forces it to
  CONTROL), see ``llama-vocab.cpp``.
* ``<|im_start|>``/``<|im_end|>`` are CONTROL tokens: they are only parsed
  from text with ``special=True`` and are dropped by ``detokenize`` unless
  ``special=True``.  ``<think>``, ``</think>``, ``<tool_call>``,
  ``</tool_call>`` and ``extra_tokens`` are USER_DEFINED: llama.cpp always
  parses them as one token and always renders them.
* Keep extra tokens under 32 UTF-8 bytes: llama-cpp-python's ``detokenize``
  uses a 32-byte buffer per piece.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from gguf import GGUFValueType, GGUFWriter, Keys, LlamaFileType, TokenType

__all__ = [
    "DEFAULT_CHAT_TEMPLATE",
    "BOS_ID",
    "EOS_ID",
    "UNK_ID",
    "N_EMBD",
    "N_LAYER",
    "N_HEAD",
    "N_HEAD_KV",
    "N_FF",
    "CONTROL_TOKENS",
    "USER_DEFINED_TOKENS",
    "tiny_vocab",
    "write_tiny_gguf",
]

#: ChatML, as used by Qwen/Hermes/SmolLM & co.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Model dimensions (tiny on purpose).
N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2  # grouped-query attention, like most current models
N_FF = 128
HEAD_DIM = N_EMBD // N_HEAD
RMS_EPS = 1e-5
ROPE_FREQ_BASE = 10000.0
BIAS_CHANNEL = 8.0  # constant value of residual dim 0 (see write_tiny_gguf)
OUTPUT_STD = 0.4  # ordinary tokens' logits come out with a std of ~3
SUPPRESS_WEIGHT = 4.0  # byte/special tokens' logits: about -4 * (8 / rms) ~ -12

UNK_ID = 0
BOS_ID = 1
EOS_ID = 2

CONTROL_TOKENS: tuple[str, ...] = ("<|im_start|>", "<|im_end|>")
USER_DEFINED_TOKENS: tuple[str, ...] = ("<think>", "</think>", "<tool_call>", "</tool_call>")

_SPACE = "\u2581"  # SentencePiece's "▁" word-boundary marker

# Single characters (so most ASCII text needs no byte fallback).  Newline and
# other control characters are deliberately absent: SPM covers them with the
# byte tokens (<0x0A> is llama.cpp's linefeed token).
_CHARS = (
    [_SPACE]
    + list("abcdefghijklmnopqrstuvwxyz")
    + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    + list("0123456789")
    + list(".,!?;:'\"-_()[]{}<>/\\|@#$%^&*+=~`")
)

# Multi-character pieces.  SPM merges adjacent pieces pairwise, so every
# piece's prefixes are added too (see ``_with_prefixes``) to make each word
# reachable.
_WORDS = (
    "▁the", "▁a", "▁an", "▁and", "▁of", "▁to", "▁in", "▁is", "▁it", "▁you",
    "▁I", "▁hello", "▁Hello", "▁world", "▁test", "▁model", "▁token", "▁$",
    "ing", "ed", "er", "es", "th", "he", "ll", "lo",
)


def _with_prefixes(words: Sequence[str]) -> list[str]:
    out: list[str] = []
    seen = set(_CHARS)
    # each "▁word" also as "word" (text start, after special tokens)
    words = [v for word in words for v in (word, word.lstrip(_SPACE)) if v]
    for word in words:
        for end in range(2, len(word) + 1):
            piece = word[:end]
            if piece not in seen:
                seen.add(piece)
                out.append(piece)
    return out


@functools.cache
def _base_vocab() -> tuple[tuple[str, ...], tuple[float, ...], tuple[int, ...]]:
    tokens: list[str] = ["<unk>", "<s>", "</s>"]
    scores: list[float] = [0.0, 0.0, 0.0]
    types: list[int] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]

    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(TokenType.BYTE)

    # SPM scores are log-probabilities: the merge with the highest score wins.
    # Longer pieces score higher so words merge greedily into whole tokens.
    pieces = _CHARS + _with_prefixes(_WORDS)
    for i, piece in enumerate(pieces):
        tokens.append(piece)
        scores.append(float(len(piece)) - 0.001 * i - 10.0)
        types.append(TokenType.NORMAL)

    for tok in CONTROL_TOKENS:
        tokens.append(tok)
        scores.append(0.0)
        types.append(TokenType.CONTROL)
    for tok in USER_DEFINED_TOKENS:
        tokens.append(tok)
        scores.append(0.0)
        types.append(TokenType.USER_DEFINED)
    return tuple(tokens), tuple(scores), tuple(int(t) for t in types)


def _build_vocab(extra_tokens: Sequence[str]) -> tuple[list[str], list[float], list[int]]:
    tokens, scores, types = (list(x) for x in _base_vocab())
    seen = set(tokens)
    for tok in extra_tokens:
        if not isinstance(tok, str) or not tok:
            raise ValueError(f"extra token must be a non-empty string, got {tok!r}")
        if tok in seen:  # llama.cpp aborts on duplicate token texts
            continue
        seen.add(tok)
        tokens.append(tok)
        scores.append(0.0)
        types.append(int(TokenType.USER_DEFINED))
    return tokens, scores, types


def tiny_vocab(extra_tokens: Sequence[str] = ()) -> list[str]:
    """The token texts ``write_tiny_gguf`` writes, in id order."""
    return _build_vocab(extra_tokens)[0]


def _kv_type_for(value: object) -> GGUFValueType:
    # llama.cpp checks KV types strictly and almost all its integer keys are
    # uint32, so non-negative ints default to UINT32.
    if isinstance(value, bool):
        return GGUFValueType.BOOL
    if isinstance(value, int):
        if 0 <= value < 2**32:
            return GGUFValueType.UINT32
        if -(2**31) <= value < 0:
            return GGUFValueType.INT32
        return GGUFValueType.UINT64 if value > 0 else GGUFValueType.INT64
    if isinstance(value, float):
        return GGUFValueType.FLOAT32
    if isinstance(value, str):
        return GGUFValueType.STRING
    raise TypeError(f"unsupported metadata value {value!r} ({type(value).__name__})")


def _compatible(old: GGUFValueType, value: object) -> bool:
    if old == GGUFValueType.BOOL:
        return isinstance(value, bool)
    if old in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if old == GGUFValueType.STRING:
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    if old == GGUFValueType.UINT32:
        return 0 <= value < 2**32
    if old == GGUFValueType.INT32:
        return -(2**31) <= value < 2**31
    return False


def write_tiny_gguf(
    path: str | os.PathLike[str],
    *,
    chat_template: str | None = DEFAULT_CHAT_TEMPLATE,
    architecture: str = "llama",
    name: str = "tiny-test-model",
    context_length: int = 2048,
    seed: int = 0,
    extra_tokens: Sequence[str] = (),
    metadata: Mapping[str, str | int | float | bool] | None = None,
    suppress_special: bool = True,
) -> Path:
    """Write a tiny random-weight llama-style GGUF model to ``path`` and return it.

    ``architecture`` is the KV prefix and ``general.architecture``; the tensor
    layout is llama's (``qwen3`` additionally gets its q/k norm tensors), so
    ``llama``, ``qwen2`` and ``qwen3`` load, and an unknown name gives a file
    llama.cpp refuses (handy for error-path tests).  ``metadata`` entries are
    written last and override any key written before (an overridden key keeps
    its GGUF type when the new value fits it); new integer keys are written
    as uint32 (int32 if negative), floats as float32.

    With ``suppress_special`` (the default) the output layer is built so that
    byte, control and user-defined tokens (EOG ones included) are practically
    never sampled: generations are printable ASCII-ish gibberish that runs
    until ``max_tokens``.  Tests that need one of those tokens generated can
    force it with a logit bias, or pass ``suppress_special=False`` for fully
    random output rows.

    The file is written under a temporary name and renamed into place, so
    concurrent writers of the same path never expose a half-written file.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    tokens, scores, toktypes = _build_vocab(extra_tokens)
    n_vocab = len(tokens)

    w = GGUFWriter(None, architecture)  # path is given to write_header_to_file
    w.add_name(name)
    w.add_type("model")
    w.add_file_type(LlamaFileType.MOSTLY_F16)
    w.add_vocab_size(n_vocab)
    w.add_context_length(context_length)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_rope_freq_base(ROPE_FREQ_BASE)

    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    # explicit sub_type: skips gguf's per-item type check (a few ms)
    w.add_key_value(Keys.Tokenizer.LIST, tokens, GGUFValueType.ARRAY, GGUFValueType.STRING)
    w.add_key_value(Keys.Tokenizer.SCORES, scores, GGUFValueType.ARRAY, GGUFValueType.FLOAT32)
    w.add_key_value(Keys.Tokenizer.TOKEN_TYPE, toktypes, GGUFValueType.ARRAY, GGUFValueType.INT32)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_unk_token_id(UNK_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    # Like Gemma's SPM (and unlike Llama 2's) no "▁" is prepended to the text,
    # so text next to special tokens round-trips exactly:
    # "<|im_start|>user\n" -> [<|im_start|>, u, s, er, <0x0A>].
    w.add_add_space_prefix(False)
    if chat_template is not None:
        w.add_key_value("tokenizer.chat_template", chat_template, GGUFValueType.STRING)

    for key, value in (metadata or {}).items():
        old = w.kv_data[0].get(key)
        keep = old is not None and _compatible(old.type, value)
        vtype = old.type if keep else _kv_type_for(value)
        if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64):
            value = float(value)
        w.kv_data[0].pop(key, None)  # overriding is intended: skip gguf's warning
        w.add_key_value(key, value, vtype)

    # Weights.  Random normal everywhere, with one piece of structure:
    # residual dimension 0 is a constant "bias channel" (every token embedding
    # has BIAS_CHANNEL there and no layer writes to it; the per-layer norms
    # ignore it).  Byte, control and user-defined tokens get an output row
    # that reads only that channel with a negative weight, so their logits
    # sit ~10 below the ordinary pieces' and sampling practically never picks
    # them: generations are printable gibberish (no stray <think>, no broken
    # UTF-8, no early EOG) and run to max_tokens.  suppress_special=False
    # gives every row the same random distribution instead.
    n_q = N_HEAD * HEAD_DIM
    n_kv = N_HEAD_KV * HEAD_DIM
    # rms of an embedding row: the layer norms' gain brings the other
    # dimensions back to unit scale
    scale = np.float32(np.sqrt((BIAS_CHANNEL**2 + N_EMBD - 1) / N_EMBD))

    def matrix(rows: int, cols: int, std: float | None = None) -> np.ndarray:
        # numpy shape (rows, cols) is ggml's ne {cols, rows}: rows = outputs
        std = 1.0 / np.sqrt(cols) if std is None else std
        return rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(std)

    def f16(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float16)

    def writes_residual(a: np.ndarray) -> np.ndarray:
        a[0, :] = 0.0  # never write the bias channel
        return f16(a)

    def layer_norm_gain() -> np.ndarray:
        g = np.full(N_EMBD, scale, dtype=np.float32)
        g[0] = 0.0  # layers do not see the bias channel
        return g

    embd = matrix(n_vocab, N_EMBD, std=1.0)
    embd[:, 0] = BIAS_CHANNEL
    w.add_tensor("token_embd.weight", f16(embd))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", layer_norm_gain())
        w.add_tensor(p + "attn_q.weight", f16(matrix(n_q, N_EMBD)))
        w.add_tensor(p + "attn_k.weight", f16(matrix(n_kv, N_EMBD)))
        w.add_tensor(p + "attn_v.weight", f16(matrix(n_kv, N_EMBD)))
        w.add_tensor(p + "attn_output.weight", writes_residual(matrix(N_EMBD, n_q)))
        if architecture == "qwen3":
            w.add_tensor(p + "attn_q_norm.weight", np.ones(HEAD_DIM, dtype=np.float32))
            w.add_tensor(p + "attn_k_norm.weight", np.ones(HEAD_DIM, dtype=np.float32))
        w.add_tensor(p + "ffn_norm.weight", layer_norm_gain())
        w.add_tensor(p + "ffn_gate.weight", f16(matrix(N_FF, N_EMBD)))
        w.add_tensor(p + "ffn_up.weight", f16(matrix(N_FF, N_EMBD)))
        w.add_tensor(p + "ffn_down.weight", writes_residual(matrix(N_EMBD, N_FF)))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    out = matrix(n_vocab, N_EMBD, std=OUTPUT_STD)
    if suppress_special:
        out[:, 0] = 0.0
        special = np.array([t != int(TokenType.NORMAL) for t in toktypes])
        out[special, :] = 0.0
        out[special, 0] = -SUPPRESS_WEIGHT
    w.add_tensor("output.weight", f16(out))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(w):x}.tmp")
    try:
        w.write_header_to_file(path=tmp)
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, path)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return path
