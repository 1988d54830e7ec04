"""Content digests for the Workflow Pipeline (pattern 25): what a step's cache key is made of.

A cache that trusts paths, modification times or package versions serves stale results
when a file is rewritten in place or code is edited without a version bump. Every digest
here is a SHA-256 over *content*: a file's bytes (the same hex string as ``sha256sum``),
a directory's sorted relative paths and file digests, a function's source text and the
source files of the modules it names, and parameters as canonical JSON.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import linecache
import os
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

__all__ = [
    "artifact_digest",
    "canonical_json",
    "code_digests",
    "directory_digest",
    "file_digest",
    "function_source",
    "module_files",
]

CHUNK = 1 << 20  # sources are streamed in 1 MiB chunks


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (equal to ``sha256sum``'s output)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def directory_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 over a directory's sorted relative paths and the digests of its files.

    Empty sub-directories count (as ``name/``); names, not modification times or
    permissions, identify entries. Symbolic links to files are read through.
    """
    root = Path(path)
    entries: list[str] = []
    for folder, dirnames, filenames in os.walk(root):
        relative = Path(folder).relative_to(root)
        dirnames.sort()
        for name in dirnames:
            entries.append(f"{(relative / name).as_posix()}/\0\n")
        for name in filenames:
            entries.append(f"{(relative / name).as_posix()}\0{file_digest(Path(folder, name))}\n")
    digest = hashlib.sha256(b"mlpatterns.pipeline.directory/1\n")
    for entry in sorted(entries):
        digest.update(entry.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def artifact_digest(path: str | os.PathLike[str]) -> tuple[str, str, int]:
    """``(digest, kind, size)`` of a file or directory; ``kind`` is ``"file"`` or ``"directory"``.

    ``size`` is the file's bytes, or the total bytes of the directory's files.
    """
    path = Path(path)
    if path.is_dir():
        size = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
        return directory_digest(path), "directory", size
    if path.is_file():
        return file_digest(path), "file", path.stat().st_size
    raise FileNotFoundError(f"{path} is neither a file nor a directory")


def stat_signature(path: str | os.PathLike[str]) -> tuple:
    """(size, mtime_ns, inode, ctime_ns) of a file, or of every file under a directory.

    Used only to notice that a source changed *while* a step read it; never as a key.
    """
    path = Path(path)
    items = sorted(path.rglob("*")) if path.is_dir() else [path]
    signature = []
    for item in items:
        stat = item.stat()
        signature.append((str(item), stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns))
    return tuple(signature)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces; raises ``TypeError``/``ValueError`` if not JSON-able.

    >>> canonical_json({"b": [1, 2.5], "a": "x"})
    '{"a":"x","b":[1,2.5]}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_text(text: str) -> str:
    """SHA-256 hex digest of a text encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def function_source(function: Callable) -> str:
    """The source text that identifies a step's function.

    A plain function or method: :func:`inspect.getsource`. A :func:`functools.partial`:
    the wrapped function's source plus its bound arguments as canonical JSON. Any other
    callable: the source of its class. Raises ``ValueError`` when the source cannot be
    read (a function typed at an interactive prompt).
    """
    if isinstance(function, partial):
        bound = canonical_json({"args": list(function.args), "keywords": function.keywords})
        return f"{function_source(function.func)}\n# partial {bound}"
    target = function if inspect.isroutine(function) else type(function)
    try:
        filename = inspect.getsourcefile(target)
        if filename and os.path.isfile(filename):
            linecache.cache.pop(filename, None)  # read the file as it is now, not as cached
        return inspect.getsource(target)
    except (OSError, TypeError) as error:
        raise ValueError(
            f"cannot read the source of {target!r} ({error}); a step's function must be "
            "defined in a file so that editing it changes the step's key"
        ) from error


def module_files(name: str) -> list[Path]:
    """The source files of a module (every ``.py`` file of a package), found without importing it.

    Only the top-level package is located with :func:`importlib.util.find_spec`; the rest
    of the dotted name is followed through the folders, since ``find_spec`` would import
    every parent package of a dotted name (and all that their ``__init__`` imports).
    """
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as error:
        raise ValueError(f"code module {name!r} cannot be found: {error}") from error
    if spec is None:
        raise ValueError(f"code module {name!r} cannot be found")
    if not rest:
        locations = [Path(location) for location in spec.submodule_search_locations or ()]
        origin = Path(spec.origin) if spec.origin and not locations else None
    else:
        locations, origin = [], None
        for folder in map(Path, spec.submodule_search_locations or ()):
            place = folder.joinpath(*rest)
            if (place / "__init__.py").is_file():
                locations.append(place)
            elif place.with_suffix(".py").is_file():
                origin = place.with_suffix(".py")
            if locations or origin:
                break
    if locations:
        return sorted(file for location in locations for file in location.rglob("*.py"))
    if origin is None or not origin.is_file():
        raise ValueError(f"code module {name!r} cannot be found (or has no source file)")
    return [origin]


def module_digest(name: str) -> str:
    """SHA-256 over a module's source files (package files by sorted relative path)."""
    files = module_files(name)
    base = Path(os.path.commonpath([str(file.parent) for file in files]))
    lines = sorted(f"{file.relative_to(base).as_posix()}\0{file_digest(file)}\n" for file in files)
    return sha256_text("".join(lines))


def code_digests(function: Callable, modules: Iterable[str] = ()) -> dict[str, Any]:
    """``{"function": digest, "modules": {name: digest}}`` for a step's code.

    >>> def double(inputs, outputs, params):
    ...     pass
    >>> sorted(code_digests(double, ["json"]))
    ['function', 'modules']
    """
    return {
        "function": sha256_text(function_source(function)),
        "modules": {name: module_digest(name) for name in sorted(set(modules))},
    }


def combined_digest(parts: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``parts`` (how step keys and code digests are formed)."""
    return sha256_text(canonical_json(parts))
