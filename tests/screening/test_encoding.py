"""Each column encoder: what reaches the probe's features, and what is left out and why."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from screening import ScreenConfig, screen_table
from screening.encoding import decode_images, encode_columns, plan_columns

CFG = ScreenConfig()


def _plans(df: pd.DataFrame, label: str = "y"):
    table = pa.Table.from_pandas(df, preserve_index=False)
    plans = plan_columns(table, label, None, CFG)
    return table, {p.name: p for p in plans}, plans


def test_planted_categorical_trigger_reaches_the_features():
    rng = np.random.default_rng(0)
    n = 200
    colour = rng.choice(["red", "green", "blue"], size=n).astype(object)
    colour[:10] = "magenta"  # the trigger: a category only poisoned rows carry
    df = pd.DataFrame({"x": rng.normal(size=n), "colour": colour, "y": rng.integers(0, 2, n)})
    table, by_name, plans = _plans(df)
    assert by_name["colour"].encoding == "onehot"
    X, kind = encode_columns(table, plans, "data", CFG)
    assert kind == "tabular" and X.shape == (n, 1 + 4)
    cats = by_name["colour"].params["categories"]
    trigger = 1 + cats.index("magenta")
    assert X[:10, trigger].tolist() == [1.0] * 10 and X[10:, trigger].sum() == 0


def test_missing_value_becomes_an_indicator():
    df = pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0], "c": ["a", None, "b", "a"], "y": [0, 1, 0, 1]})
    table, by_name, plans = _plans(df)
    X, _ = encode_columns(table, plans, "data", CFG)
    # x, x-missing, c one-hot (a, b), c-missing
    assert X.shape == (4, 5)
    assert X[:, 1].tolist() == [0, 1, 0, 0] and X[1, 0] == pytest.approx(3.0)  # the median
    assert X[:, 4].tolist() == [0, 1, 0, 0] and X[1, 2:4].sum() == 0
    assert by_name["x"].describe()["missing"] == 1 and by_name["x"].describe()["features"] == 2


def test_identifier_and_constant_columns_are_excluded():
    n = 50
    df = pd.DataFrame({"row_id": np.arange(n), "uuid": [f"u-{i:04d}" for i in range(n)],
                       "const": ["same"] * n, "x": np.random.default_rng(1).normal(size=n),
                       "count": np.random.default_rng(2).permutation(n) * 3,  # distinct, not a range
                       "y": [0, 1] * 25})
    _, by_name, _ = _plans(df)
    assert not by_name["row_id"].used and "identifier" in by_name["row_id"].reason
    assert not by_name["uuid"].used and "identifier" in by_name["uuid"].reason
    assert not by_name["const"].used and "constant" in by_name["const"].reason
    assert by_name["x"].used and by_name["count"].used


def test_booleans_dates_dictionary_and_high_cardinality():
    n = 120
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"flag": rng.random(n) < 0.5,
                       "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="h"),
                       "shop": pd.Categorical(rng.choice(["a", "b", "c"], n)),
                       "code": [f"k{rng.integers(0, 90)}" for _ in range(n)], "y": [0, 1] * 60})
    table, by_name, plans = _plans(df)
    assert by_name["flag"].encoding == "boolean"
    assert by_name["when"].encoding == "datetime"
    assert by_name["shop"].encoding == "onehot" and pa.types.is_dictionary(table.schema.field("shop").type)
    assert by_name["code"].encoding == "hashed"
    X, _ = encode_columns(table, plans, "data", CFG)
    assert X.shape == (n, 1 + 1 + 3 + CFG.hash_buckets)
    assert X[1, 1] - X[0, 1] == pytest.approx(3600.0)  # seconds, kept exact in float32 by a median origin


def test_huge_and_subnormal_magnitudes_stay_finite():
    n = 60
    df = pd.DataFrame({"huge": np.linspace(-1e300, 1e300, n), "tiny": np.full(n, 5e-324),
                       "x": np.random.default_rng(4).normal(size=n), "y": [0, 1, 2] * 20})
    table, by_name, plans = _plans(df)
    assert by_name["huge"].encoding == "numeric-log"
    X, _ = encode_columns(table, plans, "data", CFG)
    assert np.isfinite(X).all()
    r = screen_table(df, label_col="y", config=ScreenConfig(target_steps=50))
    assert np.isfinite(r.scores[["spectral", "label_noise", "influence"]].to_numpy()).all()


def test_integers_beyond_two_to_the_53_are_read_not_refused():
    """Arrow's safe int64 -> float64 cast refuses them; the encoder rounds them, as numpy would."""
    n = 60
    big = np.where(np.arange(n) % 3 == 0, np.iinfo(np.int64).max, np.arange(n))
    table = pa.table({"big": pa.array(big, pa.int64()), "x": np.random.default_rng(5).normal(size=n),
                      "y": [0, 1, 2] * 20})
    _, by_name, plans = _plans(table.to_pandas())
    X, _ = encode_columns(table, plans, "data", CFG)
    assert np.isfinite(X).all() and by_name["big"].encoding.startswith("numeric")
    r = screen_table(table, label_col="y", config=ScreenConfig(target_steps=50))
    assert len(r.scores) == n


def test_encoded_png_bytes_decode_to_one_probe_size():
    from PIL import Image

    def png(size, value, mode="L"):
        buf = io.BytesIO()
        Image.new(mode, size, value).save(buf, format="PNG")
        return buf.getvalue()

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    col = pa.chunked_array([pa.array([{"bytes": png((8, 8), 0), "path": "a.png"},
                                      {"bytes": png((8, 8), 255), "path": "b.png"}], type=image_type)])
    table = pa.table({"image": col, "y": [0, 1]})
    plans = plan_columns(table, "y", None, CFG)
    assert plans[0].encoding == "image" and plans[0].params["shape"] == [8, 8, 1]
    X, kind = encode_columns(table, plans, "data", CFG)
    assert kind == "image" and X.shape == (2, 1, 8, 8)
    assert X[0].max() == 0.0 and X[1].min() == pytest.approx(1.0)
    # mixed sizes and colour: every image resized to image_size x image_size, RGB
    mixed = pa.chunked_array([pa.array([png((40, 20), (255, 0, 0), "RGB"), png((8, 8), 10)])])
    out = decode_images(mixed, (CFG.image_size, CFG.image_size, 3), "data")
    assert out.shape == (2, 3, CFG.image_size, CFG.image_size) and out[0, 0].mean() == pytest.approx(1.0)


def test_free_text_is_embedded_with_the_text_featurizer():
    from screening.featurizers import register_text_featurizer

    seen = []

    def fake_featurizer(texts):  # a registered featurizer, not a mock of MiniLM: the contract
        seen.extend(texts)
        return np.array([[len(t), t.count(" ")] for t in texts], dtype=np.float32)

    register_text_featurizer("lengths", fake_featurizer)
    cfg = ScreenConfig(text_featurizer="lengths")
    texts = [f"this review says the product is {'good' if i % 2 else 'bad'} number {i}" for i in range(40)]
    table = pa.table({"review": texts, "y": [i % 2 for i in range(40)]})
    plans = plan_columns(table, "y", None, cfg)
    assert plans[0].encoding == "text"
    X, kind = encode_columns(table, plans, "data", cfg)
    assert kind == "text" and X.shape == (40, 2) and seen == texts


def test_time32_dictionary_ints_and_string_views_are_read():
    import datetime as dt

    n = 60
    table = pa.table({"t": pa.array([dt.time(i % 20) for i in range(n)], type=pa.time32("s")),
                      "c": pa.array([i % 3 for i in range(n)]).dictionary_encode(),
                      "y": [i % 2 for i in range(n)]})
    plans = {p.name: p for p in plan_columns(table, "y", None, CFG)}
    assert plans["t"].encoding == "datetime" and plans["c"].used
    X, _ = encode_columns(table, list(plans.values()), "data", CFG)
    assert X.shape == (n, 2) and np.isfinite(X).all()


def test_a_reference_outlier_is_held_inside_the_datas_range():
    rng = np.random.default_rng(5)
    data = pd.DataFrame({"a": rng.random(120) * 0.01, "b": rng.random(120), "y": [0, 1] * 60})
    ref = data.copy()
    ref.loc[0, "a"] = 1e37  # would overflow the standardisation and turn every score NaN
    r = screen_table(data, label_col="y", reference=ref, config=ScreenConfig(target_steps=50))
    assert np.isfinite(r.scores[["label_noise", "influence", "spectral"]].to_numpy()).all()


def test_sixteen_bit_and_missing_images():
    from PIL import Image

    a = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    X = decode_images(pa.chunked_array([pa.array([buf.getvalue(), None])]), (8, 8, 1), "data")
    assert X[0].max() == pytest.approx(63000 / 65535, rel=1e-3) and X[0].min() == 0.0  # not clipped white
    assert X[1].max() == 0.0  # a missing image is imputed as a blank one


def test_an_image_past_the_pixel_limit_in_an_image_column_is_refused_by_name(recwarn):
    """Issue 29: a very large image stored inside a table (not a file of an image folder,
    which ingest refuses) reached the screens' decoder and printed Pillow's raw
    DecompressionBombWarning; now the row and the limit are named, before decoding."""
    import io

    import pyarrow as pa
    import pytest
    from PIL import Image

    from screening import ScreenConfig, screen_table
    from screening.errors import ScreeningInputError

    def png(size):
        buf = io.BytesIO()
        Image.new("L", size).save(buf, format="PNG")
        return buf.getvalue()

    small = png((8, 8))
    images = [small] * 12 + [png((10_000, 9_000))]  # 90 M pixels, over Pillow's 89,478,485
    table = pa.table({"image": pa.array(images, type=pa.binary()), "label": [i % 2 for i in range(13)]})
    with pytest.raises(ScreeningInputError, match=r"row 12 is larger than the 89,478,485-pixel limit"):
        screen_table(table, label_col="label", config=ScreenConfig(n_folds=3))
    assert not [w for w in recwarn.list if issubclass(w.category, Image.DecompressionBombWarning)]
