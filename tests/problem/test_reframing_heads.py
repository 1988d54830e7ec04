"""Reframing heads: a bounded output stays in range; the multi-task head learns both tasks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlpatterns.datasets import load_natality
from mlpatterns.problem.reframing import quantiles_from_bucket_proba, target_buckets
from mlpatterns.problem.reframing_heads import BoundedOutput, MultiTaskHead, multitask_loss


def test_bounded_output_never_leaves_its_range():
    head = BoundedOutput(3, low=0.5, high=18.0)
    out = head(torch.randn(1000, 3) * 1e4)
    assert out.min() >= 0.5 and out.max() <= 18.0
    with pytest.raises(ValueError, match="low < high"):
        BoundedOutput(3, low=2, high=1)


def test_multitask_head_learns_value_and_distribution_on_natality():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    frame = load_natality().head(6000)
    x = torch.tensor(np.column_stack([
        (frame["gestation_weeks"] - 38.6) / 2.5, (frame["mother_age"] - 27) / 6,
        frame["is_male"].astype(float), (frame["plurality"] != "Single(1)").astype(float),
    ]), dtype=torch.float32)
    y = frame["weight_pounds"].to_numpy()
    edges, bucket_ids, centers, classes = target_buckets(y[:5000], 10)
    trunk = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU())
    head = MultiTaskHead(32, len(bucket_ids), low=float(y.min()), high=float(y.max()))
    optimizer = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=0.01)
    target = torch.tensor(y[:5000], dtype=torch.float32)
    bucket = torch.tensor(classes, dtype=torch.long)
    for _ in range(300):
        optimizer.zero_grad()
        value, logits = head(trunk(x[:5000]))
        multitask_loss(value, logits, target, bucket).backward()
        optimizer.step()
    with torch.no_grad():
        value, logits = head(trunk(x[5000:]))
    test = y[5000:]
    rmse = float(np.sqrt(np.mean((value.numpy().reshape(-1) - test) ** 2)))
    assert rmse < 0.95 * float(np.std(test))  # better than predicting the mean
    bounds = quantiles_from_bucket_proba(torch.softmax(logits, 1).numpy(), edges, bucket_ids, [0.1, 0.9])
    coverage = np.mean((test >= bounds[:, 0]) & (test <= bounds[:, 1]))
    assert 0.7 < coverage < 0.9
