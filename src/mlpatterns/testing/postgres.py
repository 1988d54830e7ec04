"""A fresh PostgreSQL schema for one test: what the PostgreSQL backends' conformance runs share.

The tests of every backend that lives in PostgreSQL (the model registry, the prediction log)
run against the one test database ``.ci/run`` starts; each test gets its own schema, made
before and dropped after, so tests never see each other's tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

__all__ = ["fresh_schema_url"]


@contextmanager
def fresh_schema_url(url: str, prefix: str) -> Iterator[str]:
    """``url`` with ``search_path`` set to a new schema named ``<prefix>_<12 hex>``, dropped (with its tables)
    when the block ends."""
    import sqlalchemy

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
