"""Gradient flow: stage 2 trains every new parameter (adapter, embedder, LoRA) and never the frozen base;
stage 1 trains the whole base."""

import torch
import torch.nn.functional as F

from patchvsr.models import PatchVSRModel, VideoDiT
from model_helpers import perturb_, random_conditions, random_noisy

N, T, H, W = 2, 2, 16, 16


def backward_after_steps(params: list, loss_fn, steps: int) -> None:
    """`steps` Adam steps (each moves the zero-initialised layers whose gradient is already non-zero off zero),
    then one more backward whose gradients stay in `.grad`."""
    optimizer = torch.optim.Adam(params, lr=1e-2)
    for _ in range(steps):
        loss_fn().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    loss_fn().backward()


def test_stage2_gradients_reach_every_new_parameter_and_not_the_base():
    base = perturb_(VideoDiT.from_preset("test"), seed=0, std=0.1)
    model = PatchVSRModel.from_base(base, PatchVSRModel.from_preset("test").config).train()
    cond = random_conditions(3, N, T, (H, W), seed=1)
    z, t = random_noisy(3, N, T, (H, W), seed=1)
    target = torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
    # one step: the zero-initialised gates/projections leave zero, then gradients reach every new parameter
    backward_after_steps(model.trainable_parameters(), lambda: F.mse_loss(model.velocity(z, t, cond), target), 1)

    named = dict(model.named_parameters())
    trainable = {name for name, p in named.items() if p.requires_grad}
    lora_names = {name for name in named if "lora_" in name}
    new_names = {name for name in named if name.startswith(("adapter.", "embedder."))}
    assert trainable == new_names | lora_names and lora_names <= {n for n in named if n.startswith("base.")}
    for name in trainable:
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name
    for name in set(named) - trainable:                  # the frozen base: no gradient at all
        assert named[name].grad is None, name
    counts = model.parameter_counts()
    assert sum(named[n].numel() for n in trainable) == counts["adapter"] + counts["embedder"] + counts["lora"]


def test_stage1_base_alone_trains_every_parameter():
    base = VideoDiT.from_preset("test").train()
    z, t = random_noisy(3, N, T, (H, W), seed=3)
    target = torch.randn(z.shape, generator=torch.Generator().manual_seed(4))
    # two steps: the zero head opens at step 1, the zero adaLN modulation (behind it) at step 2
    backward_after_steps(list(base.parameters()), lambda: F.mse_loss(base(z, t), target), 2)
    for name, parameter in base.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name

