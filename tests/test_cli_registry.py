"""``mlpatterns registry`` (Model Versioning, 27) and ``resolve_bundle``, driven as a user would.

Every command runs through :func:`run`: ``mlpatterns.cli.main`` once it knows the
``registry`` command, else a parser with :func:`add_registry_commands` alone that maps
errors to exit code 2 as ``main`` does. Bundles are :func:`make_bundle`'s small real ones;
each test has its own SQLite registry under ``tmp_path``. The PostgreSQL smoke test runs
where ``MLPATTERNS_TEST_POSTGRES_URL`` names a database.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from mlpatterns.cli.registry import (
    DEFAULT_REGISTRY,
    REGISTRY_ENV,
    add_registry_commands,
    registry_url,
    resolve_bundle,
)
from mlpatterns.reproducibility.model_versioning import (
    REGISTRY_BACKENDS,
    ModelNotFoundError,
    RegistryError,
    open_registry,
)
from mlpatterns.testing.registry import make_bundle, make_signature

POSTGRES_URL = os.environ.get("MLPATTERNS_TEST_POSTGRES_URL")


@functools.cache
def _wired() -> bool:
    """Whether ``mlpatterns.cli.main`` knows the ``registry`` command yet."""
    from mlpatterns.cli import build_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            build_parser().parse_args(["registry", "list"])
    except SystemExit:
        return False
    return True


def _main(argv: list[str]) -> int:
    if _wired():
        from mlpatterns.cli import main

        return main(argv)
    parser = argparse.ArgumentParser(prog="mlpatterns")
    add_registry_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, LookupError, OSError) as error:  # what main() reports with exit code 2
        print(f"mlpatterns {args.command}: error: {error}", file=sys.stderr)
        return 2


@pytest.fixture(autouse=True)
def _environment(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich tables in one line per row
    monkeypatch.delenv(REGISTRY_ENV, raising=False)


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/registry/r.db"  # sqlite:////tmp/...: an absolute path


@pytest.fixture
def cli(capsys):
    """``cli(*argv)`` -> (exit code, stdout, stderr)."""

    def run(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = _main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse refusing an argument
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def bundle(tmp_path):
    """``bundle(seed, **fields)``: a fresh bundle folder."""
    made = iter(range(10**6))

    def make(seed: int = 0, **fields) -> Path:
        return make_bundle(tmp_path / "sources" / f"bundle-{next(made)}", seed=seed, **fields)

    return make


@pytest.fixture
def flights(cli, url, bundle):
    """A registry with flights versions 1 (champion, tagged, described) and 2 (challenger)."""
    assert cli("registry", "register", bundle(0), "flights", "--registry", url, "--alias", "champion",
               "--tag", "team=ops", "--description", "first [bold]model", "--message", "baseline")[0] == 0
    assert cli("registry", "register", bundle(1), "flights", "--registry", url, "--alias", "challenger")[0] == 0
    return url


def version_path(url: str, name: str, version: int) -> Path:
    with open_registry(url) as registry:
        return registry.version_path(name, version)


# -- register and list -------------------------------------------------------------------------------
def test_register_prints_the_version_and_its_alias(cli, url, bundle):
    code, out, err = cli("registry", "register", bundle(0), "flights", "--registry", url, "--alias", "champion")
    assert (code, err) == (0, "")
    assert f"as models:/flights/1 in {url}" in out
    assert "flights: alias champion -> version 1" in out
    with open_registry(url) as registry:
        assert registry.get_model("flights").aliases == {"champion": 1}


def test_list_models_and_versions(cli, flights, bundle):
    cli("registry", "register", bundle(2), "natality", "--registry", flights)
    code, out, _ = cli("registry", "list", "--registry", flights)
    assert code == 0 and out.startswith(f"registry {flights}\n")
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in out.splitlines() if line.startswith("│")}
    assert rows == {"flights": ["2", "challenger=2, champion=1", "first [bold]model", "2"],
                    "natality": ["1", "-", "", "1"]}
    code, out, _ = cli("registry", "list", "flights", "--registry", flights)
    with open_registry(flights) as registry:
        digests = [v.bundle_digest[:12] for v in registry.list_versions("flights")]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
    assert [(r[0], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("1", "champion", "test.roc_auc 0.7000", digests[0], "team=ops"),
        ("2", "challenger", "test.roc_auc 0.7100", digests[1], "-")]
    assert all(r[1].startswith("20") and r[2] for r in rows)  # when and who


def test_the_headline_metric_follows_the_task(cli, url, bundle):
    source = bundle(0, metrics={"test": {"rmse": 3.25, "mae": 2.0}})
    manifest = json.loads((source / "manifest.json").read_text())
    assert manifest["task"] == "classification"  # no roc_auc: the first two numbers instead
    cli("registry", "register", source, "natality", "--registry", url)
    out = cli("registry", "list", "natality", "--registry", url)[1]
    assert "test.mae 2.0000, test.rmse 3.2500" in out  # the manifest keeps keys sorted


def test_an_empty_registry_and_a_missing_one(cli, url, tmp_path, bundle):
    code, _, err = cli("registry", "list", "--registry", url)
    assert code == 2 and "no registry database at" in err and "registry register" in err
    assert not (tmp_path / "registry").exists()  # reading never creates a registry
    open_registry(url).close()
    assert cli("registry", "list", "--registry", url)[:2] == (0, f"no models in the registry {url}\n")


def test_the_clis_registry_constants_are_the_lifecycles():
    """cli.registry spells them out (importing mlpatterns.lifecycle would slow every command); they must agree."""
    from mlpatterns.lifecycle import registration

    assert (DEFAULT_REGISTRY, REGISTRY_ENV) == (registration.DEFAULT_REGISTRY, registration.REGISTRY_VARIABLE)


def test_the_registry_comes_from_the_environment_else_the_default(cli, url, bundle, tmp_path, monkeypatch):
    assert REGISTRY_BACKENDS.default == DEFAULT_REGISTRY
    assert registry_url() == DEFAULT_REGISTRY and registry_url("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.setenv(REGISTRY_ENV, url)
    assert registry_url() == url
    assert cli("registry", "register", bundle(0), "flights")[0] == 0
    assert "flights" in cli("registry", "list")[1]
    monkeypatch.delenv(REGISTRY_ENV)
    monkeypatch.chdir(tmp_path / "sources")
    code, out, _ = cli("registry", "register", bundle(1), "natality")
    assert code == 0 and f"in sqlite:///{tmp_path}/sources/registry/registry.db" in out
    assert (tmp_path / "sources" / "registry" / "bundles" / "natality" / "1").is_dir()


def test_a_bad_registry_url_is_refused(cli, bundle, tmp_path):
    code, _, err = cli("registry", "register", bundle(), "flights", "--registry", str(tmp_path / "r.db"))
    assert code == 2 and "write a URL such as 'sqlite:///" in err
    code, _, err = cli("registry", "list", "--registry", "redis://localhost/0")
    assert code == 2 and "unknown scheme 'redis'" in err


def test_a_password_is_never_shown(cli, bundle, tmp_path):
    pytest.importorskip("psycopg")
    url = (f"postgresql+psycopg://mlp:s3cr3t-pw@127.0.0.1:9/nowhere?connect_timeout=3"
           f"&files={quote(str(tmp_path / 'shared'))}")  # nothing listens on port 9
    for argv in (("list",), ("register", bundle(), "flights"), ("show", "models:/flights/1")):
        code, out, err = cli("registry", *argv, "--registry", url)
        assert code == 2 and "s3cr3t-pw" not in out + err
        assert "mlp:***@127.0.0.1:9/nowhere" in err
    with pytest.raises(RegistryError) as caught:
        resolve_bundle("models:/flights/1", url)
    assert "s3cr3t-pw" not in str(caught.value) and "mlp:***@" in str(caught.value)


def test_register_refuses_a_bad_bundle_and_bad_tags(cli, url, bundle, tmp_path):
    code, _, err = cli("registry", "register", tmp_path / "missing", "flights", "--registry", url)
    assert code == 2 and "cannot register" in err
    code, _, err = cli("registry", "register", bundle(), "flights", "--registry", url, "--tag", "team")
    assert code == 2 and "--tag: expected KEY=VALUE, got 'team'" in err
    code, _, err = cli("registry", "register", bundle(), "a/b", "--registry", url)
    assert code == 2 and "model name: expected" in err


def test_an_interface_change_is_refused_then_allowed_with_the_flag(cli, flights, bundle):
    changed = bundle(3, signature=make_signature({"distance": "number", "carrier": "text"}))
    code, _, err = cli("registry", "register", changed, "flights", "--registry", flights)
    assert code == 2
    assert "input 'weekend' removed" in err and "--allow-interface-change" in err
    code, out, _ = cli("registry", "register", changed, "flights", "--registry", flights,
                       "--allow-interface-change", "--message", "weekend dropped")
    assert code == 0 and "models:/flights/3" in out
    assert "interface changed from version 2 (allowed): input 'weekend' removed" in out
    entries = json.loads(cli("registry", "audit", "flights", "--registry", flights, "--json")[1])
    assert entries[-1]["after"]["interface_change"]["differences"] == ["input 'weekend' removed"]


# -- show -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ref", "version"), [("flights", 2), ("flights/1", 1), ("models:/flights/2", 2),
                                              ("models:/flights@champion", 1)])
def test_show_every_ref_form(cli, flights, ref, version):
    code, out, _ = cli("registry", "show", ref, "--registry", flights)
    assert code == 0
    path = version_path(flights, "flights", version)
    assert out.startswith(f"flights version {version} (models:/flights/{version}) in {flights}\n")
    assert "inputs:      distance (number), carrier (text), weekend (boolean)" in out
    assert "outputs:     probability (number), prediction (integer)" in out
    assert "keys:        flight" in out
    assert f"bundle:      {path} (every file verified" in out
    assert f"  test.roc_auc   {0.7 + (version - 1) / 100:.4f}" in out
    assert f"  seed          {version - 1}" in out and "data.dataset  flights" in out
    assert ("aliases:     champion" if version == 1 else "aliases:     challenger") in out
    assert ("tags:        team=ops" if version == 1 else "tags:        -") in out


def test_show_json(cli, flights):
    code, out, _ = cli("registry", "show", "models:/flights@champion", "--registry", flights, "--json")
    shown = json.loads(out)
    with open_registry(flights) as registry:
        version = registry.get_version("flights", 1)
    assert code == 0 and shown["verified"] is True and shown["registry"] == flights
    assert shown["uri"] == "models:/flights/1" and shown["path"] == str(version.path)
    assert (shown["signature"], shown["metrics"], shown["lineage"]) == (
        version.signature, version.metrics, version.lineage)
    assert (shown["aliases"], shown["tags"], shown["description"]) == (["champion"], {"team": "ops"},
                                                                       "first [bold]model")
    assert shown["bundle_digest"] == version.bundle_digest


@pytest.mark.parametrize(("ref", "message"), [
    ("flights/01", "a version is 1, 2, 3"), ("flights/x", "a version is 1, 2, 3"),
    ("flights/", "a version is 1, 2, 3"), ("flights/1/2", "a version is 1, 2, 3"),
    ("flights@champion", "(an alias: models:/flights@champion)"), ("../flights", "expected NAME, NAME/VERSION"),
    ("", "expected NAME, NAME/VERSION"), ("models:/flights", "model URI: expected"),
    ("models:/flights/0", "model URI: expected"), ("models:/flights@1x", "alias: expected"),
])
def test_wrong_ref_forms(cli, flights, ref, message):
    code, out, err = cli("registry", "show", ref, "--registry", flights)
    assert (code, out) == (2, "") and message in err


@pytest.mark.parametrize(("argv", "message"), [
    (("show", "nope"), "nope: no such model"), (("show", "flights/9"), "flights: no version 9"),
    (("show", "models:/flights@gold"), "flights has no alias 'gold'"), (("list", "nope"), "nope: no such model"),
    (("alias", "nope", "champion", "1"), "nope: no such model"), (("alias", "flights", "champion", "9"),
                                                                    "flights: no version 9"),
    (("alias", "flights", "gold", "--delete"), "flights: no alias 'gold'"),
    (("rollback", "nope", "champion"), "nope: no such model"), (("rollback", "flights", "champion", "--to", "9"),
                                                                 "flights: no version 9"),
    (("compare", "flights", "1", "9"), "flights: no version 9"), (("audit", "nope"), "nope: no such model"),
    (("tag", "flights", "9", "a=b"), "flights: no version 9"), (("tag", "nope", "1", "a=b"), "nope: no such model"),
])
def test_unknown_model_version_or_alias(cli, flights, argv, message):
    code, _, err = cli("registry", *argv, "--registry", flights)
    assert code == 2 and message in err, err


@pytest.mark.parametrize("argv", [("alias", "flights", "champion", "0"), ("compare", "flights", "1", "x"),
                                  ("rollback", "flights", "champion", "--to", "-1"), ("audit", "--limit", "0")])
def test_bad_numbers_are_usage_errors(cli, flights, argv):
    code, _, err = cli("registry", *argv, "--registry", flights)
    assert code == 2 and ("expected a version number" in err or "at least 1" in err)


def test_a_tampered_bundle_is_refused_on_show_and_resolve(cli, flights):
    path = version_path(flights, "flights", 1)
    for item in (path, *path.iterdir()):
        item.chmod(0o755 if item.is_dir() else 0o644)
    (path / "model.onnx").write_bytes(b"tampered")
    code, out, err = cli("registry", "show", "models:/flights@champion", "--registry", flights)
    assert (code, out) == (2, "")
    assert "flights version 1" in err and "fails verification" in err and "model.onnx" in err
    with pytest.raises(RegistryError, match="model.onnx"):
        resolve_bundle("models:/flights@champion", flights)
    shutil.rmtree(path)
    shutil.copytree(version_path(flights, "flights", 2), path)  # another valid bundle in its place
    code, _, err = cli("registry", "show", "flights/1", "--registry", flights, "--json")
    assert code == 2 and "holds another bundle than the one registered" in err
    assert cli("registry", "show", "flights/2", "--registry", flights)[0] == 0


# -- aliases, rollback, tags ---------------------------------------------------------------------------
def test_alias_set_move_and_delete(cli, flights):
    code, out, _ = cli("registry", "alias", "flights", "champion", "2", "--registry", flights, "--message", "wins")
    assert code == 0 and f"alias champion -> version 2 (was version 1) in {flights}" in out
    assert "already points at version 2" in cli("registry", "alias", "flights", "champion", "2",
                                                "--registry", flights)[1]
    assert "alias gold -> version 1 (a new alias)" in cli("registry", "alias", "flights", "gold", "1",
                                                          "--registry", flights)[1]
    code, out, _ = cli("registry", "alias", "flights", "gold", "--delete", "--registry", flights)
    assert code == 0 and "alias gold deleted (it pointed at version 1)" in out
    with open_registry(flights) as registry:
        assert registry.get_model("flights").aliases == {"champion": 2, "challenger": 2}
        assert registry.audit("flights")[-3].message == "wins"
    for argv in (("flights", "gold"), ("flights", "gold", "1", "--delete")):
        code, _, err = cli("registry", "alias", *argv, "--registry", flights)
        assert code == 2 and "give the VERSION to point it at, or --delete" in err
    assert cli("registry", "alias", "flights", "2x", "1", "--registry", flights)[0] == 2  # an alias is a name


def test_rollback_from_the_audit_trail_and_to_a_version(cli, flights):
    code, _, err = cli("registry", "rollback", "flights", "challenger", "--registry", flights)
    assert code == 2 and "no earlier version to roll back to" in err
    cli("registry", "alias", "flights", "champion", "2", "--registry", flights)
    code, out, _ = cli("registry", "rollback", "flights", "champion", "--registry", flights, "--message", "v2 bad")
    assert code == 0 and "alias champion rolled back to version 1 (was version 2)" in out
    out = cli("registry", "rollback", "flights", "champion", "--registry", flights)[1]  # undoes the rollback
    assert "rolled back to version 2 (was version 1)" in out
    out = cli("registry", "rollback", "flights", "champion", "--to", "1", "--registry", flights)[1]
    assert "rolled back to version 1 (was version 2)" in out
    with open_registry(flights) as registry:
        assert registry.get_model("flights").aliases["champion"] == 1
        assert [e.message for e in registry.audit("flights") if e.action == "rollback"] == ["v2 bad", None, None]


def test_tag_set_and_remove(cli, flights):
    code, out, _ = cli("registry", "tag", "flights", "1", "reviewed=yes", "note=a=b", "--remove", "team",
                       "--registry", flights, "--message", "reviewed")
    assert code == 0 and f"flights version 1: tags note=a=b, reviewed=yes in {flights}" in out
    code, out, _ = cli("registry", "tag", "flights", "1", "--remove", "note", "reviewed", "--registry", flights)
    assert code == 0 and "flights version 1: tags (none)" in out
    with open_registry(flights) as registry:
        assert registry.get_version("flights", 1).tags == {}
        assert registry.audit("flights")[-2].message == "reviewed"
    for argv, message in (((), "give KEY=VALUE pairs"), (("team",), "tag: expected KEY=VALUE, got 'team'"),
                          (("a=1", "--remove", "a"), "'a' is both set and removed"),
                          (("bad/key=1",), "tag name: expected")):
        code, _, err = cli("registry", "tag", "flights", "1", *argv, "--registry", flights)
        assert code == 2 and message in err


# -- compare and audit ---------------------------------------------------------------------------------
def table_rows(out: str, title: str) -> list[list[str]]:
    """The rows of the rich table whose title contains ``title``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    rows = []
    for line in lines[start + 4:]:
        if not line.startswith("│"):
            break
        rows.append([cell.strip() for cell in line.split("│")[1:-1]])
    return rows


def test_compare_metrics_signature_and_lineage(cli, flights, bundle):
    changed = bundle(5, signature=make_signature({"distance": "number", "carrier": "number", "hour": "number"},
                                                 classes=["early", "late"]))
    cli("registry", "register", changed, "flights", "--registry", flights, "--allow-interface-change")
    code, out, _ = cli("registry", "compare", "flights", "1", "3", "--registry", flights)
    assert code == 0
    assert table_rows(out, "v1 vs v3: metrics") == [["test.log_loss", "0.5000", "0.5000", "0.0000"],
                                          ["test.roc_auc", "0.7000", "0.7500", "+0.0500"]]
    assert table_rows(out, "v1 vs v3: signature") == [
        ["input", "distance", "number", "number", ""], ["input", "carrier", "text", "number", "changed"],
        ["input", "weekend", "boolean", "-", "removed"], ["input", "hour", "-", "number", "added"],
        ["output", "probability", "number", "-", "removed"], ["output", "prediction", "integer", "text: early, late",
                                                              "changed"],
        ["output", "probability_early", "-", "number", "added"], ["output", "probability_late", "-", "number",
                                                                  "added"],
        ["key", "flight", "key", "key", ""]]
    assert "interface: input 'hour' added; input 'weekend' removed; input 'carrier' changed" in out
    assert table_rows(out, "v1 vs v3: lineage") == [["data.dataset", "flights", "flights", ""], ["rows.train", "80", "80", ""],
                                          ["seed", "0", "5", "changed"]]
    same = cli("registry", "compare", "flights", "1", "2", "--registry", flights)[1]
    assert "interface: the same inputs, outputs, classes and keys" in same


def test_compare_json(cli, flights, bundle):
    cli("registry", "register", bundle(2, signature=make_signature({"distance": "number", "carrier": "text"},
                                                                   keys=())),
        "flights", "--registry", flights, "--allow-interface-change")
    code, out, _ = cli("registry", "compare", "flights", "2", "3", "--json", "--registry", flights)
    shown = json.loads(out)
    assert code == 0 and shown["versions"] == [2, 3] and shown["registry"] == flights
    assert shown["metrics"]["test.roc_auc"] == pytest.approx([0.71, 0.72, 0.01])
    assert shown["interface"]["compatible"] is False
    assert (shown["interface"]["inputs_removed"], shown["interface"]["keys_removed"]) == (["weekend"], ["flight"])
    assert shown["lineage"]["seed"] == [1, 2] and shown["lineage_changed"] == ["seed"]


def test_audit_table_limit_and_json(cli, flights):
    cli("registry", "alias", "flights", "champion", "2", "--registry", flights, "--message", "v2 wins")
    cli("registry", "tag", "flights", "2", "reviewed=yes", "--registry", flights)
    code, out, _ = cli("registry", "audit", "--registry", flights)
    rows = table_rows(out, "audit trail (oldest first)")
    with open_registry(flights) as registry:
        digest = registry.get_version("flights", 1).bundle_digest
    assert code == 0 and out.startswith(f"registry {flights}\n")
    assert [r[2] for r in rows] == ["register", "set_alias", "register", "set_alias", "set_alias", "set_tags"]
    assert rows[0][3:] == ["flights", "1", "-", "-", f"bundle {digest[:12]}; tags team=ops", "baseline"]
    assert rows[1][3:] == ["flights", "1", "champion", "-", "1", "baseline"]  # register --alias
    assert rows[4][3:] == ["flights", "2", "champion", "1", "2", "v2 wins"]
    assert rows[5][5:8] == ["-", "reviewed=(unset)", "reviewed=yes"]
    out = cli("registry", "audit", "flights", "--limit", "2", "--registry", flights)[1]
    rows = table_rows(out, "audit trail of flights (the last 2, oldest first)")
    assert [r[2] for r in rows] == ["set_alias", "set_tags"]
    entries = json.loads(cli("registry", "audit", "flights", "--json", "--limit", "3", "--registry", flights)[1])
    assert [e["action"] for e in entries] == ["set_alias", "set_alias", "set_tags"]
    assert entries[1] | {"id": 0, "at": "", "who": ""} == {
        "id": 0, "at": "", "who": "", "action": "set_alias", "model": "flights", "version": 2,
        "alias": "champion", "before": 1, "after": 2, "message": "v2 wins"}
    assert entries[1]["at"].endswith("+00:00") and entries[1]["who"]


# -- resolve_bundle ------------------------------------------------------------------------------------
def test_resolve_bundle_takes_paths_and_uris(flights, tmp_path, monkeypatch):
    assert resolve_bundle("runs/bundles/gbm") == Path("runs/bundles/gbm")  # a path is never opened or checked
    assert resolve_bundle(tmp_path / "missing") == tmp_path / "missing"
    assert resolve_bundle(Path("models:/flights/1")) == Path("models:/flights/1")  # a Path is always a path
    assert resolve_bundle("models:flights/1") == Path("models:flights/1")
    assert resolve_bundle("models:/flights/2", flights) == version_path(flights, "flights", 2)
    assert resolve_bundle("models:/flights@champion", flights) == version_path(flights, "flights", 1)
    monkeypatch.setenv(REGISTRY_ENV, flights)
    assert resolve_bundle("models:/flights@challenger") == version_path(flights, "flights", 2)
    with pytest.raises(ModelNotFoundError, match="no alias 'gold'"):
        resolve_bundle("models:/flights@gold")
    with pytest.raises(RegistryError, match="model URI: expected"):
        resolve_bundle("models:/flights/02")
    monkeypatch.delenv(REGISTRY_ENV)
    monkeypatch.chdir(tmp_path)  # the default, registry/registry.db here, does not exist
    with pytest.raises(RegistryError, match="no registry database at"):
        resolve_bundle("models:/flights/1")
    assert not (tmp_path / "registry" / "registry.db").exists()


def test_help_lists_the_subcommands(cli):
    code, out, _ = cli("registry", "--help")
    assert code == 0
    for name in ("list", "show", "register", "alias", "rollback", "compare", "audit", "tag"):
        assert name in out


# -- PostgreSQL ----------------------------------------------------------------------------------------
@pytest.mark.skipif(not POSTGRES_URL, reason="MLPATTERNS_TEST_POSTGRES_URL is not set")
def test_postgresql_smoke(cli, bundle, tmp_path):
    import sqlalchemy

    schema = f"cli_registry_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}&files={tmp_path}/shared"
    password = sqlalchemy.make_url(POSTGRES_URL).password
    try:
        outputs = []
        for argv in (("register", bundle(0), "flights", "--alias", "champion"), ("register", bundle(1), "flights"),
                     ("alias", "flights", "champion", "2"), ("rollback", "flights", "champion"),
                     ("list",), ("list", "flights"), ("show", "models:/flights@champion"),
                     ("compare", "flights", "1", "2"), ("audit", "flights")):
            code, out, err = cli("registry", *argv, "--registry", url)
            assert (code, err) == (0, ""), (argv, err)
            outputs.append(out)
        assert "models:/flights/2" in outputs[1] and "rolled back to version 1" in outputs[3]
        assert outputs[6].startswith("flights version 1 (models:/flights/1)")
        assert [r[2] for r in table_rows(outputs[8], "audit trail")] == [
            "register", "set_alias", "register", "set_alias", "rollback"]
        if password:
            assert all(f":{password}@" not in out for out in outputs)
            assert ":***@" in outputs[0]
        assert resolve_bundle("models:/flights@champion", url) == tmp_path / "shared" / "flights" / "1"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
