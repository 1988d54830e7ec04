"""Windowed Inference (24), the book's example: flag anomalous departure delays at one airport.

A departure delay is anomalous when it lies more than 4 standard deviations from the mean
delay of the flights scheduled in the previous two hours at the airport (at least 5 of
them). The two window features are declared once and computed twice: in batch with
DuckDB over the whole file (as for training or a backfill) and by a stream processor fed
the flights one by one (as a server would), and the flags must agree flight by flight.
The same declarations then give the book's own windows, 2 hours every 10 minutes, in
batch and on the stream, which must agree window by window.

Data: the book's ``delays.csv`` (1,487 flights, no header: scheduled departure
timestamp, delay in minutes), the copy that ships in the package
(:func:`mlpatterns.datasets.load_delays`) unless a path is given. Run: ``.venv/bin/python examples/windowed_inference_delays.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlpatterns.datasets import load_delays
from mlpatterns.reproducibility.windowed_inference import (
    StreamSlidingWindows,
    StreamWindows,
    WindowFeature,
    sliding_window_features,
    window_features,
)

FEATURES = [
    WindowFeature("n_2h", "delay", "count", "2h", time="scheduled"),
    WindowFeature("mean_2h", "delay", "mean", "2h", time="scheduled"),
    WindowFeature("std_2h", "delay", "std", "2h", time="scheduled"),
]
THRESHOLD = 4.0  # standard deviations
MIN_FLIGHTS = 5


def anomalous(delay, n, mean, std) -> np.ndarray:
    """The flag: far from the previous two hours' mean, when there are enough of them."""
    delay, n, mean, std = (np.asarray(x, float) for x in (delay, n, mean, std))
    with np.errstate(invalid="ignore"):
        return (n >= MIN_FLIGHTS) & (np.abs(delay - mean) > THRESHOLD * std)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=None, help="a delays.csv (default: the shipped copy)")
    args = parser.parse_args(argv)
    flights = load_delays(args.path)
    print(f"{len(flights):,} flights, {flights.scheduled.min()} to {flights.scheduled.max()}")

    start = time.perf_counter()
    batch = window_features(flights, FEATURES)
    batch_s = time.perf_counter() - start
    batch_flags = anomalous(flights.delay, batch.n_2h, batch.mean_2h, batch.std_2h)

    # The stream: flights in file order (scheduled order), each scored as it arrives.
    processor = StreamWindows(FEATURES, allowed_lateness="0s")
    stream_flags = np.zeros(len(flights), bool)
    start = time.perf_counter()
    for i, event in enumerate(flights.to_dict("records")):
        for scored in processor.process({**event, "row": i}):
            f = scored.features
            row = scored.event["row"]
            stream_flags[row] = anomalous(
                scored.event["delay"], f["n_2h"], f["mean_2h"], f["std_2h"]
            )
    stream_s = time.perf_counter() - start
    assert processor.rejected == 0

    flagged = flights[batch_flags].assign(
        mean_2h=batch.mean_2h[batch_flags].round(1), std_2h=batch.std_2h[batch_flags].round(1)
    )
    print(f"batch (DuckDB):  {batch_flags.sum()} anomalous delays, {batch_s * 1000:.0f} ms")
    print(
        f"stream:          {stream_flags.sum()} anomalous delays, "
        f"{len(flights) / stream_s:,.0f} events/s"
    )
    agree = bool((batch_flags == stream_flags).all())
    print(f"batch and stream agree flight by flight: {agree}")
    print(flagged.to_string(index=False))
    if not agree:
        raise SystemExit("batch and stream disagree")

    # The book's windows: 2 hours, one every 10 minutes (ends on the 10-minute grid).
    start = time.perf_counter()
    sliding = sliding_window_features(flights, FEATURES, period="10min")
    sliding_s = time.perf_counter() - start
    processor = StreamSlidingWindows(FEATURES, period="10min")
    windows = []
    for event in flights.to_dict("records"):
        windows.extend(processor.process(event))
    windows.extend(processor.flush())
    streamed = pd.DataFrame([{"window_end": w.end, **w.features} for w in windows])
    same = len(streamed) == len(sliding) and all(
        np.allclose(streamed[c], sliding[c], rtol=1e-9, atol=1e-9, equal_nan=True)
        for c in ("n_2h", "mean_2h", "std_2h")
    )
    same = same and bool((streamed.window_end.to_numpy() == sliding.window_end.to_numpy()).all())
    print(
        f"\n2-hour windows every 10 minutes: {len(sliding):,} windows, batch {sliding_s * 1000:.0f} ms; "
        f"batch and stream agree window by window: {same}"
    )
    print(sliding.head(3).round({"mean_2h": 1, "std_2h": 1}).to_string(index=False))
    if not same:
        raise SystemExit("sliding windows: batch and stream disagree")


if __name__ == "__main__":
    main()
