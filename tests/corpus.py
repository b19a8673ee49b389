"""A corpus of ordinary datasets, built from data that ships inside installed packages.

Each builder writes one dataset the way people store it (a Parquet or CSV table, a folder
of PNG files per class, a Parquet column of PNG bytes, a JSONL text file), a trusted
reference beside it and a manifest, and returns a :class:`Case`. The corpus test runs the
whole pipeline over every case; ``python tests/corpus.py OUT`` writes them all for a look
by hand.
"""

from __future__ import annotations

import inspect
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class Case:
    name: str
    data: Path  # the file or folder given to `dataward run`
    reference: Path | None  # a trusted reference beside it (same layout), or None
    label: str
    columns: list[str]  # the table's columns (the report lists each), label excluded
    kind: str  # a GX suite kind for the "with a suite" run
    regression: bool = False


def _manifest(case: Case, folder: Path, *, reference: bool, kind: str | None) -> Path:
    # the second import is a dataset of its own: the same content under the same name is
    # the same version, whose recorded outcomes a new manifest does not change
    suffix = "-reviewed" if (reference or kind) else ""
    lines = [f"name: corpus-{case.name}{suffix}", "owner: corpus@example.org", "license: CC-BY-4.0",
             "source:", "  uri: https://scikit-learn.org/stable/datasets.html", f"label_column: {case.label}"]
    if reference and case.reference is not None:
        lines.append(f"reference: {case.reference}")
    if kind:
        lines.append(f"kind: {kind}")
    path = folder / f"{case.name}-{'ref' if reference else 'noref'}-{'suite' if kind else 'nosuite'}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _split(df: pd.DataFrame, label: str, seed: int = 0, share: float = 0.2):
    """(data, reference): a class-stratified share of the rows becomes the reference."""
    rng = np.random.default_rng(seed)
    ref_idx = []
    for _, rows in df.groupby(label, sort=True).groups.items():
        rows = np.asarray(list(rows))
        ref_idx.extend(rng.choice(rows, size=max(2, int(len(rows) * share)), replace=False).tolist())
    ref = df.loc[sorted(ref_idx)].reset_index(drop=True)
    return df.drop(index=ref_idx).reset_index(drop=True), ref


def _table_case(name: str, df: pd.DataFrame, label: str, out: Path, *, fmt: str = "parquet",
                regression: bool = False) -> Case:
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    data, ref = (df, None) if regression else _split(df, label)
    paths = []
    for part, frame in (("data", data), ("reference", ref)):
        if frame is None:
            paths.append(None)
            continue
        path = folder / f"{part}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:  # CSV as spreadsheets export it: a UTF-8 BOM, quoted fields
            frame.to_csv(path, index=False, encoding="utf-8-sig")
        paths.append(path)
    return Case(name, paths[0], paths[1], label, [c for c in df.columns if c != label],
                kind=f"corpus-{name}", regression=regression)


def iris(out: Path) -> Case:
    from sklearn.datasets import load_iris

    d = load_iris(as_frame=True)
    df = d.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    df["species"] = [d.target_names[t] for t in d.target]
    return _table_case("iris", df, "species", out)


def wine(out: Path) -> Case:
    from sklearn.datasets import load_wine

    d = load_wine(as_frame=True)
    df = d.data.copy()
    df["label"] = [("a", "b", "c")[t] for t in d.target]
    df["region"] = [("north", "south", "east", "west")[i % 4] for i in range(len(df))]
    return _table_case("wine", df, "label", out)


def breast_cancer(out: Path) -> Case:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    df = d.data.copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["malignant"] = d.target == 0  # a boolean label
    return _table_case("breast-cancer", df, "malignant", out)


def digits(out: Path) -> Case:
    from sklearn.datasets import load_digits

    d = load_digits(as_frame=True)
    df = d.data.copy()
    df["digit"] = d.target
    return _table_case("digits", df, "digit", out)


def diabetes(out: Path) -> Case:
    from sklearn.datasets import load_diabetes

    d = load_diabetes(as_frame=True)
    df = d.data.copy()
    df["progression"] = d.target  # a continuous target: the screens do not apply
    return _table_case("diabetes", df, "progression", out, regression=True)


def mixed(out: Path) -> Case:
    """Breast cancer as a real table holds it: categorical, boolean, date and dictionary
    columns, an identifier, a constant, missing values, a string label; as a BOM CSV."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    rng = np.random.default_rng(1)
    df = d.data.iloc[:, :8].copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    n = len(df)
    df.insert(0, "patient_id", [f"P{100000 + i}" for i in range(n)])
    df["clinic"] = rng.choice(["Leeds", "Lyon", "Graz", "Porto", "Turku"], size=n)
    df["smoker"] = rng.random(n) < 0.3
    df["visit"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, size=n), unit="D")
    df["postcode"] = [f"Z{rng.integers(0, 400):03d}" for _ in range(n)]
    df["site_version"] = "v2"
    df.loc[rng.random(n) < 0.05, "mean_texture"] = np.nan
    df.loc[rng.random(n) < 0.05, "clinic"] = None
    df["diagnosis"] = np.where(d.target == 0, "malignant", "benign")
    return _table_case("mixed", df, "diagnosis", out, fmt="csv")


def _docstring_texts() -> pd.DataFrame:
    """Real English text shipped in scikit-learn: the first paragraph of public docstrings,
    labelled by the subpackage that holds them."""
    import sklearn.cluster
    import sklearn.linear_model
    import sklearn.metrics
    import sklearn.preprocessing

    rows = []
    for mod in (sklearn.linear_model, sklearn.cluster, sklearn.metrics, sklearn.preprocessing):
        for attr in sorted(dir(mod)):
            obj = getattr(mod, attr)
            if attr.startswith("_") or not callable(obj):
                continue
            doc = inspect.getdoc(obj) or ""
            para = " ".join(doc.split("\n\n")[0].split())
            if len(para.split()) >= 4:
                rows.append({"text": para[:400], "topic": mod.__name__.rsplit(".", 1)[-1]})
    return pd.DataFrame(rows).drop_duplicates("text").reset_index(drop=True)


def text_jsonl(out: Path) -> Case:
    df = _docstring_texts()
    folder = out / "text"
    folder.mkdir(parents=True, exist_ok=True)
    data, ref = _split(df, "topic")
    paths = []
    for part, frame in (("data", data), ("reference", ref)):
        path = folder / f"{part}.jsonl"
        frame.to_json(path, orient="records", lines=True)
        paths.append(path)
    return Case("text", paths[0], paths[1], "topic", ["text"], kind="corpus-text")


def _digit_pngs() -> tuple[list[bytes], list[str]]:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    out = []
    for img in d.images[:600]:
        buf = io.BytesIO()
        Image.fromarray((img * 15).astype(np.uint8), mode="L").resize((16, 16)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out, [f"digit_{t}" for t in d.target[:600]]


def image_folder(out: Path) -> Case:
    """The torchvision ImageFolder layout: one sub-folder of PNG files per class."""
    pngs, labels = _digit_pngs()
    root = out / "image-folder"
    idx = np.arange(len(pngs))
    ref_mask = (idx % 5) == 0
    for part, mask in (("data", ~ref_mask), ("reference", ref_mask)):
        for i in idx[mask]:
            folder = root / part / labels[i]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.png").write_bytes(pngs[i])
    return Case("image-folder", root / "data", root / "reference", "label", ["image", "path"],
                kind="corpus-image-folder")


def image_bytes(out: Path) -> Case:
    """A Parquet column of PNG bytes in the Hugging Face `datasets` Image layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pngs, labels = _digit_pngs()
    folder = out / "image-bytes"
    folder.mkdir(parents=True, exist_ok=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    idx = np.arange(len(pngs))
    paths = []
    for part, mask in (("data", (idx % 5) != 0), ("reference", (idx % 5) == 0)):
        rows = idx[mask]
        table = pa.table({
            "image": pa.array([{"bytes": pngs[i], "path": f"{i:05d}.png"} for i in rows], type=image_type),
            "label": pa.array([labels[i] for i in rows])})
        path = folder / f"{part}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return Case("image-bytes", paths[0], paths[1], "label", ["image"], kind="corpus-image-bytes")


BUILDERS = (iris, wine, breast_cancer, digits, diabetes, mixed, text_jsonl, image_folder, image_bytes)


def build_all(out: Path) -> list[Case]:
    return [b(out) for b in BUILDERS]


if __name__ == "__main__":
    for c in build_all(Path(sys.argv[1])):
        print(json.dumps({k: str(v) for k, v in c.__dict__.items()}))
