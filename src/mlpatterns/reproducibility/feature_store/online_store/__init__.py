"""The Feature Store's online store (pattern 26): the latest feature values per entity, for serving.

=========================================  =============================================
URL                                        backend
=========================================  =============================================
``None`` or ``""``                         ``sqlite:///online_store.db`` (embedded default)
``sqlite:///PATH.db``                      an SQLite file in WAL mode (one machine)
``redis://[[USER]:PW@]HOST[:PORT][/DB]``   a Redis server (``rediss://``: TLS); one hash per
                                           entity under ``?prefix=`` (default ``mlp:fs:``);
                                           needs ``pip install 'mlpatterns[featurestore]'``
=========================================  =============================================

A plain path (``online.db``) is refused with the URL to write, as every backend family
does (:mod:`mlpatterns.backends`). A new backend is one module with a subclass
of :class:`OnlineStore` implementing ``_write_records``, ``_read_records`` and ``_close``
(and, for a faster serving path, ``_read_one``), one entry in :data:`ONLINE_STORE_BACKENDS`, and a test that runs
:class:`mlpatterns.testing.online_store_conformance.OnlineStoreConformance`.

>>> import tempfile
>>> with open_online_store(f"sqlite:///{tempfile.mkdtemp()}/online.db") as store:
...     type(store).__name__
'SQLiteOnlineStore'
"""

from __future__ import annotations

import os
from typing import Any

from mlpatterns.backends import Backend, BackendFamily, open_backend

from ._base import OnlineStore, OnlineStoreError, as_datetime, to_micros

__all__ = ["ONLINE_STORE_BACKENDS", "OnlineStore", "OnlineStoreError", "as_datetime", "open_online_store",
           "to_micros"]

_PACKAGE = "mlpatterns.reproducibility.feature_store.online_store"
DEFAULT_URL = "sqlite:///online_store.db"
ONLINE_STORE_BACKENDS = BackendFamily(
    name="online store",
    default=DEFAULT_URL,
    schemes={
        "sqlite": Backend(f"{_PACKAGE}.sqlite:SQLiteOnlineStore"),
        "redis": Backend(f"{_PACKAGE}.redis:RedisOnlineStore", requires=("redis",), extra="featurestore"),
        "rediss": Backend(f"{_PACKAGE}.redis:RedisOnlineStore", requires=("redis",), extra="featurestore"),
    },
    examples=("sqlite:///PATH.db", "redis://[:PASSWORD@]HOST:6379/0"),
)


def open_online_store(url: str | os.PathLike[str] | OnlineStore | None = None, **options: Any) -> OnlineStore:
    """The online store ``url`` names (see the table above); an open store is returned as it is.

    ``options`` go to the backend (SQLite: ``timeout`` in seconds; Redis: ``prefix`` and
    ``timeout``; both: ``create=False`` refuses a store that does not exist yet, for readers
    such as a server); an unknown one, an unknown scheme or a plain path is refused with an
    :class:`OnlineStoreError` naming the URL (its password hidden).
    """
    if isinstance(url, OnlineStore):
        return url
    try:
        return open_backend(ONLINE_STORE_BACKENDS, url, **options)
    except OnlineStoreError:
        raise
    except TypeError as error:  # an option the backend's class does not take
        raise OnlineStoreError(f"online store: bad option(s) {sorted(options)} ({error}); the SQLite "
                               "backend takes 'timeout' and 'create', the Redis backend 'prefix', 'timeout' and 'create'") from None
    except ValueError as error:
        raise OnlineStoreError(str(error)) from None
