"""LazyAdam must be torch's SparseAdam, faster: same parameters bit for bit, same state."""

import pytest
import torch
from torch import Tensor, nn

from slimrec.train.lazy_adam import LazyAdam


def _train(optimizer_class: type, steps: int = 30, seed: int = 0) -> tuple[Tensor, dict]:
    generator = torch.Generator().manual_seed(seed)
    table = nn.Embedding(50, 8, sparse=True)
    with torch.no_grad():
        table.weight.copy_(torch.randn(50, 8, generator=generator))
    optimizer = optimizer_class(table.parameters(), lr=0.01)
    for step in range(steps):
        # Repeated ids (their gradients add up) and rows never drawn (left as they are).
        ids = torch.randint(0, 40, (64,), generator=generator)
        loss = (table(ids) * torch.randn(64, 8, generator=generator)).sum()
        optimizer.zero_grad()
        loss.backward()
        if step == steps // 2:
            for group in optimizer.param_groups:
                group["lr"] = 0.003  # the loop's lr schedule changes it between steps
        optimizer.step()
    return table.weight.detach(), optimizer.state_dict()


def test_lazy_adam_matches_sparse_adam_bit_for_bit():
    ours, our_state = _train(LazyAdam)
    torch_weights, torch_state = _train(torch.optim.SparseAdam)
    assert torch.equal(ours, torch_weights)
    ours_moments, torch_moments = our_state["state"][0], torch_state["state"][0]
    assert ours_moments["step"] == torch_moments["step"] == 30
    assert torch.equal(ours_moments["exp_avg"], torch_moments["exp_avg"])
    assert torch.equal(ours_moments["exp_avg_sq"], torch_moments["exp_avg_sq"])


def test_rows_without_gradient_are_untouched():
    table = nn.Embedding(10, 4, sparse=True)
    before = table.weight.detach().clone()
    optimizer = LazyAdam(table.parameters(), lr=0.1)
    table(torch.tensor([2, 2, 7])).sum().backward()
    optimizer.step()
    changed = (table.weight.detach() != before).any(dim=1)
    assert changed.nonzero().squeeze(1).tolist() == [2, 7]


def test_a_saved_state_resumes_the_same_steps():
    generator = torch.Generator().manual_seed(3)
    ids = [torch.randint(0, 20, (16,), generator=generator) for _ in range(6)]

    def steps(table: nn.Embedding, optimizer: LazyAdam, batches: list) -> None:
        for batch in batches:
            optimizer.zero_grad()
            table(batch).square().sum().backward()
            optimizer.step()

    straight = nn.Embedding(20, 4, sparse=True)
    resumed = nn.Embedding(20, 4, sparse=True)
    resumed.load_state_dict(straight.state_dict())
    optimizer = LazyAdam(straight.parameters(), lr=0.05)
    steps(straight, optimizer, ids)
    first = LazyAdam(resumed.parameters(), lr=0.05)
    steps(resumed, first, ids[:3])
    second = LazyAdam(resumed.parameters(), lr=0.05)
    second.load_state_dict(first.state_dict())
    steps(resumed, second, ids[3:])
    assert torch.equal(straight.weight, resumed.weight)


def test_dense_gradients_and_bad_lr_are_refused():
    with pytest.raises(ValueError, match="lr must be > 0"):
        LazyAdam(nn.Embedding(4, 2).parameters(), lr=0)
    table = nn.Embedding(4, 2)  # dense gradient
    optimizer = LazyAdam(table.parameters())
    table(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients only"):
        optimizer.step()
