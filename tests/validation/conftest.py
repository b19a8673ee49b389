"""Fixtures for the validation engine tests: real GX file projects in tmp dirs, no mocks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMITTED_PROJECT = REPO / "expectations"


@pytest.fixture(scope="session")
def gx_loaded():
    """Import GX once (it takes seconds) so per-test timings stay honest."""
    import great_expectations  # noqa: F401

    return True


@pytest.fixture
def project(tmp_path, gx_loaded) -> Path:
    """An empty file-backed GX project root (holds gx/ after first use)."""
    from checks.validation._suites import open_file_context

    root = tmp_path / "project"
    open_file_context(root)
    return root


@pytest.fixture(scope="module")
def digits_project(tmp_path_factory, gx_loaded) -> Path:
    """A tmp copy of the committed expectations/ project (tests never write into the repo)."""
    root = tmp_path_factory.mktemp("committed") / "expectations"
    shutil.copytree(COMMITTED_PROJECT, root, ignore=shutil.ignore_patterns("uncommitted", "plugins"))
    return root
