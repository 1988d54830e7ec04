"""``mlpatterns serve`` takes registered versions (Model Versioning, 27) as well as bundle folders."""

import argparse

import pytest

from mlpatterns.cli import build_parser
from mlpatterns.cli.serve import parse_models
from mlpatterns.reproducibility.model_versioning import open_registry
from mlpatterns.testing.registry import make_bundle


def test_a_reference_is_served_under_the_registered_models_name():
    assert parse_models(["models:/flights@champion", "old=models:/flights/1", "runs/x/bundles/gbm/"]) == {
        "flights": "models:/flights@champion", "old": "models:/flights/1", "gbm": "runs/x/bundles/gbm/"}
    with pytest.raises(argparse.ArgumentTypeError, match="models:/NAME/VERSION"):
        parse_models(["models:/not a name"])
    with pytest.raises(argparse.ArgumentTypeError, match="given twice"):
        parse_models(["models:/flights@champion", "flights=runs/x"])


def test_serve_resolves_and_verifies_registered_versions_before_starting(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/registry.db"
    with open_registry(url) as registry:
        registry.register(make_bundle(tmp_path / "b1"), "flights", alias="champion")
        registry.register(make_bundle(tmp_path / "b2", seed=1), "flights")
    served = {}
    import mlpatterns.serving.http as http

    monkeypatch.setattr(http, "create_app", lambda models, token=None: served.update(models, token=token) or object())
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: None)
    args = build_parser().parse_args(["serve", "models:/flights@champion", "new=models:/flights/2",
                                      "--registry", url])
    assert args.handler(args) == 0
    with open_registry(url) as registry:
        assert served == {"flights": registry.resolve("models:/flights/1"), "new": registry.resolve("models:/flights/2"),
                          "token": None}
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    served.clear()
    args = build_parser().parse_args(["serve", "models:/flights@champion", "--registry", url, "--token-file",
                                      str(secret)])
    assert args.handler(args) == 0 and served["token"] == "s3cret"
