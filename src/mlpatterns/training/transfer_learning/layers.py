"""Transfer Learning (pattern 13): reuse a model trained on a large related task.

Problem: the task has too few labelled examples (a few hundred movie titles, ten
images per digit) to train a model that must first learn what text or images look
like.

Solution: take a model pretrained on a large related task, keep its layers up to a
*bottleneck* (the last layer before its task-specific head) and put a new head on
top. First use the pretrained layers as a frozen feature extractor: compute the
bottleneck features once and train only the head. Then, optionally, *fine-tune*:
train the whole network end to end with small learning rates, smallest for the
lowest layers, whose general features the small data set should change least, and
keep the first layers frozen if the data are very few.

This module holds the helpers that work for any ``torch.nn.Module``:

* :func:`freeze` / :func:`unfreeze`: stop (restart) training the first children of
  a model; :func:`train_mode` keeps frozen layers in inference mode while training.
* :func:`layerwise_lr_groups`: torch optimizer parameter groups with a learning rate
  that decays geometrically from the head down.
* :func:`bottleneck_features`: the output of any named layer, as a NumPy array.
* :func:`train_classifier`: a small, seeded minibatch loop (cross-entropy, AdamW).

The text side (the pretrained all-MiniLM-L6-v2 sentence encoder as a scikit-learn
transformer and a fine-tuned classifier) is in
:mod:`mlpatterns.training.transfer_learning.sentence_embedder`; a small CNN for 8x8 digits is in
``examples/transfer_learning_images.py``. torch is imported when a helper
is called, not when this module is.

Examples
--------
>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
>>> freeze(model, up_to="1")
['0', '1']
>>> [(group["name"], group["lr"]) for group in layerwise_lr_groups(model, 1e-3, decay=0.5)]
[('2', 0.001)]
>>> bottleneck_features(model, torch.zeros(5, 4), layer="1").shape
(5, 8)
"""

from __future__ import annotations

import contextlib
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "bottleneck_features",
    "freeze",
    "layerwise_lr_groups",
    "train_classifier",
    "train_mode",
    "unfreeze",
]


def _children(model: Any, up_to: Any) -> list[tuple[str, Any]]:
    """The named children of ``model`` from the first through ``up_to`` (all when ``None``)."""
    children = list(model.named_children())
    if up_to is None:
        return children
    if isinstance(up_to, Integral) and not isinstance(up_to, bool):
        if not 0 <= up_to <= len(children):
            raise ValueError(f"up_to must be between 0 and {len(children)} children, got {up_to}")
        return children[:up_to]
    for position, (name, child) in enumerate(children):
        if up_to == name or up_to is child:
            return children[: position + 1]
    names = [name for name, _ in children]
    raise ValueError(
        f"up_to must name a child of the model (one of {names}), or count them; got {up_to!r}"
    )


def freeze(model: Any, up_to: Any = None) -> list[str]:
    """Stop training the children of ``model`` from the first through ``up_to``.

    Parameters
    ----------
    model : torch.nn.Module
    up_to : str, torch.nn.Module or int, default=None
        The last child to freeze, by name or object (children in registration order),
        or the number of leading children to freeze. ``None`` freezes the whole model.

    Returns
    -------
    list of str
        The names of the frozen children (``[""]`` for the whole model).

    Frozen parameters get ``requires_grad=False``: no gradient, no optimizer update.
    Buffers (BatchNorm statistics) are not parameters; :func:`train_mode` keeps the
    frozen layers in inference mode so that they do not move either.
    """
    return _set_trainable(model, up_to, False)


def unfreeze(model: Any, up_to: Any = None) -> list[str]:
    """Train the children of ``model`` through ``up_to`` again (all of it when ``None``)."""
    return _set_trainable(model, up_to, True)


def _set_trainable(model: Any, up_to: Any, trainable: bool) -> list[str]:
    if up_to is None:
        model.requires_grad_(trainable)
        return [""]
    children = _children(model, up_to)
    for _, child in children:
        child.requires_grad_(trainable)
    return [name for name, _ in children]


def train_mode(model: Any) -> Any:
    """``model.train()``, with every module whose parameters are all frozen kept in eval mode.

    A frozen layer then behaves as it did in pretraining: its dropout is off and its
    BatchNorm running statistics stay put. Returns ``model``.
    """
    model.train()
    for module in model.modules():
        parameters = list(module.parameters())
        if parameters and not any(p.requires_grad for p in parameters):
            module.eval()
    return model


def layerwise_lr_groups(
    model: Any,
    base_lr: float,
    decay: float = 0.8,
    layers: Any = None,
    weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups whose learning rate decays from the top layer down.

    Parameters
    ----------
    model : torch.nn.Module
    base_lr : float
        The learning rate of the top layer (the head).
    decay : float, default=0.8
        Factor per layer going down: layer ``k`` below the top trains at
        ``base_lr * decay**k``. ``1.0`` gives one rate for all.
    layers : list of str or (str, torch.nn.Module), default=None
        The layers from the bottom (input) to the top (head): names of submodules of
        ``model`` (``"encoder.layer.0"``) or ``(name, module)`` pairs. ``None`` takes
        the children of ``model`` in registration order.
    weight_decay : float, default=None
        Put into every group when given.

    Returns
    -------
    list of dict
        One group per layer with a trainable parameter, bottom first:
        ``{"name", "params", "lr"}`` (and ``"weight_decay"``), ready for any
        ``torch.optim`` optimizer. Frozen parameters are left out.

    Raises
    ------
    ValueError
        If a trainable parameter of ``model`` is in no layer (name it in ``layers``
        or freeze it), or in two.
    """
    if isinstance(base_lr, bool) or not isinstance(base_lr, Real) or not base_lr > 0:
        raise ValueError(f"base_lr must be a positive number, got {base_lr!r}")
    if isinstance(decay, bool) or not isinstance(decay, Real) or not 0 < decay <= 1:
        raise ValueError(f"decay must be a number in (0, 1], got {decay!r}")
    if layers is None:
        named = list(model.named_children())
    else:
        modules = dict(model.named_modules())
        named = []
        for layer in layers:
            name, module = (layer, modules.get(layer)) if isinstance(layer, str) else layer
            if module is None:
                raise ValueError(f"layers names {name!r}, which is not a submodule of the model")
            named.append((name, module))
    owner: dict[int, str] = {}
    groups = []
    for depth, (name, module) in enumerate(named):
        params = []
        for parameter in module.parameters():
            if id(parameter) in owner:
                raise ValueError(
                    f"a parameter of layer {name!r} is also in layer {owner[id(parameter)]!r}"
                )
            owner[id(parameter)] = name
            if parameter.requires_grad:
                params.append(parameter)
        if params:
            group = {
                "name": name,
                "params": params,
                "lr": float(base_lr) * float(decay) ** (len(named) - 1 - depth),
            }
            if weight_decay is not None:
                group["weight_decay"] = float(weight_decay)
            groups.append(group)
    left_out = [
        name for name, p in model.named_parameters() if p.requires_grad and id(p) not in owner
    ]
    if left_out:
        raise ValueError(
            f"trainable parameters in no layer: {left_out[:5]}; list their layers or freeze them"
        )
    return groups


def bottleneck_features(
    model: Any, X: Any, layer: Any = None, batch_size: int = 1024
) -> np.ndarray:
    """The output of ``layer`` for every row of ``X``, one flattened row per example.

    Parameters
    ----------
    model : torch.nn.Module
    X : array-like or torch.Tensor
        The model's input (converted to float32 if it is not a tensor).
    layer : str or torch.nn.Module, default=None
        The submodule whose output is the bottleneck, by name (``"bottleneck"``,
        ``"encoder.layer.5"``) or object; ``None`` takes the model's output.
    batch_size : int, default=1024

    The model runs in eval mode without gradients (its mode is restored after), and
    stops at ``layer``: the layers above it are not computed.
    """
    import torch

    target = model
    if layer is not None:
        target = dict(model.named_modules()).get(layer) if isinstance(layer, str) else layer
        if target is None:
            names = [name for name, _ in model.named_modules() if name]
            raise ValueError(
                f"layer must name a submodule of the model (one of {names[:20]}), got {layer!r}"
            )
    inputs = (
        X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X), dtype=torch.float32)
    )
    captured: list[Any] = []

    class _Reached(Exception):
        pass

    def hook(module, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _Reached

    handle = target.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                with contextlib.suppress(_Reached):
                    model(inputs[start : start + batch_size])
                out.append(
                    captured.pop().reshape(min(batch_size, len(inputs) - start), -1).cpu().numpy()
                )
    finally:
        handle.remove()
        model.train(was_training)
    return np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)


def train_classifier(
    model: Any,
    X: Any,
    y: Any,
    *,
    param_groups: Any = None,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    epochs: int = 50,
    batch_size: int = 32,
    random_state: int = 0,
) -> list[float]:
    """Train ``model`` (logits out) on ``(X, y)`` with cross-entropy and AdamW; return the epoch losses.

    ``param_groups`` (for example from :func:`layerwise_lr_groups`) sets the rate of
    each layer; by default every trainable parameter trains at ``learning_rate``.
    Frozen layers stay in eval mode (:func:`train_mode`). ``random_state`` seeds
    dropout and the order of the minibatches, so a run repeats exactly.
    """
    import torch

    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    inputs = (
        X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X), dtype=torch.float32)
    )
    target = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if param_groups is None:
        param_groups = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(param_groups, lr=learning_rate, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(int(random_state))
    losses = []
    with torch.random.fork_rng(devices=[]):  # seeded dropout; the caller's random state untouched
        torch.manual_seed(int(random_state))
        train_mode(model)
        for _ in range(epochs):
            total = 0.0
            for batch in torch.randperm(len(target), generator=generator).split(batch_size):
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(inputs[batch]), target[batch])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(target))
    model.eval()
    return losses
