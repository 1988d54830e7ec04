"""Lineage follows the record a step read, not the latest record that wrote the same bytes."""

from mlpatterns.reproducibility.workflow_pipeline import Pipeline, Step, Store


def sign(inputs, outputs, params):
    """The sign of a number: two different files give the same bytes."""
    outputs["sign"].write_text("+" if float(inputs["number"].read_text()) >= 0 else "-")


def describe(inputs, outputs, params):
    outputs["text"].write_text(inputs["sign"].read_text() + " " + inputs["number"].read_text())


def test_lineage_leads_to_the_source_the_step_read(tmp_path):
    store = Store(tmp_path / "store")
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("3")
    second.write_text("7")

    def pipeline(source):
        return Pipeline([Step("sign", sign, inputs={"number": "number"}, outputs=["sign"]),
                         Step("describe", describe, inputs={"sign": "sign", "number": "number"}, outputs=["text"])],
                        sources={"number": source})

    early = pipeline(first).run(store)
    pipeline(second).run(store)  # writes the same 'sign' bytes from another source, later
    tree = store.lineage(early.records["describe"])
    producer = tree.inputs["sign"].producer
    assert producer.key == early.records["sign"].key
    assert producer.inputs["number"].path == str(first.absolute())
