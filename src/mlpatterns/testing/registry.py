"""The conformance suite that every model registry backend passes (Model Versioning, 27).

In the style of Optuna's ``optuna/testing/pytest_storages.py``: a test class whose tests
need one fixture, ``registry``, an empty :class:`ModelRegistry` (its :attr:`url` must
open the same registry in another process). A backend's test module provides it::

    @pytest.fixture
    def registry(tmp_path):
        with open_registry(f"sqlite:///{tmp_path}/registry/registry.db") as registry:
            yield registry

    class TestSQLiteRegistry(ModelRegistryConformance):
        pass

It checks versions, names, the copy and verification of bundles (tampering after
registration is found on resolve), immutability, aliases and rollback, tags, the
audit trail, the interface rule, comparisons, URIs, eight processes registering at
once (versions 1 to 8, nothing lost or torn) and a registration killed before its
commit (no half version). Bundles are made by :func:`make_bundle`: real bundles with
small stand-in model files, which the registry verifies like any other.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from mlpatterns.bundles.format import read_bundle, write_bundle
from mlpatterns.reproducibility.model_versioning import (
    TEST_PAUSE_ENV,
    InterfaceChangeError,
    ModelNotFoundError,
    ModelRegistry,
    ModelURI,
    RegistryError,
    open_registry,
)

__all__ = ["INPUTS", "ModelRegistryConformance", "make_bundle", "make_signature"]

INPUTS = {"distance": "number", "carrier": "text", "weekend": "boolean"}
WORKERS = 8
_WORKER = """
import sys, time
from pathlib import Path
from mlpatterns.reproducibility.model_versioning import open_registry
url, bundle, name, go = sys.argv[1:5]
with open_registry(url) as registry:
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.005)
    print(registry.register(bundle, name, message="worker " + str(sys.argv[5])).version, flush=True)
"""


def make_signature(inputs: Mapping[str, str] = INPUTS, *, keys: Sequence[str] = ("flight",),
                   classes: Sequence[str] | None = None) -> dict[str, Any]:
    """A bundle signature: ``inputs`` maps names to kinds; binary outputs, or a class output for ``classes``."""
    if classes is None:
        outputs = [{"name": "probability", "type": "number"}, {"name": "prediction", "type": "integer"}]
    else:
        outputs = [{"name": f"probability_{c}", "type": "number"} for c in classes]
        outputs.append({"name": "prediction", "type": "text", "values": list(classes)})
    return {"inputs": [{"name": n, "type": t, "dtype": {"number": "float64", "text": "str", "boolean": "bool"}
                        .get(t, "str")} for n, t in inputs.items()],
            "keys": list(keys), "outputs": outputs}


def make_bundle(directory: str | os.PathLike[str], *, signature: Mapping[str, Any] | None = None,
                metrics: Mapping[str, Any] | None = None, lineage: Mapping[str, Any] | None = None,
                seed: int = 0) -> Path:
    """A valid bundle with a stand-in model file (its bytes depend on ``seed``); never served."""
    files = {"model.onnx": f"stand-in model {seed}".encode() * 64, "transform.json": b'{"columns": []}'}
    manifest = {"name": f"conformance/model-{seed}", "task": "classification",
                "model": {"type": "gradient_boosting", "file": "model.onnx"}, "transform": "transform.json",
                "signature": dict(signature or make_signature()),
                "metrics": dict(metrics or {"test": {"roc_auc": 0.7 + seed / 100, "log_loss": 0.5}}),
                "lineage": dict(lineage or {"data": {"dataset": "flights"}, "seed": seed, "rows": {"train": 80}})}
    return write_bundle(directory, files, manifest, overwrite=True)


def _writable(path: Path) -> None:
    for item in [path, *path.iterdir()]:
        item.chmod(0o755 if item.is_dir() else 0o644)


class ModelRegistryConformance:
    """Tests every registry backend passes; the test module provides a ``registry`` fixture."""

    @pytest.fixture
    def bundle(self, tmp_path: Path) -> Any:
        """``bundle(seed=0, **fields)``: a fresh bundle in a folder of its own."""
        made = iter(range(10**6))

        def make(seed: int = 0, **fields: Any) -> Path:
            return make_bundle(tmp_path / "sources" / f"bundle-{next(made)}", seed=seed, **fields)

        return make

    # -- versions and names --------------------------------------------------------------------------
    def test_versions_count_from_one_per_model(self, registry: ModelRegistry, bundle: Any) -> None:
        first = registry.register(bundle(0), "flights", description="first try")
        second = registry.register(bundle(1), "flights")
        other = registry.register(bundle(2), "natality")
        assert (first.version, second.version, other.version) == (1, 2, 1)
        assert [v.version for v in registry.list_versions("flights")] == [1, 2]
        assert [m.name for m in registry.list_models()] == ["flights", "natality"]
        assert registry.get_model("flights").latest_version == 2
        assert registry.latest_version("flights").version == 2
        assert (first.description, first.created_by, first.uri) == ("first try", registry.user, "models:/flights/1")
        manifest = read_bundle(first.path).manifest
        assert (first.signature, first.metrics, first.lineage) == (
            manifest["signature"], manifest["metrics"], manifest["lineage"])
        assert (first.task, first.bundle_name, first.bundle_digest) == (
            "classification", "conformance/model-0", manifest["manifest_sha256"])
        assert first.path == registry.files_root / "flights" / "1"

    @pytest.mark.parametrize("name", ["", "a/b", "..", "a..b", "../x", "a\\b", "-x", ".hidden", "x y", "x@y",
                                      "é", "x" * 129, 7])
    def test_names_are_plain(self, registry: ModelRegistry, bundle: Any, name: Any) -> None:
        with pytest.raises(RegistryError, match="model name: expected"):
            registry.register(bundle(), name)
        assert registry.list_models() == []

    def test_unknown_model_version_and_alias(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(), "flights")
        for call in (lambda: registry.get_model("nope"), lambda: registry.list_versions("nope"),
                     lambda: registry.get_version("flights", 2), lambda: registry.resolve("models:/flights/2"),
                     lambda: registry.resolve("models:/flights@champion"),
                     lambda: registry.delete_alias("flights", "champion"),
                     lambda: registry.set_alias("flights", "champion", 5)):
            with pytest.raises(ModelNotFoundError):
                call()

    def test_metrics_keep_nan_and_infinity(self, registry: ModelRegistry, bundle: Any) -> None:
        version = registry.register(bundle(metrics={"test": {"roc_auc": float("nan"), "ratio": float("inf")}}),
                                    "flights")
        metrics = registry.get_version("flights", version.version).metrics["test"]
        assert math.isnan(metrics["roc_auc"]) and metrics["ratio"] == float("inf")

    def test_reopened_from_its_url(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(), "flights", alias="champion")
        with open_registry(registry.url) as again:
            assert again.get_model("flights").aliases == {"champion": 1}
            assert again.resolve("models:/flights@champion") == registry.version_path("flights", 1)

    # -- the bundle: copied, verified, immutable -----------------------------------------------------
    def test_bundle_is_copied_and_verified(self, registry: ModelRegistry, bundle: Any) -> None:
        source = bundle()
        version = registry.register(source, "flights")
        resolved = registry.resolve(version.uri)
        assert resolved != source and resolved.is_relative_to(registry.files_root)
        assert sorted(p.name for p in resolved.iterdir()) == sorted(p.name for p in source.iterdir())
        shutil.rmtree(source)  # the registry holds its own copy
        assert read_bundle(registry.resolve("models:/flights/1")).manifest["name"] == "conformance/model-0"
        assert not list((registry.files_root / ".staging").iterdir())

    def test_a_bad_bundle_is_refused_and_adds_nothing(self, registry: ModelRegistry, bundle: Any, tmp_path) -> None:
        source = bundle()
        (source / "model.onnx").write_bytes(b"tampered")
        with pytest.raises(RegistryError, match="model.onnx: sha256 does not match"):
            registry.register(source, "flights")
        with pytest.raises(RegistryError, match="not a bundle directory"):
            registry.register(tmp_path / "missing", "flights")
        assert registry.list_models() == []
        assert registry.audit() == []

    def test_tampering_after_registration_is_found_on_resolve(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(0), "flights", alias="champion")
        registry.register(bundle(1), "flights")
        path = registry.version_path("flights", 1)
        _writable(path)
        (path / "model.onnx").write_bytes(b"tampered")
        with pytest.raises(RegistryError, match=r"models:/flights@champion \(flights version 1\).*model.onnx"):
            registry.resolve("models:/flights@champion")
        shutil.rmtree(path)  # replaced by another valid bundle
        shutil.copytree(registry.version_path("flights", 2), path)
        with pytest.raises(RegistryError, match="holds another bundle than the one registered"):
            registry.resolve("models:/flights/1")
        assert registry.resolve("models:/flights/2") == registry.version_path("flights", 2)

    def test_versions_are_immutable(self, registry: ModelRegistry, bundle: Any) -> None:
        source = bundle(0)
        first = registry.register(source, "flights", tags={"stage": "test"})
        again = registry.register(source, "flights")  # the same bundle again is a new version
        registry.register(bundle(1), "flights")
        assert again.version == 2 and again.bundle_digest == first.bundle_digest
        still = registry.get_version("flights", 1)
        assert (still.bundle_digest, still.metrics, still.created_at) == (
            first.bundle_digest, first.metrics, first.created_at)
        with pytest.raises(dataclasses.FrozenInstanceError):
            first.version = 3  # type: ignore[misc]
        assert all(p.stat().st_mode & 0o222 == 0 for p in first.path.iterdir())

    def test_leftovers_of_killed_copies_are_not_versions(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(), "flights")
        make_bundle(registry.files_root / "flights" / "7")  # an orphan: no committed version
        fresh = make_bundle(registry.files_root / ".staging" / "0123abcd")
        stale = make_bundle(registry.files_root / ".staging" / "4567cdef")
        os.utime(stale, (time.time() - 2 * 24 * 3600,) * 2)  # a copy abandoned two days ago
        (registry.files_root / "ghost").mkdir()
        assert [v.version for v in registry.list_versions("flights")] == [1]
        assert [m.name for m in registry.list_models()] == ["flights"]
        assert registry.register(bundle(1), "flights").version == 2
        assert fresh.exists() and not stale.exists()  # a copy may be in progress; a stale one is removed

    # -- aliases, rollback, tags -----------------------------------------------------------------------
    def test_aliases_point_at_versions(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(0), "flights", alias="champion")
        registry.register(bundle(1), "flights", alias="challenger")
        assert registry.get_model("flights").aliases == {"challenger": 2, "champion": 1}
        assert registry.lookup("models:/flights@champion").version == 1
        assert registry.set_alias("flights", "champion", 2, message="v2 wins") == 1
        assert registry.get_model("flights").aliases == {"challenger": 2, "champion": 2}
        assert registry.get_version("flights", 2).aliases == ("challenger", "champion")
        assert registry.resolve("models:/flights@champion") == registry.version_path("flights", 2)
        assert registry.delete_alias("flights", "challenger") == 2
        assert registry.get_model("flights").aliases == {"champion": 2}
        with pytest.raises(RegistryError, match="alias: expected"):
            registry.set_alias("flights", "2", 1)
        with pytest.raises(RegistryError, match="alias: expected"):
            registry.register(bundle(2), "flights", alias="no/slash")
        assert registry.get_model("flights").latest_version == 2

    def test_rollback_uses_the_audit_trail(self, registry: ModelRegistry, bundle: Any) -> None:
        for seed in range(3):
            registry.register(bundle(seed), "flights")
        with pytest.raises(RegistryError, match="no earlier version"):
            registry.rollback("flights", "champion")
        registry.set_alias("flights", "champion", 1)
        with pytest.raises(RegistryError, match="no earlier version"):
            registry.rollback("flights", "champion")
        registry.set_alias("flights", "champion", 3)
        assert registry.rollback("flights", "champion", message="v3 misbehaves").version == 1
        assert registry.rollback("flights", "champion").version == 3  # a second rollback undoes the first
        assert registry.rollback("flights", "champion", to_version=2).version == 2
        assert registry.get_model("flights").aliases == {"champion": 2}
        entry = registry.audit("flights")[-3]
        assert (entry.action, entry.before, entry.after, entry.message) == ("rollback", 3, 1, "v3 misbehaves")

    def test_an_alias_moved_meanwhile_refuses_the_move(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(0), "flights", alias="champion")
        registry.register(bundle(1), "flights")
        with pytest.raises(RegistryError, match="moved meanwhile"):  # the primitive behind rollback
            registry._move_alias("flights", "champion", 2, action="rollback", expected=2, message=None)
        assert registry.get_model("flights").aliases == {"champion": 1}

    def test_tags(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(), "flights", tags={"team": "ops", "ticket": "ML-1"})
        changed = registry.set_tags("flights", 1, {"team": "data", "ticket": None, "reviewed": "yes"})
        assert changed.tags == {"reviewed": "yes", "team": "data"}
        with pytest.raises(RegistryError, match="tags.team: expected text"):
            registry.set_tags("flights", 1, {"team": 3})
        with pytest.raises(RegistryError, match="tag name: expected"):
            registry.register(bundle(), "flights", tags={"a/b": "x"})
        entry = registry.audit("flights")[-1]
        assert (entry.action, entry.version) == ("set_tags", 1)
        assert entry.before == {"team": "ops", "ticket": "ML-1", "reviewed": None}
        assert entry.after == {"team": "data", "ticket": None, "reviewed": "yes"}

    # -- audit ---------------------------------------------------------------------------------------
    def test_audit_records_every_change(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(0), "flights", alias="champion", message="first", tags={"t": "1"})
        registry.register(bundle(1), "flights")
        registry.register(bundle(2), "natality")
        registry.set_alias("flights", "challenger", 2, message="try v2")
        registry.set_alias("flights", "challenger", 2)  # no change, no entry
        registry.set_tags("flights", 2, {"reviewed": "yes"})
        registry.rollback("flights", "challenger", to_version=1)
        registry.delete_alias("flights", "challenger", message="done")
        entries = registry.audit()
        assert [(e.action, e.model, e.version, e.alias, e.before, e.after) for e in entries if e.action != "register"] == [
            ("set_alias", "flights", 1, "champion", None, 1),
            ("set_alias", "flights", 2, "challenger", None, 2),
            ("set_tags", "flights", 2, None, {"reviewed": None}, {"reviewed": "yes"}),
            ("rollback", "flights", 1, "challenger", 2, 1),
            ("delete_alias", "flights", 1, "challenger", 1, None),
        ]
        registers = [e for e in entries if e.action == "register"]
        assert [(e.model, e.version) for e in registers] == [("flights", 1), ("flights", 2), ("natality", 1)]
        assert registers[0].after["bundle_digest"] == registry.get_version("flights", 1).bundle_digest
        assert registers[0].after["tags"] == {"t": "1"} and registers[0].message == "first"
        assert [e.message for e in entries if e.action != "register"] == ["first", "try v2", None, None, "done"]
        assert all(e.who == registry.user for e in entries)
        assert [e.at for e in entries] == sorted(e.at for e in entries)
        assert all(e.at.endswith("+00:00") for e in entries)
        assert [e.id for e in entries] == sorted({e.id for e in entries})
        assert [e.model for e in registry.audit("natality")] == ["natality"]

    # -- the interface rule --------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("signature", "difference"),
        [
            (make_signature({"distance": "number", "carrier": "text"}), "input 'weekend' removed"),
            (make_signature({**INPUTS, "origin": "text"}), "input 'origin' added"),
            (make_signature({**INPUTS, "distance": "text"}), "input 'distance' changed from {'type': 'number'}"),
            (make_signature(keys=("flight", "date")), "key 'date' added"),
            (make_signature(keys=()), "key 'flight' removed"),
            (make_signature(classes=("early", "late")), "output 'probability_early' added"),
        ],
    )
    def test_a_changed_interface_is_a_new_model(self, registry: ModelRegistry, bundle: Any,
                                                signature: dict, difference: str) -> None:
        registry.register(bundle(0), "flights")
        changed = bundle(1, signature=signature)
        with pytest.raises(InterfaceChangeError, match="differs from version 1") as error:
            registry.register(changed, "flights")
        assert difference in str(error.value) and difference in "; ".join(error.value.diff.describe())
        assert registry.get_model("flights").latest_version == 1
        assert registry.register(changed, "flights-v2").version == 1  # a new model
        allowed = registry.register(changed, "flights", allow_interface_change=True, message="new inputs")
        assert allowed.version == 2
        entry = registry.audit("flights")[-1]
        assert entry.after["interface_change"]["from_version"] == 1
        assert difference in "; ".join(entry.after["interface_change"]["differences"])

    def test_changed_classes_are_a_changed_interface(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(0, signature=make_signature(classes=("a", "b", "c"))), "species")
        with pytest.raises(InterfaceChangeError, match="output 'prediction' changed from {'values': \\['a', 'b', 'c'\\]}"):
            registry.register(bundle(1, signature=make_signature(classes=("a", "b", "d"))), "species")

    def test_details_that_keep_the_interface_are_allowed(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(0), "flights")
        signature = make_signature()
        signature["inputs"][0]["dtype"] = "Int64"  # whole numbers now: same kind of value
        signature["null_values"] = ["NA"]
        assert registry.register(bundle(1, signature=signature), "flights").version == 2
        assert registry.compare("flights", 1, 2).interface.details == (
            "input 'distance' dtype: 'float64' -> 'Int64'", "null_values: None -> ['NA']")

    def test_compare_puts_two_versions_side_by_side(self, registry: ModelRegistry, bundle: Any) -> None:
        registry.register(bundle(0), "flights")
        registry.register(bundle(5, lineage={"data": {"dataset": "flights"}, "seed": 5, "rows": {"train": 90}}),
                          "flights")
        comparison = registry.compare("flights", 1, 2)
        assert comparison.versions == (1, 2)
        first, second, difference = comparison.metrics["test.roc_auc"]
        assert (first, second) == (0.7, 0.75) and difference == pytest.approx(0.05)
        assert comparison.metrics["test.log_loss"] == (0.5, 0.5, 0.0)
        assert comparison.interface.compatible
        assert comparison.lineage["data.dataset"] == ("flights", "flights")
        assert set(comparison.lineage_changed) == {"seed", "rows.train"}
        assert comparison.to_dict()["metrics"]["test.log_loss"] == [0.5, 0.5, 0.0]

    # -- URIs ----------------------------------------------------------------------------------------
    @pytest.mark.parametrize("text", ["models:/flights/1", "models:/flights@champion", "models:/f.v-2_x/12"])
    def test_uris_round_trip(self, text: str) -> None:
        assert str(ModelURI.parse(text)) == text

    @pytest.mark.parametrize("text", ["flights/1", "models:/flights", "models:/flights/0", "models:/flights/01",
                                      "models:/flights/-1", "models:/flights/one", "models:/../1",
                                      "models:/flights@", "models:/flights@1x", "models:/a/b/1", "/tmp/bundle",
                                      "models:/flights/1@champion"])
    def test_bad_uris_are_refused(self, text: str) -> None:
        with pytest.raises(RegistryError, match="model URI: |model name: |alias: "):
            ModelURI.parse(text)

    def test_resolve_takes_uris_only(self, registry: ModelRegistry, bundle: Any) -> None:
        source = bundle()
        registry.register(source, "flights", alias="champion")
        assert registry.resolve(ModelURI("flights", alias="champion")) == registry.version_path("flights", 1)
        with pytest.raises(RegistryError, match="expected 'models:/NAME/VERSION'"):
            registry.resolve(str(source))

    # -- concurrency and faults ----------------------------------------------------------------------
    def test_threads_share_a_registry(self, registry: ModelRegistry, bundle: Any) -> None:
        sources = [bundle(seed) for seed in range(4)]
        versions: list[int] = []
        threads = [threading.Thread(target=lambda s=s: versions.append(registry.register(s, "flights").version))
                   for s in sources]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(versions) == [1, 2, 3, 4]

    def test_processes_registering_at_once_get_consecutive_versions(self, registry: ModelRegistry, bundle: Any,
                                                                    tmp_path: Path) -> None:
        sources = [bundle(seed) for seed in range(WORKERS)]
        go = tmp_path / "go"
        workers = [subprocess.Popen([sys.executable, "-c", _WORKER, registry.url, str(s), "flights", str(go), str(i)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for i, s in enumerate(sources)]
        try:
            for worker in workers:
                assert worker.stdout.readline().strip() == "ready", worker.stderr.read()
            go.touch()
            outputs = [worker.communicate(timeout=120) for worker in workers]
        finally:
            for worker in workers:
                worker.kill()
        assert [w.returncode for w in workers] == [0] * WORKERS, [err for _, err in outputs]
        got = sorted(int(out) for out, _ in outputs)
        assert got == list(range(1, WORKERS + 1))
        versions = registry.list_versions("flights")
        assert [v.version for v in versions] == got
        digests = {read_bundle(s).manifest["manifest_sha256"] for s in sources}
        assert {v.bundle_digest for v in versions} == digests  # each bundle once, none torn or lost
        for version in versions:
            registry.resolve(version.uri)
        assert len([e for e in registry.audit("flights") if e.action == "register"]) == WORKERS
        assert not list((registry.files_root / ".staging").iterdir())

    def test_a_registration_killed_before_its_commit_leaves_no_version(self, registry: ModelRegistry,
                                                                       bundle: Any, tmp_path: Path) -> None:
        registry.register(bundle(0), "flights", alias="champion")
        go = tmp_path / "go"
        go.touch()
        worker = subprocess.Popen([sys.executable, "-c", _WORKER, registry.url, str(bundle(1)), "flights", str(go), "k"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, TEST_PAUSE_ENV: "60"})
        placed = registry.version_path("flights", 2)
        try:
            deadline = time.monotonic() + 60
            while not (placed / "manifest.json").exists():  # renamed into place; the commit is pending
                assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read() if worker.poll() else ""
                time.sleep(0.01)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.communicate()
        assert [v.version for v in registry.list_versions("flights")] == [1]
        assert [e.version for e in registry.audit("flights")] == [1, 1]
        assert registry.resolve("models:/flights@champion") == registry.version_path("flights", 1)
        with pytest.raises(ModelNotFoundError):
            registry.resolve("models:/flights/2")
        clean = registry.register(bundle(2), "flights", alias="champion")
        assert clean.version == 2  # the next clean version, its files replacing the orphan's
        assert read_bundle(registry.resolve(clean.uri)).manifest["name"] == "conformance/model-2"
        assert [v.version for v in registry.list_versions("flights")] == [1, 2]
