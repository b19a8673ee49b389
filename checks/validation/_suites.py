"""Where suites live in the file-backed GX project, and how they are read and written.

A project root holds ``gx/`` (made by ``gx.get_context(mode="file", ...)``); the suite of
dataset kind K is the reviewed JSON file ``gx/expectations/K.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ._outcome import SuiteNotFound, ValidationInputError

_KIND_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def suites_dir(project_root: str | Path) -> Path:
    """The folder that holds the suite JSON files of a project root."""
    return Path(project_root) / "gx" / "expectations"


def suite_path(kind: str, project_root: str | Path) -> Path:
    """The JSON file of ``kind``'s suite (it may not exist)."""
    _check_kind(kind)
    return suites_dir(project_root) / f"{kind}.json"


def _check_kind(kind: str) -> None:
    if not isinstance(kind, str) or not _KIND_RE.match(kind) or ".." in kind:
        raise ValidationInputError(
            f"dataset kind {kind!r} is not a valid suite name: use letters, digits, '.', '_' "
            f"and '-' only (it names the file gx/expectations/<kind>.json)"
        )


def load_suite(kind: str, *, project_root: str | Path) -> dict:
    """Read and check the suite of dataset kind ``kind``.

    Args:
        kind: the dataset kind (the manifest's ``kind`` key); it names the suite.
        project_root: the folder holding the ``gx/`` directory of the GX project.

    Returns:
        The suite as a dict in GX's JSON form: ``name``, ``expectations`` (a non-empty list
        of ``{"type", "kwargs", "meta", ...}``), ``meta``.

    Raises:
        SuiteNotFound: there is no suite file for ``kind``.
        ValidationInputError: the file is not valid JSON, has no expectations, names
            another suite, or GX cannot load it (unknown expectation type, bad kwargs).
    """
    raw = _read_suite_json(kind, project_root)
    _check_with_gx(kind, project_root, raw)
    return raw


def _read_suite_json(kind: str, project_root: str | Path) -> dict:
    path = suite_path(kind, project_root)
    if not path.is_file():
        raise SuiteNotFound(kind, str(suites_dir(project_root)))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationInputError(f"suite file {path} is not UTF-8 text: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationInputError(
            f"suite file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}); fix the file or scaffold it again"
        ) from None
    if not isinstance(raw, dict):
        raise ValidationInputError(f"suite file {path} must hold a JSON object, not {type(raw).__name__}")
    name = raw.get("name")
    if name != kind:
        raise ValidationInputError(
            f"suite file {path} names suite {name!r}, but it must be named after its kind {kind!r}"
        )
    exps = raw.get("expectations")
    if not isinstance(exps, list):
        raise ValidationInputError(f"suite file {path} has no 'expectations' list")
    if not exps:
        raise ValidationInputError(
            f"suite {kind!r} ({path}) has zero expectations; an empty suite would pass any data, "
            f"so it is refused: add expectations or scaffold it again"
        )
    for i, exp in enumerate(exps):
        if not isinstance(exp, dict) or not isinstance(exp.get("type"), str):
            raise ValidationInputError(
                f"suite {kind!r} ({path}): expectation #{i} has no 'type' string"
            )
        if not isinstance(exp.get("kwargs", {}), dict):
            raise ValidationInputError(
                f"suite {kind!r} ({path}): expectation #{i} ({exp['type']}) has 'kwargs' that is not an object"
            )
    return raw


def _check_with_gx(kind: str, project_root: str | Path, raw: dict) -> None:
    """Load the suite through the real GX file context, so GX's own checks apply."""
    import great_expectations as gx

    ctx = open_file_context(project_root)
    try:
        suite = ctx.suites.get(kind)
    except Exception as exc:  # GX raises several types for bad suites; all mean the same here
        raise ValidationInputError(
            f"suite {kind!r} ({suite_path(kind, project_root)}) cannot be loaded by Great "
            f"Expectations: {_first_line(exc)}"
        ) from None
    if len(suite.expectations) != len(raw["expectations"]):
        # GX logs and drops expectations it cannot build; name them instead of passing on
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        for i, exp in enumerate(raw["expectations"]):
            try:
                ExpectationConfiguration(type=exp["type"], kwargs=exp.get("kwargs") or {}).to_domain_obj()
            except Exception as exc:
                raise ValidationInputError(
                    f"suite {kind!r} ({suite_path(kind, project_root)}): expectation #{i} "
                    f"({exp['type']}) is invalid: {_first_line(exc)}"
                ) from None
        raise ValidationInputError(
            f"suite {kind!r}: Great Expectations loaded {len(suite.expectations)} of "
            f"{len(raw['expectations'])} expectations; check the expectation types"
        )
    del gx


def open_file_context(project_root: str | Path) -> Any:
    """The file-backed GX context rooted at ``project_root`` (made if absent)."""
    import great_expectations as gx

    Path(project_root).mkdir(parents=True, exist_ok=True)
    return gx.get_context(mode="file", project_root_dir=str(project_root))


def write_suite(kind: str, expectations: list[dict], meta: dict, *, project_root: str | Path,
                overwrite: bool) -> Path:
    """Write a suite through the GX file context and return its JSON path."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    path = suite_path(kind, project_root)
    if path.exists() and not overwrite:
        raise ValidationInputError(
            f"suite {kind!r} already exists at {path}; pass overwrite=True to replace it"
        )
    ctx = open_file_context(project_root)
    # Built from domain objects, not add_expectation_configuration(), which merges
    # expectations of the same type on the same column.
    objs = [
        ExpectationConfiguration(
            type=exp["type"], kwargs=exp["kwargs"], meta=exp.get("meta") or {}
        ).to_domain_obj()
        for exp in expectations
    ]
    suite = gx.ExpectationSuite(name=kind, expectations=objs, meta=meta)
    ctx.suites.add_or_update(suite)
    if not path.is_file():  # GX keys files by suite name; make sure that is what we expect
        raise ValidationInputError(f"Great Expectations did not write the suite to {path}")
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
