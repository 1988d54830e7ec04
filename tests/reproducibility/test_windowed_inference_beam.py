"""Windowed Inference (24) on Apache Beam: the translation of the sliding windows, run in Beam's own environment.

Apache Beam is not installed in the project's environment (apache-beam 2.77 would downgrade
pyarrow). The end-to-end test runs ``examples/windowed_inference_beam.py`` with the Beam
environment's python named by ``MLPATTERNS_BEAM_PYTHON`` (skipped otherwise):

    python -m venv /tmp/beam-venv && /tmp/beam-venv/bin/pip install apache-beam==2.77.0
    MLPATTERNS_BEAM_PYTHON=/tmp/beam-venv/bin/python pytest tests/reproducibility/test_windowed_inference_beam.py
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpatterns.reproducibility.windowed_inference import AGGREGATES, WindowFeature

BEAM_PYTHON = os.environ.get("MLPATTERNS_BEAM_PYTHON")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "windowed_inference_beam.py"


def test_without_beam_the_module_says_how_to_install_it_apart():
    if importlib.util.find_spec("apache_beam") is not None:
        pytest.skip("apache_beam is installed here")
    from mlpatterns.reproducibility.windowed_inference.beam import sliding_window_features_beam

    f = WindowFeature("n", "v", "count", "1h", key="k", time="t")
    with pytest.raises(ImportError, match=r"kept out of mlpatterns' environment.*apache-beam==2\.77\.0"):
        sliding_window_features_beam(None, [f], period="10min")


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(-50, 500).map(float),
                                 st.floats(-1e6, 1e6, allow_nan=False)), max_size=40),
       seed=st.integers(0, 10**6))
def test_the_combine_gives_the_streams_aggregates_whatever_the_merge_order(values, seed):
    """Beam merges accumulators in any order: count, sum, mean, max, min come out bit for bit
    the stream's (exact sums), std within rounding."""
    from mlpatterns.reproducibility.windowed_inference import _common
    from mlpatterns.reproducibility.windowed_inference.beam import _merge, _one, _value

    accumulators = [(_one(v),) for v in values] or [(_one(None),)]
    rng = random.Random(seed)
    while len(accumulators) > 1:  # a random merge tree
        rng.shuffle(accumulators)
        k = rng.randint(2, len(accumulators))
        accumulators = [_merge(accumulators[:k]), *accumulators[k:]]
    (merged,) = accumulators[0]
    for aggregate in AGGREGATES:
        got, expected = _value(merged, aggregate), _common.aggregate(values, aggregate)
        if aggregate == "std" or (isinstance(expected, float) and math.isnan(expected)):
            assert (math.isnan(got) and math.isnan(expected)) or math.isclose(got, expected, rel_tol=1e-9,
                                                                              abs_tol=1e-6)
        else:
            assert got == expected, aggregate


@pytest.mark.skipif(not BEAM_PYTHON or not Path(BEAM_PYTHON).exists(),
                    reason="MLPATTERNS_BEAM_PYTHON does not name the Beam environment's python")
def test_the_beam_pipeline_gives_the_batch_and_stream_windows(capsys):
    spec = importlib.util.spec_from_file_location("windowed_inference_beam", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--beam-python", BEAM_PYTHON]) == 0
    out = capsys.readouterr().out
    assert "delays: 1,487 events" in out and "flights: 968 events" in out
    assert out.count("vs batch: equal") == 2 and out.count("vs stream: equal") == 2
    assert "Beam agrees with batch and stream: True" in out
    # The late event: Beam drops it (behind its watermark, no allowed lateness), as our stream with none;
    # our stream with 30 minutes of lateness counts it.
    assert "Beam (allowed lateness 0) 12:10: 1, 12:20: 2, 12:30: 1;" in out
    assert "allowed_lateness=30min: 12:10: 2, 12:20: 3, 12:30: 1 (rejected 0)" in out
