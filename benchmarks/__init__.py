"""Speed and memory benchmarks, run with ``python -m benchmarks [name ...]`` (``make bench``).

Each ``bench_<name>.py`` module exposes ``run() -> list[dict]``: one dict per measured
row, with the baseline measured in the same run so that the ratios hold on any machine.
``python -m benchmarks`` runs every module and prints one table per module; the figures
recorded in ``BENCHMARKS.md`` come from it.
"""
