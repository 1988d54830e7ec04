"""Train the torch network that a ``wide_and_deep`` model section of a spec declares.

The network's output layer follows the problem representation (chapter 3): a logit for
a binary class, a value, a softmax over target buckets (Reframing, 5), one sigmoid per
label (Multilabel, 6) or three classes (Neutral Class, 9), with Rebalancing (10) by
resampling, class weights or the output bias. It trains with the chapter-4
:class:`~mlpatterns.training.Trainer` (:func:`~mlpatterns.models.training_loop.train_network`):

* Checkpoints (12): the model section's ``checkpoints:`` (``every`` steps, ``keep_last``,
  ``dir``; ``false`` for none) saves the full training state under the run's output
  directory; ``mlpatterns run --resume`` continues an interrupted run bit for bit, and
  ``checkpoints.init_from`` fine-tunes another run's weights on this spec's data.
* Distribution Strategy (14): in a ``torchrun`` job (the spec's ``distribution:`` or
  ``mlpatterns run --processes N``) every rank trains its share of each global batch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mlpatterns.spec._checks import SpecError
from mlpatterns.spec.models import NEUTRAL_CLASSES, SAMPLE_ROWS, TrainedModel, serving_fields
from mlpatterns.spec.schema import Spec

__all__ = ["checkpoint_dir", "network_defaults", "train_network_model"]


def checkpoint_dir(name: str, model_spec: dict[str, Any], context: dict[str, Any]) -> Path | None:
    """Where the network of ``models.<name>`` keeps its checkpoints in this run (None: nowhere).

    The run's ``context["training"]["checkpoint_root"]`` (``OUTPUT/checkpoints``) holds a
    folder per model unless the section names its own ``dir``; a context without
    ``training`` (a tuning trial) writes none.
    """
    options = context.get("training")
    checkpoints = model_spec.get("checkpoints", {})
    if options is None or not checkpoints.get("enabled", True):
        return None
    return Path(checkpoints["dir"]) if "dir" in checkpoints else Path(options["checkpoint_root"]) / name


def _holds_checkpoints(directory: Path) -> bool:
    from mlpatterns.training.checkpoints.manager import CheckpointError, CheckpointManager

    try:
        return bool(CheckpointManager(directory).candidates())
    except CheckpointError:  # a damaged manifest: resuming reports it
        return True


MAX_BATCH_SIZE = 1024
STEPS_PER_EPOCH = 50  # a small table still gets this many steps an epoch
DEFAULT_EPOCHS = 20  # at most; early stopping on the validation loss (patience 2) usually ends sooner


def network_defaults(train_rows: int) -> dict[str, int]:
    """A network's ``batch_size`` and ``epochs`` when the spec leaves them out.

    The batch is the power of two nearest ``train_rows / STEPS_PER_EPOCH``, between 32
    and ``MAX_BATCH_SIZE``: 1,000 training rows train in batches of 32 (31 steps an
    epoch), 250,000 in batches of 1,024, so a small table is not trained in a handful of
    steps. Up to ``DEFAULT_EPOCHS`` epochs, stopped early on the validation loss.

    >>> network_defaults(1_000), network_defaults(250_000)
    ({'batch_size': 32, 'epochs': 20}, {'batch_size': 1024, 'epochs': 20})
    """
    batch = 2 ** int(np.clip(np.round(np.log2(max(train_rows, 1) / STEPS_PER_EPOCH)), 5, np.log2(MAX_BATCH_SIZE)))
    return {"batch_size": int(batch), "epochs": DEFAULT_EPOCHS}


def _network_target(y: np.ndarray, neutral: np.ndarray | None) -> np.ndarray:
    if neutral is None:
        return y
    return np.where(neutral, 1, np.where(y > 0.5, 2, 0))  # NEUTRAL_CLASSES order


def train_network_model(name: str, model_spec: dict[str, Any], spec: Spec, data: dict[str, Any],
                        context: dict[str, Any], progress: Any, seed: int) -> TrainedModel:
    """A torch wide-and-deep network whose output layer fits the problem representation."""
    import torch

    from mlpatterns.export.onnx_export import torch_to_onnx
    from mlpatterns.models.training_loop import predict_network, train_network
    from mlpatterns.models.wide_and_deep import WideAndDeep
    from mlpatterns.training.checkpoints.manager import CheckpointError
    from mlpatterns.training.checkpoints.state import CheckpointMismatchError

    (train, y_train), (valid, y_valid), (test, _) = (data[s] for s in ("train", "valid", "test"))
    params = {**network_defaults(len(y_train)), **model_spec["params"]}
    architecture = {k: params.pop(k) for k in ("hidden", "dropout") if k in params}
    task, head = spec.task, {"output": "probabilities" if spec.task != "regression" else "value"}
    reframe, neutral = spec.target.get("reframe"), "neutral" in spec.target
    fit_train, fit_valid = y_train, y_valid
    if reframe is not None:  # Reframing (5): a softmax head over target buckets
        from mlpatterns.problem.reframing import target_buckets

        edges, bucket_ids, centers, fit_train = target_buckets(y_train, reframe["buckets"], reframe["strategy"])
        fit_valid = np.clip(np.searchsorted(bucket_ids, np.searchsorted(edges[1:-1], y_valid, side="right")),
                            0, len(bucket_ids) - 1)
        task, architecture["n_outputs"] = "multiclass", len(bucket_ids)
        head = {"output": "bucket_probabilities", "centers": centers.tolist(), "edges": edges.tolist(),
                "bucket_ids": bucket_ids.tolist(), "quantiles_out": list(reframe["quantiles"])}
    elif neutral:  # Neutral Class (9): a three-class softmax head
        fit_train = _network_target(y_train, context["neutral"]["train"])
        fit_valid = _network_target(y_valid, context["neutral"]["valid"])
        task, architecture["n_outputs"] = "multiclass", len(NEUTRAL_CLASSES)
    elif task == "multiclass":  # one softmax output per class
        architecture["n_outputs"] = len(spec.target["classes"])
    elif task == "multilabel":  # Multilabel (6): one sigmoid per label
        architecture["n_outputs"] = y_train.shape[1]
    target_scale = None
    if task == "regression":  # the network learns the standardised target; TargetScale undoes it when serving
        std = float(np.std(y_train))
        target_scale = (float(np.mean(y_train)), std if std > 0 else 1.0)
        fit_train, fit_valid = (y_train - target_scale[0]) / target_scale[1], (y_valid - target_scale[0]) / target_scale[1]
    rows, rebalance = np.arange(len(fit_train)), model_spec.get("rebalance", {})
    method = rebalance.get("method")
    if method in ("downsample", "upsample"):  # Rebalancing (10) by resampling the training rows
        from mlpatterns.problem.rebalancing import make_sampler

        sampler = make_sampler(method, rebalance.get("sampling_strategy", "auto"), seed)
        rows, _ = sampler.fit_resample(rows.reshape(-1, 1), fit_train)
        rows = np.sort(rows.ravel())
    pos_weight = None
    if method == "class_weight":  # the positive rows weigh as much as the negative ones
        rate = float(np.mean(fit_train))
        pos_weight = (1 - rate) / max(rate, 1e-6)
    checkpoints = model_spec.get("checkpoints", {})
    directory = checkpoint_dir(name, model_spec, context)
    options = context.get("training") or {}
    resume = bool(options.get("resume")) and directory is not None and _holds_checkpoints(directory)
    # a resumed run continues from its own checkpoints, which already hold the fine-tuned weights
    loop = {"checkpoint_dir": directory, "resume": resume, "init_from": None if resume else checkpoints.get("init_from")}
    if directory is not None:
        from mlpatterns.training.trainer.loop import DEFAULT_CHECKPOINT_EVERY

        loop.update(checkpoint_every=checkpoints.get("every", DEFAULT_CHECKPOINT_EVERY),
                    keep_last=checkpoints.get("keep_last", 2))
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    try:
        network = WideAndDeep(n_numeric=train.numeric.shape[1], cardinalities=train.cardinalities, **architecture)
        if method == "output_bias":  # the first predictions start at the training positive rate
            from mlpatterns.problem.rebalancing_bias import init_output_bias

            init_output_bias(network, float(np.clip(np.mean(fit_train), 1e-4, 1 - 1e-4)))
        fit_rows = train if len(rows) == len(fit_train) else replace(
            train, numeric=train.numeric[rows], categorical=train.categorical[rows])
        result = train_network(network, fit_rows, fit_train[rows], valid, fit_valid, task=task, seed=seed,
                               progress=progress, pos_weight=pos_weight, **loop, **params)
    except TypeError as error:
        raise SpecError(f"models.{name}.params: {error}") from error
    except (CheckpointError, CheckpointMismatchError, OSError) as error:
        hint = "; `mlpatterns run --resume` continues it" if "already holds checkpoints" in str(error) else ""
        if isinstance(error, CheckpointMismatchError) and loop["init_from"] is not None:
            hint = ("; fine-tuning needs the feature layout of the run it starts from: vocabularies (categorical "
                    "columns with encoding auto or vocabulary) learned on other rows have other sizes, so declare "
                    "hash buckets ({encoding: hash, buckets: N}) in both specs")
        raise SpecError(f"models.{name}.checkpoints: {error}{hint}") from error
    except ValueError as error:
        # the Trainer's checks of the loop's values, or a resume with other settings
        field = "checkpoints" if str(error).startswith(("resume:", "init_from:")) else "params"
        raise SpecError(f"models.{name}.{field}: {error}") from error
    from mlpatterns.training.distribution_strategy import DistributedContext

    if not DistributedContext.current().is_main:  # another rank of a data-parallel job: rank 0 bundles
        return TrainedModel(np.zeros(0), {}, {"type": "wide_and_deep", "history": result.history})
    served = result.model
    if target_scale is not None:
        from mlpatterns.models.wide_and_deep import TargetScale

        served = TargetScale(result.model, *target_scale)
        head["target_scale"] = {"mean": target_scale[0], "std": target_scale[1]}
    test_output = predict_network(served, test, task)
    valid_output = predict_network(served, valid, task)
    if reframe is not None:
        test_output = test_output @ np.asarray(head["centers"])
    onnx_bytes = torch_to_onnx(served, test.numeric[:SAMPLE_ROWS], test.categorical[:SAMPLE_ROWS], task)
    info = {"type": "wide_and_deep", "framework": "torch", "file": "model.onnx",
            "architecture": result.model.config, "history": result.history, "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early, "rebalance": rebalance or None, **head}
    if directory is not None or loop["init_from"] is not None:
        info["checkpoints"] = {"dir": None if directory is None else str(directory),
                               "resumed_from": result.resumed_from, "init_from": loop["init_from"]}
    serving = serving_fields(model_spec, spec, y_valid, valid_output) if reframe is None else {}
    return TrainedModel(test_output, {"model.onnx": onnx_bytes}, info, serving, valid_output)
