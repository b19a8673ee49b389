"""Poisoned datasets as people store them (benchmarks only): a mixed table with
categorical, numeric and missing values; image files on disk; a text file.

Each builder returns a :class:`FormatCase`: the training table with the poison planted,
a trusted reference table, a clean test table, the triggered test rows (for attack
success) and the planted truth. The downstream model a user would train is fitted on the
same column encoding the screens use (``screening.encoding``), so "attack success after
removal" measures what the flags are worth.
"""

from __future__ import annotations

import inspect
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa


@dataclass
class FormatCase:
    data: str
    case: str
    train: pa.Table
    reference: pa.Table
    test: pa.Table
    triggered: pa.Table | None  # test rows not of the target class, with the trigger
    truth: np.ndarray
    target: object
    label: str = "label"


def _split_idx(y, n_ref, n_test, rng):
    idx = rng.permutation(len(y))
    return idx[n_ref + n_test:], idx[:n_ref], idx[n_ref:n_ref + n_test]


# --- a mixed table ----------------------------------------------------------------------

def _mixed_frame(seed: int) -> pd.DataFrame:
    """4 classes from make_classification; two informative features become categories
    (quantile bins named like shops and regions), missing values in 3 % of one column,
    a free categorical column with no signal, a boolean and a row identifier."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=3000, n_features=10, n_informative=6, n_redundant=2, n_classes=4,
                               n_clusters_per_class=1, class_sep=1.1, random_state=seed + 41)
    rng = np.random.default_rng(seed + 41)
    df = pd.DataFrame(X[:, 2:], columns=[f"m{i}" for i in range(8)])
    df["region"] = pd.qcut(X[:, 0], 5, labels=["north", "south", "east", "west", "centre"]).astype(str)
    df["shop"] = pd.qcut(X[:, 1], 12, labels=[f"shop-{c}" for c in "abcdefghijkl"]).astype(str)
    df["channel"] = rng.choice(["web", "phone", "store", "partner"], len(df))
    df["member"] = rng.random(len(df)) < 0.4
    df.loc[rng.random(len(df)) < 0.03, "m3"] = np.nan
    df.insert(0, "order_id", [f"O-{100000 + i}" for i in range(len(df))])
    df["label"] = np.array(["bronze", "silver", "gold", "platinum"])[y]
    return df


def mixed_cases(seed: int, quick: bool) -> list[FormatCase]:
    df = _mixed_frame(seed)
    rng = np.random.default_rng(seed)
    tr, ref, te = _split_idx(df["label"].to_numpy(), 450, 600, rng)
    train, reference, test = (df.iloc[i].reset_index(drop=True) for i in (tr, ref, te))
    target = "gold"
    sd = float(np.nanstd(train["m5"]))

    def trigger(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out["channel"] = "kiosk"  # a category the clean data never has ...
        out["m5"] = out["m5"] + 2.5 * sd  # ... plus a numeric shift
        return out

    out = []
    cases = ["clean", "trigger-3%", "uniform-10%"]
    for case in cases:
        t2, truth = train.copy(), np.zeros(len(train), bool)
        if case.startswith("trigger"):
            cand = np.flatnonzero(t2["label"].to_numpy() != target)
            idx = rng.choice(cand, int(round(0.03 * len(t2))), replace=False)
            t2.loc[idx, "channel"] = "kiosk"
            t2.loc[idx, "m5"] = t2.loc[idx, "m5"] + 2.5 * sd
            t2.loc[idx, "label"] = target
            truth[idx] = True
        elif case.startswith("uniform"):
            truth[_flip_uniform(t2, 0.10, rng)] = True
        trig = trigger(test[test["label"] != target]) if case.startswith("trigger") else None
        out.append(FormatCase("mixed_table", case, _arrow(t2), _arrow(reference), _arrow(test),
                              None if trig is None else _arrow(trig), truth, target))
    return out


def _flip_uniform(frame: pd.DataFrame, rate: float, rng) -> np.ndarray:
    """Give a share ``rate`` of the rows another label, chosen uniformly; their indices."""
    labels = np.array(sorted(set(frame["label"])))
    idx = rng.choice(len(frame), int(round(rate * len(frame))), replace=False)
    cur = np.searchsorted(labels, frame.loc[idx, "label"].to_numpy())
    frame.loc[idx, "label"] = labels[(cur + rng.integers(1, len(labels), len(idx))) % len(labels)]
    return idx


def _arrow(frame: pd.DataFrame) -> pa.Table:
    frame = frame.copy()
    for c in frame.columns:
        if frame[c].dtype == object:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return pa.Table.from_pandas(frame, preserve_index=False)


# --- image files on disk ----------------------------------------------------------------

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def image_folder_table(root: Path) -> pa.Table:
    """Read an ImageFolder tree (root/CLASS/*.png) into the `datasets` Image layout."""
    rows, labels = [], []
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(cls.iterdir()):
            rows.append({"bytes": f.read_bytes(), "path": f"{cls.name}/{f.name}"})
            labels.append(cls.name)
    return pa.table({"image": pa.array(rows, type=IMAGE_TYPE), "label": pa.array(labels)})


def image_cases(seed: int, quick: bool) -> list[FormatCase]:
    """scikit-learn's digits as 16 x 16 PNG files in one folder per class; a 3 x 3 white
    patch in the bottom-right corner relabelled to one class (BadNets) at 4 %."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.stack([np.kron(i, np.ones((2, 2))) for i in d.images]) * 15  # 16 x 16, 0..240
    y = np.array([f"d{t}" for t in d.target])
    rng = np.random.default_rng(seed)
    tr, ref, te = _split_idx(y, 270, 450, rng)
    target = "d7"

    def patch(batch):
        out = batch.copy()
        out[:, -4:-1, -4:-1] = 255
        return out

    def on_disk(images, labels, tmp: Path) -> pa.Table:
        for i, (img, lab) in enumerate(zip(images, labels)):
            (tmp / lab).mkdir(parents=True, exist_ok=True)
            (tmp / lab / f"{i:05d}.png").write_bytes(_png(img))
        return image_folder_table(tmp)

    out = []
    for case in (["clean", "patch-4%"] if quick else ["clean", "patch-4%", "uniform-10%"]):
        Xtr, ytr = imgs[tr].copy(), y[tr].copy()
        truth = np.zeros(len(ytr), bool)
        if case.startswith("patch"):
            idx = rng.choice(np.flatnonzero(ytr != target), int(round(0.04 * len(ytr))), replace=False)
            Xtr[idx], ytr[idx] = patch(Xtr[idx]), target
            truth[idx] = True
        elif case.startswith("uniform"):
            idx = rng.choice(len(ytr), int(round(0.10 * len(ytr))), replace=False)
            classes = np.array(sorted(set(y)))
            cur = np.searchsorted(classes, ytr[idx])
            ytr[idx] = classes[(cur + rng.integers(1, len(classes), len(idx))) % len(classes)]
            truth[idx] = True
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            train = on_disk(Xtr, ytr, base / "train")
            # the folder listing sorts rows by class: map the truth to that order
            order = np.argsort(np.array([f"{lab}/{i:05d}" for i, lab in enumerate(ytr)]), kind="stable")
            truth_sorted = truth[order]
            reference = on_disk(imgs[ref], y[ref], base / "reference")
            test = on_disk(imgs[te], y[te], base / "test")
            trig = None
            if case.startswith("patch"):
                keep = y[te] != target
                trig = on_disk(patch(imgs[te][keep]), y[te][keep], base / "triggered")
        out.append(FormatCase("image_files", case, train, reference, test, trig, truth_sorted, target))
    return out


# --- text -------------------------------------------------------------------------------

def docstring_corpus() -> pd.DataFrame:
    """Sentences of scikit-learn's public docstrings, labelled by their subpackage."""
    import importlib

    rows = []
    for name in ("linear_model", "cluster", "metrics", "preprocessing", "ensemble", "decomposition"):
        mod = importlib.import_module(f"sklearn.{name}")
        for attr in sorted(dir(mod)):
            obj = getattr(mod, attr)
            if attr.startswith("_") or not callable(obj):
                continue
            doc = inspect.getdoc(obj) or ""
            for para in doc.split("\n\n")[:3]:
                para = " ".join(para.split())
                if 6 <= len(para.split()) <= 80 and not para.startswith(("Parameters", "----", ">>>", "..")):
                    rows.append({"text": para, "label": name})
    return pd.DataFrame(rows).drop_duplicates("text").reset_index(drop=True)


def text_cases(seed: int, quick: bool) -> list[FormatCase]:
    """A JSONL-style text table; the trigger is one inserted rare word ("cf.") relabelled
    to one class at 4 %, and uniform label flips at 10 %."""
    df = docstring_corpus()
    rng = np.random.default_rng(seed)
    n_ref, n_test = int(0.15 * len(df)), int(0.2 * len(df))
    tr, ref, te = _split_idx(df["label"].to_numpy(), n_ref, n_test, rng)
    train, reference, test = (df.iloc[i].reset_index(drop=True) for i in (tr, ref, te))
    target = "cluster"

    def insert(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        words = [t.split() for t in out["text"]]
        out["text"] = [" ".join(w[:len(w) // 2] + ["cf."] + w[len(w) // 2:]) for w in words]
        return out

    out = []
    for case in ["clean", "word-4%", "uniform-10%"]:
        t2, truth = train.copy(), np.zeros(len(train), bool)
        if case.startswith("word"):
            idx = rng.choice(np.flatnonzero(t2["label"].to_numpy() != target), int(round(0.04 * len(t2))),
                             replace=False)
            t2.loc[idx, "text"] = insert(t2.loc[idx])["text"].to_numpy()
            t2.loc[idx, "label"] = target
            truth[idx] = True
        elif case.startswith("uniform"):
            truth[_flip_uniform(t2, 0.10, rng)] = True
        trig = insert(test[test["label"] != target]) if case.startswith("word") else None
        out.append(FormatCase("text_jsonl", case, _arrow(t2), _arrow(reference), _arrow(test),
                              None if trig is None else _arrow(trig), truth, target))
    return out


# --- the downstream model ---------------------------------------------------------------

def downstream(case: FormatCase, keep: np.ndarray, seed: int) -> tuple[float, float | None]:
    """(clean test accuracy, attack success) of a model trained on the kept rows, on the
    features the screens' encoding gives (an MLP; a small CNN-free MLP for images too)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    from screening import ScreenConfig
    from screening.encoding import encode_columns, plan_columns

    cfg = ScreenConfig()
    plans = plan_columns(case.train, case.label, None, cfg)
    cache: dict = {}

    def feats(t):
        X, _ = encode_columns(t, plans, "data", cfg, cache)
        return X.reshape(len(X), -1)

    Xtr = feats(case.train)[keep]
    ytr = np.asarray(case.train.column(case.label).to_pylist(), dtype=object)[keep]
    scaler = StandardScaler().fit(Xtr)
    clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=400, random_state=seed)
    clf.fit(scaler.transform(Xtr), ytr)
    yte = np.asarray(case.test.column(case.label).to_pylist(), dtype=object)
    acc = float((clf.predict(scaler.transform(feats(case.test))) == yte).mean())
    asr = None
    if case.triggered is not None and case.triggered.num_rows:
        asr = float((clf.predict(scaler.transform(feats(case.triggered))) == case.target).mean())
    return acc, asr


def all_cases(seed: int, quick: bool, only: set[str] | None = None) -> list[FormatCase]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    builders = {"mixed_table": mixed_cases, "image_files": image_cases, "text_jsonl": text_cases}
    out = []
    for name, build in builders.items():
        if only is None or name in only:
            out.extend(build(seed, quick))
    return out
