"""Feature and prediction drift per time window: the data half of Continued Model Evaluation (18).

Problem: labels arrive late (a day for a flight, months for a loan), but the inputs a
model serves change at once: a new destination, a delay distribution that widens, a
column that stops arriving. Watching only the metric notices that a day after it hurt.

Solution: compare every window of served inputs, and of the predictions, with the
statistics the bundle carries: ``statistics.json`` (the raw columns of the training
data, :class:`~mlpatterns.reproducibility.data_statistics.DataStatistics`) and
``prediction_statistics.json`` (the bundle's outputs on its test split). DuckDB extracts
the columns from the logged ``inputs`` JSON and counts them per window on the
reference's own histogram edges and category lists (``GROUP BY window, value``), so
only the counts reach Python; each window then becomes a ``DataStatistics`` in the same
format (:func:`window_statistics`), compared with the reference by the functions of
:mod:`mlpatterns.reproducibility.data_validation`.

Per window and column (:func:`drift_windows`):

- ``psi``: population stability index on the reference's bins (numbers: its inner
  histogram edges, open at both ends; categories: its listed values and "other"), by
  :func:`~mlpatterns.reproducibility.data_validation.population_stability_index`;
- ``js``: Jensen-Shannon distance (base 2) on the same bins;
- ``ks`` (numbers): the largest gap between the reference's and the window's cumulative
  shares at the reference's histogram edges (its min, deciles and max). Both CDFs are
  exact at those edges, so this is exact there and a *lower bound* of the two-sample
  Kolmogorov-Smirnov statistic of the raw values (the supremum may fall between edges);
- ``chi_square`` (categories): Pearson's statistic of the window's counts against the
  reference's shares (what ``scipy.stats.chisquare`` computes, here by its formula: the
  scipy call costs a millisecond each), divided by the window's count (Cramér's phi squared:
  the same shift gives the same number at any size; a category the reference lacks is
  given the share 1e-4, as PSI does, so it stays finite);
- ``missing_share``, ``out_of_range_share`` (numbers outside the reference's [min, max],
  exact) and ``unseen_share`` (categories outside the reference's domain; NaN when the
  reference's list was truncated), the latter two from
  :func:`~mlpatterns.reproducibility.data_validation.validate`.

Thresholds belong on these statistics, never on p-values: with thousands of rows every
p-value is about 0. :func:`explain_drift` ranks the columns of a window and says in a
sentence what changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.reproducibility.data_statistics import (
    QUANTILE_LEVELS,
    CategoryCounts,
    ColumnStatistics,
    DataStatistics,
    NumericSummary,
)
from mlpatterns.reproducibility.data_validation import (
    PSI_EPSILON,
    aligned_counts,
    jensen_shannon_distance,
    population_stability_index,
    validate,
)
from mlpatterns.serving.continued_evaluation.evaluation_windows import (
    as_utc_naive,
    json_path,
    parse_window,
    windowed_predictions_sql,
)

__all__ = ["DRIFT_STATISTICS", "drift_windows", "explain_drift", "window_statistics"]

DRIFT_STATISTICS = ("psi", "js", "ks", "chi_square", "missing_share", "out_of_range_share", "unseen_share")
PREDICTION_COLUMNS = ("prediction", "predicted_label")  # the log's own columns, compared with prediction_statistics
_NUMERIC = ("integer", "float")
_CATEGORICAL = ("categorical", "boolean")


def _text_of(value: Any) -> str:
    """How a category value looks once DuckDB's json_extract_string reads it from the inputs JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def _columns(con: Any, reference: DataStatistics, columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        columns = [columns] if isinstance(columns, str) else list(columns)
        unknown = [c for c in columns if c not in reference.columns]
        if unknown:
            raise KeyError(f"columns {unknown} have no training statistics; the reference has {list(reference.columns)}")
        return columns
    # every reference column that the logged inputs carry (the target and dropped columns are not served)
    keys = {row[0] for row in con.execute(
        "SELECT DISTINCT unnest(json_keys(inputs)) FROM (SELECT inputs FROM predictions LIMIT 2000)").fetchall()}
    return [name for name in reference.columns if name in keys
            and reference.columns[name].kind in (*_NUMERIC, *_CATEGORICAL)]


def window_statistics(con: Any, reference: DataStatistics, *, prediction_reference: DataStatistics | None = None,
                      window: str | timedelta = "1d", step: str | timedelta | None = None,
                      columns: Sequence[str] | None = None, model: str | None = None, version: str | None = None,
                      since: Any = None, until: Any = None) -> list[tuple[pd.Timestamp, DataStatistics]]:
    """Each window's :class:`DataStatistics` of the logged inputs (and predictions), binned like ``reference``.

    Numbers are counted on the reference's histogram edges (so counts compare exactly) with the
    window's min, max, mean and standard deviation (exact), its quantiles (approximate: DuckDB's
    ``approx_quantile``, a t-digest; exact ones cost twice the whole query at 10 M rows) and its
    distinct count (approximate, HyperLogLog); categories list every value the reference lists and
    every value the window holds. Values that are not numbers in a
    numeric column count as missing. Arguments as in :func:`drift_windows`.
    """
    window_td = parse_window(window)
    step_td = window_td if step is None else parse_window(step, name="step")
    names = _columns(con, reference, columns)
    refs = {name: reference.columns[name] for name in names}
    outputs = {}
    if prediction_reference is not None:
        outputs = {n: c for n, c in prediction_reference.columns.items() if n in PREDICTION_COLUMNS}
        clash = set(outputs) & set(refs)
        if clash:
            raise ValueError(f"input columns {sorted(clash)} are named like the log's prediction columns")
    kinds = [col.kind for col in refs.values()]
    # numbers are read once, here (the CTE this feeds is materialized): as text only whether they are there
    texts = [f"p.__v[{i + 1}] IS NOT NULL AS has{i}, nullif(try_cast(p.__v[{i + 1}] AS DOUBLE), 'NaN'::DOUBLE) AS x{i}"
             if kind in _NUMERIC else f"p.__v[{i + 1}] AS t{i}" for i, kind in enumerate(kinds)]
    texts += [f"p.{name} IS NOT NULL AS has{len(names) + i}, nullif(p.{name}, 'NaN'::DOUBLE) AS x{len(names) + i}"
              if col.kind in _NUMERIC else f"p.{name}::VARCHAR AS t{len(names) + i}"
              for i, (name, col) in enumerate(outputs.items())]
    everything = {**refs, **outputs}
    paths = ", ".join(json_path(name, "columns") for name in names)
    filters = [f"{field} = '{value.replace(chr(39), chr(39) * 2)}'"
               for field, value in (("model", model), ("version", version)) if value is not None]
    source = (f"(SELECT *, json_extract_string(inputs, [{paths}]) AS __v FROM predictions"
              + (f" WHERE {' AND '.join(filters)}" if filters else "") + ")") if names else \
        (f"(SELECT * FROM predictions WHERE {' AND '.join(filters)})" if filters else "predictions")
    rows_sql, params = windowed_predictions_sql(", ".join(texts) or "1 AS t_none", window=window_td, step=step_td,
                                                since=as_utc_naive(since, "since"), until=as_utc_naive(until, "until"),
                                                source=source)
    numeric = [(i, name, col) for i, (name, col) in enumerate(everything.items()) if col.kind in _NUMERIC]
    categorical = [(i, name, col) for i, (name, col) in enumerate(everything.items()) if col.kind in _CATEGORICAL]
    wide = ["count(*) AS n"]
    wide += [f"count(*) FILTER (has{i}) AS present{i}" for i, _, _ in numeric]
    wide += [f"count(t{i}) AS present{i}" for i, _, _ in categorical]
    casts, counted = [], []
    for i, _, col in numeric:
        x = f"x{i}"
        finite = f"FILTER (isfinite({x}))"
        wide += [f"count(*) FILTER (has{i} AND {x} IS NULL) AS invalid{i}",
                 f"count(*) FILTER (isinf({x})) AS inf{i}", f"min({x}) {finite} AS min{i}",
                 f"max({x}) {finite} AS max{i}", f"avg({x}) {finite} AS mean{i}", f"stddev_pop({x}) {finite} AS std{i}",
                 f"approx_quantile({x}, {list(QUANTILE_LEVELS)}) {finite} AS q{i}",
                 f"approx_count_distinct({x}) AS distinct{i}"]
        edges = col.numeric.edges if col.numeric is not None else ()
        if edges:  # the reference's histogram: 0 below edges[0], 1 [e0, e1], k (e[k-1], e[k]], len(edges) above
            steps = " ".join(f"WHEN {x} <= {edge!r} THEN {k}" for k, edge in enumerate(edges[1:], start=1))
            casts.append(f"CASE WHEN {x} IS NULL OR NOT isfinite({x}) THEN NULL WHEN {x} < {edges[0]!r} THEN 0 {steps} "
                         f"ELSE {len(edges)} END AS bin{i}")
            counted.append(f"SELECT window_start, {i} AS c, bin{i}::VARCHAR AS value, count(*) AS cnt FROM __x "
                           f"WHERE bin{i} IS NOT NULL GROUP BY window_start, bin{i}")
    # one GROUP BY per column and window (measured faster than unnesting them into one long table, and than a
    # count(*) FILTER per bin); categories counted by their text, numbers by their bin in the reference's histogram
    counted += [f"SELECT window_start, {i} AS c, t{i} AS value, count(*) AS cnt FROM __rows "
                f"WHERE t{i} IS NOT NULL GROUP BY window_start, t{i}" for i, _, _ in categorical]
    # one pass over the log: the inputs JSON is parsed once, into __rows, which the aggregations read
    sql = (f"WITH __rows AS MATERIALIZED ({rows_sql}), "
           f"__x AS (SELECT *{''.join(', ' + c for c in casts)} FROM __rows), "
           f"__summary AS (SELECT window_start, {', '.join(wide)} FROM __x GROUP BY window_start)")
    if counted:
        sql += (f", __values AS ({' UNION ALL '.join(counted)}), "
                "__lists AS (SELECT window_start, list(struct_pack(c, value, cnt) ORDER BY c, value) AS counts FROM __values "
                "GROUP BY window_start) "
                "SELECT s.*, l.counts FROM __summary s LEFT JOIN __lists l USING (window_start)")
    else:
        sql += " SELECT *, NULL AS counts FROM __summary"
    summary = con.execute(f"{sql} ORDER BY window_start", params).df()
    texts_of = {i: {_text_of(value): value for value, _ in (col.categories.values if col.categories else ())}
                for i, _, col in categorical}
    result = []
    for _, row in summary.iterrows():
        start, n = row["window_start"], int(row["n"])
        cols: dict[str, ColumnStatistics] = {}
        listed: dict[int, dict[str, int]] = {i: {} for i, _, _ in [*numeric, *categorical]}
        for item in row["counts"] if isinstance(row["counts"], (list, np.ndarray)) else ():
            listed[int(item["c"])][item["value"]] = int(item["cnt"])
        for i, name, col in numeric:
            cols[name] = _numeric_window(row, i, n, col, listed[i])
        for i, name, col in categorical:
            cols[name] = _categorical_window(listed[i], int(row[f"present{i}"]), n, col, texts_of[i])
        result.append((pd.Timestamp(start), DataStatistics(row_count=n, columns=cols, bins=reference.bins,
                                                           max_categories=reference.max_categories)))
    return result


def _numeric_window(row: pd.Series, i: int, n: int, ref: ColumnStatistics, bins: dict[str, int]) -> ColumnStatistics:
    present = int(row[f"present{i}"]) - int(row[f"invalid{i}"])
    base = {"kind": ref.kind, "dtype": "json", "count": present, "missing_count": n - present}
    finite = present - int(row[f"inf{i}"])
    if ref.numeric is None or finite <= 0:
        return ColumnStatistics(distinct_count=0, **base)
    edges = ref.numeric.edges
    counts = [bins.get(str(k), 0) for k in range(len(edges) + 1)]
    return ColumnStatistics(distinct_count=int(row[f"distinct{i}"]), **base, numeric=NumericSummary(
        min=float(row[f"min{i}"]), max=float(row[f"max{i}"]), mean=float(row[f"mean{i}"]),
        std=float(row[f"std{i}"]), quantiles=tuple(zip(QUANTILE_LEVELS, map(float, row[f"q{i}"]), strict=True)),
        edges=edges, counts=tuple(counts), infinite_count=int(row[f"inf{i}"])))


def _categorical_window(seen: dict[str, int], present: int, n: int, ref: ColumnStatistics,
                        by_text: dict[str, Any]) -> ColumnStatistics:
    """The window's counts of every value the reference lists (0 when absent) and of every value it holds;
    ``by_text`` maps the JSON text of each listed value back to the value."""
    pairs: dict[Any, int] = dict.fromkeys(by_text.values(), 0)
    for text, count in seen.items():
        value = by_text.get(text, text)
        pairs[value] = pairs.get(value, 0) + count
    ordered = sorted(pairs.items(), key=lambda pair: -pair[1])  # most frequent first (stable: listed order)
    return ColumnStatistics(kind=ref.kind, dtype="json", count=present, missing_count=n - present,
                            distinct_count=len(seen), categories=CategoryCounts(tuple(ordered), 0))


def drift_windows(con: Any, reference: DataStatistics, *, prediction_reference: DataStatistics | None = None,
                  window: str | timedelta = "1d", step: str | timedelta | None = None,
                  columns: Sequence[str] | None = None, model: str | None = None, version: str | None = None,
                  since: Any = None, until: Any = None) -> pd.DataFrame:
    """Drift of every served input column, and of the predictions, per time window.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection with the view ``predictions`` (``PredictionLog.register(con)``).
    reference : DataStatistics
        The training statistics of the raw columns
        (:func:`~mlpatterns.serving.continued_evaluation.reference_statistics.training_statistics`).
    prediction_reference : DataStatistics, optional
        The statistics of the bundle's predictions on its test split: compared with the log's
        ``prediction`` and ``predicted_label`` columns.
    window, step : str or timedelta
        As in :func:`~mlpatterns.serving.continued_evaluation.evaluation_windows.evaluate_windows`.
    columns : sequence of str, optional
        Input columns to compare; default every numeric and categorical reference column that
        the logged inputs carry.
    model, version : str, optional
        Only the predictions of this model name / version.
    since, until : datetime or str, optional
        Only predictions with ``since <= event_time < until``.

    Returns
    -------
    pandas.DataFrame
        One row per window and column: ``window_start``, ``window_end``, ``column``, ``role``
        (``"input"`` or ``"prediction"``), ``kind``, ``n_rows``, ``n_present``, then
        :data:`DRIFT_STATISTICS` (NaN where one does not apply), ``reference_missing_share``,
        ``mean``, ``reference_mean`` (numbers), ``changes`` (text: the largest shifts and new
        categories) and ``new_categories`` (a list of ``(value, share)``, most frequent first).
    """
    window_td = parse_window(window)
    combined = dict(reference.columns)
    predicted = set()
    if prediction_reference is not None:
        predicted = {n for n in prediction_reference.columns if n in PREDICTION_COLUMNS}
        combined.update({n: prediction_reference.columns[n] for n in predicted})
    merged = DataStatistics(row_count=reference.row_count, columns=combined, bins=reference.bins,
                            max_categories=reference.max_categories)
    windows = window_statistics(con, reference, prediction_reference=prediction_reference, window=window,
                                step=step, columns=columns, model=model, version=version, since=since, until=until)
    rows = []
    for start, stats in windows:
        off = {"row_count_ratio": None, "missing_increase": None, "missing_ratio": None, "psi": None,
               "jensen_shannon": None, "out_of_range": 0.0, "unseen_categories": 0.0}
        reduced = DataStatistics(merged.row_count, {name: merged.columns[name] for name in stats.columns})
        shares = {(a.column, a.statistic): a.value for a in validate(stats, reduced, thresholds=off)}
        for name, col in stats.columns.items():
            rows.append({"window_start": start, "window_end": start + pd.Timedelta(window_td), "column": name,
                         "role": "prediction" if name in predicted else "input",
                         **_compare(merged.columns[name], col, shares.get((name, "out_of_range_share"), 0.0),
                                    shares.get((name, "unseen_share"), 0.0))})
    columns_out = ["window_start", "window_end", "column", "role", "kind", "n_rows", "n_present", *DRIFT_STATISTICS,
                   "reference_missing_share", "mean", "reference_mean", "changes", "new_categories"]
    return pd.DataFrame(rows, columns=columns_out)


def _compare(ref: ColumnStatistics, col: ColumnStatistics, out_of_range: float, unseen: float) -> dict[str, Any]:
    nan = math.nan
    out = {"kind": ref.kind, "n_rows": col.count + col.missing_count, "n_present": col.count,
           "psi": nan, "js": nan, "ks": nan, "chi_square": nan, "missing_share": col.missing_share,
           "out_of_range_share": nan, "unseen_share": nan, "reference_missing_share": ref.missing_share,
           "mean": nan, "reference_mean": nan, "changes": "", "new_categories": []}
    if col.count == 0:
        out["changes"] = "no values" if col.missing_count else ""
        return out
    if ref.numeric is not None and col.numeric is not None:
        labels, expected, actual = aligned_counts(ref, col)
        ref_cum = np.cumsum(ref.numeric.counts)[:-1] / sum(ref.numeric.counts)
        win_cum = np.cumsum(col.numeric.counts)[:-1] / sum(col.numeric.counts)
        out.update(psi=population_stability_index(expected, actual), js=jensen_shannon_distance(expected, actual),
                   ks=float(np.max(np.abs(ref_cum - win_cum))), out_of_range_share=out_of_range,
                   mean=col.numeric.mean, reference_mean=ref.numeric.mean)
        out["changes"] = (f"median {_num(ref.numeric.quantile(0.5))} -> {_num(col.numeric.quantile(0.5))}, "
                          f"mean {_num(ref.numeric.mean)} -> {_num(col.numeric.mean)}"
                          + (f"; {_pct(out_of_range)} outside the training range {_num(ref.numeric.min)} to "
                             f"{_num(ref.numeric.max)}" if out_of_range > 0 else ""))
    elif ref.categories is not None and col.categories is not None:
        labels, expected, actual = aligned_counts(ref, col)
        e_share, a_share = expected / expected.sum(), actual / actual.sum()
        expected_counts = np.maximum(e_share, PSI_EPSILON) / np.maximum(e_share, PSI_EPSILON).sum() * actual.sum()
        statistic = float(np.sum((actual - expected_counts) ** 2 / expected_counts))
        known = {value for value, _ in ref.categories.values}
        # a value missing from a truncated reference list may have been among its rest: new only when it is complete
        new = [(value, count / col.count) for value, count in col.categories.values
               if value not in known and count] if ref.categories.complete else []
        out.update(psi=population_stability_index(expected, actual), js=jensen_shannon_distance(expected, actual),
                   chi_square=float(statistic) / col.count,
                   unseen_share=unseen if ref.categories.complete else nan, new_categories=new)
        order = np.argsort(-np.abs(a_share - e_share), kind="stable")[:2]
        parts = []
        if new:
            parts.append("new categories " + ", ".join(f"{v!r} {_pct(s)}" for v, s in new[:3])
                         + (", ..." if len(new) > 3 else ""))
        parts.append("largest change " + ", ".join(
            f"{'other values' if labels[i] is None else repr(labels[i])} {_pct(e_share[i])} -> {_pct(a_share[i])}"
            for i in order))
        out["changes"] = "; ".join(parts)
    if col.missing_share > ref.missing_share + 0.01:
        out["changes"] += f"; missing {_pct(ref.missing_share)} -> {_pct(col.missing_share)}"
    return out


def explain_drift(drift: pd.DataFrame, window_start: Any = None, *, top: int = 5, statistic: str = "psi",
                  min_value: float = 0.0) -> pd.DataFrame:
    """The columns that drifted most in a window, each with a sentence.

    ``drift`` is :func:`drift_windows`'s frame; ``window_start`` picks the window (default the
    last). Columns are ranked by ``statistic`` (``psi``, ``js``, ``ks``, ``chi_square``,
    ``missing_share``, ...), those above ``min_value``, at most ``top``. Returns a frame with
    ``column``, ``role``, the statistic's value and ``sentence``, e.g.
    ``"dest: PSI 0.41; new categories 'XYZ' 3%; largest change 'ATL' 5% -> 12%"``.
    """
    if statistic not in DRIFT_STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(DRIFT_STATISTICS)}, not {statistic!r}")
    if len(drift) == 0:
        return pd.DataFrame(columns=["window_start", "column", "role", statistic, "sentence"])
    start = drift["window_start"].max() if window_start is None else pd.Timestamp(window_start)
    rows = drift[drift["window_start"] == start]
    if len(rows) == 0:
        raise ValueError(f"no drift window starts at {start}; windows start from {drift['window_start'].min()} "
                         f"to {drift['window_start'].max()}")
    rows = rows[rows[statistic].fillna(-1) > min_value].sort_values(statistic, ascending=False).head(top)
    sentences = []
    for _, row in rows.iterrows():
        figures = [f"PSI {_num(row['psi'])}"] if statistic != "psi" and not math.isnan(row["psi"]) else []
        head = f"{row['column']}: {statistic.upper() if statistic in ('psi', 'ks') else statistic} {_num(row[statistic])}"
        if not math.isnan(row["js"]) and statistic != "js" and row["kind"] in _CATEGORICAL:
            figures.append(f"JS {_num(row['js'])}")
        sentences.append("; ".join([head, *figures, *([row["changes"]] if row["changes"] else [])]))
    return pd.DataFrame({"window_start": start, "column": rows["column"].to_numpy(), "role": rows["role"].to_numpy(),
                         statistic: rows[statistic].to_numpy(), "sentence": sentences})


def _num(value: float) -> str:
    return f"{value:,.3g}" if abs(value) < 1e15 else f"{value:.3g}"


def _pct(share: float) -> str:
    return (f"{share:.2%}" if 0 < abs(share) < 0.01 else f"{share:.0%}" if abs(share) >= 0.1 else f"{share:.1%}")

