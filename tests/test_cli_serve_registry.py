"""``mlpatterns serve`` takes registered versions (Model Versioning, 27) as well as bundle folders."""

import argparse

import pytest

from mlpatterns.cli import build_parser
from mlpatterns.cli.serve import parse_models
from mlpatterns.reproducibility.model_versioning import RegistryError, open_registry
from mlpatterns.serving.http import ModelSource
from mlpatterns.testing.registry import make_bundle


def test_a_reference_is_served_under_the_registered_models_name():
    assert parse_models(["models:/flights@champion", "old=models:/flights/1", "runs/x/bundles/gbm/"]) == [
        ModelSource("flights", "models:/flights@champion"), ModelSource("old", "models:/flights/1"),
        ModelSource("gbm", "runs/x/bundles/gbm/")]
    with pytest.raises(argparse.ArgumentTypeError, match="models:/NAME/VERSION"):
        parse_models(["models:/not a name"])
    with pytest.raises(argparse.ArgumentTypeError, match="'flights' version 3 is given twice"):
        parse_models(["flights=models:/flights/3", "flights/3=runs/x"])
    with pytest.raises(argparse.ArgumentTypeError, match="has its version from the registry"):
        parse_models(["flights/4=models:/flights/3"])
    # an alias's version is known once resolved: a folder (version 1) beside it parses
    assert len(parse_models(["models:/flights@champion", "flights=runs/x"])) == 2


def test_serve_passes_references_and_registry_to_the_server(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/registry.db"
    with open_registry(url) as registry:
        registry.register(make_bundle(tmp_path / "b1"), "flights", alias="champion")
        registry.register(make_bundle(tmp_path / "b2", seed=1), "flights")
    started = {}
    monkeypatch.setattr("mlpatterns.serving.http.workers.run_server",
                        lambda config, **kwargs: started.update(config=config, **kwargs))
    args = build_parser().parse_args(["serve", "models:/flights@champion", "new=models:/flights/2",
                                      "--registry", url])
    assert args.handler(args) == 0
    config = started["config"]
    assert config.models == (("flights", "models:/flights@champion", None), ("new", "models:/flights/2", None))
    assert (config.registry, config.token_file, config.reload_interval, started["workers"]) == (url, None, 10.0, 1)
    assert config.explainer is None  # explanations cost hundreds of predictions a row: only with --explain
    args = build_parser().parse_args(["serve", "models:/flights@champion", "--registry", url, "--explain"])
    assert args.handler(args) == 0
    assert started["config"].explainer.endswith("explained_predictions:explainer_for_serving")
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    args = build_parser().parse_args(["serve", "flights=models:/flights/1", "flights=models:/flights/2",
                                      "--registry", url, "--token-file", str(secret), "--workers", "2",
                                      "--split", "flights=1:90,2:10", "--label", "flights/stable=1",
                                      "--reload-interval", "0.5"])
    assert args.handler(args) == 0
    config = started["config"]
    assert config.models == (("flights", "models:/flights/1", None), ("flights", "models:/flights/2", None))
    assert (config.token_file, config.split, config.labels) == (str(secret), {"flights": "1:90,2:10"},
                                                                 {"flights": {"stable": 1}})
    assert (config.reload_interval, started["workers"]) == (0.5, 2)


def test_a_missing_registry_is_an_error_before_the_server_starts(tmp_path, monkeypatch):
    monkeypatch.setattr("mlpatterns.serving.http.workers.run_server", lambda *a, **k: pytest.fail("started"))
    args = build_parser().parse_args(["serve", "models:/flights@champion", "--registry",
                                      f"sqlite:///{tmp_path}/none.db"])
    with pytest.raises(RegistryError, match="no registry database"):
        args.handler(args)
