"""One parent -> derived -> approved snapshot run, shared by the lineage and metadata tests
(a pipeline run on the digits example takes most of a minute; they read the same run).

``derived_run`` is a session fixture: import it into a test module to use it. It runs in
its own DATAWARD_HOME on SQLite; ``use(monkeypatch)`` points the environment at it for
further CLI calls.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import yaml
from cli_runner import invoke_cli
from test_lineage_ingest import write_manifest

_CLEARED = ("DATAWARD_DATA_ROOT", "DATAWARD_LANDING", "OPENLINEAGE_URL", "OPENLINEAGE_CONFIG")


class DerivedRun:
    def __init__(self, home, env, summary, raw_run):
        self.home, self.env, self.summary, self.raw_run = home, env, summary, raw_run

    def use(self, monkeypatch) -> None:
        for k, v in self.env.items():
            monkeypatch.setenv(k, v)
        for k in _CLEARED:
            monkeypatch.delenv(k, raising=False)


_DONE: list[DerivedRun] = []  # test modules that import the fixture each get a definition


@pytest.fixture(scope="session")
def derived_run(tmp_path_factory, digits_example) -> DerivedRun:
    if not _DONE:
        _DONE.append(_run(tmp_path_factory, digits_example))
    return _DONE[0]


def _run(tmp_path_factory, digits_example) -> DerivedRun:
    base = tmp_path_factory.mktemp("derived")
    home = base / "home"
    home.mkdir()
    env = {"DATAWARD_HOME": str(home), "DATAWARD_DB_URL": f"sqlite:///{home / 'lineage.db'}",
           "DATAWARD_ACTOR": "tester"}
    from lineage.db import dispose_all

    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        for k in _CLEARED:
            mp.delenv(k, raising=False)
        try:
            # The parent: the raw digits with a column the derived set drops (other content).
            raw = pq.read_table(digits_example / "train")
            raw = raw.append_column("scan_batch", [[i % 7 for i in range(raw.num_rows)]])
            (base / "raw").mkdir()
            pq.write_table(raw, base / "raw" / "raw.parquet")
            pm = write_manifest(base / "raw.yaml", name="digits-raw", license="CC-BY-4.0",
                                source={"uri": "s3://uci-mirror/digits/raw.parquet"}, label_column="label")
            r = invoke_cli("ingest", str(base / "raw"), "--manifest", str(pm), "--json")
            assert r.returncode == 0, r.stderr
            raw_run = json.loads(r.stdout)
            m = yaml.safe_load((digits_example / "manifest.yaml").read_text())
            m.update(parents=["digits-raw@1"], reference=str(digits_example / "reference.parquet"),
                     evaluation_sets=[str(digits_example / "evaluation.parquet")])
            (base / "derived.yaml").write_text(yaml.safe_dump(m))
            r = invoke_cli("run", str(digits_example / "train"), "--manifest", str(base / "derived.yaml"), "--json")
            assert r.returncode == 0, r.stderr
            summary = json.loads(r.stdout)
        finally:
            dispose_all()  # the lineage DB's connections, also on failure
    return DerivedRun(home, env, summary, raw_run)
