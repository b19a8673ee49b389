"""Detection over the case matrix (benchmarks/matrix.py): the verdict against the plain
peer it wraps, per data set, case, reference mode and seed.

    python benchmarks/bench_matrix.py --half heldout [--seeds 0,1,2] [--cases ...] [--modes ...]
    python benchmarks/bench_matrix.py --gate                  # the CI regression gate
    python benchmarks/bench_matrix.py --gate --write-baseline # refresh the committed baseline

Per row: ``recall`` / ``precision`` / ``F1`` of the verdict's flags against the planted
rows; ``clean_flag_rate`` (flags among rows nothing was planted in); ``peer_F1`` and
``peer_clean`` the same for cleanlab's ``find_label_issues`` on the same cross-validated
(out-of-fold) probabilities the verdict's probe gave; ``ASR_before`` / ``ASR_after`` /
``ASR_oracle`` attack success of an MLP trained on all rows / without the flagged rows /
without exactly the planted rows, on triggered test rows of the other classes;
``dAcc`` its clean test accuracy without the flagged rows minus without the planted rows
(points); ``probe_acc`` the cross-validated probe's accuracy; ``secs`` the screen's time.

The gate (``--gate``) runs a fixed quick subset of the held-out half (a wide pixel table,
a text table and a mixed table; one seed) and fails (exit 1) when recall, attack success
after removal, flip F1 or the clean flag rate is worse than the committed baseline
(``benchmarks/results/gate_baseline.json``) by more than the tolerance stored with it:
the spread measured over seeds for that metric and data set, never below the floors in
``FLOORS``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import matrix as M  # noqa: E402

from screening import ScreenConfig, screen_table  # noqa: E402

#: The gate's subset: (data set, case, mode), held-out data sets only: a wide pixel table,
#: a text table and a mixed table, each modality once, cases where the verdict works and
#: is stable over seeds (letters28's backdoors with a reference are not: recall 0.96 /
#: 0.00 / 1.00 over seeds 0-2, so the gate would tolerate anything there).
GATE = (
    ("letters28", "clean", "given"), ("letters28", "uniform-10%", "none"),
    ("letters_image", "trigger-3%", "given"), ("letters_image", "blend-3%", "none"),
    ("fine_foods_text", "clean", "given"), ("fine_foods_text", "uniform-10%", "none"),
    ("churn_mixed", "clean", "given"), ("churn_mixed", "uniform-10%", "given"),
    ("penguins", "trigger-3%", "given"), ("tweets_embedding", "trigger-3%", "given"),
    # the label-noise floor and its cleanlab fallback (docs/verdict.md, part 5): weak probes
    ("letters28", "uniform-10%", "given"), ("credit_mixed", "uniform-10%", "given"),
)
#: The smallest tolerance per metric, whatever the seeds' spread (a one-row change of a
#: small case must not fail the gate).
FLOORS = {"recall": 0.05, "F1": 0.03, "ASR_after": 0.03, "clean_flag_rate": 0.003}
#: Which direction is better for each gated metric.
HIGHER_IS_BETTER = {"recall": True, "F1": True, "ASR_after": False, "clean_flag_rate": False}
BASELINE = HERE / "results" / "gate_baseline.json"


def _memoise_text_embeddings() -> None:
    """Embed each distinct text once per process: the matrix screens the same texts in
    several cases and modes, and the downstream model encodes them again (the embeddings
    are deterministic, so the figures do not change; only the time does)."""
    from screening import featurizers

    embed = featurizers.get_text_featurizer("minilm")
    if getattr(embed, "memoised", False):
        return
    seen: dict[str, np.ndarray] = {}

    def memoised(texts):
        new = [t for t in dict.fromkeys(texts) if t not in seen]
        if new:
            seen.update(zip(new, embed(new)))
        return np.stack([seen[t] for t in texts]).astype(np.float32, copy=False)

    memoised.memoised = True
    featurizers.register_text_featurizer("minilm", memoised)


def _encode_all(case: M.FormatCase, config: ScreenConfig):
    """The downstream model's features for train / test / triggered rows (the screens'
    column encoding, fitted on the training rows; text embedded once)."""
    from screening.encoding import encode_columns, plan_columns

    plans = plan_columns(case.train, case.label, None, config)
    cache: dict = {}

    def feats(t):
        X, _ = encode_columns(t, plans, "data", config, cache)
        return X.reshape(len(X), -1).astype(np.float64)

    return feats(case.train), feats(case.test), None if case.triggered is None else feats(case.triggered)


def _downstream(Xtr, ytr, keep, Xte, yte, Xtrig, target, seed):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(Xtr[keep])
    clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=300, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(Xtr[keep]), ytr[keep])
    acc = float((clf.predict(scaler.transform(Xte)) == yte).mean())
    asr = float("nan") if Xtrig is None else float((clf.predict(scaler.transform(Xtrig)) == target).mean())
    return acc, asr


def run_one(case: M.FormatCase, mode: str, seed: int, config: ScreenConfig) -> dict:
    from cleanlab.filter import find_label_issues

    t = time.perf_counter()
    res = screen_table(case.train, label_col=case.label, reference=None if mode == "none" else case.reference,
                       config=config)
    secs = time.perf_counter() - t
    truth = case.truth
    flagged = res.scores["flagged"].to_numpy()
    labels = np.asarray(case.train.column(case.label).to_pylist(), dtype=object)
    classes = np.array([str(c) for c in res.classes], dtype=object)
    y = np.searchsorted(classes, labels.astype(str))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = find_label_issues(y, res.cv_pred_probs)
    row = {"data": case.data, "case": case.case, "mode": mode, "seed": seed, "n": len(y),
           "n_ref": 0 if mode == "none" else case.reference.num_rows, "n_poison": int(truth.sum()),
           "probe_acc": res.summary["probe"]["cv_accuracy"], "secs": round(secs, 1),
           "flag_rate": float(flagged.mean()), "clean_flag_rate": float(flagged[~truth].mean()),
           "peer_clean": float(peer[~truth].mean())}
    if truth.any():
        tp = int((flagged & truth).sum())
        row["recall"] = tp / truth.sum()
        row["precision"] = tp / max(int(flagged.sum()), 1)
        row["F1"] = 2 * tp / max(int(flagged.sum()) + int(truth.sum()), 1)
        ptp = int((peer & truth).sum())
        row["peer_F1"] = 2 * ptp / max(int(peer.sum()) + int(truth.sum()), 1)
        Xtr, Xte, Xtrig = _encode_all(case, config)
        yte = np.asarray(case.test.column(case.label).to_pylist(), dtype=object).astype(str)
        ytr = labels.astype(str)
        tgt = str(case.target)
        acc_o, asr_o = _downstream(Xtr, ytr, ~truth, Xte, yte, Xtrig, tgt, seed)
        acc_f, asr_f = _downstream(Xtr, ytr, ~flagged, Xte, yte, Xtrig, tgt, seed)
        if Xtrig is not None:
            _, asr_0 = _downstream(Xtr, ytr, np.ones(len(ytr), bool), Xte, yte, Xtrig, tgt, seed)
            row.update({"ASR_before": asr_0, "ASR_after": asr_f, "ASR_oracle": asr_o})
        row["dAcc"] = 100 * (acc_f - acc_o)
    return row


def run(selection, seeds, config_for=lambda seed: ScreenConfig(seed=seed, threads=1), log=print):
    _memoise_text_embeddings()
    rows = []
    sources = {}
    for seed in seeds:
        for data, case, mode in selection:
            key = (data, seed)
            if key not in sources:
                sources[key] = M.load_source(data, seed)
            src = sources[key]
            if case not in src.cases:
                continue
            fc = M.build_case(src, case, seed)[mode]
            row = run_one(fc, mode, seed, config_for(seed))
            rows.append(row)
            log(_line(row))
    return pd.DataFrame(rows)


def _line(r: dict) -> str:
    out = f"  {r['data']}/{r['case']} [{r['mode']}] seed {r['seed']}: flagged {100 * r['flag_rate']:.1f}%"
    if r.get("recall") == r.get("recall") and "recall" in r:
        out += f", recall {r['recall']:.2f}, F1 {r['F1']:.2f} (peer {r['peer_F1']:.2f})"
    if r.get("ASR_after") == r.get("ASR_after") and "ASR_after" in r:
        out += (f", ASR {100 * r['ASR_before']:.0f}% -> {100 * r['ASR_after']:.0f}% "
                f"(oracle {100 * r['ASR_oracle']:.0f}%)")
    out += f", clean flagged {100 * r['clean_flag_rate']:.2f}% (peer {100 * r['peer_clean']:.2f}%), {r['secs']:.0f}s"
    return out


def selection_for(half: str, cases, modes):
    names = M.HELDOUT if half == "heldout" else M.TUNING if half == "tuning" else tuple(half.split(","))
    return [(d, c, m) for d in names for c in cases for m in modes]


def _gate_metrics(df: pd.DataFrame) -> dict:
    """{"data/case/mode": {metric: value}} for the gated metrics present."""
    out = {}
    for r in df.to_dict("records"):
        key = f"{r['data']}/{r['case']}/{r['mode']}"
        vals = {}
        if r["case"] == "clean":
            vals["clean_flag_rate"] = r["clean_flag_rate"]
        elif r["case"].startswith(("uniform", "pair")):
            vals["F1"] = r["F1"]
        else:
            vals["recall"] = r["recall"]
            if r.get("ASR_after") == r.get("ASR_after"):
                vals["ASR_after"] = r["ASR_after"]
        out.setdefault(key, []).append(vals)
    return out


def write_baseline(seeds):
    """Run the gate's subset on ``seeds``; store seed ``seeds[0]``'s figures (what the gate
    reruns) and, per metric, the spread over the seeds as its tolerance."""
    df = run(GATE, seeds)
    per = _gate_metrics(df)
    base = {"seed": seeds[0], "seeds_for_spread": seeds, "cases": {}}
    for key, runs in per.items():
        first = runs[0]
        entry = {}
        for metric, value in first.items():
            vals = [r[metric] for r in runs if metric in r]
            spread = float(max(vals) - min(vals)) if len(vals) > 1 else 0.0
            entry[metric] = {"value": float(value), "tolerance": max(spread, FLOORS[metric]),
                             "over_seeds": [float(v) for v in vals]}
        base["cases"][key] = entry
    BASELINE.parent.mkdir(parents=True, exist_ok=True)
    BASELINE.write_text(json.dumps(base, indent=1, sort_keys=True) + "\n")
    print(f"wrote {BASELINE.relative_to(HERE.parent)} ({len(base['cases'])} cases)")


def gate() -> int:
    base = json.loads(BASELINE.read_text())
    t = time.perf_counter()
    df = run(GATE, [base["seed"]])
    now = _gate_metrics(df)
    worse = []
    print("\nRegression gate (held-out subset, seed %d) against %s:" % (base["seed"], BASELINE.name))
    for key, entry in base["cases"].items():
        got = now.get(key, [{}])[0]
        for metric, b in entry.items():
            v = got.get(metric)
            if v is None:
                worse.append(f"{key} {metric}: not measured")
                continue
            delta = (v - b["value"]) if HIGHER_IS_BETTER[metric] else (b["value"] - v)
            bad = delta < -b["tolerance"] - 1e-9
            print(f"  {'WORSE' if bad else 'ok   '} {key} {metric}: {v:.3f} (baseline {b['value']:.3f}, "
                  f"tolerance {b['tolerance']:.3f})")
            if bad:
                worse.append(f"{key} {metric}: {v:.3f}, baseline {b['value']:.3f} +- {b['tolerance']:.3f}")
    print(f"gate ran in {time.perf_counter() - t:.0f}s")
    if worse:
        print("bench-check FAILED: detection got worse than the baseline beyond the spread over seeds:",
              *worse, sep="\n  ", file=sys.stderr)
        return 1
    print(f"bench-check passed: {sum(len(e) for e in base['cases'].values())} figures at or within tolerance")
    return 0


def summarise(df: pd.DataFrame) -> None:
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    cols = [c for c in ("data", "case", "mode", "seed", "n", "n_ref", "n_poison", "probe_acc", "flag_rate",
                        "clean_flag_rate", "peer_clean", "recall", "precision", "F1", "peer_F1", "ASR_before",
                        "ASR_after", "ASR_oracle", "dAcc", "secs") if c in df]
    print(df[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print("\nMeans over seeds (per data set, case, mode):")
    num = [c for c in ("clean_flag_rate", "peer_clean", "recall", "F1", "peer_F1", "ASR_after", "dAcc") if c in df]
    print(df.groupby(["data", "case", "mode"])[num].mean().to_string(float_format=lambda x: f"{x:.3f}"))
    print("\nScreening time per row (s per 1000 rows): "
          f"{1000 * (df.secs / df.n).median():.2f} median, {1000 * (df.secs / df.n).max():.2f} max")


def goal_rows(df: pd.DataFrame) -> list[tuple[str, str, bool]]:
    """(case, goal and value, met) for issue 25's goals, per row of the matrix."""
    out = []
    for r in df.to_dict("records"):
        name = f"{r['data']}/{r['case']} [{r['mode']}] seed {r['seed']}"
        ref = r["mode"] != "none"
        if r["case"] == "clean":
            limit = 0.005 if ref else 0.01
            out.append((name, f"clean flag rate {100 * r['clean_flag_rate']:.2f}% <= {100 * limit:.1f}%",
                        r["clean_flag_rate"] <= limit))
            continue
        if r["case"].startswith(("uniform", "pair")):
            if ref and r["probe_acc"] >= 0.9:
                out.append((name, f"flip F1 {r['F1']:.2f} >= 0.90", r["F1"] >= 0.9))
            else:
                out.append((name, f"flip F1 {r['F1']:.2f} >= cleanlab's {r['peer_F1']:.2f}",
                            r["F1"] >= r["peer_F1"] - 1e-9))
            continue
        rate = M._rate(r["case"])
        pixel_kind = r["case"].startswith(("blend", "trigger")) and r["data"] in PIXEL_SETS
        if rate >= 0.03 and (ref or pixel_kind):
            ok = r["recall"] >= 0.9 and r.get("ASR_after", 0) <= 0.05
            out.append((name, f"backdoor removed: recall {r['recall']:.2f} >= 0.90, attack success "
                              f"{100 * r.get('ASR_after', float('nan')):.0f}% <= 5%", ok))
        if r.get("dAcc") == r.get("dAcc") and "dAcc" in r:
            out.append((name, f"accuracy after removal {r['dAcc']:+.2f} points of oracle removal (>= -0.6)",
                        r["dAcc"] >= -0.6))
    return out


#: Data sets whose backdoors are pixel patches and blends (the no-reference goal covers these).
PIXEL_SETS = {"digits8", "digits28", "digits_image", "letters28", "letters_image"}


def print_goals(df: pd.DataFrame) -> None:
    rows = goal_rows(df)
    print("\nGoals (issue 25), per case:")
    for name, goal, met in rows:
        print(f"  {'met ' if met else 'MISS'}  {name}: {goal}")
    print(f"{sum(m for *_, m in rows)} of {len(rows)} checks met")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--half", default="heldout", help="heldout, tuning, or comma-separated data sets")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--quick", action="store_true", help="seed 0, cases clean, trigger-3%%, blend-3%%, "
                    "uniform-10%%, modes given and none")
    ap.add_argument("--cases", default="clean,trigger-1%,trigger-3%,blend-3%,clean-label-3%,uniform-10%,pair-15%")
    ap.add_argument("--modes", default="given,chain,none")
    ap.add_argument("--out", default=None, help="write the rows as JSON lines here")
    ap.add_argument("--gate", action="store_true", help="the CI regression gate (see above)")
    ap.add_argument("--write-baseline", action="store_true", help="with --gate: rewrite the baseline")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.quick:
        args.seeds, args.cases, args.modes = "0", "clean,trigger-3%,blend-3%,uniform-10%", "given,none"
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.gate:
        if args.write_baseline:
            write_baseline(seeds if len(seeds) > 1 else [0, 1, 2])
            return 0
        return gate()
    df = run(selection_for(args.half, args.cases.split(","), args.modes.split(",")), seeds)
    if args.out:
        df.to_json(args.out, orient="records", lines=True)
    summarise(df)
    print_goals(df)
    return 0


if __name__ == "__main__":
    sys.exit(main())
