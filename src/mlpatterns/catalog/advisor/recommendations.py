"""Which patterns a data set calls for, and why: the advisor's plan for a starting spec.

Problem: knowing the 30 patterns does not say which of them a given table needs. The
profile (:mod:`~mlpatterns.catalog.advisor.profiling`) and the leak tests
(:mod:`~mlpatterns.catalog.advisor.leakage`) hold the facts; this module turns them into
decisions, each with the pattern (number and name, from the catalogue) and the figures
that chose it:

- Repeatable Splitting (22): in time order when there is a time column, else by the hash
  of a row id, else by the hash of the row's own values;
- Transform (21): numbers, categories with a vocabulary (at most 1,000 values) or hashed
  (more: Hashed Feature, 1), calendar parts of time columns, text through a pretrained
  encoder (Transfer Learning, 13; Multimodal Input, 4);
- the model: gradient boosting, with a wide-and-deep network (Embeddings, 2) only when
  hashed high-cardinality columns and at least 50,000 rows give embeddings something to
  learn; Rebalancing (10) by moving the threshold when the minority class is under 30 %;
- Heuristic Benchmark (28): the two low-cardinality columns (categories, or whole numbers
  with at most 50 values) that predict the target best alone, as the lookup's segments;
- what is left out and why (leaks, ids, constants, copies, image paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlpatterns.catalog.advisor.leakage import LeakReport
from mlpatterns.catalog.advisor.profiling import (
    HIGH_CARDINALITY,
    UNSEEN_LATER_SHARE,
    ColumnProfile,
    TableProfile,
)

__all__ = ["BASELINE_MAX_DISTINCT", "IMBALANCED", "NETWORK_MIN_ROWS", "Entry", "Plan", "Recommendation",
           "pattern_label", "plan_spec",
           "split_time_column"]

IMBALANCED = 0.3  # a minority share below this: move the threshold (Rebalancing, 10)
VERY_IMBALANCED = 0.05  # below this: say that resampling or class weights may be needed too
NETWORK_MIN_ROWS = 50_000  # a wide-and-deep network only with this many rows and a hashed column
BASELINE_MAX_DISTINCT = 50  # segment columns of the heuristic benchmark: at most this many values
TEXT_ENCODER = "all-MiniLM-L6-v2"


def pattern_label(number: int) -> str:
    """``"Hashed Feature (1)"``: the catalogue's name of pattern ``number`` and its number."""
    from mlpatterns.catalog import get_pattern

    return f"{get_pattern(number).name} ({number})"


@dataclass(frozen=True)
class Recommendation:
    """A pattern the data calls for: its number, why (with the profile's figures), where it is in the spec."""

    number: int
    why: str
    where: str  # the spec field, or "not in the spec" with what to do instead

    @property
    def label(self) -> str:
        return pattern_label(self.number)


@dataclass(frozen=True)
class Entry:
    """One spec choice: the column (or section), its value and the comment that explains it."""

    name: str
    value: Any
    comment: str


@dataclass
class Plan:
    """Every choice of the starting spec, with its reason, and the recommendations behind them."""

    target: dict[str, Any]
    target_comment: str
    split: dict[str, Any]
    split_comment: str
    keys: list[str]
    keys_comment: str
    numeric: list[Entry] = field(default_factory=list)
    categorical: list[Entry] = field(default_factory=list)
    date_parts: list[Entry] = field(default_factory=list)
    text: list[Entry] = field(default_factory=list)
    models: list[Entry] = field(default_factory=list)
    baseline: Entry | None = None
    left_out: list[Entry] = field(default_factory=list)  # value: the rule (leak, id, constant, ...)
    recommendations: list[Recommendation] = field(default_factory=list)


def _count(n: float) -> str:
    return f"{n:,}"


def _target(profile: TableProfile, plan_recommend: list[Recommendation]) -> tuple[dict[str, Any], str]:
    target = profile.target
    section: dict[str, Any] = {"column": target.name}
    if target.positive_when is not None:
        (condition, number), = target.positive_when.items()
        section["positive_when"] = {condition: number}
        comment = (f"a value read as a class: positive when {condition.replace('_', ' ')} {number:g}; "
                   f"{target.minority_share:.1%} of the {_count(target.rows)} profiled rows with a value are the "
                   "minority class")
        plan_recommend.append(Recommendation(5, f"the numeric target becomes a binary class "
                                             f"({condition} {number:g})", "target.positive_when"))
    elif target.task == "classification":
        section["task"] = "classification"
        comment = (f"two labels {target.classes} (the second is positive); minority share "
                   f"{target.minority_share:.1%} of {_count(target.rows)} rows")
    elif target.task == "multiclass":
        section["task"] = "multiclass"
        comment = f"{len(target.classes)} classes; the rarest holds {target.minority_share:.1%} of the rows"
    else:
        section["task"] = "regression"
        comment = f"a value (skewness {target.skewness:+.2f})"
        if target.skewness is not None and abs(target.skewness) > 1.0:
            plan_recommend.append(Recommendation(5, f"the target is skewed (skewness {target.skewness:+.2f}): "
                                                 "a distribution over buckets gives quantiles and intervals",
                                                 "not written: add target.reframe: {buckets: 20} to try it"))
    if target.missing:
        comment += f"; {_count(target.missing)} rows without a target are dropped"
    if target.minority_share is not None and target.task == "classification" and target.minority_share < IMBALANCED:
        extra = (" (very rare: also try models.<m>.rebalance)" if target.minority_share < VERY_IMBALANCED else "")
        plan_recommend.append(Recommendation(10, f"the minority class is {target.minority_share:.1%} of the rows: "
                                             f"ROC AUC and PR AUC, a threshold at the best F1{extra}",
                                             "models.gradient_boosting.threshold"))
    return section, comment


def split_time_column(profile: TableProfile) -> ColumnProfile | None:
    """The time column the split orders by: the one with the most distinct times (fewest missing on a tie)."""
    times = sorted(profile.of_kind("time"), key=lambda c: (-c.distinct, c.missing_share))
    return times[0] if times else None


def _split(profile: TableProfile, features: list[str], recommend: list[Recommendation]
           ) -> tuple[dict[str, Any], str, list[str], str]:
    times = [split_time_column(profile)] if profile.of_kind("time") else []
    ids = sorted(profile.of_kind("id"), key=lambda c: (c.missing_share, -c.distinct))
    keys = [c.name for c in ids[:1]]
    keys_comment = (f"Keyed Predictions (20): {keys[0]} is unique per row, passed through to every prediction"
                    if keys else "no column identifies a row: predictions are numbered")
    if keys:
        recommend.append(Recommendation(20, f"{keys[0]} identifies each row ({ids[0].facts['distinct_share']:.0%} "
                                        "distinct)", "keys"))
    if times:
        column = times[0]
        split: dict[str, Any] = {"by": "time", "column": column.name}
        if column.missing_share:
            split["nulls"] = "exclude"
        comment = (f"{pattern_label(22)}: {column.name} holds times from {column.facts['first'][:10]} to "
                   f"{column.facts['last'][:10]} ({_count(column.distinct)} distinct): train on the past, "
                   "test on the latest 10 %, as the model will be used")
        recommend.append(Recommendation(22, f"a time column ({column.name}): a split in time order, since "
                                        "neighbouring times are correlated", "split.by: time"))
        return split, comment, keys, keys_comment
    if keys:
        split = {"key": keys[0]}
        comment = f"{pattern_label(22)}: by the hash of the row id {keys[0]}, the same split in every run"
        recommend.append(Recommendation(22, f"no time column; the hash of {keys[0]} splits repeatably", "split.key"))
        return split, comment, keys, keys_comment
    whole = [name for name in features if profile.columns[name].missing_share == 0] or features
    split = {"key": whole, "separator": "|"}
    if whole is features and any(profile.columns[n].missing_share for n in whole):
        split["nulls"] = "exclude"
    comment = (f"{pattern_label(22)}: no time or id column, so the hash of the row's own values: identical rows "
               "share a split, so a duplicate is never in both train and test")
    recommend.append(Recommendation(22, "no time or id column: the hash of the row's values splits repeatably",
                                    "split.key"))
    return split, comment, keys, keys_comment


def _date_parts(column: ColumnProfile, time_split: bool) -> list[str]:
    """Hour (for times), day of week, and month where the past holds every month (a span of two years, or no
    split in time order)."""
    import pandas as pd

    span = (pd.Timestamp(column.facts["last"]) - pd.Timestamp(column.facts["first"])).days
    parts = ["dayofweek"]
    if not time_split or span >= 2 * 365:
        parts.append("month")
    if column.facts.get("resolution") == "time":
        parts.insert(0, "hour")
    return parts


def plan_spec(profile: TableProfile, leaks: LeakReport) -> Plan:
    """Decide every field of the starting spec from the profile and the leak tests.

    Parameters
    ----------
    profile : TableProfile
    leaks : LeakReport

    Returns
    -------
    Plan
        The choices, each with its comment, and the recommended patterns.
    """
    from mlpatterns.reproducibility.categorical_encoding import auto_bucket_count

    recommend: list[Recommendation] = []
    target, target_comment = _target(profile, recommend)
    leaked = {leak.column: leak for leak in leaks.leaks}
    left_out: list[Entry] = [Entry(leak.column, f"leak ({leak.rule})", leak.reason) for leak in leaks.leaks]
    numeric, categorical, date_parts, text = [], [], [], []
    hashed = []
    time_split = bool(profile.of_kind("time"))
    for name, column in profile.columns.items():
        if name in leaked:
            continue
        if column.facts.get("unseen_later_share", 0.0) > UNSEEN_LATER_SHARE:
            left_out.append(Entry(name, "unseen later", f"{column.facts['unseen_later_share']:.0%} of the latest "
                                  "20 % of rows (in time order) hold values that never occur before: a period code "
                                  "that a model trained on the past cannot use"))
            continue
        missing = f", {column.missing_share:.1%} missing" if column.missing_share else ""
        if column.kind == "numeric":
            numeric.append(Entry(name, name, f"{_count(column.distinct)} values, skewness "
                                 f"{column.facts['skewness']:+.2f}{missing}"))
        elif column.kind in ("categorical", "boolean") and column.distinct > HIGH_CARDINALITY:
            buckets = auto_bucket_count(column.distinct)
            hashed.append(name)
            categorical.append(Entry(name, {"encoding": "hash", "buckets": buckets},
                                     f"{_count(column.distinct)} distinct values -> {pattern_label(1)}, "
                                     f"{_count(buckets)} buckets (about 6-12 % of values share one){missing}"))
        elif column.kind in ("categorical", "boolean"):
            what = "codes" if column.facts.get("codes") else "values"
            categorical.append(Entry(name, {"encoding": "vocabulary"},
                                     f"{column.distinct} {what} -> a vocabulary from the train split{missing}"))
        elif column.kind == "time":
            date_parts.append(Entry(name, _date_parts(column, time_split),
                                    f"a {column.facts['resolution']} column: its calendar parts as categories"
                                    f"{missing}"))
        elif column.kind == "text":
            text.append(Entry(name, {"encoder": TEXT_ENCODER}, f"free text, {column.facts['mean_words']} words on "
                              f"average -> {pattern_label(13)}: a frozen sentence encoder (mlpatterns[text])"))
        elif column.kind == "image":
            left_out.append(Entry(name, "image paths", f"image files ({column.facts['image_files_found']} found): "
                                  f"no spec feature reads images yet; {pattern_label(4)} and {pattern_label(13)} "
                                  "in Python (examples/transfer_learning_images.py)"))
        elif column.kind == "id":
            left_out.append(Entry(name, "id", f"unique per row ({column.facts['distinct_share']:.0%} distinct): "
                                  "a key, not a feature"))
        elif column.kind == "constant":
            left_out.append(Entry(name, "constant", "a single value: nothing to learn from"))
        elif column.kind == "duplicate":
            left_out.append(Entry(name, "duplicate", f"the same values as {column.facts['same_as']}"))
    features = [e.name for e in numeric + categorical + date_parts + text]
    if not features:
        raise ValueError("no usable feature column is left once ids, constants, copies and leaks are left out: "
                         + "; ".join(f"{e.name}: {e.value}" for e in left_out))
    split, split_comment, keys, keys_comment = _split(profile, features, recommend)
    recommend.append(Recommendation(21, f"{len(features)} features declared once, fitted on the train split "
                                    "only, applied again in serving", "features"))
    if hashed:
        recommend.append(Recommendation(1, ", ".join(f"{n}: {_count(profile.columns[n].distinct)} values"
                                                     for n in hashed), "features.categorical.<column>.buckets"))
    if text:
        recommend.append(Recommendation(13, f"free text in {', '.join(e.name for e in text)}: a pretrained encoder",
                                        "features.text"))
        if len(features) > len(text):
            recommend.append(Recommendation(4, "text and tabular columns in one model", "features"))
    for entry in left_out:
        if entry.value == "image paths":
            recommend.append(Recommendation(4, f"{entry.name} names image files", "not in the spec: Python API"))
    models = _models(profile, target, hashed, recommend)
    baseline = _baseline(profile, leaks, leaked, recommend)
    return Plan(target=target, target_comment=target_comment, split=split, split_comment=split_comment, keys=keys,
                keys_comment=keys_comment, numeric=numeric, categorical=categorical, date_parts=date_parts,
                text=text, models=models, baseline=baseline, left_out=left_out,
                recommendations=sorted(recommend, key=lambda r: r.number))


def _models(profile: TableProfile, target: dict[str, Any], hashed: list[str],
            recommend: list[Recommendation]) -> list[Entry]:
    boosting: dict[str, Any] = {"type": "gradient_boosting"}
    comment = ("gradient-boosted trees with scikit-learn's defaults, early stopping on the valid split above "
               "10,000 training rows, then a refit on train + valid")
    share = profile.target.minority_share
    if profile.target.task == "classification" and share is not None and share < IMBALANCED:
        boosting["threshold"] = {"strategy": "f1"}
        comment += f"; {pattern_label(10)}: the minority class is {share:.1%}, so the cut-off is the best F1 on valid"
    models = [Entry("gradient_boosting", boosting, comment)]
    if hashed and profile.target.rows >= NETWORK_MIN_ROWS:
        models.append(Entry("wide_and_deep", {"type": "wide_and_deep"},
                            f"{pattern_label(2)}: {', '.join(hashed)} hashed into many buckets and "
                            f"{_count(profile.target.rows)} rows: learned vectors per value, compared with the trees"))
        recommend.append(Recommendation(2, f"high-cardinality {', '.join(hashed)} with "
                                        f"{_count(profile.target.rows)} rows", "models.wide_and_deep"))
    return models


def _baseline(profile: TableProfile, leaks: LeakReport, leaked: dict[str, Any],
              recommend: list[Recommendation]) -> Entry | None:
    candidates = [c.name for c in profile.of_kind("categorical", "boolean", "numeric")
                  if c.name not in leaked and c.distinct <= BASELINE_MAX_DISTINCT
                  and (c.kind != "numeric" or c.facts.get("whole"))
                  and c.facts.get("unseen_later_share", 0.0) <= UNSEEN_LATER_SHARE
                  and leaks.scores.get(c.name, float("nan")) == leaks.scores.get(c.name)]  # NaN-free
    ranked = sorted(candidates, key=lambda n: -leaks.scores[n])[:2]
    if not ranked:
        return None
    levels = [ranked, ranked[:1]] if len(ranked) == 2 else [ranked]
    scores = ", ".join(f"{n} {leaks.scores[n]:.3f}" for n in ranked)
    recommend.append(Recommendation(28, f"a lookup by {' and '.join(ranked)}, the segments that predict the "
                                    f"target best alone ({leaks.metric}: {scores})", "baseline.levels"))
    return Entry("baseline", {"levels": levels, "min_count": 20},
                 f"{pattern_label(28)}: the target's mean per segment of the columns that predict it best "
                 f"alone (held-out {leaks.metric}: {scores}); every model is compared with it")
