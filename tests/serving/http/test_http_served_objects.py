"""An object with its own serving methods, served as given (Stateless Serving Function, 16)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from mlpatterns.serving.http import create_app
from mlpatterns.serving.http._common import ONLINE_MAX_ROWS, ServedModel
from mlpatterns.serving.online import RowProblem


class RowsOnly:
    """Answers rows and nothing else: no DataFrame batch path (``conform``, ``predict_conformed``)."""

    signature = {"inputs": [{"name": "x", "type": "number"}], "outputs": [{"name": "double", "type": "number"}],
                 "keys": ["id"]}
    task = "regression"
    input_columns, key_columns, output_columns = ["x"], ["id"], ["double"]
    bundle = None

    def predict_rows(self, rows):
        good = [r for r in rows if isinstance(r["x"], (int, float))]
        problems = [RowProblem(i, "x", "expected a number") for i, r in enumerate(rows) if r not in good]
        return [{"id": r["id"], "double": 2 * r["x"]} for r in good], problems


def test_an_object_without_a_batch_path_answers_requests_of_every_size_by_its_rows():
    served = ServedModel("twice", "1", RowsOnly())
    assert served.answers_online(ONLINE_MAX_ROWS * 4)
    rows = [{"id": i, "x": float(i)} for i in range(ONLINE_MAX_ROWS * 4)]
    with TestClient(create_app({"twice": RowsOnly()}, reload_interval=0)) as client:
        answer = client.post("/v1/models/twice:predict", json={"instances": rows})
        bad = client.post("/v1/models/twice:predict", json={"instances": [*rows, {"id": -1, "x": "two"}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][-1] == {"id": len(rows) - 1, "double": 2.0 * (len(rows) - 1)}
    assert bad.status_code == 400 and f"row {len(rows)}, field 'x'" in bad.json()["error"]
