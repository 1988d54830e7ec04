"""Feature Store (26): an online read of one entity, against the raw read of the same row.

The serving path reads the features of one entity in process:
``store.read(view, [{"user": k}])``. Each backend's store holds ``MLPATTERNS_BENCH_ENTITIES``
entities (default 10,000) of a view with five scalar features (two floats, two ints, a
string) or with a float and an 8-float embedding, and each row times ``MLPATTERNS_BENCH_CALLS`` reads (default 20,000; Redis a quarter of
that) of random keys, p50 and p99 in microseconds. The baseline is timed in the same loop,
alternating call by call with the store's read, so that both see the same machine:

* SQLite: ``connection.execute(SELECT <the feature columns>, <timestamp>, <json> FROM the
  view's table WHERE key = ?).fetchone()`` through :mod:`sqlite3` on the same file and
  table: the stored row as SQLite returns it, the least any read of it does (an
  embedding comes back as its JSON text). The store adds finding the key in the entity
  row, the dict of values and decoding what is stored as JSON (the embedding).
* Redis: ``HGETALL`` of the entity's hash through the same redis-py client on the same
  connection pool: the stored fields as bytes, not decoded. The store sends ``HMGET`` of
  the view's fields and decodes each value.

``vs_raw`` is the store's time over the raw read's. Redis runs when
``MLPATTERNS_TEST_REDIS_URL`` names a server (``.ci/run`` sets it), or
``python -m benchmarks.bench_online_store --redis redis://127.0.0.1:6379/15``; its keys use
a prefix of their own, deleted afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

CALLS = int(os.environ.get("MLPATTERNS_BENCH_CALLS", 20_000))
ENTITIES = int(os.environ.get("MLPATTERNS_BENCH_ENTITIES", 10_000))
T0 = dt.datetime(2024, 3, 1)


def _log(message: str) -> None:
    print(f"  [online_store] {message}", file=sys.stderr, flush=True)


SHAPES = {  # features of the view: what each row holds
    "5 scalars": ("trips_7d", "avg_fare", "rating", "days_active", "segment"),
    "float + 8-float embedding": ("avg_fare", "embedding"),
}


def _view(shape: str):
    from mlpatterns.reproducibility.feature_store import Entity, FeatureView

    return FeatureView("user_stats", [Entity("user", ["user"])], "unused.parquet", "ts", list(SHAPES[shape]))


def _fill(store, view) -> None:
    rng = random.Random(0)
    rows = [{"user": u, "ts": T0, "trips_7d": rng.randrange(50), "avg_fare": rng.uniform(5, 80),
             "rating": round(rng.uniform(1, 5), 2), "days_active": rng.randrange(3000),
             "segment": rng.choice(["commuter", "tourist", "business"]),
             "embedding": [rng.gauss(0, 1) for _ in range(8)]} for u in range(ENTITIES)]
    store.write(view, [{k: row[k] for k in ("user", "ts", *view.features)} for row in rows])


def _percentiles(times: list[int]) -> tuple[float, float]:
    times.sort()
    return times[len(times) // 2] / 1000, times[int(len(times) * 0.99)] / 1000


def _side_by_side(ours: Callable[[int], object], raw: Callable[[int], object], calls: int) -> dict:
    """p50/p99 (µs) of ``ours`` and ``raw``, called alternately on the same random keys."""
    keys = [random.Random(1).randrange(ENTITIES) for _ in range(calls)]
    for key in keys[:1000]:  # warm up: statement caches, connections, branch predictors
        ours(key)
        raw(key)
    clock = time.perf_counter_ns
    ours_ns, raw_ns = [], []
    for i, key in enumerate(keys):
        if i % 2:  # alternate which goes first, so neither always runs on a warmer cache
            started = clock()
            raw(key)
            middle = clock()
            ours(key)
            ours_ns.append(clock() - middle)
            raw_ns.append(middle - started)
        else:
            started = clock()
            ours(key)
            middle = clock()
            raw(key)
            raw_ns.append(clock() - middle)
            ours_ns.append(middle - started)
    (ours_50, ours_99), (raw_50, raw_99) = _percentiles(ours_ns), _percentiles(raw_ns)
    return {"p50_us": ours_50, "raw_p50_us": raw_50, "p50_vs_raw": ours_50 / raw_50,
            "p99_us": ours_99, "raw_p99_us": raw_99, "p99_vs_raw": ours_99 / raw_99}


def _sqlite(folder: Path, shape: str) -> dict:
    import sqlite3

    from mlpatterns.reproducibility.feature_store import open_online_store

    view = _view(shape)
    path = folder / f"online-{len(view.features)}.db"
    with open_online_store(f"sqlite:///{path}") as store:
        _fill(store, view)
        raw_connection = sqlite3.connect(path, isolation_level=None)
        columns = ", ".join(f'"{f}"' for f in view.features)
        sql = f'SELECT {columns}, __mlp_ts, __mlp_encoded FROM "fv_user_stats" WHERE "user" = ?'
        execute = raw_connection.execute
        assert len(execute(sql, (7,)).fetchone()) == len(view.features) + 2
        row = _side_by_side(lambda k: store.read(view, [{"user": k}]),
                            lambda k: execute(sql, (k,)).fetchone(), CALLS)
        raw_connection.close()
    _log(f"sqlite, {shape}: p50 {row['p50_us']:.1f} µs vs raw {row['raw_p50_us']:.1f} µs")
    return {"backend": "sqlite", "features": shape, "raw": "sqlite3 execute().fetchone()", **row}


def _redis(url: str, shape: str) -> dict:
    from mlpatterns.reproducibility.feature_store import open_online_store

    view = _view(shape)
    prefix = f"mlp-bench-{uuid.uuid4().hex[:8]}:"
    with open_online_store(url, prefix=prefix) as store:
        try:
            _fill(store, view)
            names = [store.entity_key(view, (k,)) for k in range(ENTITIES)]
            hgetall = store.client.hgetall
            assert len(hgetall(names[7])) == len(view.features) + 1
            row = _side_by_side(lambda k: store.read(view, [{"user": k}]), lambda k: hgetall(names[k]),
                                max(CALLS // 4, 1000))
        finally:
            store.clear()
    _log(f"redis, {shape}: p50 {row['p50_us']:.1f} µs vs raw {row['raw_p50_us']:.1f} µs")
    return {"backend": "redis", "features": shape, "raw": "redis-py HGETALL", **row}


def run(redis_url: str | None = None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-online-") as folder:
        rows += [_sqlite(Path(folder), shape) for shape in SHAPES]
    redis_url = redis_url or os.environ.get("MLPATTERNS_TEST_REDIS_URL")
    if redis_url:
        rows += [_redis(redis_url, shape) for shape in SHAPES]
    else:
        _log("MLPATTERNS_TEST_REDIS_URL is not set (nor --redis): Redis skipped")
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table, machine

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_online_store", description=__doc__.split("\n")[0])
    parser.add_argument("--redis", metavar="URL", help="a Redis server to measure too (redis://HOST:PORT/DB)")
    print(machine())
    print(format_table(run(parser.parse_args().redis)))
