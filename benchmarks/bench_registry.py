"""Model Versioning (27): what the registry's operations cost, on SQLite and on PostgreSQL.

Each row times one operation (milliseconds per call, the median of ``MLPATTERNS_BENCH_CALLS``
calls, default 40) on a registry that already holds that many versions of the model, with
bundles whose model file is 1 MB (``MLPATTERNS_BENCH_MODEL_KB``):

* ``register``: read and verify the bundle, copy it into the registry and verify the copy,
  then allocate the version, insert its rows and audit entry, rename it into place and commit
  (``fsync`` of every file and folder); the baseline copies the folder
  (``shutil.copytree``) and verifies the copy (``read_bundle``), the least any registry does;
* ``resolve``: look up ``models:/NAME@champion`` and verify every file's sha256; the
  baseline is ``read_bundle`` of the same folder;
* ``lookup``: the same without verifying (metadata only), ``set_alias`` (moving ``champion``,
  with its audit entry), ``list_versions``, ``list_models``, ``audit``: metadata only, no baseline.

``vs_baseline`` is the operation's time over its baseline's. PostgreSQL runs where
``MLPATTERNS_TEST_POSTGRES_URL`` names a database (in a schema of its own, dropped after).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

CALLS = int(os.environ.get("MLPATTERNS_BENCH_CALLS", 40))
MODEL_KB = int(os.environ.get("MLPATTERNS_BENCH_MODEL_KB", 1024))


def _log(message: str) -> None:
    print(f"  [registry] {message}", file=sys.stderr, flush=True)


def _median_ms(function: Callable[[int], object], calls: int = CALLS) -> float:
    times = []
    for i in range(calls):
        started = time.perf_counter()
        function(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _bundles(folder: Path, count: int) -> list[Path]:
    from mlpatterns.serving.bundle import write_bundle
    from mlpatterns.testing.registry import make_signature

    made = []
    for i in range(count):
        files = {"model.onnx": os.urandom(MODEL_KB * 1024), "transform.json": b'{"columns": []}'}
        manifest = {"name": f"bench/{i}", "task": "classification", "model": {"file": "model.onnx"},
                    "transform": "transform.json", "signature": make_signature(),
                    "metrics": {"test": {"roc_auc": 0.7}}, "lineage": {"seed": i}}
        made.append(write_bundle(folder / f"bundle-{i}", files, manifest))
    return made


def _measure(backend: str, url: str, bundles: list[Path], scratch: Path) -> list[dict]:
    from mlpatterns.reproducibility.model_versioning import open_registry
    from mlpatterns.serving.bundle import read_bundle

    rows = []
    with open_registry(url) as registry:
        def copy_and_verify(i: int) -> None:
            target = scratch / f"copy-{backend}-{i}"
            shutil.copytree(bundles[i], target)
            read_bundle(target)

        copy = _median_ms(copy_and_verify)
        register = _median_ms(lambda i: registry.register(bundles[i], "bench", message="bench"))
        rows.append({"operation": "register", "backend": backend, "ms": register, "baseline": "copytree + read_bundle",
                     "baseline_ms": copy, "vs_baseline": register / copy})
        registry.set_alias("bench", "champion", 1)
        path = registry.version_path("bench", 1)
        read = _median_ms(lambda i: read_bundle(path))
        resolve = _median_ms(lambda i: registry.resolve("models:/bench@champion"))
        rows.append({"operation": "resolve", "backend": backend, "ms": resolve, "baseline": "read_bundle",
                     "baseline_ms": read, "vs_baseline": resolve / read})
        for name, function in [
            ("lookup", lambda i: registry.lookup("models:/bench@champion")),
            ("set_alias", lambda i: registry.set_alias("bench", "champion", i % CALLS + 1)),
            (f"list_versions ({CALLS})", lambda i: registry.list_versions("bench")),
            ("list_models", lambda i: registry.list_models()),
            ("audit (the model)", lambda i: registry.audit("bench")),
        ]:
            rows.append({"operation": name, "backend": backend, "ms": _median_ms(function)})
        _log(f"{backend}: register {register:.1f} ms, resolve {resolve:.1f} ms")
    return rows


def run() -> list[dict]:
    folder = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    rows: list[dict] = []
    try:
        bundles = _bundles(folder / "sources", CALLS)
        rows += _measure("sqlite", f"sqlite:///{folder}/sqlite/registry.db", bundles, folder / "scratch")
        postgres = os.environ.get("MLPATTERNS_TEST_POSTGRES_URL")
        if postgres:
            import sqlalchemy

            schema = f"bench_registry_{uuid.uuid4().hex[:8]}"
            admin = sqlalchemy.create_engine(postgres)
            with admin.begin() as connection:
                connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
            try:
                separator = "&" if "?" in postgres else "?"
                url = f"{postgres}{separator}options={quote(f'-csearch_path={schema}')}&files={folder}/pg-files"
                rows += _measure("postgresql", url, bundles, folder / "scratch")
            finally:
                with admin.begin() as connection:
                    connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
                admin.dispose()
        else:
            _log("MLPATTERNS_TEST_POSTGRES_URL is not set: PostgreSQL skipped")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows
