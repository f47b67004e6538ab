"""Identities: the zero-initialised adapter leaves the base unchanged, merged LoRA equals unmerged LoRA, cached
branch features equal uncached ones."""

import copy

import pytest
import torch

from patchvsr.models import PatchVSRModel, VideoDiT
from patchvsr.models.lora import has_lora
from model_helpers import perturb_, random_conditions, random_noisy

N, T, H, W = 4, 2, 16, 16


def random_base(seed: int = 0) -> VideoDiT:
    """A base whose every weight is non-zero (a fresh one outputs exactly zero: its head starts at zero)."""
    return perturb_(VideoDiT.from_preset("test", seed=seed), seed=seed, std=0.1).eval()


@pytest.mark.parametrize("flags", [
    {}, {"use_global_branch": False}, {"use_lora": False}, {"use_position": False}, {"use_fixed_prompt": False},
])
def test_adapted_model_equals_base_at_initialisation(flags):
    base = random_base()
    reference = copy.deepcopy(base)
    model = PatchVSRModel.from_base(base, PatchVSRModel.from_preset("test", **flags).config, seed=5).eval()
    cond = random_conditions(3, N, T, (H, W), seed=1)
    z, t = random_noisy(3, N, T, (H, W), seed=1)
    with torch.no_grad():
        expected = reference(z, t, use_prompt=model.config.use_fixed_prompt)
        adapted = model.velocity(z, t, cond)
    assert expected.abs().mean() > 0.01          # a meaningful, non-degenerate base output
    torch.testing.assert_close(adapted, expected)


def test_lora_merge_matches_unmerged():
    model = PatchVSRModel.from_base(random_base(), PatchVSRModel.from_preset("test").config).eval()
    perturb_(model, seed=3, std=0.1, only_trainable=True)          # LoRA B (and the adapter) non-zero
    cond = random_conditions(3, N, T, (H, W), seed=2)
    z, t = random_noisy(3, N, T, (H, W), seed=2)
    with torch.no_grad():
        unmerged = model.velocity(z, t, cond)
        model.base.disable_lora()
        disabled = model.velocity(z, t, cond)
        model.base.enable_lora()
        model.merge_lora()
        merged = model.velocity(z, t, cond)
    assert not has_lora(model.base) and model.lora_merged
    assert (unmerged - disabled).abs().max() > 1e-3                 # the LoRA does change the output
    torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-5)


def perturbed_model() -> PatchVSRModel:
    return perturb_(PatchVSRModel.from_preset("test"), seed=4, std=0.1).eval()


def test_cached_branch_features_equal_uncached():
    model = perturbed_model()
    keys = list(range(10, 10 + N))
    cond = random_conditions(3, N, T, (H, W), seed=5, keys=keys)
    plain = random_conditions(3, N, T, (H, W), seed=5)
    z, _ = random_noisy(3, N, T, (H, W), seed=5)
    order = [2, 0, 3, 1]
    with torch.no_grad():
        for t in (1.0, 0.5, 0.25):                                  # three sampling steps
            uncached = model.velocity(z, t, plain)
            torch.testing.assert_close(model.velocity(z, t, cond), uncached)
            # another batch composition and order reads the same cached rows
            torch.testing.assert_close(model.velocity(z[order], t, cond.select(order)), uncached[order])
    assert len(model.cache) == N and model.cache.misses == N and model.cache.hits == 2 * 3 * N - N
    assert model.cache.nbytes() > 0
    model.cache.clear()
    assert len(model.cache) == 0


def test_cache_computes_each_window_once_across_split_batches():
    model = perturbed_model()
    calls = []
    original = model.adapter.branch_features

    def counting(lr_up, global_input):
        calls.append(lr_up.shape[0])
        return original(lr_up, global_input)

    model.adapter.branch_features = counting
    cond = random_conditions(3, N, T, (H, W), seed=6, keys=["a", "b", "c", "a"])   # a duplicate key
    z, t = random_noisy(3, N, T, (H, W), seed=6)
    with torch.no_grad():
        model.velocity(z[:2], t[:2], cond.select([0, 1]))
        model.velocity(z, t, cond)
    assert calls == [2, 1]                     # "a", "b" first; then only "c"; the second "a" is a cache hit


def test_cache_refuses_autograd():
    model = perturbed_model()
    cond = random_conditions(3, N, T, (H, W), seed=7, keys=range(N))
    z, t = random_noisy(3, N, T, (H, W), seed=7)
    with pytest.raises(ValueError, match="no_grad"):
        model.velocity(z, t, cond)
