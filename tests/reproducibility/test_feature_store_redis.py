"""The Redis online store passes the conformance suite, and refuses what it cannot serve.

The server tests run where ``MLPATTERNS_TEST_REDIS_URL`` names a database (``.ci/run``
starts a server on loopback and sets it); each test writes under a key prefix of its own,
deleted afterwards, so parallel workers share the database.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import socket
import threading
import uuid

import pytest

from mlpatterns.reproducibility.feature_store import Entity, FeatureView, open_online_store
from mlpatterns.reproducibility.feature_store.online_store import OnlineStoreError
from mlpatterns.testing.online_store_conformance import T0, OnlineStoreConformance

pytest.importorskip("redis", reason="the Redis online store needs redis-py (pip install 'mlpatterns[featurestore]')")

REDIS_URL = os.environ.get("MLPATTERNS_TEST_REDIS_URL")
needs_server = pytest.mark.skipif(not REDIS_URL, reason="MLPATTERNS_TEST_REDIS_URL is not set (no Redis server)")


@pytest.fixture
def prefix():
    """A key prefix of this test's own; its keys are deleted afterwards."""
    if not REDIS_URL:
        pytest.skip("MLPATTERNS_TEST_REDIS_URL is not set (no Redis server)")
    prefix = f"mlp-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    with open_online_store(REDIS_URL, prefix=prefix) as store:
        store.clear()


@pytest.fixture
def online_store_factory(prefix):
    return lambda: open_online_store(REDIS_URL, prefix=prefix)


@needs_server
class TestRedisOnlineStore(OnlineStoreConformance):
    pass


def _view(name: str = "stats") -> FeatureView:
    return FeatureView(name, [Entity("e", ["user"])], "unused.parquet", "ts", ["score"],
                       created_timestamp_field="created")


@needs_server
def test_the_layout_is_one_hash_per_entity_under_the_prefix(online_store_factory, prefix):
    with online_store_factory() as store:
        store.write(_view(), [{"user": 42, "ts": T0, "created": None, "score": 0.5},
                              {"user": "42", "ts": T0, "created": T0, "score": [1.0]}])
        assert store.entity_key(_view(), (42,)) == f"{prefix}stats:[42]"
        stored = store.client.hgetall(f"{prefix}stats:[42]")
        assert stored == {b"score": b"0.5", b"__mlp_ts": b"1709294400123456"}
        assert store.client.hgetall(f'{prefix}stats:["42"]')[b"score"] == b"[1.0]"
        assert store.client.hget(f"{prefix}__mlp_views", "stats") == b'["user"]'
        assert sorted(store.client.scan_iter(match=f"{prefix}*")) == [
            f'{prefix}__mlp_views'.encode(), f'{prefix}stats:["42"]'.encode(), f"{prefix}stats:[42]".encode()]
        assert store.clear() == 3


@needs_server
def test_two_prefixes_do_not_see_each_other(prefix):
    other = f"{prefix}other:"
    with open_online_store(REDIS_URL, prefix=prefix) as one, open_online_store(f"{REDIS_URL}?prefix={other}") as two:
        one.write(_view(), [{"user": 1, "ts": T0, "score": 1.0}])
        assert two.read(_view(), [{"user": 1}]) == [{"score": None}]
        assert two.prefix == other


@needs_server
def test_concurrent_writers_keep_the_newest_row(online_store_factory):
    """Two clients write interleaved rows of the same keys; each key ends with its newest row."""
    view = _view()
    rows = [{"user": u, "ts": T0 + dt.timedelta(seconds=s), "created": T0 + dt.timedelta(seconds=c), "score": [s, c]}
            for u in range(5) for s in range(40) for c in range(3)]
    random.Random(0).shuffle(rows)
    halves = [rows[0::2], rows[1::2]]
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def write(part: list[dict]) -> None:
        try:
            with online_store_factory() as store:
                barrier.wait()
                for start in range(0, len(part), 7):  # many small batches, so the writers interleave
                    store.write(view, part[start:start + 7])
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=write, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    with online_store_factory() as store:
        assert store.read(view, [{"user": u} for u in range(5)]) == [{"score": [39, 2]}] * 5


@needs_server
def test_timestamps_beyond_two_to_the_53_compare_exactly(online_store_factory):
    view = _view()
    late = dt.datetime(9999, 12, 31, 23, 59, 59, 999998)  # µs ~ 2.5e17: doubles would call them equal
    with online_store_factory() as store:
        store.write(view, [{"user": 1, "ts": late + dt.timedelta(microseconds=1), "score": 2.0}])
        store.write(view, [{"user": 1, "ts": late, "score": 1.0}])
        assert store.read(view, [{"user": 1}]) == [{"score": 2.0}]
        early = dt.datetime(1900, 1, 1)  # negative µs
        store.write(view, [{"user": 2, "ts": early, "score": 1.0},
                           {"user": 2, "ts": early - dt.timedelta(microseconds=1), "score": 0.0}])
        assert store.read(view, [{"user": 2}]) == [{"score": 1.0}]


@needs_server
def test_the_password_is_hidden_in_the_url(prefix):
    with open_online_store(REDIS_URL, prefix=prefix) as store:
        assert store.url == REDIS_URL and "closed" not in repr(store)
    scheme, rest = REDIS_URL.split("://", 1)
    try:  # redis-py ignores a password the server does not ask for; a server that asks refuses it
        store = open_online_store(f"{scheme}://:s3cret@{rest}", prefix=prefix)
    except OnlineStoreError as error:
        shown = str(error)
        assert "cannot connect" in shown
    else:
        store.close()
        with pytest.raises(OnlineStoreError, match="closed") as info:
            store.read(_view(), [{"user": 1}])
        shown = f"{store.url} {store!r} {info.value}"
    assert "s3cret" not in shown and f"{scheme}://:***@{rest}" in shown


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_names_the_url_without_its_password():
    port = _closed_port()
    with pytest.raises(OnlineStoreError, match="cannot connect to the Redis server") as info:
        open_online_store(f"redis://:hunter2@127.0.0.1:{port}/0", timeout=2)
    assert f"redis://:***@127.0.0.1:{port}/0" in str(info.value) and "hunter2" not in str(info.value)


@pytest.mark.parametrize(("url", "options", "message"), [
    ("redis://:secret@127.0.0.1:notaport/0", {}, "bad port"),
    ("redis://:secret@127.0.0.1:6379/zero", {}, "must be a database number"),
    ("redis://:secret@/0", {}, "no host"),
    ("redis://:secret@127.0.0.1:6379/0?db=3", {}, "takes the URL options 'prefix' and 'timeout'"),
    ("redis+hiredis://:secret@127.0.0.1:6379/0", {}, "expected 'redis://"),
    ("redis://:secret@127.0.0.1:6379/0?timeout=soon", {}, "timeout must be a number"),
    ("redis://:secret@127.0.0.1:6379/0", {"pool": 3}, "bad option"),
    ("redis://:secret@127.0.0.1:6379/0", {"prefix": 3}, "prefix must be a string"),
    ("redis://:secret@127.0.0.1:6379/0?prefix=", {}, "prefix must not be empty"),
])
def test_bad_urls_and_options_are_refused_naming_the_url(url, options, message):
    with pytest.raises(OnlineStoreError, match=message) as info:
        open_online_store(url, **options)
    assert "secret" not in str(info.value)


def test_a_missing_client_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "redis" else real(name, *a))
    with pytest.raises(ImportError, match=r"mlpatterns\[featurestore\]"):
        open_online_store("redis://127.0.0.1:6379/0")
