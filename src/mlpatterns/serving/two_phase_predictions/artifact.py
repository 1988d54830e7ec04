"""The folder that describes a two-phase model: phase 1's ONNX file, its threshold and what was measured.

``mlpatterns run`` writes it for a spec's ``two_phase:`` section (``runs/NAME/two_phase/``)
and :meth:`TwoPhaseModel.from_run` reads it back. It is data, never code:

* ``phase_one.onnx``: the phase-1 model (int8 or float32), its feature names in its metadata;
* ``two_phase.json``: the format, the threshold, the phase-1 columns, the coarse question,
  the ``negative`` answer, the key columns, phase 2 (the model's name and its bundle,
  relative to the folder, with the bundle's manifest digest), the SHA-256 of
  ``phase_one.onnx`` and the figures measured on the test split;
* ``tradeoff.png``: the trade-off curve on the validation split (when drawn).

A folder whose ``phase_one.onnx`` does not match its recorded digest is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["DESCRIPTION", "FORMAT", "PHASE_ONE_FILE", "read_two_phase", "write_two_phase"]

FORMAT = "mlpatterns.two_phase/1"
DESCRIPTION = "two_phase.json"
PHASE_ONE_FILE = "phase_one.onnx"
_REQUIRED = ("threshold", "columns", "negative", "keys")


def write_two_phase(folder: str | os.PathLike[str], phase_one: bytes, description: dict[str, Any]) -> Path:
    """Write ``phase_one.onnx`` and ``two_phase.json`` (``description`` plus the format and the file's digest)
    into ``folder``, which must not hold them yet. Returns the description's path."""
    folder = Path(folder)
    missing = [name for name in _REQUIRED if name not in description]
    if missing:
        raise ValueError(f"description: missing field(s) {missing}")
    folder.mkdir(parents=True, exist_ok=True)
    for name in (PHASE_ONE_FILE, DESCRIPTION):
        if (folder / name).exists():
            raise FileExistsError(f"{folder / name} exists; write a two-phase folder into a fresh folder")
    (folder / PHASE_ONE_FILE).write_bytes(phase_one)
    document = {"format": FORMAT, **description,
                "phase_one": {**description.get("phase_one", {}), "file": PHASE_ONE_FILE,
                              "sha256": hashlib.sha256(phase_one).hexdigest(), "bytes": len(phase_one)}}
    path = folder / DESCRIPTION
    path.write_text(json.dumps(document, indent=1, sort_keys=True, default=str) + "\n")
    return path


def read_two_phase(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """The description and the phase-1 model bytes of a two-phase folder, checked against each other."""
    folder = Path(folder)
    path = folder / DESCRIPTION
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {DESCRIPTION}; expected the two_phase folder that 'mlpatterns run' "
                                "writes for a spec's two_phase: section (runs/NAME/two_phase)")
    try:
        document = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: format must be {FORMAT!r}, got "
                         f"{document.get('format') if isinstance(document, dict) else document!r}")
    missing = [name for name in (*_REQUIRED, "phase_one") if name not in document]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}")
    model = (folder / PHASE_ONE_FILE).read_bytes()
    if hashlib.sha256(model).hexdigest() != document["phase_one"].get("sha256"):
        raise ValueError(f"{folder / PHASE_ONE_FILE}: its SHA-256 does not match {DESCRIPTION}'s; refusing a "
                         "phase-1 model the threshold was not chosen for")
    return document, model
