"""adclick_ops.registry.cards: the model card of a version, what it scored, what trained it, with which software."""

from __future__ import annotations

import hashlib
import json
import platform

from adclick_ops.config.models import TrainingJob
from adclick_ops.registry.cards import PACKAGES, model_card, package_versions, pipeline_source

from tests.support import PROJECT, training_settings


def test_the_card_holds_metrics_model_and_pipeline_text():
    job = TrainingJob.model_validate(training_settings(PROJECT / "pipelines"))
    card = model_card(job, "manual__1", {"accuracy": 0.9, "unrelated": 1}, {"rows": 10}, onnx={"opset": 17})
    assert card["run_id"] == "manual__1" and card["dataset"] == {"rows": 10}
    assert card["metrics"]["accuracy"] == 0.9 and "unrelated" not in card["metrics"] and card["metrics"]["roc_auc"] is None
    assert card["model"]["estimator"] == job.estimator.name and card["model"]["features"] == job.features
    assert card["model"]["split"] == job.split.model_dump(mode="json") and card["model"]["onnx"] == {"opset": 17}
    text = (PROJECT / "pipelines" / "airflow_lab2.yaml").read_bytes()
    assert card["pipeline"]["sha256"] == hashlib.sha256(text).hexdigest() and card["pipeline"]["text"] == text.decode()
    json.dumps(card)  # a card is written as JSON


def test_package_versions_name_each_package_and_none_for_a_missing_one(monkeypatch):
    versions = package_versions()
    assert versions["python"] == platform.python_version()
    assert set(PACKAGES) <= set(versions) and versions["scikit-learn"]
    monkeypatch.setattr("adclick_ops.registry.cards.PACKAGES", ("no-such-package-adclick",))
    assert package_versions()["no-such-package-adclick"] is None


def test_the_pipeline_source_of_an_unreadable_or_absent_file(tmp_path):
    assert pipeline_source(None) is None
    gone = pipeline_source(str(tmp_path / "gone.yaml"))
    assert gone == {"file": str(tmp_path / "gone.yaml"), "error": "FileNotFoundError: No such file or directory"}
    (tmp_path / "latin.yaml").write_bytes(b"caf\xe9")
    assert pipeline_source(str(tmp_path / "latin.yaml"))["text"] == "caf\ufffd"
