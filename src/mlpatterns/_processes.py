"""Whether a process is still running: how a store or a study tells a dead writer's leftovers from a live one's."""

from __future__ import annotations

import os
import pickle
from typing import Any

__all__ = ["process_exists", "survives_pickling"]


def process_exists(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one of another user counts).

    >>> process_exists(os.getpid())
    True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def survives_pickling(value: Any) -> bool:
    """Whether ``value`` (an exception, say) can cross to another process of the same run and back.

    Pickles only what this process made and reads it straight back: no outside data.

    >>> survives_pickling(ValueError("x")), survives_pickling(lambda: None)
    (True, False)
    """
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:  # a lock, a file handle, a lambda...
        return False
    return True
