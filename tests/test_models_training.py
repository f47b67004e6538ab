"""Gradient flow: stage 2 trains every new parameter (adapter, embedder, LoRA) and never the frozen base;
stage 1 trains the whole base."""

import torch
import torch.nn.functional as F

from patchvsr.models import PatchVSRModel, VideoDiT
from patchvsr.models.testing import perturb_, random_conditions, random_noisy

N, T, H, W = 2, 2, 16, 16


def two_steps(model: torch.nn.Module, params: list, loss_fn) -> None:
    """Backward, one Adam step (moves every zero-initialised layer off zero), then a second backward."""
    optimizer = torch.optim.Adam(params, lr=1e-2)
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
    two_steps(model, model.trainable_parameters(), lambda: F.mse_loss(model.velocity(z, t, cond), target))

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
    two_steps(base, list(base.parameters()), lambda: F.mse_loss(base(z, t), target))
    for name, parameter in base.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_a_few_adapter_steps_lower_the_loss_on_a_fixed_batch():
    model = PatchVSRModel.from_base(perturb_(VideoDiT.from_preset("test"), seed=5, std=0.1),
                                    PatchVSRModel.from_preset("test").config).train()
    cond = random_conditions(3, N, T, (H, W), seed=6)
    z, t = random_noisy(3, N, T, (H, W), seed=6)
    target = cond.lr_up - z                         # a target the conditions make predictable
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = F.mse_loss(model.velocity(z, t, cond), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
