"""Every registered model passes the model conformance suite (``slimrec.testing.check_model``):
one epoch through the one ``fit``, the one artifact round trip, honest bytes."""

import pytest
import torch

from slimrec.models import MODELS
from slimrec.testing import check_model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_conforms(name):
    check_model(name)


@pytest.mark.parametrize("name", ["mf", "deepfm"])
def test_conforms_with_a_compressed_table(name):
    check_model(name, embedding="quantized", budget="50%")


@pytest.mark.parametrize("name", sorted(name for name, model in MODELS.items()
                                        if model.task == "retrieval"))
def test_bpr_terms_skip_only_the_penalty(name):
    """With L2 0 the loop asks for no penalty: the scores must be the very same."""
    model = check_model(name)
    users, positives, negatives = torch.arange(4), torch.arange(4), torch.arange(4, 8)
    with_penalty = model.bpr_terms(users, positives, negatives)
    without = model.bpr_terms(users, positives, negatives, penalty=False)
    assert without[2] is None and with_penalty[2].item() > 0
    assert torch.equal(without[0], with_penalty[0]) and torch.equal(without[1], with_penalty[1])
