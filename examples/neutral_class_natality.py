"""Neutral Class (pattern 9) on natality: low birth weight with a neutral band around 5.5 lb.

"Low birth weight" is a cut of a continuous weight at 5.5 lb; a baby of 5.4 lb and
one of 5.6 lb are almost alike, yet carry opposite labels. Predict low birth weight
from is_male, mother_age, gestation_weeks, plurality and mother_race, three ways,
all with the same gradient-boosted trees:

* binary: every birth labelled low (< 5.5 lb) or not, every prediction decided;
* neutral class: births inside a band (say 4.5-6.5 lb) labelled neutral, a
  three-class model trained and served; neutral predictions are left undecided;
* binary + abstention: the binary model, undecided on its least confident
  predictions, as many as the neutral-class model leaves undecided (the fair
  comparison: the same coverage).

Precision is measured against the binary label (< 5.5 lb) on a test fifth of the
births chosen by a hash of ``row_id``. Run:
``.venv/bin/python examples/neutral_class_natality.py [n_births]`` (all by default).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from mlpatterns.datasets import load_natality
from mlpatterns.problem.neutral_class import NeutralClassClassifier, decisive_report
from mlpatterns.reproducibility import hash_split

CUT = 5.5
BANDS = [(5.0, 6.0), (4.5, 6.5), (4.0, 7.0)]


def features(births: pd.DataFrame) -> np.ndarray:
    return pd.DataFrame({
        "is_male": births["is_male"].astype(float),
        "mother_age": births["mother_age"],
        "gestation_weeks": births["gestation_weeks"],
        "plurality": births["plurality"].astype("category").cat.codes,
        "mother_race": births["mother_race"],
    }).to_numpy(dtype=float)


def abstain_least_confident(model, X: np.ndarray, share: float) -> np.ndarray:
    """The binary model's predictions, set to 0 (undecided) on its least confident ``share``."""
    predicted = model.predict(X).copy()
    margin = np.abs(model.predict_proba(X)[:, 0] - 0.5)
    predicted[np.argsort(margin, kind="stable")[: int(round(share * len(X)))]] = 0
    return predicted


def row(name: str, report: dict) -> str:
    return (f"  {name:<28}{report['precision'].get(-1, float('nan')):>8.3f}"
            f"{report['precision'].get(1, float('nan')):>9.3f}{report['accuracy']:>10.3f}"
            f"{report['undecided_share']:>11.3f}")


def main(n_births: int | None = None) -> None:
    started = time.perf_counter()
    births = load_natality()
    if n_births:
        births = births.head(n_births)
    split = hash_split(births, "row_id", {"train": 0.8, "test": 0.2}).to_numpy()
    train, test = split == "train", split == "test"
    X, weight = features(births), births["weight_pounds"].to_numpy()
    truth = np.where(weight < CUT, -1, 1)  # -1: low birth weight
    print(f"natality: {train.sum():,} training and {test.sum():,} test births, "
          f"{np.mean(truth == -1):.1%} below {CUT} lb")
    trees = lambda: HistGradientBoostingClassifier(max_iter=100, random_state=0)  # noqa: E731
    binary = NeutralClassClassifier(trees()).fit(X[train], truth[train])
    print("\n  model                       prec low  prec not  accuracy  undecided")
    print(row("binary", decisive_report(truth[test], binary.predict(X[test]))))
    for band in BANDS:
        neutral = NeutralClassClassifier(trees(), band=band).fit(X[train], weight[train])
        report = decisive_report(truth[test], neutral.predict(X[test]))
        abstained = abstain_least_confident(binary, X[test], report["undecided_share"])
        print(f"\n  band {band[0]}-{band[1]} lb: {neutral.neutral_share_:.1%} of training "
              f"births neutral")
        print(row("neutral class", report))
        print(row("binary + abstention", decisive_report(truth[test], abstained)))
    print(f"\ndone in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
