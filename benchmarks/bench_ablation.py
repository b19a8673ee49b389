"""Ablation of the verdict on held-out cases (issue 25, part 5): each component removed in
turn, the same cases, seed and configuration otherwise.

    python benchmarks/bench_ablation.py [--seed 0] [--only NAME,...]

Components (with a trusted reference, the reference-calibrated rule):
  row_fdr         Benjamini-Hochberg on tail-refined p-values within each class, replaced
                  by the per-row level (VerdictConfig.row_fdr = None)
  class_excess    the class-excess test (no class ever "fires": no excess flags, no
                  lowered level inside a class, no expansion)
  trigger_contrast the two trigger-contrast statistics (the label margin alone)
  expansion       the trigger expansion (VerdictConfig.expansion_level = 0)
  self_training   the reference-anchored probe's self-training rounds (0 rounds)
  admit_contrast  self-training's contrast admission (admit_contrast_quantile = 0)
  noise_floor     the label-noise floor and its cleanlab fallback
                  (VerdictConfig.noise_floor_level = 0)
  cleanlab_fallback the fallback alone (the floor's fill kept)
  attack_screens  part 6: the reference-free backdoor screen's groups added with a
                  reference (VerdictConfig.attack_screens = False)
Without a reference:
  backdoor_screen the reference-free backdoor screen's flags (cleanlab's alone)

Each removal is run in a fresh interpreter state (the patch is undone afterwards).
A component whose removal costs nothing on any case is a candidate to go.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_matrix as B  # noqa: E402

from screening import ScreenConfig  # noqa: E402

#: Held-out cases where the verdict flags something with a reference (an ablation of a
#: rule that flags nothing shows nothing).
WITH_REFERENCE = [("letters28", c, "given") for c in ("clean", "trigger-3%", "blend-3%", "uniform-10%")] + \
    [("penguins", c, "given") for c in ("trigger-3%", "uniform-10%")] + [("churn_mixed", "uniform-10%", "given")]
WITHOUT_REFERENCE = [("letters28", c, "none") for c in ("clean", "trigger-3%", "blend-3%", "uniform-10%")] + \
    [("credit_mixed", c, "none") for c in ("clean", "trigger-3%")]


def _verdict(**kw):
    return lambda seed: dataclasses.replace(ScreenConfig(seed=seed, threads=1),
                                            verdict=dataclasses.replace(ScreenConfig().verdict, **kw))


def _config(**kw):
    return lambda seed: ScreenConfig(seed=seed, threads=1, **kw)


@contextlib.contextmanager
def _patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _no_class_excess():
    import numpy as np

    from screening.verdict import rules

    return _patched(rules, "class_excess", lambda p, *a, **k: (np.zeros(len(p), dtype=bool), []))


def _label_margin_only():
    from screening.verdict import rules

    original = rules._statistics
    return _patched(rules, "_statistics", lambda *a, **k: original(*a, **k)[:1])


def _no_cleanlab_fallback():
    from screening.verdict import rules

    return _patched(rules, "cleanlab_fallback", lambda *a, **k: (None, {"used": False}))


def _no_backdoor_screen():
    import screening.verdict as V

    original = V.decide

    def decide(config, *, screen_flags=None, **kw):
        if screen_flags is not None:
            screen_flags = {k: v for k, v in screen_flags.items() if k != "backdoor"}
        return original(config, screen_flags=screen_flags, **kw)
    return _patched(V, "decide", decide)


ABLATIONS = {
    "row_fdr": (WITH_REFERENCE, _verdict(row_fdr=None), contextlib.nullcontext),
    "class_excess": (WITH_REFERENCE, _config(), _no_class_excess),
    "trigger_contrast": (WITH_REFERENCE, _config(), _label_margin_only),
    "expansion": (WITH_REFERENCE, _verdict(expansion_level=0.0), contextlib.nullcontext),
    "self_training": (WITH_REFERENCE, _config(self_training_rounds=0), contextlib.nullcontext),
    "admit_contrast": (WITH_REFERENCE, _config(admit_contrast_quantile=0.0), contextlib.nullcontext),
    "noise_floor": (WITH_REFERENCE, _verdict(noise_floor_level=0.0), contextlib.nullcontext),
    "cleanlab_fallback": (WITH_REFERENCE, _config(), _no_cleanlab_fallback),
    "backdoor_screen": (WITHOUT_REFERENCE, _config(), _no_backdoor_screen),
    "attack_screens": (WITH_REFERENCE, _verdict(attack_screens=False), contextlib.nullcontext),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma-separated components")
    args = ap.parse_args(argv)
    wanted = list(ABLATIONS) if args.only is None else args.only.split(",")
    rows = []
    full = B.run(sorted(set(WITH_REFERENCE + WITHOUT_REFERENCE)), [args.seed])
    full["removed"] = "nothing"
    rows.append(full)
    for name in wanted:
        selection, config_for, patch = ABLATIONS[name]
        print(f"== without {name}", flush=True)
        with patch():
            df = B.run(selection, [args.seed], config_for=config_for)
        df["removed"] = name
        rows.append(df)
    df = pd.concat(rows, ignore_index=True)
    metric = df.apply(_headline, axis=1)
    df["figure"] = metric
    table = df.pivot_table(index=["data", "case", "mode"], columns="removed", values="figure", aggfunc="first")
    pd.set_option("display.width", 250)
    print("\nAblation (recall / attack success after removal for backdoors, F1 for flips, clean flag "
          "rate for clean tables; columns: the component removed):")
    print(table.to_string())


def _headline(r) -> str:
    if r["case"] == "clean":
        return f"{100 * r['clean_flag_rate']:.2f}%"
    if r["case"].startswith(("uniform", "pair")):
        return f"F1 {r['F1']:.2f}"
    asr = r.get("ASR_after")
    return f"{r['recall']:.2f}/{100 * asr:.0f}%" if asr == asr else f"{r['recall']:.2f}"


if __name__ == "__main__":
    main()
