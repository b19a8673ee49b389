"""Detection benchmark: planted poisons on scikit-learn's digits, a synthetic tabular
problem and five generalisation sets (wine, breast cancer, an imbalanced weak-probe
problem, an embedding column, digits as an image column with another trigger), every
screen and two peers, and a model retrained without the flagged rows. One
configuration for all; nothing is tuned per case.

    python benchmarks/bench_detection.py [--quick] [--seed 0] [--modes given,chain,none]

Every case runs in three reference modes (``--modes``): with the given hand-made trusted
reference; with a trust-chain reference (an earlier clean version of the data set, up to
140 rows a class, as ``dataward`` draws from an approved snapshot); without any reference.
The textbook spectral signature and TracIn self-influence, computed on an independent
scikit-learn MLP trained on the poisoned data, are printed beside the named screens
(``tb_spec``, ``tb_infl``).

Metrics per case (poison rate eps, n_p poisoned rows):
  AUROC     of each per-row score against the planted truth;
  R@b, P@b  recall / precision of the top 1.5 x n_p rows (per class, 1.5 x eps x n_c,
            for the per-class screens spectral / activation clustering / ART peer);
  flagged   recall, precision, F1 of screen_table's combined verdict, and its flag rate
            on the clean rows (clean_flag_rate; the goal is <= 2 % everywhere);
  probe_acc cross-validated probe accuracy on the (poisoned) labels; anch_acc the
            reference-anchored probe's accuracy on the clean rows;
  acc, dAcc accuracy of an MLP retrained without the flagged rows, and its difference
            to one retrained without exactly the poisoned rows (oracle);
  n_relabel, dAcc_relabel  rows the policy would relabel instead of removing them
            (screening.on_label_noise: relabel), and the accuracy difference to oracle
            removal when it does (relabel_on_poison: the share of them that are poison);
  min_detect the size below which the verdict's class-excess test cannot flag a backdoor
            concentrated on the target class, given that class's trusted reference rows
            (screening.verdict.detectable_attack; NaN: no size is enough)
  ASR       attack success (triggered non-target test rows classified as the target)
            before removal, after removing the flagged rows, and after removing exactly
            the poisoned rows (ASR_oracle: what the trigger does to a model that never
            saw a poisoned row; an extreme feature value can carry a test row to the
            target class by itself, and no screen can remove that).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _poison as P  # noqa: E402
from sklearn.datasets import load_digits, make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import cross_val_predict  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from screening import ScreenConfig, screen_table  # noqa: E402

# ---- peers -----------------------------------------------------------------------

def peer_cleanlab_logreg(X, y, seed):
    """Plain cleanlab on a scikit-learn cross-validated logistic regression."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    probs = cross_val_predict(clf, X, y, cv=5, method="predict_proba")
    return 1 - get_label_quality_scores(y, probs), find_label_issues(y, probs)


def peer_art_spectral(R, y):
    """IBM ART / public reference code: |v . r| with v the top right singular vector of the
    *uncentred* class activations (not the paper's centred algorithm)."""
    s = np.zeros(len(y))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        _, _, vt = np.linalg.svd(R[idx].astype(np.float64), full_matrices=False)
        s[idx] = np.abs(R[idx] @ vt[0])
    return s


TEXTBOOK = ("spectral", "influence")


def textbook_scores(X, y, seed, epochs=40, n_checkpoints=4):
    """The textbook versions of two named screens, on an independent victim model: a
    scikit-learn MLP (128-64, Adam) trained on the (poisoned) data itself.

    spectral: Tran et al. 2018, per class the squared projection of the centred last hidden
        layer on its top singular vector;
    influence: TracIn self-influence (Pruthi et al. 2020) over ``n_checkpoints`` evenly spaced
        epochs, exact on the last layer: ``sum_c |p - onehot(y)|^2 (|h|^2 + 1)`` (constant lr).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    Xs = StandardScaler().fit_transform(X)
    classes = np.unique(y)
    mlp = MLPClassifier(hidden_layer_sizes=(128, 64), random_state=seed, max_iter=1, warm_start=True)
    onehot = (y[:, None] == classes[None, :]).astype(float)
    infl = np.zeros(len(y))
    every = max(1, epochs // n_checkpoints)
    for epoch in range(1, epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(Xs, y)
        if epoch % every == 0:
            h = _hidden(mlp, Xs)
            err = mlp.predict_proba(Xs) - onehot
            infl += (err ** 2).sum(1) * ((h ** 2).sum(1) + 1)
    h = _hidden(mlp, Xs)
    spec = np.zeros(len(y))
    for c in classes:
        idx = np.flatnonzero(y == c)
        r = h[idx] - h[idx].mean(0)
        _, _, vt = np.linalg.svd(r, full_matrices=False)
        spec[idx] = (r @ vt[0]) ** 2
    return {"spectral": spec, "influence": infl}


def _hidden(mlp, X):
    """The last hidden layer of a fitted scikit-learn MLP (ReLU)."""
    h = X
    for W, b in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1]):
        h = np.maximum(h @ W + b, 0)
    return h


# ---- metrics ---------------------------------------------------------------------

def at_budget(score, truth, y, per_class):
    n_p = truth.sum()
    if n_p == 0:
        return np.nan, np.nan
    sel = np.zeros(len(score), bool)
    if per_class:
        eps = n_p / len(y)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            k = int(np.ceil(1.5 * eps * len(idx)))
            sel[idx[np.argsort(-score[idx], kind="stable")[:k]]] = True
    else:
        sel[np.argsort(-score, kind="stable")[: int(np.ceil(1.5 * n_p))]] = True
    return (sel & truth).sum() / n_p, (sel & truth).sum() / max(sel.sum(), 1)


def retrain(X, y, keep, X_test, y_test, X_trig, target, seed):
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(128,), max_iter=500,
                                                        random_state=seed))
    clf.fit(X[keep], y[keep])
    acc = (clf.predict(X_test) == y_test).mean()
    asr = np.nan if X_trig is None else (clf.predict(X_trig) == target).mean()
    return acc, asr


# ---- data sets and cases ---------------------------------------------------------

def split(X, y, n_train, n_ref, seed, ref_scale=1.0):
    """Train, trusted reference and test rows. ``ref_scale`` grows (or shrinks) the
    reference with rows taken from the test split; the training rows, and so the planted
    poison, stay the same."""
    perm = np.random.default_rng(seed).permutation(len(y))
    need = min(100, len(y) - n_train - n_ref)  # test rows: 100, or all the default split has
    n_ref = int(round(ref_scale * n_ref))
    if len(y) - n_train - n_ref < need:
        raise SystemExit(f"--reference-scale {ref_scale:g} leaves {len(y) - n_train - n_ref} test rows of "
                         f"{len(y)} (need {need}); leave this data set out with --only")
    a, b = perm[:n_train], perm[n_train:n_train + n_ref]
    c = perm[n_train + n_ref:]
    return (X[a], y[a]), (X[b], y[b]), (X[c], y[c])


def digits_cases(quick):
    cases = ["clean", "patch-0.5%", "patch-2%", "patch-5%", "blend-3%", "clean-label-blend", "uniform-10%",
             "uniform-15%", "pair-10%", "pair-15%"]
    if quick:
        cases = ["clean", "patch-0.5%", "patch-5%", "blend-3%", "clean-label-blend", "uniform-10%", "pair-15%"]
    return cases


def plant_digits(case, X, y, target, rng):
    shape = (8, 8)
    pattern = P.random_pattern(64, X.min(), X.max(), seed=123)
    trig = None
    truth = np.zeros(len(y), bool)
    y2, X2 = y.copy(), X.copy()
    if case.startswith("patch"):
        rate = float(case.split("-")[1].rstrip("%")) / 100
        idx = P.pick_dirty(y, rate, target, rng)
        X2[idx] = P.patch_trigger(X[idx], 3, shape)
        y2[idx] = target
        trig = lambda Z: P.patch_trigger(Z, 3, shape)  # noqa: E731
    elif case.startswith("blend"):
        rate = float(case.split("-")[1].rstrip("%")) / 100
        idx = P.pick_dirty(y, rate, target, rng)
        X2[idx] = P.blend_trigger(X[idx], pattern, 0.2)
        y2[idx] = target
        trig = lambda Z: P.blend_trigger(Z, pattern, 0.2)  # noqa: E731
    elif case == "clean-label-blend":
        idx = P.pick_clean_label(y, 0.05, target, rng)
        X2[idx] = P.blend_trigger(X[idx], pattern, 0.3)
        trig = lambda Z: P.blend_trigger(Z, pattern, 0.3)  # noqa: E731
    elif case.startswith(("uniform", "pair")):
        rate = float(case.split("-")[1].rstrip("%")) / 100
        fn = P.uniform_flips if case.startswith("uniform") else P.pair_flips
        y2, idx = fn(y, rate, 10, rng)
    else:
        idx = np.array([], int)
    truth[idx] = True
    return X2, y2, truth, trig


def plant_tabular(case, X, y, target, rng, n_classes, trig_cols, trig_value):
    truth = np.zeros(len(y), bool)
    trig = None
    y2, X2 = y.copy(), X.copy()
    if case.startswith("trigger"):
        rate = float(case.split("-")[1].rstrip("%")) / 100
        idx = P.pick_dirty(y, rate, target, rng)
        X2[idx] = P.tabular_trigger(X[idx], trig_cols, trig_value)
        y2[idx] = target
        trig = lambda Z: P.tabular_trigger(Z, trig_cols, trig_value)  # noqa: E731
    elif case.startswith(("uniform", "pair")):
        rate = float(case.split("-")[1].rstrip("%")) / 100
        fn = P.uniform_flips if case.startswith("uniform") else P.pair_flips
        y2, idx = fn(y, rate, n_classes, rng)
    else:
        idx = np.array([], int)
    truth[idx] = True
    return X2, y2, truth, trig


# ---- one case --------------------------------------------------------------------

SCREENS = ["spectral", "label_noise", "influence", "activation_cluster", "peer_cleanlab_lr", "peer_art_spectral"]
PER_CLASS = {"spectral", "activation_cluster", "peer_art_spectral"}


def as_frame(X, y, embedding=False, image=False):
    """A pandas frame with one column per feature, or a table with one fixed-length list column."""
    if embedding or image:
        import pyarrow as pa

        d = X.shape[1]
        col = pa.FixedSizeListArray.from_arrays(pa.array(X.astype(np.float32).ravel()), d)
        return pa.table({"img" if image else "emb": col, "label": pa.array(y)})
    cols = [f"x{i}" for i in range(X.shape[1])]
    return pd.DataFrame(X, columns=cols).assign(label=y)


_DUMP = None


def dump_result(res, data, case, seed):
    """With ``--dump DIR``: the case's per-row scores and its summary (timings dropped)."""
    if _DUMP is None:
        return
    import json

    os.makedirs(_DUMP, exist_ok=True)
    stem = os.path.join(_DUMP, f"{data}__{case}__s{seed}".replace("%", "pct"))
    res.scores.to_parquet(stem + ".parquet")
    with open(stem + ".json", "w") as fh:
        json.dump(res.summary, fh, indent=1, sort_keys=True, default=str)


#: Reference modes: the given hand-made reference; a trust-chain reference (an earlier
#: clean version of the data set: the reference rows plus the test rows beyond the first
#: 100, up to TRUST_CHAIN_ROWS_PER_CLASS a class, as ``dataward`` draws from an approved
#: snapshot; the first 100 test rows stay the test split); no reference at all.
MODES = ("given", "chain", "none")
TRUST_CHAIN_ROWS_PER_CLASS = 140


def trust_chain_split(ref, test, seed, per_class=TRUST_CHAIN_ROWS_PER_CLASS, n_test=100):
    """(reference, test) for the trust-chain mode (see :data:`MODES`)."""
    (Xr, yr), (Xt, yt) = ref, test
    X = np.concatenate([Xr, Xt[n_test:]])
    y = np.concatenate([yr, yt[n_test:]])
    rng = np.random.default_rng(seed + 77)
    keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)])
    keep.sort()
    return (X[keep], y[keep]), (Xt[:n_test], yt[:n_test])


def run_modes(modes, name, case, Xtr, ytr, truth, trig, ref, test, target, config, seed, kind="tabular"):
    """One case in every reference mode asked for (rows carry ``mode``)."""
    rows = []
    for mode in modes:
        r, t = (trust_chain_split(ref, test, seed) if mode == "chain" else (ref, test))
        rows.append(run_case(name, case, Xtr, ytr, truth, trig, None if mode == "none" else r, t, target, config,
                             seed, kind, mode=mode))
        print_row(rows[-1])
    return rows


def run_case(name, case, Xtr, ytr, truth, trig, ref, test, target, config, seed, kind="tabular", mode="given"):
    (Xt, yt) = test
    emb, img = kind == "embedding", kind == "image"
    t = time.perf_counter()
    reference = None if ref is None else as_frame(ref[0], ref[1], emb, img)
    res = screen_table(as_frame(Xtr, ytr, emb, img), label_col="label", reference=reference, config=config)
    secs = time.perf_counter() - t
    dump_result(res, name, case if mode == "given" else f"{case}__{mode}", seed)
    row = {"data": name, "case": case, "mode": mode, "seed": seed, "n": len(ytr),
           "n_ref": 0 if ref is None else len(ref[1]), "n_poison": int(truth.sum()), "secs": secs}
    flagged = _verdict_metrics(row, res, Xtr, ytr, truth, target, seed)
    Xtrig = None
    if trig is not None:
        Xtrig = trig(Xt[yt != target])
    acc_o, asr_o = retrain(Xtr, ytr, ~truth, Xt, yt, Xtrig, target, seed)
    acc_f, asr_f = retrain(Xtr, ytr, ~flagged, Xt, yt, Xtrig, target, seed)
    acc_0, asr_0 = retrain(Xtr, ytr, np.ones(len(ytr), bool), Xt, yt, Xtrig, target, seed)
    row.update({"acc_before": acc_0, "acc": acc_f, "dAcc": 100 * (acc_f - acc_o), "ASR_before": asr_0,
                "ASR_after": asr_f, "ASR_oracle": asr_o, "est_rate": res.summary["estimated_poison_rate"]})
    # the policy's other action on label noise (screening.on_label_noise: relabel): the rows
    # with a suggested label are kept with it, the other flagged rows removed
    new = _suggested_classes(res, ytr)
    moved = new != ytr
    row["n_relabel"] = int(moved.sum())
    row["relabel_on_poison"] = float(truth[moved].mean()) if moved.any() else float("nan")
    if moved.any():
        acc_r, _ = retrain(Xtr, new, ~flagged | moved, Xt, yt, Xtrig, target, seed)
        row["dAcc_relabel"] = 100 * (acc_r - acc_o)
    else:
        row["dAcc_relabel"] = row["dAcc"]
    return row


def _suggested_classes(res, y):
    """``y`` with every suggested label (the scores' ``suggested_label``) applied."""
    col = res.scores.get("suggested_label")
    new = np.asarray(y).copy()
    if col is None:
        return new
    index = {str(c): c for c in res.classes}
    for i, s in enumerate(col):
        if isinstance(s, str):
            new[i] = index[s]
    return new


def _verdict_metrics(row, res, X, y, truth, target, seed):
    """Add to ``row`` the probe accuracies, every screen's and peer's ranking figures, the
    class excess's power in the target class and the verdict's recall / precision / F1 /
    flag rates; return the verdict's flags. ``target`` None: no backdoor to size."""
    flagged = res.scores["flagged"].to_numpy()
    scores = {k: res.scores[k].to_numpy() for k in ("spectral", "label_noise", "influence", "activation_cluster")}
    scores["peer_cleanlab_lr"], peer_flags = peer_cleanlab_logreg(X, y, seed)
    scores["peer_art_spectral"] = peer_art_spectral(res.representations, y)
    row["probe_acc"] = res.summary["probe"]["cv_accuracy"]
    row["anch_acc"] = float((res.pred_probs.argmax(1) == y)[~truth].mean())
    for s in TEXTBOOK:  # the same method on an independent victim model (see textbook_scores)
        row[f"textbook_{s}:auc"] = np.nan
    if 0 < truth.sum() < len(truth) and X.ndim == 2:
        for s, v in textbook_scores(X, y, seed).items():
            row[f"textbook_{s}:auc"] = roc_auc_score(truth, v)
    for s in SCREENS:
        row[f"{s}:auc"] = roc_auc_score(truth, scores[s]) if 0 < truth.sum() < len(truth) else np.nan
        row[f"{s}:R@b"], row[f"{s}:P@b"] = at_budget(scores[s], truth, y, s in PER_CLASS)
    # the fewest poisoned rows the class excess could flag in the target class (None: none)
    power = {str(d["class"]): d["min_attack_rows"] for d in res.summary["combine"].get("detectable_attack") or []}
    k = power.get(str(target))
    row["min_detect"] = np.nan if k is None or target is None or not truth.any() else k
    row["flag_rate"] = flagged.mean()
    row["clean_flag_rate"] = flagged[~truth].mean()
    row["F1"] = f1_score(truth, flagged) if truth.any() else np.nan
    row["recall"] = (flagged & truth).sum() / truth.sum() if truth.any() else np.nan
    row["precision"] = (flagged & truth).sum() / max(flagged.sum(), 1) if truth.any() else np.nan
    row["peer_F1"] = f1_score(truth, peer_flags) if truth.any() else np.nan
    return flagged


def _rate(case):
    return float(case.split("-")[-1].rstrip("%")) / 100


def plant_generic(case, X, y, target, rng, n_classes, trigger):
    """``trigger-R%`` (dirty label, ``trigger(X)``), ``uniform-R%``, ``pair-R%`` or ``clean``."""
    truth = np.zeros(len(y), bool)
    y2, X2, trig = y.copy(), X.copy(), None
    if case.startswith("trigger"):
        idx = P.pick_dirty(y, _rate(case), target, rng)
        X2[idx] = trigger(X[idx])
        y2[idx] = target
        trig = trigger
    elif case.startswith(("uniform", "pair")):
        fn = P.uniform_flips if case.startswith("uniform") else P.pair_flips
        y2, idx = fn(y, _rate(case), n_classes, rng)
    else:
        idx = np.array([], int)
    truth[idx] = True
    return X2, y2, truth, trig


def generalization_sets(seed):
    """Non-digits data sets: (name, X, y, (n_train, n_ref), target, trigger, cases, kind)."""
    from sklearn.datasets import load_breast_cancer, load_wine

    out = []
    # wine: 178 rows, 13 features, 3 classes; two-feature value trigger
    X, y = load_wine(return_X_y=True)
    wcols = np.array([0, 9])
    wvals = [np.quantile(X[:, 0], 0.01), np.quantile(X[:, 9], 0.99)]
    out.append(("wine", X, y, (100, 40), 1, lambda Z: P.feature_value_trigger(Z, wcols, wvals),
                ["clean", "trigger-6%", "uniform-10%"], "tabular"))
    # breast cancer: 569 rows, 30 features, 2 classes
    X, y = load_breast_cancer(return_X_y=True)
    bcols = np.array([3, 21])
    bvals = [np.quantile(X[:, 3], 0.005), np.quantile(X[:, 21], 0.995)]
    out.append(("breast_cancer", X, y, (330, 100), 0, lambda Z: P.feature_value_trigger(Z, bcols, bvals),
                ["clean", "trigger-4%", "uniform-10%"], "tabular"))
    # imbalanced classes, weak probe (~75 % accuracy), 4 classes
    X, y = make_classification(n_samples=3000, n_features=20, n_informative=8, n_redundant=4, n_classes=4,
                               n_clusters_per_class=2, class_sep=0.9, weights=[0.5, 0.25, 0.15, 0.10],
                               flip_y=0.0, random_state=seed + 21)
    icols = np.array([1, 7])
    ivals = [np.quantile(X[:, 1], 0.995), np.quantile(X[:, 7], 0.005)]
    out.append(("weak_imbalanced", X, y, (1800, 450), 3, lambda Z: P.feature_value_trigger(Z, icols, ivals),
                ["clean", "trigger-3%", "uniform-10%"], "tabular"))
    # embedding column: unit-norm 48-d "sentence embeddings" of 6 topics; trigger = fixed shift
    rng = np.random.default_rng(seed + 31)
    Xc, ye = make_classification(n_samples=2400, n_features=24, n_informative=10, n_redundant=4, n_classes=6,
                                 n_clusters_per_class=1, class_sep=1.2, random_state=seed + 31)
    Q, _ = np.linalg.qr(rng.standard_normal((48, 48)))
    Xe = np.concatenate([Xc, 0.5 * rng.standard_normal((len(Xc), 24))], 1) @ Q
    Xe /= np.linalg.norm(Xe, axis=1, keepdims=True)
    u = rng.standard_normal(48)
    u /= np.linalg.norm(u)
    out.append(("embedding", Xe, ye, (1400, 350), 5, lambda Z: P.embedding_trigger(Z, u, 0.6),
                ["clean", "trigger-3%", "pair-10%"], "embedding"))
    # digits as an image column (CNN probe), a 2 x 4 bar in the top-left corner
    X, y = load_digits(return_X_y=True)
    out.append(("digits_image", X.astype(np.float64), y, (1078, 269), 7,
                lambda Z: P.shifted_patch_trigger(Z, (8, 8), slice(0, 2), slice(0, 4)),
                ["clean", "trigger-4%"], "image"))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer cases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (e.g. 0,1,2): every case per seed, "
                                                 "then the clean controls' mean over seeds")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny models: 1 is fastest)")
    ap.add_argument("--only", default=None,
                    help="comma-separated data sets: digits, tabular, wine, breast_cancer, weak_imbalanced, "
                         "embedding, digits_image, and the stored formats mixed_table, image_files, text_jsonl")
    ap.add_argument("--reference-scale", type=float, default=1.0,
                    help="multiply every trusted reference's size, taking the rows from the test split "
                         "(the training rows and the poison stay the same): how detection grows with it")
    ap.add_argument("--cases", default=None, help="comma-separated case names to keep (e.g. clean,blend-3%%)")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="reference modes, comma-separated: given (the hand-made reference), chain (a "
                         "trust-chain reference from an earlier clean version), none (no reference)")
    ap.add_argument("--row-fdr", default=None, metavar="Q|none",
                    help="the verdict's row-level test at false discovery rate Q, or 'none' for the per-row "
                         "level everywhere (VerdictConfig.row_fdr; default: the configuration's, 0.1)")
    ap.add_argument("--dump", default=None, metavar="DIR",
                    help="write every case's per-row scores (DIR/DATA__CASE__sSEED.parquet) and summary, "
                         "to compare two versions row for row with benchmarks/compare_scores.py")
    args = ap.parse_args(argv)
    global _DUMP
    _DUMP = args.dump
    only = None if args.only is None else set(args.only.split(","))
    keep = None if args.cases is None else set(args.cases.split(","))
    seeds = [args.seed] if args.seeds is None else [int(x) for x in args.seeds.split(",")]
    rows = []
    for seed in seeds:
        rows += run_seed(args, seed, only, keep)
    df = pd.DataFrame(rows)
    print_tables(df)
    if len(seeds) > 1:
        clean = df[df.case == "clean"].groupby("data").clean_flag_rate.agg(["mean", "max"])
        print(f"\nClean controls over seeds {seeds} (flag rate on clean tables; goal <= 2 %):")
        print(clean.to_string(float_format=lambda x: f"{100 * x:.1f}%"))
        print(f"mean over every clean table: {100 * df[df.case == 'clean'].clean_flag_rate.mean():.2f}%")


def run_seed(args, seed, only, keep):
    """Every selected case with one seed (data split, planting and screening)."""
    config = ScreenConfig(seed=seed, threads=args.threads)
    if args.row_fdr is not None:
        import dataclasses

        q = None if args.row_fdr.lower() == "none" else float(args.row_fdr)
        config = dataclasses.replace(config, verdict=dataclasses.replace(config.verdict, row_fdr=q))
    modes = [m for m in args.modes.split(",") if m]
    rows = []

    def want(data, case):
        return (only is None or data in only) and (keep is None or case in keep)

    if only is None or "digits" in only:
        X, y = load_digits(return_X_y=True)
        X = X.astype(np.float64)
        (Xtr, ytr), ref, test = split(X, y, 1078, 269, seed, args.reference_scale)
        target = 0
        for case in digits_cases(args.quick):
            if not want("digits", case):
                continue
            rng = np.random.default_rng(seed + zlib.crc32(case.encode()) % 1000)
            X2, y2, truth, trig = plant_digits(case, Xtr, ytr, target, rng)
            rows += run_modes(modes, "digits", case, X2, y2, truth, trig, ref, test, target, config, seed)
    if only is None or "tabular" in only:
        X, y = make_classification(n_samples=2500, n_features=30, n_informative=12, n_redundant=6,
                                   n_classes=5, n_clusters_per_class=2, class_sep=1.5,
                                   random_state=seed + 11)
        (Xtr, ytr), ref, test = split(X, y, 1500, 375, seed, args.reference_scale)
        rng0 = np.random.default_rng(seed + 5)
        trig_cols = rng0.choice(X.shape[1], 3, replace=False)
        trig_value = np.quantile(X, 0.995)  # extreme but in-range for every column
        cases = ["clean", "trigger-3%", "uniform-10%", "pair-15%"]
        if not args.quick:
            cases = ["clean", "trigger-2%", "trigger-5%", "uniform-10%", "uniform-15%", "pair-10%", "pair-15%"]
        for case in cases:
            if not want("tabular", case):
                continue
            rng = np.random.default_rng(seed + zlib.crc32(case.encode()) % 1000)
            X2, y2, truth, trig = plant_tabular(case, Xtr, ytr, 2, rng, 5, trig_cols, trig_value)
            rows += run_modes(modes, "tabular", case, X2, y2, truth, trig, ref, test, 2, config, seed)
    for name, X, y, (n_tr, n_ref), target, trigger, cases, kind in generalization_sets(seed):
        if only is not None and name not in only:
            continue
        (Xtr, ytr), ref, test = split(X, y, n_tr, n_ref, seed, args.reference_scale)
        for case in cases:
            if not want(name, case):
                continue
            rng = np.random.default_rng(seed + zlib.crc32(case.encode()) % 1000)
            X2, y2, truth, trig = plant_generic(case, Xtr, ytr, target, rng, len(np.unique(y)), trigger)
            rows += run_modes(modes, name, case, X2, y2, truth, trig, ref, test, target, config, seed, kind)
    import _formats as F

    for fc in F.all_cases(seed, args.quick, only):
        if keep is not None and fc.case not in keep:
            continue
        for mode in modes:
            if mode == "chain":
                continue  # a stored format case has one clean reference file, no earlier version
            rows.append(run_format_case(fc, config, seed, mode))
            print_row(rows[-1])
    return rows


def run_format_case(fc, config, seed, mode="given"):
    """One stored-format case (benchmarks/_formats.py): the table goes to screen_table as a
    user's file would, columns encoded by screening.encoding; the downstream model is an
    MLP on the same encoding."""
    import _formats as F

    from screening.encoding import encode_columns, plan_columns

    t = time.perf_counter()
    res = screen_table(fc.train, label_col=fc.label, reference=None if mode == "none" else fc.reference,
                       config=config)
    secs = time.perf_counter() - t
    dump_result(res, fc.data, fc.case if mode == "given" else f"{fc.case}__{mode}", seed)
    truth = fc.truth
    labels = np.asarray(fc.train.column(fc.label).to_pylist(), dtype=object)
    y = np.searchsorted(np.array(res.classes, dtype=object), labels)
    plans = plan_columns(fc.train, fc.label, None, config)
    X, _ = encode_columns(fc.train, plans, "data", config, {})
    X = X.reshape(len(X), -1)
    row = {"data": fc.data, "case": fc.case, "mode": mode, "seed": seed, "n": len(y),
           "n_ref": 0 if mode == "none" else fc.reference.num_rows,
           "n_poison": int(truth.sum()), "secs": secs}
    flagged = _verdict_metrics(row, res, X, y, truth, fc.target if fc.triggered is not None else None, seed)
    acc_o, asr_o = F.downstream(fc, ~truth, seed)
    acc_f, asr_f = F.downstream(fc, ~flagged, seed)
    acc_0, asr_0 = F.downstream(fc, np.ones(len(y), bool), seed)
    nan = float("nan")
    row.update({"acc_before": acc_0, "acc": acc_f, "dAcc": 100 * (acc_f - acc_o),
                "ASR_before": nan if asr_0 is None else asr_0, "ASR_after": nan if asr_f is None else asr_f,
                "ASR_oracle": nan if asr_o is None else asr_o, "est_rate": res.summary["estimated_poison_rate"]})
    return row


def print_row(r):
    print(f"  done {r['data']}/{r['case']} [{r['mode']}] in {r['secs']:.0f}s", file=sys.stderr, flush=True)


def print_tables(df):
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 50)
    print("\nRanking (AUROC / recall within 1.5 x eps budget / precision within budget):")
    t = pd.DataFrame({"data": df.data, "case": df.case, "mode": df["mode"], "seed": df.seed, "n_p": df.n_poison})
    short = {"spectral": "spec", "label_noise": "lbl", "influence": "infl", "activation_cluster": "ac",
             "peer_cleanlab_lr": "peerCL", "peer_art_spectral": "peerART"}
    for s in SCREENS:
        t[short[s]] = [f"{a:.3f}/{r:.2f}/{p:.2f}" if a == a else "-" for a, r, p in
                       zip(df[f"{s}:auc"], df[f"{s}:R@b"], df[f"{s}:P@b"])]
    for s in TEXTBOOK:
        t[f"tb_{short[s]}"] = [f"{a:.3f}" if a == a else "-" for a in df[f"textbook_{s}:auc"]]
    print(t.to_string(index=False))
    print("\nCombined verdict and retraining (MLP without flagged rows; dAcc vs oracle removal, points):")
    v = df[["data", "case", "mode", "seed", "n", "n_ref", "n_poison", "probe_acc", "clean_flag_rate", "recall",
            "min_detect", "precision", "F1", "peer_F1", "acc_before", "acc", "dAcc", "ASR_before", "ASR_after",
            "ASR_oracle", "secs"]]
    print(v.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if "n_relabel" in df:
        print("\nRelabel instead of remove (policy screening.on_label_noise: relabel; rows with cleanlab's "
              "suggested label kept with it, the other flagged rows removed; dAcc vs oracle removal, points):")
        rl = df[df["n_relabel"].fillna(0) > 0]
        print(rl[["data", "case", "mode", "seed", "n_relabel", "relabel_on_poison", "dAcc", "dAcc_relabel"]]
              .to_string(index=False, float_format=lambda x: f"{x:.3f}") if len(rl) else "  no row relabelled")
    print_goals(df)


def _goal_rows(df):
    """(data, case, goal, value, met) for the issue's goals, one row per check."""
    out = []
    from types import SimpleNamespace

    for d in df.to_dict("records"):
        r = SimpleNamespace(**{k: v for k, v in d.items() if k.isidentifier()})
        case = f"{r.case} [{r.mode}] (seed {r.seed})"
        if r.case == "clean":
            limit = 0.01 if r.mode == "none" else 0.005
            out.append((r.data, case, f"clean flag rate <= {limit:.1%}", f"{100 * r.clean_flag_rate:.2f}%",
                        r.clean_flag_rate <= limit))
            continue
        if r.case.startswith(("uniform", "pair")):
            out.append((r.data, case, "F1 of flagged >= 0.90", f"{r.F1:.3f}", r.F1 >= 0.90))
        else:
            if r.ASR_after == r.ASR_after:
                out.append((r.data, case, "attack success after removal <= 5%",
                            f"{100 * r.ASR_after:.0f}% (before {100 * r.ASR_before:.0f}%, oracle removal "
                            f"{100 * r.ASR_oracle:.0f}%)", r.ASR_after <= 0.05))
            out.append((r.data, case, "accuracy within 0.6 points of oracle removal", f"{r.dAcc:+.2f}",
                        r.dAcc >= -0.6))
        for s in TEXTBOOK:
            tb = d[f"textbook_{s}:auc"]
            if tb == tb:
                out.append((r.data, case, f"{s} AUROC >= its textbook version's", f"{d[s + ':auc']:.3f} vs {tb:.3f}",
                            d[s + ":auc"] >= tb - 0.005))
    return out


def print_goals(df):
    rows = _goal_rows(df)
    print("\nGoals (issue 18), per case and reference mode:")
    for data, case, goal, value, met in rows:
        print(f"  {'met ' if met else 'MISS'}  {data}/{case}: {goal}: {value}")
    print(f"{sum(m for *_, m in rows)} of {len(rows)} checks met")


if __name__ == "__main__":
    main()
