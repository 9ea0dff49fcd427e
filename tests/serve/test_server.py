"""The real server: `slimrec serve` in a subprocess (uvicorn on a free loopback port), spoken to
with httpx. Answers are checked against `Recommender` called directly."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from slimrec.serve.artifact import load_artifact, save_artifact
from slimrec.serve.predictor import Predictor
from slimrec.serve.recommender import Recommender

START_SECONDS = 120  # importing torch on a busy 2-core machine can take a while


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`slimrec serve RUN_DIR` in a subprocess; `url` once it answers."""

    def __init__(self, run_dir, *flags: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        command = "import sys; from slimrec.cli import main; sys.exit(main(sys.argv[1:]))"
        self.process = subprocess.Popen(
            [sys.executable, "-c", command, "serve", str(run_dir), "--port",
             self.url.rsplit(":", 1)[1], "--threads", "1", "--log-level", "warning", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server not ready in time")

    def stop(self) -> str:
        self.process.terminate()
        output, _ = self.process.communicate(timeout=30)
        return output


@pytest.fixture(scope="module")
def runs(mf_run, tmp_path_factory):
    """The served copy of the MF run, and a second model of the same users and items (the MF
    run with its user vectors negated, so every answer differs)."""
    root = tmp_path_factory.mktemp("served")
    served = root / "served"
    shutil.copytree(mf_run, served)
    artifact = load_artifact(mf_run)
    artifact.model.user_table.weight.data.neg_()
    other = root / "other"
    save_artifact(other, artifact.model, artifact.vocab, artifact.manifest["run_config"],
                  artifact.manifest["metrics"], artifact.extras)
    return served, other


@pytest.fixture(scope="module")
def servers(runs, request):
    served, _ = runs
    retrieval = Server(served, "--reload-token", "s3cret", "--max-body-bytes", "20000")
    # The CTR model trains while the first server starts.
    ctr = Server(request.getfixturevalue("ctr_run"), "--no-batching")
    try:
        retrieval.wait_ready()
        ctr.wait_ready()
        yield retrieval, ctr
    finally:
        logs = retrieval.stop() + ctr.stop()
        assert "Traceback" not in logs, logs


def post(url, path, **kwargs):
    return httpx.post(f"{url}{path}", timeout=30, **kwargs)


def test_every_endpoint(servers, runs, ctr_run):
    server, ctr = servers
    recommender = Recommender.load(runs[0])
    assert httpx.get(f"{server.url}/health/live").json() == {"status": "live"}
    version = httpx.get(f"{server.url}/health/ready").json()["model_version"]
    body = post(server.url, "/recommend", json={"users": ["5", "17"], "k": 6}).json()
    assert body["model_version"] == version
    for result, direct in zip(body["results"], recommender.recommend(["5", "17"], k=6),
                              strict=True):
        assert result["items"] == direct.items
        assert np.allclose(result["scores"], direct.scores, rtol=1e-5)
    history = post(server.url, "/recommend", json={"history": ["1", "4", "9"], "k": 5}).json()
    assert history["results"][0]["items"] == recommender.recommend_history(
        ["1", "4", "9"], k=5).items
    info = httpx.get(f"{server.url}/model").json()
    assert info["task"] == "retrieval" and info["model_version"] == version
    assert info["serving"]["process_rss_bytes"] > 0
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'slimrec_requests_total{endpoint="/recommend",status="200"}' in metrics
    assert "process_resident_memory_bytes" in metrics and "slimrec_batch_size_bucket" in metrics
    assert "/recommend" in httpx.get(f"{server.url}/openapi.json").json()["paths"]

    predictor = Predictor.load(ctr_run)
    row = {name: "1" for name in predictor.field_names} | {"tags": ["t1", "t2"]}
    predicted = post(ctr.url, "/predict", json={"rows": [row, row]}).json()
    assert np.allclose(predicted["probabilities"], predictor.predict([row, row]), atol=1e-6)
    missing = post(ctr.url, "/predict", json={"rows": [{"user": "1"}]})
    assert missing.status_code == 422 and "missing field(s) item" in missing.json()["error"]


@pytest.mark.parametrize(("kwargs", "status", "message"), [
    ({"content": b'{"users": [', "headers": {"content-type": "application/json"}}, 422,
     "JSON decode error"),
    ({"json": {"users": ["1"], "k": 0}}, 422, "greater than or equal to 1"),
    ({"json": {"users": ["1"], "k": 10_000}}, 422, "k must be at most the number of items"),
    ({"json": {"users": []}}, 422, "at least 1 item"),
    ({"json": {"history": []}}, 422, "at least 1 item"),
    ({"json": {"users": ["1", "ghost"]}}, 404, "1 user id(s) unknown"),
    ({"json": {"users": [str(i) for i in range(5000)]}}, 413, "the limit is 20,000 bytes"),
    ({"json": {"rows": [{"user": "1"}]}, "path": "/predict"}, 409, "needs a ctr model"),
])
def test_errors(servers, kwargs, status, message):
    server, _ = servers
    path = kwargs.pop("path", "/recommend")
    response = post(server.url, path, **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert "Traceback" not in response.text


def test_reload_during_traffic_and_corrupt_reload(servers, runs):
    server, _ = servers
    served, other = runs
    expected = {}
    for folder in (served, other):
        recommender = Recommender.load(folder)
        version = f"{folder.name}@{recommender.manifest['files']['model.safetensors'][:12]}"
        expected[version] = {u: recommender.recommend([u], k=5)[0].items
                             for u in map(str, range(30))}
    auth = {"Authorization": "Bearer s3cret"}
    assert post(server.url, "/admin/reload").status_code == 401

    async def traffic():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            async def one(user):
                return user, await client.post("/recommend", json={"users": [user], "k": 5})

            during = asyncio.gather(*(one(str(i % 30)) for i in range(150)))
            reload = client.post("/admin/reload", headers=auth, json={"run_dir": str(other)})
            answered, reloaded = await asyncio.gather(during, reload)
            after = await asyncio.gather(*(one(str(i % 30)) for i in range(60)))
            return answered + after, reloaded

    answers, reloaded = asyncio.run(traffic())
    assert reloaded.status_code == 200
    versions = set()
    for user, response in answers:
        assert response.status_code == 200
        body = response.json()
        versions.add(body["model_version"])
        # Each answer is wholly the model it names: nothing is half-swapped.
        assert body["results"][0]["items"] == expected[body["model_version"]][user]
    assert reloaded.json()["model_version"] in versions

    blob = bytearray((served / "model.safetensors").read_bytes())
    blob[10] ^= 0xFF
    (served / "model.safetensors").write_bytes(bytes(blob))
    refused = post(server.url, "/admin/reload", headers=auth, json={"run_dir": str(served)})
    assert refused.status_code == 422 and "checksum mismatch" in refused.json()["error"]
    current = reloaded.json()["model_version"]
    assert refused.json()["serving"] == current
    still = post(server.url, "/recommend", json={"users": ["3"], "k": 5}).json()
    assert still["model_version"] == current and still["results"][0]["items"] == expected[
        current]["3"]


def test_sighup_reloads_the_served_folder(servers):
    server, _ = servers

    def loaded() -> float:
        for line in httpx.get(f"{server.url}/metrics").text.splitlines():
            if line.startswith('slimrec_reloads_total{outcome="loaded"}'):
                return float(line.split()[-1])
        return 0.0

    before = loaded()
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while loaded() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert loaded() == before + 1
    assert httpx.get(f"{server.url}/health/ready").status_code == 200
