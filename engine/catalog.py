"""Old path of the catalog, kept while callers move: now engine.models.catalog, with the
GGUF header reader in engine.models.gguf_header, what a header says in
engine.models.model_facts, the starter model in engine.models.starter and
resolve_model in engine.models.loader."""

from __future__ import annotations

from engine.errors import GGUFFormatError, ModelNotFoundError
from engine.models.catalog import *  # noqa: F403
from engine.models.catalog import (
    SOURCE_LABELS,
    SPLIT_NAME,
    CatalogEntry,
    CatalogScan,
    CatalogSource,
    LocalModel,
    ModelSource,
    clear_info_cache,
    default_sources,
    find_models,
    hf_cache_dir,
    is_mmproj,
    lmstudio_dirs,
    model_key,
    read_model_info,
    scan_catalog,
    sources_for,
    starter_entry,
)
from engine.models.gguf_header import GGUFHeader, TensorInfo, read_gguf_header
from engine.models.loader import resolve_model
from engine.models.model_facts import ModelFacts, ModelShape
from engine.models.starter import STARTER_FILE, STARTER_KEY, ensure_starter_model

__all__ = [
    "SOURCE_LABELS", "SPLIT_NAME", "STARTER_FILE", "STARTER_KEY", "CatalogEntry", "CatalogScan",
    "CatalogSource", "GGUFFormatError", "GGUFHeader", "LocalModel", "ModelFacts",
    "ModelNotFoundError", "ModelShape", "ModelSource", "TensorInfo", "clear_info_cache",
    "default_sources", "ensure_starter_model", "find_models", "hf_cache_dir", "is_mmproj",
    "lmstudio_dirs", "model_key", "read_gguf_header", "read_model_info", "resolve_model",
    "scan_catalog", "sources_for", "starter_entry",
]
