"""Feast's DuckDB offline store on the benchmark's point-in-time join; run by ``bench_feature_store``.

Not part of the project and never imported by it: ``bench_feature_store`` runs this file with
the Python of its own virtual environment (``.bench-venvs/feast``: Feast needs pandas < 3,
the project has pandas 3), as ``python feast_offline_join.py SPEC.json``. The spec names a
scratch folder, the view's Parquet file, the entity table's Parquet file, the join key, the
timestamp fields, the features and the TTL in seconds.

It writes a Feast repository into the scratch folder (``feature_store.yaml``: provider
local, offline store ``duckdb``, a SQLite registry and online store that nothing reads),
an :class:`Entity` on the key, a :class:`FileSource` over the Parquet file and a
:class:`FeatureView` with the TTL, applies them, reads the entity table from Parquet, runs
the join once (warm-up, not timed) and prints one JSON line (``ready``, the versions of
Feast, pandas, DuckDB and ibis). Then, so that the benchmark can interleave Feast with its
other methods, it answers one line per command read from stdin:

* ``join``: times ``store.get_historical_features(entity_df, features).to_df()``, prints
  ``{"seconds": ..., "cpu_seconds": ...}`` (wall clock, and the CPU time of all its threads);
* ``save``: writes the last result to ``result.parquet`` in the scratch folder, prints its
  row count, columns and dtypes;
* ``quit`` (or end of input): exits.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from importlib import metadata
from pathlib import Path

_YAML = """project: mlpatterns_bench
provider: local
registry: {registry}
offline_store:
  type: duckdb
online_store:
  type: sqlite
  path: {online}
entity_key_serialization_version: 3
"""


def main(spec_path: str) -> None:
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    spec = json.loads(Path(spec_path).read_text())
    repo = Path(spec["scratch"]) / "feast_repo"
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        _YAML.format(registry=repo / "registry.db", online=repo / "online.db")
    )
    key = spec["key"]
    entity = Entity(name=key, join_keys=[key], value_type=ValueType.STRING)
    source = FileSource(
        name=f"{spec['view']}_source",
        path=spec["view_parquet"],
        timestamp_field=spec["timestamp_field"],
        created_timestamp_column=spec.get("created_timestamp_field") or "",
    )
    view = FeatureView(
        name=spec["view"],
        entities=[entity],
        ttl=timedelta(seconds=spec["ttl_seconds"]),
        schema=[Field(name=f, dtype=Float64) for f in spec["features"]],
        source=source,
        online=False,
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([entity, view])

    entity_df = pd.read_parquet(spec["entity_parquet"])
    features = [f"{spec['view']}:{f}" for f in spec["features"]]

    def join() -> pd.DataFrame:
        return store.get_historical_features(entity_df=entity_df, features=features).to_df()

    result = join()  # warm-up, not timed
    versions = {p: metadata.version(p) for p in ("feast", "pandas", "duckdb", "ibis-framework")}
    _say({"ready": True, "versions": versions})
    for line in sys.stdin:
        command = line.strip()
        if command == "join":
            started, cpu = time.perf_counter(), time.process_time()
            result = join()
            _say({"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu})
        elif command == "save":
            result.to_parquet(Path(spec["scratch"]) / "result.parquet", index=False)
            _say({"rows": len(result), "columns": list(result.columns),
                  "dtypes": {c: str(t) for c, t in result.dtypes.items()}})
        elif command == "quit":
            break
        else:
            _say({"error": f"unknown command {command!r}"})


def _say(message: dict) -> None:
    print(json.dumps(message), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
