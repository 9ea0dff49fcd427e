"""Every registered model passes the model conformance suite (``slimrec.testing.check_model``):
one epoch through the one ``fit``, the one artifact round trip, honest bytes."""

import pytest

from slimrec.models import MODELS
from slimrec.testing import check_model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_conforms(name):
    check_model(name)


@pytest.mark.parametrize("name", ["mf", "deepfm"])
def test_conforms_with_a_compressed_table(name):
    check_model(name, embedding="quantized", budget="50%")
