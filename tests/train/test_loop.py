import numpy as np
import pytest
import torch

from slimrec.data.splits import carve_validation
from slimrec.embeddings import build_embedding
from slimrec.eval.ranking import evaluate_ranking
from slimrec.models import MF
from slimrec.tasks import RetrievalConfig
from slimrec.tasks.retrieval import RetrievalTask
from slimrec.train.config import TrainConfig
from slimrec.train.loop import fit


def make_model(data, seed=0, dim=16):
    return MF(build_embedding("full", data.num_users, dim, seed=seed),
              build_embedding("full", data.num_items, dim, seed=seed + 1))


TRAIN = TrainConfig(epochs=6, batch_size=256, lr=5e-3, eval_every=2, patience=2)
CONFIG = RetrievalConfig(train=TRAIN, seed=1, progress=False)


def with_train(**update):
    """CONFIG with some training settings changed (validated like any config)."""
    return CONFIG.model_copy(update={"train": TrainConfig(**{**TRAIN.model_dump(), **update})})


@pytest.fixture(scope="module")
def data(tiny_data):
    return carve_validation(tiny_data, 0.1, seed=0)


def test_loss_decreases_and_model_learns(data):
    model = make_model(data)
    before = evaluate_ranking(model.scorer(), data, "test").metrics["recall@20"]
    result = fit(model, data, CONFIG)
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < losses[0]
    after = evaluate_ranking(model.scorer(), data, "test").metrics["recall@20"]
    assert after > 2 * before


def test_same_seed_same_metrics(data):
    first, second = make_model(data), make_model(data)
    fit(first, data, CONFIG)
    fit(second, data, CONFIG)
    a = evaluate_ranking(first.scorer(), data).metrics
    b = evaluate_ranking(second.scorer(), data).metrics
    assert a == b


def test_best_checkpoint_is_restored(data):
    model = make_model(data)
    config = with_train(epochs=8, eval_every=1, patience=8)
    result = fit(model, data, config)
    best = max(r["val_recall@20"] for r in result.history)
    assert result.best_score == best
    restored = evaluate_ranking(model.scorer(), data, "val", metrics=("recall",)).metrics
    assert restored["recall@20"] == pytest.approx(best)


def test_eval_before_lets_the_starting_model_win(data):
    model = make_model(data)
    fit(model, data, CONFIG)
    start = evaluate_ranking(model.scorer(), data, "val", metrics=("recall",)).metrics
    config = with_train(epochs=3, eval_every=1, patience=3, eval_before=True)
    result = fit(model, data, config)
    assert result.history[0] == {"epoch": 0, "val_recall@20": start["recall@20"]}
    scores = [r["val_recall@20"] for r in result.history if "val_recall@20" in r]
    assert result.best_score == max(scores) >= start["recall@20"]
    restored = evaluate_ranking(model.scorer(), data, "val", metrics=("recall",)).metrics
    assert restored["recall@20"] == pytest.approx(result.best_score)


def test_eval_before_restores_the_start_when_no_epoch_beats_it(data):
    model = make_model(data)
    fit(model, data, CONFIG)
    trained = {key: value.clone() for key, value in model.state_dict().items()}
    # A vanishing lr cannot beat the start (ties keep the earlier model): epoch 0 is restored.
    config = with_train(lr=1e-30, epochs=2, eval_every=1, eval_before=True)
    assert fit(model, data, config).best_epoch == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, trained[key]), key


def test_resume_reproduces_uninterrupted_run(data, tmp_path):
    uninterrupted = make_model(data)
    fit(uninterrupted, data, CONFIG)
    resumed = make_model(data)
    checkpoint = tmp_path / "ckpt.pt"
    fit(resumed, data, with_train(epochs=3), checkpoint=checkpoint)
    resumed = make_model(data)
    fit(resumed, data, CONFIG, checkpoint=checkpoint)
    for key, value in uninterrupted.state_dict().items():
        assert np.allclose(value.numpy(), resumed.state_dict()[key].numpy()), key


def test_step_decay_after_a_milestone(data):
    one_epoch, decayed = make_model(data), make_model(data)
    fit(one_epoch, data, with_train(eval_every=10, epochs=1))
    # After epoch 1 the lr drops to ~0: the second epoch leaves the weights where they were.
    fit(decayed, data, with_train(eval_every=10, epochs=2, lr_milestones=(1,), lr_gamma=1e-30))
    for key, value in decayed.state_dict().items():
        assert torch.allclose(value, one_epoch.state_dict()[key], atol=1e-20), key


def test_val_users_samples_the_validation_checks_and_never_the_test(data):
    model, config = make_model(data), CONFIG.model_copy(update={"val_users": 9})
    task = RetrievalTask()
    check = task.evaluate(model, data, "val", config, metric="recall@20")
    assert check.details["users"] == 9
    assert task.evaluate(model, data, "val", config).details["users"] == 9
    every_test_user = int((np.diff(data.test.indptr) > 0).sum())
    assert task.evaluate(model, data, "test", config).details["users"] == every_test_user
