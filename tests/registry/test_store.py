"""The registry, the working files and the champion pointer on S3: moto's standalone server, reached through s3fs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from adclick_ops.registry import Registry, load_model_bytes
from adclick_ops.steps.model import build_pipeline, evaluate
from adclick_ops.steps.promotion import Comparison, Gates

from tests.support import PROJECT, free_port, mandatory_in_ci
from tests.support.registry import (
    FEATURES,
    SEED,
    TARGET,
    model_rows,
    set_training,
    training_settings,
)

BUCKET = "adclick-test"
MOTO_CREDENTIAL = "moto"  # moto accepts any credentials; s3fs only needs some


@pytest.fixture(scope="session")
def s3_server():
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto[server] is in requirements-dev.txt
        mandatory_in_ci(f"moto's standalone server is not installed: {exc}")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, request):
    """A fresh bucket; the AWS settings s3fs and the subprocesses read from the environment."""
    env = {
        "AWS_ACCESS_KEY_ID": MOTO_CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": MOTO_CREDENTIAL,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_server,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import boto3
    import fsspec

    bucket = f"{BUCKET}-{abs(hash(request.node.name)) % 10**8}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    fsspec.filesystem("s3").invalidate_cache()
    return f"s3://{bucket}", env


def _run_in_process(settings: dict, run_id: str, env: dict) -> subprocess.Popen:
    script = (
        "import json, sys\n"
        "from tests.support.registry import run_chain\n"
        f"out = run_chain(json.loads(sys.argv[1]), {run_id!r})\n"
        "print(json.dumps({k: out[k] for k in ('model_version', 'promoted', 'champion_version')}))\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(settings)],
        cwd=PROJECT,  # `python -c` imports from its working directory: the project, with the tests package
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_in_parallel_on_s3(s3, pipelines):
    root, env = s3
    set_training(pipelines, model_dir=f"{root}/model", artifacts_root=f"{root}/runs")
    settings = training_settings(pipelines)
    # two different models (the same one twice would be one version, the second run recorded against it)
    other = {**settings, "estimator": {"name": "logistic_regression", "params": {"C": 0.5}}}
    procs = [_run_in_process(s, f"run_{i}", env) for i, s in enumerate((settings, other))]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-4000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["model_version"] for r in results) == [1, 2]
    registry = Registry(f"{root}/model", "Airflow_Lab2")
    assert registry.versions() == [1, 2]
    history = registry.history()
    assert len(history) == 2 and {e["version"] for e in history} == {1, 2}
    champion = registry.champion()
    # the first decision promoted its version; the second compared with it and won or not
    assert history[0]["action"] == "promoted" and history[0]["from"] is None
    assert history[1]["from"] == history[0]["version"]
    assert champion == (history[1]["version"] if history[1]["action"] == "promoted" else history[0]["version"])
    import fsspec

    fs = fsspec.filesystem("s3")
    assert fs.cat_file(f"{root}/model/model.sav".removeprefix("s3://")) == registry.model_bytes(champion)
    for i in range(2):
        assert fs.exists(f"{root}/runs/Airflow_Lab2/run_{i}/metrics.json".removeprefix("s3://"))

    # rollback needs a previous champion: promote the other by hand, then roll back
    other = 3 - champion
    registry.promote(other, "by hand", by="tester")
    registry.rollback("back", by="tester")
    assert registry.champion() == champion

    from adclick_ops.monitor import create_app

    client = create_app(
        {
            "TESTING": True,
            "MODEL_DIR": f"{root}/model",
            "AIRFLOW_URL": "http://127.0.0.1:9",
        }
    ).test_client()
    response = client.post("/api/predict", json={"rows": model_rows(2)})
    assert response.status_code == 200 and response.json["model_version"] == champion


def test_concurrent_decisions_on_s3_use_conditional_writes(s3):
    root, _ = s3
    registry = Registry(f"{root}/model", "Airflow_Lab2")
    assert registry.store.atomic
    x, y = SEED[FEATURES].to_numpy(float), SEED[TARGET].to_numpy(int)
    rng = np.random.default_rng(1)
    models = []
    for i in range(6):
        noisy = y[:700].copy()
        flip = rng.random(700) < i / 12
        noisy[flip] = 1 - noisy[flip]
        models.append(build_pipeline([], "logistic_regression", {"max_iter": 1000}).fit(x[:700], noisy))
    outcomes = []

    def work(model, i):
        from adclick_ops.registry.convert import to_onnx

        metrics = evaluate(model, x[700:], y[700:])
        number = Registry(f"{root}/model", "Airflow_Lab2").add_version(
            to_onnx(model, FEATURES),
            {"run_id": f"r{i}", "metrics": metrics, "model": {"features": FEATURES}},
        )
        candidate = load_model_bytes(registry.model_bytes(number), f"version {number}", n_features=len(FEATURES))

        def compare(champion: int) -> Comparison:  # both on the same rows, which neither trained on
            theirs = evaluate(registry.load_model(champion), x[700:], y[700:])
            return Comparison(champion, 300, evaluate(candidate, x[700:], y[700:]), theirs)

        outcomes.append(registry.decide(number, compare, Gates(), by=f"r{i}"))

    threads = [threading.Thread(target=work, args=(m, i)) for i, m in enumerate(models)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.version for o in outcomes) == list(range(1, 7))
    assert sorted(e["version"] for e in registry.history()) == list(range(1, 7))  # no decision lost
    scores = {v: registry.card(v)["metrics"]["roc_auc"] for v in range(1, 7)}
    assert scores[registry.champion()] == max(scores.values())


def test_conditional_writes_refuse_a_stale_tag(s3):
    root, _ = s3
    store = Registry(f"{root}/model", "Airflow_Lab2").store
    assert store.create("versions/000001.json", b"one") is True
    assert store.create("versions/000001.json", b"two") is False
    assert store.read("versions/000001.json") == b"one"
    assert store.replace_if("champion.json", b"a", None) is True
    _, tag = store.read_tagged("champion.json")
    assert store.replace_if("champion.json", b"b", None) is False  # exists already
    assert store.replace_if("champion.json", b"b", tag) is True
    assert store.replace_if("champion.json", b"c", tag) is False  # tag of the older content
    assert store.read("champion.json") == b"b"
