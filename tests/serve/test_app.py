"""The HTTP service in-process (FastAPI TestClient): answers, fold-in, CTR rows, errors, reload,
metrics, and the micro-batcher on its own."""

from __future__ import annotations

import asyncio
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from slimrec.eval.ctr import predict as ctr_predict
from slimrec.models.ctr import FieldTensors
from slimrec.serve.app import create_app
from slimrec.serve.batching import MicroBatcher
from slimrec.serve.predictor import Predictor
from slimrec.serve.recommender import Query, Recommender


def same_answers(got, expected):
    """Same items and sources; scores equal up to float32 rounding (a product over a batch of
    another size may sum in another order)."""
    assert [(a.user, a.items, a.source) for a in got] == [
        (e.user, e.items, e.source) for e in expected]
    for a, e in zip(got, expected, strict=True):
        assert np.allclose(a.scores, e.scores, rtol=1e-5)


def client(run_dir, **settings) -> TestClient:
    return TestClient(create_app(run_dir, **settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def mf(mf_run):
    with client(mf_run) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def recommender(mf_run):
    return Recommender.load(mf_run)


def test_known_users_match_recommend(mf, recommender):
    response = mf.post("/recommend", json={"users": ["5", 17, "0"], "k": 7})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"].startswith(recommender.folder.name + "@")
    expected = recommender.recommend(["5", "17", "0"], k=7)
    assert [r["user"] for r in body["results"]] == ["5", "17", "0"]
    for result, direct in zip(body["results"], expected, strict=True):
        assert result["items"] == direct.items and result["source"] == "model"
        assert np.allclose(result["scores"], direct.scores)


def test_exclude_and_include_items(mf, recommender):
    top = recommender.recommend(["3"], k=5)[0].items
    body = mf.post("/recommend", json={"users": ["3"], "k": 5,
                                       "exclude_items": top[:2]}).json()
    assert body["results"][0]["items"][:3] == top[2:5]
    candidates = ["1", "2", "3", "4", "5", "6"]
    body = mf.post("/recommend", json={"users": ["3"], "k": 3, "exclude_seen": False,
                                       "include_items": candidates}).json()
    scores = recommender.model.scorer()(torch.tensor([3]), None)[0]
    expected = sorted(candidates, key=lambda item: -float(scores[int(item)]))[:3]
    assert body["results"][0]["items"] == expected


def test_history_fold_in_least_squares_for_mf(mf, recommender, serve_data):
    history = [str(i) for i in serve_data.train[4].indices]
    body = mf.post("/recommend", json={"history": history, "k": 10}).json()
    result = body["results"][0]
    assert result["source"] == "history" and result["user"] is None
    assert not set(result["items"]) & set(history)
    assert result["items"] == recommender.recommend_history(history, k=10).items
    assert recommender.fold_in_method == "least_squares"
    # The folded-in vector agrees with the trained one far better than chance.
    trained = recommender.recommend(["4"], k=10, exclude_seen=True)[0].items
    assert len(set(trained) & set(result["items"])) >= 3


def test_history_fold_in_is_the_mean_for_lightgcn(lightgcn_run):
    recommender = Recommender.load(lightgcn_run)
    assert recommender.fold_in_method == "mean"
    history = ["1", "2", "9"]
    with client(lightgcn_run) as test_client:
        body = test_client.post("/recommend", json={"history": [*history, "nope"],
                                                    "k": 4}).json()
    items = recommender.model.item_table.full_weight().detach()
    scores = items[[1, 2, 9]].mean(0) @ items.T
    scores[[1, 2, 9]] = -torch.inf
    result = body["results"][0]
    assert result["items"] == [str(i) for i in scores.topk(4).indices.tolist()]
    assert "1 history item id(s) unknown" in result["message"]


@pytest.mark.parametrize(("body", "message"), [
    ({"users": []}, "users: List should have at least 1 item"),
    ({"history": []}, "history: List should have at least 1 item"),
    ({"users": ["1"], "k": 0}, "k: Input should be greater than or equal to 1"),
    ({"users": ["1"], "k": 201}, "k must be at most the number of items, 200; got 201"),
    ({"users": ["1"], "history": ["2"]}, "give exactly one of users"),
    ({"k": 3}, "give exactly one of users"),
    ({"users": ["1"], "include_items": []}, "include_items: List should have at least 1"),
    ({"users": ["1"], "include_items": ["ghost"]}, "include_items: 1 item id(s) unknown"),
    ({"history": ["ghost", "phantom"]}, "none of its 2 item id(s) is known"),
    ({"users": ["1"], "colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"users": [["1"]]}, "users.0: Input should be a valid string"),
])
def test_malformed_requests_get_422_with_a_message(mf, body, message):
    response = mf.post("/recommend", json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]


def test_bad_json_gets_422(mf):
    response = mf.post("/recommend", content=b'{"users": [1,',
                       headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON decode error" in response.json()["error"]


def test_unknown_users_404_or_popular_fallback(mf_run, mf):
    response = mf.post("/recommend", json={"users": ["1", "ghost", "nobody"]})
    assert response.status_code == 404
    assert response.json()["unknown_users"] == ["ghost", "nobody"]
    with client(mf_run, fallback="popular") as popular:
        results = popular.post("/recommend", json={"users": ["1", "ghost"], "k": 3}
                               ).json()["results"]
    assert [r["source"] for r in results] == ["model", "popular"]
    assert results[1]["scores"] == sorted(results[1]["scores"], reverse=True)


def test_oversized_requests_get_413(mf_run):
    with client(mf_run, max_body_bytes=2_000, max_users=5) as small:
        too_long = small.post("/recommend", json={"users": [str(i) for i in range(1000)]})
        assert too_long.status_code == 413
        assert "the limit is 2,000 bytes" in too_long.json()["error"]
        too_many = small.post("/recommend", json={"users": [str(i) for i in range(6)]})
        assert too_many.status_code == 413 and "6 users" in too_many.json()["error"]


def test_a_bug_is_a_500_without_traceback(mf_run, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Recommender, "answer", broken)
    with client(mf_run, batching=False) as test_client:
        response = test_client.post("/recommend", json={"users": ["1"]})
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error; see the server log"}


def test_health_model_and_metrics(mf, recommender):
    assert mf.get("/health/live").json() == {"status": "live"}
    assert mf.get("/health/ready").json()["status"] == "ready"
    info = mf.get("/model").json()
    assert info["task"] == "retrieval" and info["model"] == "mf"
    assert info["tables"]["item_table"]["method"] == "full"
    assert info["tables"]["item_table"]["memory_bytes"] == 200 * 8 * 4
    assert info["memory_bytes"]["model_total"] == recommender.manifest["memory_bytes"][
        "model_total"]
    assert info["metrics"] == recommender.manifest["metrics"]
    assert info["serving"]["process_rss_bytes"] > 0
    mf.post("/recommend", json={"users": ["ghost"]})
    text = mf.get("/metrics").text
    assert 'slimrec_requests_total{endpoint="/recommend",status="404"}' in text
    assert 'slimrec_request_errors_total{endpoint="/recommend"}' in text
    assert 'slimrec_request_latency_seconds_bucket{endpoint="/model"' in text
    assert "slimrec_batch_size_count" in text
    assert 'slimrec_model_bytes{part="model_total"} 16000.0' in text
    assert "process_resident_memory_bytes" in text


def test_predict_ctr_rows(ctr_run, ctr_fields):
    predictor = Predictor.load(ctr_run)
    rows = ctr_fields.rows("test")[:5]
    expected = ctr_predict(predictor.model, FieldTensors(ctr_fields), rows)
    payload = []
    for row in rows:
        values = {field.name: str(field.vocabulary[ctr_fields.ids[row, column]])
                  for column, field in enumerate(ctr_fields.single_fields)}
        offsets, ids = ctr_fields.bags["tags"]
        values["tags"] = [str(ctr_fields.field("tags").vocabulary[i])
                          for i in ids[offsets[row]:offsets[row + 1]]]
        payload.append(values)
    with client(ctr_run) as test_client:
        body = test_client.post("/predict", json={"rows": payload}).json()
        assert np.allclose(body["probabilities"], expected, atol=1e-6)
        unseen = test_client.post("/predict", json={"rows": [
            {**payload[0], "user": "never-seen"}, {**payload[0], "user": "<OOV>"}]}).json()
        assert unseen["probabilities"][0] == pytest.approx(unseen["probabilities"][1])
        missing = test_client.post("/predict", json={"rows": [
            {key: value for key, value in payload[0].items() if key != "city"}]})
        assert missing.status_code == 422 and "missing field(s) city" in missing.json()["error"]
        wrong = test_client.post("/recommend", json={"users": ["1"]})
        assert wrong.status_code == 409 and "needs a retrieval model" in wrong.json()["error"]
        assert test_client.get("/model").json()["serving"]["fields"] == predictor.field_names


def test_reload_swaps_and_refuses_corrupt_or_foreign(mf_run, ctr_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(mf_run, copy)
    with client(copy, reload_token="s3cret") as test_client:
        before = test_client.get("/health/ready").json()["model_version"]
        assert test_client.post("/admin/reload").status_code == 401
        wrong = test_client.post("/admin/reload", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        blob = bytearray((copy / "model.safetensors").read_bytes())
        blob[-1] ^= 0xFF
        (copy / "model.safetensors").write_bytes(bytes(blob))
        refused = test_client.post("/admin/reload", headers=auth)
        assert refused.status_code == 422 and "checksum mismatch" in refused.json()["error"]
        assert refused.json()["serving"] == before
        foreign = test_client.post("/admin/reload", headers=auth, json={"run_dir": str(ctr_run)})
        assert foreign.status_code == 422 and "holds a ctr model" in foreign.json()["error"]
        assert test_client.post("/recommend", json={"users": ["1"]}).status_code == 200
        loaded = test_client.post("/admin/reload", headers=auth, json={"run_dir": str(mf_run)})
        assert loaded.status_code == 200 and loaded.json()["previous_version"] == before
        assert 'slimrec_reloads_total{outcome="refused"} 2.0' in test_client.get("/metrics").text


def test_micro_batcher_scores_concurrent_calls_together(recommender):
    sizes = []
    calls = [[Query(user="1", k=3)], [Query(user="2", k=5, exclude_items=("7",))],
             [Query(history=("1", "2"), k=4), Query(user="9", k=2, exclude_seen=False)],
             [Query(user="3", include_items=("1", "2", "3"), k=2)]]

    async def main():
        batcher = MicroBatcher(ThreadPoolExecutor(1), max_size=100, max_delay=0.05,
                               on_batch=sizes.append)
        answers = await asyncio.gather(*(batcher.submit(recommender.answer, queries, "model")
                                         for queries in calls))
        bad = asyncio.gather(batcher.submit(recommender.answer, [Query(user="1")], "model"),
                             batcher.submit(recommender.answer, [Query(history=("ghost",))],
                                            "model"),
                             return_exceptions=True)
        mixed = await bad
        await batcher.close()
        return answers, mixed

    answers, mixed = asyncio.run(main())
    assert sizes[0] == 5  # one product for the four calls' five queries
    for queries, answer in zip(calls, answers, strict=True):
        same_answers(answer, recommender.answer(queries))
    # A bad call fails alone; its batch-mate still gets its answer.
    same_answers(mixed[0], recommender.answer([Query(user="1")]))
    assert "none of its 1 item id(s) is known" in str(mixed[1])


def test_micro_batcher_scores_concurrent_predict_rows_together(ctr_run, ctr_fields):
    """Concurrent /predict calls: one forward pass for all their rows; a call with a missing
    field fails alone, with its own row number."""
    predictor = Predictor.load(ctr_run)
    rows = ctr_fields.rows("test")[:6]
    payload = [{field.name: str(field.vocabulary[ctr_fields.ids[row, column]])
                for column, field in enumerate(ctr_fields.single_fields)} | {"tags": []}
               for row in rows]
    expected = predictor.predict(payload)
    sizes = []

    async def main():
        batcher = MicroBatcher(ThreadPoolExecutor(1), max_size=100, max_delay=0.05,
                               on_batch=sizes.append)
        calls = [payload[:1], payload[1:4], payload[4:]]
        good = await asyncio.gather(*(batcher.submit(predictor.predict, rows, "ctr")
                                      for rows in calls))
        broken = {key: value for key, value in payload[0].items() if key != "city"}
        mixed = await asyncio.gather(batcher.submit(predictor.predict, payload[:2], "ctr"),
                                     batcher.submit(predictor.predict, [payload[0], broken],
                                                    "ctr"), return_exceptions=True)
        await batcher.close()
        return good, mixed

    good, mixed = asyncio.run(main())
    assert sizes[0] == 6  # one forward pass for the three calls' six rows
    assert np.allclose(np.concatenate(good), expected, atol=1e-6)
    assert np.allclose(mixed[0], expected[:2], atol=1e-6)
    assert "row 1: missing field(s) city" in str(mixed[1])


def test_openapi_page_lists_the_endpoints(mf):
    paths = json.loads(mf.get("/openapi.json").text)["paths"]
    assert {"/recommend", "/predict", "/model", "/metrics", "/admin/reload"} <= set(paths)


def test_an_oversized_body_without_length_gets_413(mf_run):
    def chunks():
        yield b'{"users": ['
        for _ in range(500):
            yield b'"1",'
        yield b'"1"]}'

    with client(mf_run, max_body_bytes=1_000) as small:
        response = small.post("/recommend", content=chunks(),
                              headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over 1,000 bytes" in response.json()["error"]
