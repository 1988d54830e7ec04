"""Distribution Strategy (14): two data-parallel processes train what one process trains."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlpatterns.training.distribution_strategy import (
    DistributedContext,
    init_distributed,
    torchrun_command,
)

WORKER = Path(__file__).with_name("ddp_worker.py")


def run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    """Same global batch of 32 rows: the 2-rank weights equal the 1-process weights within 1e-5."""
    run([sys.executable, str(WORKER), str(tmp_path / "one.pt"), "--epochs", "3"], tmp_path)
    run(torchrun_command(WORKER, [str(tmp_path / "two.pt"), "--epochs", "3"], nproc=2), tmp_path)
    one, two = (torch.load(tmp_path / name, weights_only=True) for name in ("one.pt", "two.pt"))
    assert one.keys() == two.keys()
    for key, value in one.items():
        torch.testing.assert_close(two[key], value, rtol=1e-5, atol=1e-5)
    losses = [torch.load(tmp_path / f"{name}.pt.loss", weights_only=True) for name in ("one", "two")]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)  # the history is global


def test_a_single_process_is_rank_zero_of_one(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = init_distributed()
    assert context == DistributedContext() and context.is_main and not context.distributed
    assert DistributedContext.current() == DistributedContext()


def test_torchrun_command_for_one_and_several_nodes():
    one = torchrun_command("train.py", ["--epochs", "3"], nproc=4)
    assert one[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "train.py",
                       "--epochs", "3"]
    two = torchrun_command("mlpatterns.job", nproc=8, module=True, nnodes=2, rendezvous="10.0.0.1:29500",
                           job_id="delays")
    assert "--nnodes=2" in two and "--rdzv_endpoint=10.0.0.1:29500" in two and "--rdzv_id=delays" in two
    assert not any(part.startswith("--node_rank") for part in two)  # c10d numbers the ranks
    assert two[-2:] == ["-m", "mlpatterns.job"]
    with pytest.raises(ValueError, match="rendezvous: several nodes need"):
        torchrun_command("train.py", nnodes=2)
    with pytest.raises(ValueError, match="nproc: expected a positive whole number"):
        torchrun_command("train.py", nproc=0)


def test_an_unknown_backend_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="backend: expected 'gloo', 'nccl' or 'mpi'"):
        init_distributed("tcp")
