"""The four CTR models: shapes, gradients, learning a planted signal; the training loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slimrec.data.fields import FieldData
from slimrec.embeddings import EmbeddingSpec
from slimrec.errors import ConfigError
from slimrec.eval.ctr import evaluate_ctr
from slimrec.models import MODELS
from slimrec.models.ctr import CTRModel, FieldTensors, build_field_embeddings
from slimrec.tasks import CTRConfig, CTRTrainConfig
from slimrec.train.loop import fit

SMALL = {"hidden": [32, 32]}
CTR_MODELS = sorted(name for name, cls in MODELS.items() if cls.task == "ctr")


def run_config(**train: object) -> CTRConfig:
    """A CTR run config with these training settings (CTR defaults otherwise), seed 0."""
    return CTRConfig(train=CTRTrainConfig(**train), seed=0, progress=False)


def make_model(data: FieldData, name: str, method: str = "full", budget: float | None = None,
               **params: object) -> CTRModel:
    torch.manual_seed(0)
    embeddings = build_field_embeddings(data, EmbeddingSpec(method, budget=budget), 8)
    return MODELS[name].from_params(embeddings, {**SMALL, **params})


@pytest.mark.parametrize("name", CTR_MODELS)
def test_forward_shape_and_gradients(tiny_fields: FieldData, name: str) -> None:
    model = make_model(tiny_fields, name)
    assert model.task == "ctr" and model.name == name
    batch = FieldTensors(tiny_fields).batch(torch.arange(16))
    logits = model(batch)
    assert logits.shape == (16,) and torch.isfinite(logits).all()
    torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.labels).backward()
    for table in model.embeddings.tables.values():
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in table.parameters())
    assert model.memory_bytes() == model.embedding_bytes() + model.dense_bytes()
    assert model.dense_bytes() > 0


@pytest.mark.parametrize("name", CTR_MODELS)
def test_models_learn_the_planted_signal(tiny_fields: FieldData, name: str) -> None:
    """Clicks follow user % 4 == item % 4 (a Bayes-optimal AUC of about 0.84)."""
    model = make_model(tiny_fields, name)
    config = run_config(epochs=10, batch_size=128, lr=1e-2, patience=3, lr_gamma=1.0)
    result = fit(model, tiny_fields, config)
    metrics, _ = evaluate_ctr(model, tiny_fields, "test")
    assert metrics["auc"] > 0.75, (name, result.history)
    assert result.best_score == max(r["val_auc"] for r in result.history)


def test_ctr_training_defaults_and_the_legacy_lr_decay() -> None:
    """CTR runs decay lr on a plateau; configs written before ``lr_gamma`` say ``lr_decay``."""
    config = CTRConfig(lr_decay=1.0, epochs=10, progress=False)
    assert config.train.lr_gamma == 1.0 and config.train.epochs == 10
    assert config.train.lr_schedule == "plateau" and config.val_metric == "auc"


def test_dcnv2_stacked_and_parallel(tiny_fields: FieldData) -> None:
    batch = FieldTensors(tiny_fields).batch(torch.arange(4))
    for structure in ("stacked", "parallel"):
        model = make_model(tiny_fields, "dcnv2", structure=structure, num_cross_layers=2)
        assert model(batch).shape == (4,) and len(model.cross) == 2
    with pytest.raises(ConfigError, match="structure"):
        make_model(tiny_fields, "dcnv2", structure="sideways")


def test_early_stopping_restores_the_best_epoch(tiny_fields: FieldData) -> None:
    model = make_model(tiny_fields, "deepfm")
    config = run_config(epochs=40, batch_size=128, lr=3e-2, patience=1)
    result = fit(model, tiny_fields, config)
    assert result.epochs_run < 40 and result.epochs_run == result.best_epoch + 1
    val, _ = evaluate_ctr(model, tiny_fields, "val")
    assert val["auc"] == pytest.approx(result.best_score)


def test_resuming_reproduces_the_uninterrupted_run(tiny_fields: FieldData,
                                                   tmp_path: Path) -> None:
    config = run_config(epochs=4, batch_size=512, patience=5)
    straight = make_model(tiny_fields, "widedeep")
    expected = fit(straight, tiny_fields, config)

    resumed = make_model(tiny_fields, "widedeep")
    checkpoint = tmp_path / "checkpoint.pt"
    fit(resumed, tiny_fields, run_config(epochs=2, batch_size=512, patience=5), checkpoint)
    resumed = make_model(tiny_fields, "widedeep")  # a fresh process would rebuild the model
    result = fit(resumed, tiny_fields, config, checkpoint)
    assert [r["loss"] for r in result.history] == [r["loss"] for r in expected.history]
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_eval_before_restores_the_start_when_no_epoch_beats_it(tiny_fields: FieldData) -> None:
    model = make_model(tiny_fields, "deepfm")
    fit(model, tiny_fields, run_config(epochs=3, batch_size=128, lr=1e-2))
    start, _ = evaluate_ctr(model, tiny_fields, "val")
    trained = {key: value.clone() for key, value in model.state_dict().items()}
    # A vanishing lr cannot beat the start by min_delta: epoch 0 is kept and restored.
    config = run_config(epochs=2, batch_size=128, lr=1e-30, eval_before=True)
    result = fit(model, tiny_fields, config)
    assert result.best_epoch == 0 and result.best_score == start["auc"]
    assert result.history[0]["epoch"] == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained[key]), key
