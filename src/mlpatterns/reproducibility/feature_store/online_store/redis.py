"""The Redis online store: ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`` (``rediss://`` for TLS), via redis-py.

Layout, under a key prefix (``prefix=`` or ``?prefix=``, default ``mlp:fs:``) so that
several stores share a database:

* one hash per entity, ``<prefix><view name>:<the key as JSON>`` (``mlp:fs:trips:[42]``,
  ``mlp:fs:route:["JFK","LAX"]``: 1 and ``"1"`` are different keys), whose fields are the
  view's features, each value as JSON (floats incl. NaN, ints of any size, strings, bools,
  None, lists read back as they were written), ``__mlp_ts`` and ``__mlp_created`` (integer
  microseconds since the epoch, naive UTC; no ``__mlp_created`` when the row has none);
* one hash ``<prefix>__mlp_views`` naming each view's join keys, so a view whose keys
  changed is refused.

A write runs a Lua script per row (``EVALSHA``, pipelined, one round trip per 1,000
rows): Redis runs a script atomically, so the guard (the stored row is replaced only by a
row not older by (event, created) timestamp, compared exactly as decimal integers) cannot
interleave with another writer's. A read is one ``HMGET`` of the view's fields; a batch
read pipelines them in one round trip. The client is redis-py's, thread-safe, with a
connection pool (:attr:`RedisOnlineStore.client`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from mlpatterns.backends import BackendURL, parse_url

from ..definitions import FeatureView
from ._base import Key, OnlineStore, OnlineStoreError, Record

__all__ = ["RedisOnlineStore"]

DEFAULT_PREFIX = "mlp:fs:"
_BATCH = 1000  # rows per pipelined round trip when writing
_INSTALL = "pip install 'mlpatterns[featurestore]'"

# KEYS[1]: the entity's hash; ARGV[1]: event µs; ARGV[2]: created µs or ''; ARGV[3...]: field, value, ...
_WRITE = """
local function compare(a, b)  -- two decimal integers as text, exactly (Lua numbers stop at 2^53)
  local negative_a, negative_b = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if negative_a ~= negative_b then return negative_a and -1 or 1 end
  if a == b then return 0 end
  local sign = negative_a and -1 or 1
  if #a ~= #b then return (#a < #b and -1 or 1) * sign end
  return (a < b and -1 or 1) * sign
end
local stored = redis.call('HMGET', KEYS[1], '__mlp_ts', '__mlp_created')
if stored[1] then
  local order = compare(ARGV[1], stored[1])
  if order < 0 then return 0 end
  if order == 0 and stored[2] then
    if ARGV[2] == '' or compare(ARGV[2], stored[2]) < 0 then return 0 end
  end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], '__mlp_ts', ARGV[1], unpack(ARGV, 3))
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], '__mlp_created', ARGV[2]) end
return 1
"""


def _redis_module() -> Any:
    try:
        import redis
    except ImportError:
        raise ImportError(f"online store: the redis backend needs the redis client ({_INSTALL})") from None
    return redis


class RedisOnlineStore(OnlineStore):
    """An online store in a Redis database (see the module docstring).

    ``prefix`` starts every key this store writes (default ``mlp:fs:``); ``timeout`` is the
    seconds to wait to connect and for each reply. Opening checks the server answers.
    """

    def __init__(self, url: str | BackendURL, *, prefix: str | None = None, timeout: float | None = None,
                 create: bool = True) -> None:  # create: a Redis database exists whenever its server answers
        super().__init__()
        redis = _redis_module()
        parsed, options = parse_url(url).split_options("prefix", "timeout")
        shown = parse_url(url).redacted()
        self.url = shown
        connection = _connection(parsed, shown)
        prefix = options.get("prefix", DEFAULT_PREFIX) if prefix is None else prefix
        if not isinstance(prefix, str):
            raise OnlineStoreError(f"online store {shown!r}: prefix must be a string, got {type(prefix).__name__}")
        if not prefix.strip():  # clear() deletes every key under the prefix: never the whole database
            raise OnlineStoreError(f"online store {shown!r}: prefix must not be empty (the store owns every key "
                                   "under it), e.g. 'mlp:fs:'")
        self.prefix = prefix
        try:
            timeout = float(options.get("timeout", 10.0) if timeout is None else timeout)
        except (TypeError, ValueError):
            raise OnlineStoreError(f"online store {shown!r}: timeout must be a number of seconds") from None
        self._errors = (redis.RedisError,)
        self.client = redis.Redis(**connection, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            self.client.ping()
        except redis.RedisError as error:
            self.client.close()
            raise OnlineStoreError(f"online store {shown!r}: cannot connect to the Redis server ({error})") from None
        self._script = self.client.register_script(_WRITE)
        self._views_key = f"{prefix}__mlp_views"
        self._checked: dict[str, tuple[str, ...]] = {}  # view name -> its stored join keys
        self._fields: dict[FeatureView, list[str]] = {}  # the HMGET fields of a view

    def entity_key(self, view: FeatureView, key: Key) -> str:
        """The name of the hash holding the entity ``key`` (its join-key values) of ``view``."""
        if len(key) == 1 and type(key[0]) is int:
            return f"{self.prefix}{view.name}:[{key[0]}]"  # what json.dumps writes, faster
        return f"{self.prefix}{view.name}:{json.dumps(list(key), separators=(',', ':'), ensure_ascii=False)}"

    def clear(self) -> int:
        """Delete every key under this store's prefix (all its views); returns how many."""
        self._check_open()
        pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix) + "*"
        deleted = 0
        try:
            batch = []
            for name in self.client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) == 1000:
                    deleted += self.client.delete(*batch)
                    batch = []
            if batch:
                deleted += self.client.delete(*batch)
        except self._errors as error:
            raise self._failed(error) from None
        self._checked.clear()
        return deleted

    # -- the primitives ----------------------------------------------------------------------
    def _failed(self, error: Exception) -> OnlineStoreError:
        return OnlineStoreError(f"online store {self.url!r}: {type(error).__name__}: {error}")

    def _check_keys(self, view: FeatureView, create: bool) -> bool:
        """Whether the view was ever written here (after checking its join keys); register it if ``create``."""
        keys = self._checked.get(view.name)
        if keys is None:
            wanted = json.dumps(list(view.join_keys))
            if create:
                self.client.hsetnx(self._views_key, view.name, wanted)
            stored = self.client.hget(self._views_key, view.name)
            if stored is None:
                return False
            keys = self._checked[view.name] = tuple(json.loads(stored))
        if keys != tuple(view.join_keys):
            raise OnlineStoreError(f"online store {self.url!r}: FeatureView {view.name!r} has join keys "
                                   f"{list(view.join_keys)}, but its stored rows have {list(keys)}")
        return True

    def _write_records(self, view: FeatureView, records: Sequence[Record]) -> None:
        owner = f"online store {self.url!r}: FeatureView {view.name!r}"
        calls = []
        for key, values, ts, created in records:
            args: list[Any] = [ts, "" if created is None else created]
            for name in view.features:
                try:
                    args += (name, json.dumps(values[name], allow_nan=True, ensure_ascii=False))
                except (TypeError, ValueError) as error:
                    raise TypeError(f"{owner}: a feature value cannot be stored ({error}); values must be "
                                    "numbers, strings, bools, None or lists of them") from None
            calls.append((self.entity_key(view, key), args))
        try:
            self._check_keys(view, create=True)
            for start in range(0, len(calls), _BATCH):
                pipe = self.client.pipeline(transaction=False)
                for name, args in calls[start:start + _BATCH]:
                    self._script(keys=[name], args=args, client=pipe)
                pipe.execute()
        except self._errors as error:
            raise self._failed(error) from None

    def _view_fields(self, view: FeatureView) -> list[str]:
        fields = self._fields.get(view)
        if fields is None:
            if len(self._fields) >= 256:
                self._fields.clear()
            fields = self._fields[view] = [*view.features, "__mlp_ts"]
        return fields

    def _read_one(self, view: FeatureView, key: Key) -> tuple[dict[str, Any], int] | None:
        fields = self._fields.get(view) or self._view_fields(view)
        try:
            if self._checked.get(view.name) != view.join_keys and not self._check_keys(view, create=False):
                return None
            stored = self.client.hmget(self.entity_key(view, key), fields)
        except self._errors as error:
            raise self._failed(error) from None
        return _decode(view, stored)

    def _read_records(self, view: FeatureView, keys: Sequence[Key]) -> list[tuple[dict[str, Any], int] | None]:
        if len(keys) == 1:
            return [self._read_one(view, keys[0])]
        fields = self._view_fields(view)
        distinct = list(dict.fromkeys(keys))
        try:
            if not self._check_keys(view, create=False):
                return [None] * len(keys)
            pipe = self.client.pipeline(transaction=False)
            for key in distinct:
                pipe.hmget(self.entity_key(view, key), fields)
            replies = pipe.execute()
        except self._errors as error:
            raise self._failed(error) from None
        found = dict(zip(distinct, replies, strict=True))
        return [_decode(view, found[key]) for key in keys]

    def _close(self) -> None:
        self.client.close()


def _decode(view: FeatureView, stored: list[bytes | None]) -> tuple[dict[str, Any], int] | None:
    """(values, event µs) from an HMGET of the view's features and ``__mlp_ts``; None if the hash is absent."""
    ts = stored[-1]
    if ts is None:
        return None
    loads = json.loads
    return {name: None if value is None else loads(value)
            for name, value in zip(view.features, stored, strict=False)}, int(ts)


def _connection(url: BackendURL, shown: str) -> dict[str, Any]:
    """redis.Redis's arguments for ``url``, or an OnlineStoreError naming it (password hidden)."""
    expected = "expected 'redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]' or 'rediss://...' (TLS)"
    if url.scheme not in ("redis", "rediss") or url.driver:
        raise OnlineStoreError(f"online store: {expected}, got {shown!r}")
    if url.query:
        raise OnlineStoreError(f"online store: the Redis backend takes the URL options 'prefix' and 'timeout', "
                               f"got {sorted(url.query)} in {shown!r}")
    parts = urlsplit(url.text)
    try:
        port = parts.port or 6379
    except ValueError:
        raise OnlineStoreError(f"online store: bad port in {shown!r}; {expected}") from None
    if not parts.hostname:
        raise OnlineStoreError(f"online store: no host in {shown!r}; {expected}")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise OnlineStoreError(f"online store: the path of {shown!r} must be a database number (/0, /15); "
                               f"{expected}")
    return {"host": parts.hostname, "port": port, "db": int(path or 0),
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "ssl": url.scheme == "rediss"}
