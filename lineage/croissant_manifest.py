"""A manifest given as a Croissant (JSON-LD) dataset description."""

from __future__ import annotations

import os
from pathlib import Path


def is_croissant(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in (".json", ".jsonld")


def load(path):
    raise NotImplementedError
