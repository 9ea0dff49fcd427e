"""BlossomRec attention: the gather path equals the dense-mask reference, the gate starts at
(0.12 long, 0.88 short), and padding or very short sequences never give NaN."""

import pytest
import torch

from slimrec.models.sequential import attention
from slimrec.models.sequential.attention import BlossomAttention, DenseAttention


def blossom(path, heads=4, kv_heads=2, rope=False, dim=32, **options):
    torch.manual_seed(0)
    module = BlossomAttention(dim, heads, kv_heads, rope, path=path, **options)
    with torch.no_grad():  # a gate away from its init, so both branches matter
        module.gate.weight.normal_(0, 0.3)
    return module


def pair(**options):
    reference = blossom("reference", **options)
    gather = blossom("gather", **options)
    gather.load_state_dict(reference.state_dict())
    return reference, gather


@pytest.mark.parametrize("length", [1, 7, 16, 17, 40, 97])
@pytest.mark.parametrize("rope", [False, True])
def test_gather_equals_reference(length, rope):
    reference, gather = pair(rope=rope)
    x = torch.randn(3, length, 32, requires_grad=True)
    lengths = torch.tensor([length, max(1, length // 2), 1])
    expected, found = reference(x, lengths), gather(x, lengths)
    valid = torch.arange(length)[None, :] < lengths[:, None]
    torch.testing.assert_close(found[valid], expected[valid], atol=1e-5, rtol=1e-4)
    # and the gradients of the real positions agree
    grad_reference = torch.autograd.grad(expected[valid].square().sum(), x)[0]
    grad_gather = torch.autograd.grad(found[valid].square().sum(), x)[0]
    torch.testing.assert_close(grad_gather, grad_reference, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("chunk", [7, 16])
def test_gather_in_checkpointed_chunks_equals_reference(monkeypatch, chunk):
    """Long histories go through the gather path a chunk of queries at a time, recomputed in
    backward: same values and gradients as the reference."""
    monkeypatch.setattr(attention, "GATHER_CHUNK", chunk)
    reference, gather = pair(rope=True)
    x = torch.randn(2, 70, 32, requires_grad=True)
    lengths = torch.tensor([70, 33])
    expected, found = reference(x, lengths), gather(x, lengths)
    valid = torch.arange(70)[None, :] < lengths[:, None]
    torch.testing.assert_close(found[valid], expected[valid], atol=1e-5, rtol=1e-4)
    grads = [torch.autograd.grad(out[valid].square().sum(), [x, *module.parameters()],
                                 allow_unused=True)
             for out, module in ((expected, reference), (found, gather))]
    for grad_reference, grad_gather in zip(*grads, strict=True):
        if grad_reference is None:  # parameters only the block ranking reads (no gradient)
            assert grad_gather is None
            continue
        torch.testing.assert_close(grad_gather, grad_reference, atol=1e-4, rtol=1e-3)


def test_gather_equals_reference_with_other_sizes():
    reference, gather = pair(heads=2, kv_heads=1, window=8, block=4, top_k=2, local=3)
    x = torch.randn(2, 45, 32)
    lengths = torch.tensor([45, 30])
    valid = torch.arange(45)[None, :] < lengths[:, None]
    torch.testing.assert_close(gather(x, lengths)[valid], reference(x, lengths)[valid],
                               atol=1e-5, rtol=1e-4)


def test_selected_blocks_are_earlier_real_blocks():
    module = blossom("gather")
    x = torch.randn(2, 80, 32)
    lengths = torch.tensor([80, 40])
    q, k, _ = module.project(x)
    blocks, usable = module.select_blocks(q, k, lengths)
    query_block = torch.arange(80) // 16
    assert bool((blocks[usable] >= 0).all())
    own = query_block[None, None, :, None].expand_as(blocks)
    assert bool((blocks[usable] < own[usable]).all())  # ends before the query's block
    assert bool((blocks[1][usable[1]] * 16 < 40).all())  # holds a real item
    # query 79 sees blocks 0..3: exactly 4 usable; queries of block 0 see none
    assert bool(usable[0, :, 79].all()) and not bool(usable[0, :, :16].any())


def test_gate_starts_mostly_short():
    module = BlossomAttention(32, 4, 2, False)
    assert bool((module.gate.weight == 0).all())
    assert module.gate.bias.tolist() == [-2.0] * 4 + [2.0] * 4
    gates = torch.sigmoid(module.gate(torch.randn(5, 32)))
    torch.testing.assert_close(gates[:, :4], torch.full((5, 4), 0.1192), atol=1e-4, rtol=0)
    torch.testing.assert_close(gates[:, 4:], torch.full((5, 4), 0.8808), atol=1e-4, rtol=0)


@pytest.mark.parametrize("path", ["reference", "gather"])
@pytest.mark.parametrize("length", [1, 3, 15, 33])
def test_no_nan_on_padding_and_short_sequences(path, length):
    module = blossom(path)
    x = torch.randn(4, length, 32, requires_grad=True)
    x_padded = x * (torch.arange(length)[None, :, None] < 1)  # rows of one item then zeros
    out = module(x_padded, torch.ones(4, dtype=torch.long))
    assert bool(torch.isfinite(out).all())
    out.sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    assert all(bool(torch.isfinite(p.grad).all()) for p in module.parameters()
               if p.grad is not None)


@pytest.mark.parametrize("module", [DenseAttention(32, 2, 1, True),
                                    BlossomAttention(32, 2, 1, False, path="gather")])
def test_causal(module):
    x = torch.randn(1, 50, 32)
    changed = x.clone()
    changed[:, 30:] = torch.randn(1, 20, 32)
    lengths = torch.tensor([50])
    torch.testing.assert_close(module(changed, lengths)[:, :30], module(x, lengths)[:, :30])
