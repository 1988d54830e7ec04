"""The cost of Transfer Learning (pattern 13) from a spec: encoding text with the frozen encoder.

The 58,788 titles of ggplot2movies (56,007 distinct) encoded into all-MiniLM-L6-v2's
384 bottleneck features, as ``features.text`` does in ``mlpatterns run``:

* ``sentence-transformers``: :class:`~mlpatterns.training.SentenceEmbedder` (torch,
  batches of 64 padded to the longest title), the baseline;
* ``ONNX Runtime``: :class:`~mlpatterns.training.transfer_learning.text_encoder.TextEncoder`,
  the exported encoder the bundle carries (equal titles once, grouped by token count,
  batches of 32 rows padded to a multiple of 8 rows, never with padding tokens).

``seconds`` is the wall time of one pass at 1 and 2 threads, ``vs_baseline`` its ratio
to sentence-transformers at the same thread count. ``max_abs_diff`` compares each with
the baseline's embeddings. ``export`` is the one-off export to ONNX (loading BERT,
tracing, verifying), which the cache saves on every later run.
``MLPATTERNS_BENCH_TEXTS`` takes fewer titles.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

TEXTS = int(os.environ.get("MLPATTERNS_BENCH_TEXTS", 0)) or None


def _log(message: str) -> None:
    print(f"  [text_encoder] {message}", file=sys.stderr, flush=True)


def run() -> list[dict]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from mlpatterns.datasets import load_movies
    from mlpatterns.training.transfer_learning.sentence_embedder import SentenceEmbedder
    from mlpatterns.training.transfer_learning.text_encoder import TextEncoder, cached_encoder_onnx

    titles = load_movies()["title"].tolist()[:TEXTS]
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        cached_encoder_onnx(cache=cache)
        rows.append(
            {
                "encoder": "export to ONNX (once, then cached)",
                "threads": torch.get_num_threads(),
                "seconds": time.perf_counter() - started,
            }
        )
    baseline: dict[int, tuple[float, np.ndarray]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        embedder = SentenceEmbedder(progress=False).fit(titles[:2])
        embedder.transform(titles[:64])  # load and warm up outside the clock
        _log(f"sentence-transformers, {threads} thread(s), {len(titles):,} titles")
        started = time.perf_counter()
        expected = embedder.transform(titles)
        baseline[threads] = (time.perf_counter() - started, expected)
        rows.append(
            {
                "encoder": "sentence-transformers (torch)",
                "threads": threads,
                "texts": len(titles),
                "seconds": baseline[threads][0],
                "texts_per_s": len(titles) / baseline[threads][0],
                "vs_baseline": 1.0,
                "max_abs_diff": 0.0,
            }
        )
        encoder = TextEncoder.packaged(threads=threads)
        encoder.encode(titles[:64], progress=False)
        _log(f"ONNX Runtime, {threads} thread(s)")
        started = time.perf_counter()
        got = encoder.encode(titles, progress=False)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "encoder": "ONNX Runtime (the bundle's encoder)",
                "threads": threads,
                "texts": len(titles),
                "seconds": seconds,
                "texts_per_s": len(titles) / seconds,
                "vs_baseline": seconds / baseline[threads][0],
                "max_abs_diff": float(np.max(np.abs(got - expected))),
            }
        )
    return rows
