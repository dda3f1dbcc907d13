"""The GGUF header reader: a model file's metadata and tensor list, never its weights.

Why our own parser and not gguf.GGUFReader: the reader maps the whole file and decodes
every array (a 256k-token vocabulary is 256k numpy string views), which makes a cold
catalog scan of 200 models take seconds. This parser walks the header through a memory
map, keeps scalars and small arrays, and skips big arrays by their length prefixes, so
only the header's pages are ever touched. The type numbers, quantisation block sizes and
names come from the gguf package. A damaged file raises GGUFFormatError, never struct.error.
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import GGUFFormatError


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    n_dims: int
    n_elements: int
    ggml_type: int
    offset: int
    n_bytes: int


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    """A GGUF file's header: metadata and tensor descriptions, no tensor data."""

    version: int
    metadata: dict[str, Any]
    """Scalars and small arrays (as tuples); big arrays such as the vocabulary are skipped."""
    array_lengths: dict[str, int]
    """The length of every array, skipped or not."""
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    file_size: int
    problem: str | None = None
    """Set when the header reads but the file is shorter than its tensors need."""


_MAX_COUNT = 1 << 24  # more keys or tensors than this is a damaged header, not a model
_SMALL_ARRAY = 4096  # numeric arrays up to this length are kept (per-layer values)
_SMALL_STRING_ARRAY = 64

# GGUF value types (gguf.GGUFValueType's numbers, which the format fixes for good).
_STRING, _ARRAY = 8, 9


def read_gguf_header(path: Path) -> GGUFHeader:
    """Parse a GGUF header through a memory map: only the header's pages are ever read.

    Raises GGUFFormatError for a file that is not GGUF or whose header is cut short.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise GGUFFormatError("empty file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            return _HeaderParser(view, size).parse()


class _HeaderParser:
    def __init__(self, view: mmap.mmap, size: int) -> None:
        self.view = view
        self.size = size
        self.pos = 0
        self.order = "<"

    def parse(self) -> GGUFHeader:
        magic = self._take(4)
        if magic != b"GGUF":
            raise GGUFFormatError(f"not a GGUF file (starts with {magic!r})")
        version = self._unpack("I")
        if version & 0xFFFF == 0 and version >> 16:
            self.order = ">"  # a big-endian file
            version = struct.unpack(">I", struct.pack("<I", version))[0]
        if version < 2:
            raise GGUFFormatError(f"GGUF version {version} is not supported")
        try:
            n_tensors = self._count()
            n_kv = self._count()
            metadata, lengths = self._metadata(n_kv)
            tensors = self._tensor_infos(n_tensors)
        except struct.error:
            raise GGUFFormatError("truncated header") from None
        alignment = metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            alignment = 32
        data_offset = -(-self.pos // alignment) * alignment
        needed = data_offset + max((t.offset + t.n_bytes for t in tensors), default=0)
        problem = None
        if needed > self.size:
            problem = f"truncated: {self.size:,} of {needed:,} bytes"
        return GGUFHeader(
            version, metadata, lengths, tuple(tensors), data_offset, self.size, problem
        )

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > self.size:
            raise GGUFFormatError("truncated header")
        data = self.view[self.pos : end]
        self.pos = end
        return data

    def _unpack(self, fmt: str) -> Any:
        compiled = _struct(self.order + fmt)
        value = compiled.unpack_from(self.view, self.pos)[0]
        self.pos += compiled.size
        return value

    def _count(self) -> int:
        count = self._unpack("Q")
        if count > _MAX_COUNT:
            raise GGUFFormatError(f"damaged header (count {count})")
        return int(count)

    def _string(self) -> str:
        length = self._unpack("Q")
        return self._take(length).decode("utf-8", errors="replace")

    def _metadata(self, n_kv: int) -> tuple[dict[str, Any], dict[str, int]]:
        metadata: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        for _ in range(n_kv):
            key = self._string()
            value_type = self._unpack("I")
            if value_type == _ARRAY:
                item_type = self._unpack("I")
                count = self._unpack("Q")
                lengths[key] = count
                value = self._array(item_type, count)
                if value is not None:
                    metadata[key] = value
            else:
                metadata[key] = self._value(value_type)
        return metadata, lengths

    def _value(self, value_type: int) -> Any:
        if value_type == _STRING:
            return self._string()
        fmt = _scalar_formats().get(value_type)
        if fmt is None:
            raise GGUFFormatError(f"damaged header (value type {value_type})")
        return self._unpack(fmt)

    def _array(self, item_type: int, count: int) -> tuple[Any, ...] | None:
        """A small array as a tuple; a big one (vocabulary, merges) skipped without decoding."""
        fmt = _scalar_formats().get(item_type)
        if fmt is not None:
            compiled = _struct(self.order + fmt)
            end = self.pos + compiled.size * count
            if end > self.size:
                raise GGUFFormatError("truncated header")
            if count > _SMALL_ARRAY:
                self.pos = end
                return None
            values = _struct(f"{self.order}{count}{fmt}").unpack_from(self.view, self.pos)
            self.pos = end
            return values
        if item_type == _STRING:
            if count <= _SMALL_STRING_ARRAY:
                return tuple(self._string() for _ in range(count))
            self._skip_strings(count)
            return None
        if item_type == _ARRAY:
            for _ in range(count):
                self._array(self._unpack("I"), self._unpack("Q"))
            return None
        raise GGUFFormatError(f"damaged header (array of type {item_type})")

    def _skip_strings(self, count: int) -> None:
        # The hot loop of a cold scan: a 256k-token vocabulary is 256k length prefixes.
        unpack = _struct(self.order + "Q").unpack_from
        view, pos, size = self.view, self.pos, self.size
        for _ in range(count):
            if pos + 8 > size:
                raise GGUFFormatError("truncated header")
            pos += 8 + unpack(view, pos)[0]
        if pos > size:
            raise GGUFFormatError("truncated header")
        self.pos = pos

    def _tensor_infos(self, n_tensors: int) -> list[TensorInfo]:
        sizes = _quant_sizes()
        tensors = []
        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._unpack("I")
            if n_dims > 8:
                raise GGUFFormatError(f"damaged header (tensor {name} has {n_dims} dims)")
            n_elements = 1
            for _ in range(n_dims):
                n_elements *= self._unpack("Q")
            ggml_type = self._unpack("I")
            offset = self._unpack("Q")
            block = sizes.get(ggml_type)
            if block is None:
                raise GGUFFormatError(f"unknown tensor type {ggml_type} ({name})")
            block_size, type_size = block
            n_bytes = n_elements // block_size * type_size
            tensors.append(TensorInfo(name, n_dims, n_elements, ggml_type, offset, n_bytes))
        return tensors


@functools.cache
def _struct(fmt: str) -> struct.Struct:
    return struct.Struct(fmt)


@functools.cache
def _quant_sizes() -> dict[int, tuple[int, int]]:
    from gguf import GGML_QUANT_SIZES

    return {int(kind): sizes for kind, sizes in GGML_QUANT_SIZES.items()}


@functools.cache
def _scalar_formats() -> dict[int, str]:
    """struct formats of the scalar GGUF value types, by the type numbers gguf defines."""
    from gguf import GGUFValueType as T

    formats = {
        T.UINT8: "B", T.INT8: "b", T.UINT16: "H", T.INT16: "h", T.UINT32: "I", T.INT32: "i",
        T.FLOAT32: "f", T.BOOL: "?", T.UINT64: "Q", T.INT64: "q", T.FLOAT64: "d",
    }
    assert (T.STRING, T.ARRAY) == (_STRING, _ARRAY)
    return {int(kind): fmt for kind, fmt in formats.items()}
