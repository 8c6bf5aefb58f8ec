"""`adclick-ops models migrate`: a registry written by earlier versions (adclick-model/1 and skops files) is
converted to ONNX once, checked against the old models' probabilities; until then it is refused with the
command to run, and its old files are never read by anything that serves."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adclick_ops.cli import main
from adclick_ops.registry import Registry, RegistryError
from adclick_ops.registry.legacy import _skops_io
from adclick_ops.steps.model import build_pipeline, evaluate

from tests.support.legacy_writer import dump_model
from tests.support.registry import FEATURES, SEED, TARGET

X, Y = SEED[FEATURES].to_numpy(float), SEED[TARGET].to_numpy(int)


def old_registry(model_dir: Path, dataset: Path) -> tuple[Registry, dict[int, object]]:
    """Two versions as an earlier adclick-ops left them: 1 a forest in adclick-model/1, 2 (the champion) a
    logistic regression in skops's format, whose cards carry no ONNX section."""
    registry = Registry(str(model_dir), "Airflow_Lab2")
    models = {
        1: build_pipeline(["standard"], "random_forest", {"n_estimators": 10, "random_state": 0}).fit(X[:700], Y[:700]),
        2: build_pipeline(["minmax", "standard"], "logistic_regression", {"max_iter": 1000}).fit(X[:700], Y[:700]),
    }
    for number, model in models.items():
        blob = dump_model(model) if number == 1 else _skops_io().dumps(model)
        digest = hashlib.sha256(blob).hexdigest()
        registry.store.write(f"models/{digest}.model", blob)
        card = {
            "version": number,
            "dag_id": "Airflow_Lab2",
            "run_id": f"old_{number}",
            "metrics": evaluate(model, X[700:], Y[700:]),
            "dataset": {"path": str(dataset), "rows": len(Y)},
            "model": {"estimator": "random_forest" if number == 1 else "logistic_regression", "features": FEATURES, "target": TARGET}
            | {"file": f"models/{digest}.model", "sha256": digest, "bytes": len(blob)}
            | ({"format": "adclick-model/1"} if number == 1 else {}),
        }
        assert registry.store.create(f"versions/{number:06d}.json", json.dumps(card).encode())
    registry.store.write(
        "champion.json",
        json.dumps(
            {
                "dag_id": "Airflow_Lab2",
                "champion": 2,
                "updated_at": "2026-01-01T00:00:00+00:00",
                "events": [
                    {
                        "at": "2026-01-01T00:00:00+00:00",
                        "action": "promoted",
                        "version": v,
                        "from": v - 1 or None,
                        "reason": "old",
                        "by": "old",
                    }
                    for v in (1, 2)
                ],
            }
        ).encode(),
    )
    return registry, models


def test_an_old_registry_is_refused_with_the_command_then_migrated_once(pipelines, tmp_path, capsys):
    dataset = pipelines.parent / "dags" / "data" / "advertising.csv"
    registry, models = old_registry(tmp_path / "model", dataset)
    old_files = {n: registry.card(n)["model"]["file"] for n in (1, 2)}
    (tmp_path / "model" / "model.sav").write_bytes(registry.model_bytes(2))  # the champion's copy, as they left it
    hint = "convert the registry to ONNX once with: adclick-ops models migrate --dag Airflow_Lab2"
    with pytest.raises(RegistryError, match=hint):
        registry.load_model(2)
    source = tmp_path / "in.csv"
    SEED[FEATURES].head(20).to_csv(source, index=False)
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(tmp_path / "out.csv")]) == 1
    assert hint in capsys.readouterr().err
    # the serving path refuses from the card alone: the old reader and skops are never loaded
    probe = (
        "import sys; from adclick_ops.registry import Registry; from adclick_ops.predict import load_champion\n"
        f"try:\n    load_champion(Registry({str(tmp_path / 'model')!r}, 'Airflow_Lab2'))\nexcept Exception as exc:\n    print(type(exc).__name__)\n"
        "print(sorted(m for m in sys.modules if m in ('adclick_ops.registry.legacy', 'skops', 'sklearn')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True).stdout.split()
    assert out == ["RegistryError", "[]"]

    assert main(["models", "migrate", "--pipelines", str(pipelines)]) == 0
    printed = capsys.readouterr().out
    assert "Airflow_Lab2: version 1: models/" in printed and "Airflow_Lab2: version 2: models/" in printed
    assert "on 3,000 rows" in printed  # the dataset's 1,000 and 2,000 generated
    for number, model in models.items():
        card = registry.card(number)
        assert card["model"]["format"] == "onnx" and card["model"]["file"] == f"models/{card['model']['sha256']}.onnx"
        assert card["model"]["migrated_from"]["file"] == old_files[number]
        assert card["model"]["migrated_from"]["format"] == ("adclick-model/1" if number == 1 else "skops")
        assert card["model"]["onnx"]["inputs"][0]["columns"] == FEATURES
        assert (Path(registry.location) / old_files[number]).exists()  # nothing already good is lost
        onnx_model = registry.load_model(number)
        np.testing.assert_allclose(onnx_model.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-4)
    assert registry.champion() == 2 and [e["version"] for e in registry.history()] == [1, 2]
    assert (tmp_path / "model" / "model.sav").read_bytes() == registry.model_bytes(2)
    assert main(["predict", "--pipelines", str(pipelines), str(source), str(tmp_path / "out.csv")]) == 0
    capsys.readouterr()
    assert main(["models", "migrate", "--pipelines", str(pipelines)]) == 0
    assert capsys.readouterr().out.strip() == "Airflow_Lab2: every version is an ONNX file already"


def test_an_old_file_that_fails_the_old_checks_is_not_migrated(pipelines, tmp_path, capsys):
    """The old checks hold for that one read: a tree walking outside itself, with its card matching, is refused."""
    import io
    import zipfile

    registry, _ = old_registry(tmp_path / "model", tmp_path / "gone.csv")
    card = registry.card(1)
    data = registry.model_bytes(1)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    description = json.loads(members["model.json"])
    # the nodes array of the first tree
    text = json.dumps(description)
    name = text[text.index('"nodes": {"array": "') + 20 :].split('"', 1)[0]
    nodes = np.load(io.BytesIO(members[name]), allow_pickle=False)
    nodes["feature"][0] = 2**40 + 1
    buffer = io.BytesIO()
    np.save(buffer, nodes, allow_pickle=False)
    members[name] = buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    blob = out.getvalue()
    digest = hashlib.sha256(blob).hexdigest()
    registry.store.write(f"models/{digest}.model", blob)
    card["model"].update(file=f"models/{digest}.model", sha256=digest)
    registry.store.write("versions/000001.json", json.dumps(card).encode())
    assert main(["models", "migrate", "--pipelines", str(pipelines)]) == 1
    assert "(version 1): refused: Tree: a split on a feature outside 0..4" in capsys.readouterr().err
    assert registry.card(1)["model"]["format"] == "adclick-model/1"


@pytest.mark.parametrize("dataset", ["x", 7, ["a"], {"path": 7}, {"path": ["a"]}, None])
def test_a_card_whose_dataset_cannot_be_read_is_migrated_on_generated_rows(pipelines, tmp_path, capsys, dataset):
    registry, models = old_registry(tmp_path / "model", tmp_path / "gone.csv")
    path = Path(registry.location) / "versions" / "000002.json"
    card = json.loads(path.read_text())
    card["dataset"] = dataset
    path.write_text(json.dumps(card))
    assert main(["models", "migrate", "--pipelines", str(pipelines)]) == 0, capsys.readouterr()
    assert "Airflow_Lab2: version 2: models/" in capsys.readouterr().out
    np.testing.assert_allclose(registry.load_model(2).predict_proba(X), models[2].predict_proba(X), rtol=0, atol=1e-4)
