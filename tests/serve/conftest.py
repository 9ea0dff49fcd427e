"""Tiny runs trained here for the HTTP service tests: MF, LightGCN (retrieval) and DeepFM (CTR)."""

from __future__ import annotations

import pytest
from tests.ctr.conftest import TINY_SCHEMA

from slimrec.data.fields import encode_batches, frame_batches
from slimrec.data.splits import carve_validation
from slimrec.data.synthetic import planted_clicks
from slimrec.spine import run
from slimrec.tasks import CTRConfig, RetrievalConfig

FAST = {"epochs": 2, "batch_size": 512, "lr": 5e-3, "eval_every": 1, "progress": False}


@pytest.fixture(scope="session")
def serve_data(tiny_data):
    return carve_validation(tiny_data, 0.1, seed=0)


@pytest.fixture(scope="session")
def mf_run(serve_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("mf")
    run(RetrievalConfig(dim=8, out=str(out), **FAST), command="test", data=serve_data)
    return out


@pytest.fixture(scope="session")
def lightgcn_run(serve_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("lightgcn")
    run(RetrievalConfig(dim=8, model="lightgcn", model_params={"num_layers": 2}, out=str(out),
                        **FAST), command="test", data=serve_data)
    return out


@pytest.fixture(scope="session")
def ctr_fields():
    return encode_batches("tiny", "tiny.csv", frame_batches(planted_clicks(num_rows=1500)),
                          TINY_SCHEMA, seed=0)


@pytest.fixture(scope="session")
def ctr_run(ctr_fields, tmp_path_factory):
    out = tmp_path_factory.mktemp("ctr")
    run(CTRConfig(dataset="tiny", model="deepfm", dim=4, epochs=1, batch_size=256,
                  progress=False, out=str(out)), command="test", data=ctr_fields)
    return out
