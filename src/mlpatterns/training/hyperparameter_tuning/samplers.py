"""Samplers and pruners of Hyperparameter Tuning (15) by name, as a spec or a config names them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["PRUNERS", "SAMPLERS", "describe_config", "make_pruner", "make_sampler"]

SAMPLERS = ("tpe", "random", "gp", "qmc", "cmaes", "bruteforce")
PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "threshold", "wilcoxon", "none")


def _from_config(config: Any, registry: dict[str, Callable[..., Any]], where: str, **defaults: Any) -> Any:
    if not isinstance(config, (str, Mapping)):
        return config  # an Optuna sampler or pruner object
    kwargs = dict(config) if isinstance(config, Mapping) else {"type": config}
    name = kwargs.pop("type", None)
    if name not in registry:
        raise ValueError(f"{where}: expected one of {list(registry)}, got {name!r}")
    try:
        return registry[name](**{**defaults, **kwargs})
    except (TypeError, ValueError, ImportError) as error:
        raise ValueError(f"{where}: {name}: {error}") from error


def make_sampler(config: Any = "tpe", seed: int | None = 0, where: str = "sampler") -> Any:
    """An Optuna sampler by name (``"tpe"``, ``"random"``, ``"gp"``, ``"qmc"``, ``"cmaes"``,
    ``"bruteforce"``) or ``{type: NAME, **options}``; an Optuna sampler passes through."""
    import optuna

    s = optuna.samplers
    registry = {"tpe": s.TPESampler, "random": s.RandomSampler, "gp": s.GPSampler, "qmc": s.QMCSampler,
                "cmaes": s.CmaEsSampler, "bruteforce": s.BruteForceSampler}
    return _from_config(config, registry, where, seed=seed)


def make_pruner(config: Any = "median", where: str = "pruner") -> Any:
    """An Optuna pruner by name (``"median"``, ``"hyperband"``, ..., ``"none"``) or
    ``{type: NAME, **options}``; an Optuna pruner passes through."""
    import optuna

    p = optuna.pruners
    registry = {"median": p.MedianPruner, "percentile": p.PercentilePruner,
                "successive_halving": p.SuccessiveHalvingPruner, "hyperband": p.HyperbandPruner,
                "threshold": p.ThresholdPruner, "wilcoxon": p.WilcoxonPruner, "none": p.NopPruner}
    return _from_config("none" if config is None else config, registry, where)


def describe_config(config: Any) -> str:
    if isinstance(config, str):
        return config
    if isinstance(config, Mapping):
        options = ", ".join(f"{k}={v!r}" for k, v in config.items() if k != "type")
        return f"{config.get('type')}({options})"
    return type(config).__name__
