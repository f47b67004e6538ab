"""Flow convention at both ends, schedules, the Euler sampler against diffusers, seeded generators."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from patchvsr.sampling import (
    add_noise,
    clip_generator,
    flow_timesteps,
    initial_latent,
    predict_z0,
    sample_euler,
    velocity_target,
)
from patchvsr.tiling import FusedVelocity, make_plan


def toy_velocity(z, t, step_index=0):
    """A smooth nonlinear velocity field depending on z and t."""
    return torch.sin(z) * t + 0.1 * torch.cos(3 * z + t)


def test_flow_convention_at_both_ends_and_its_inverse():
    z0, noise = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(add_noise(z0, noise, 0.0), z0)
    torch.testing.assert_close(add_noise(z0, noise, 1.0), noise)
    torch.testing.assert_close(add_noise(z0, noise, 0.25), 0.75 * z0 + 0.25 * noise)
    z_t, v = add_noise(z0, noise, 0.6), velocity_target(z0, noise)
    torch.testing.assert_close(predict_z0(z_t, v, 0.6), z0)
    t = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)  # per-sample t broadcasts
    torch.testing.assert_close(add_noise(z0, noise, t), torch.stack([z0[0], noise[1]]))


def test_exact_velocity_carries_noise_to_data_on_a_straight_line():
    z0, noise = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    out = sample_euler(lambda z, t, i: velocity_target(z0, noise), noise, flow_timesteps(7, shift=3.0))
    torch.testing.assert_close(out, z0)


def test_schedule_endpoints_shape_and_shift():
    ts = flow_timesteps(10)
    assert ts.shape == (11,) and ts[0] == 1 and ts[-1] == 0 and (ts.diff() < 0).all()
    partial = flow_timesteps(4, t0=0.4, shift=2.0)
    assert partial[0] == pytest.approx(0.4) and partial[-1] == 0 and (partial.diff() < 0).all()
    for bad in (dict(steps=0), dict(steps=3, t0=0.0), dict(steps=3, t0=1.5), dict(steps=3, shift=0.0)):
        with pytest.raises(ValueError):
            flow_timesteps(**bad)


def test_shifted_schedule_matches_diffusers_sigmas():
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(sigmas=flow_timesteps(8)[:-1].tolist())
    torch.testing.assert_close(scheduler.sigmas.double(), flow_timesteps(8, shift=3.0), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_euler_trajectory_matches_diffusers_scheduler(shift):
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(num_inference_steps=6)
    z = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    expected, sample = [], z
    for timestep, sigma in zip(scheduler.timesteps, scheduler.sigmas):
        sample = scheduler.step(toy_velocity(sample, float(sigma)), timestep, sample).prev_sample
        expected.append(sample)
    steps = []
    sample_euler(toy_velocity, z, scheduler.sigmas, callback=lambda info: steps.append(info))
    assert [s["i"] for s in steps] == list(range(6))
    for ours, theirs in zip(steps, expected):
        torch.testing.assert_close(ours["z"], theirs, rtol=1e-5, atol=1e-6)


def test_sampler_passes_step_indices_and_starts_at_t0():
    calls = []

    def recorder(z, t, i):
        calls.append((round(t, 6), i))
        return torch.zeros_like(z)

    z = torch.ones(3)
    assert torch.equal(sample_euler(recorder, z, flow_timesteps(3, t0=0.6)), z)
    assert calls == [(0.6, 0), (0.4, 1), (0.2, 2)]


def test_clip_generator_is_reproducible_and_distinct_per_clip():
    def draw(seed, clip):
        return torch.randn(5, generator=clip_generator(seed, clip))

    assert torch.equal(draw(7, 3), draw(7, 3))
    assert not torch.equal(draw(7, 3), draw(7, 4)) and not torch.equal(draw(7, 3), draw(8, 3))
    for bad in ((-1, 0), (0, -2), (1.5, 0)):
        with pytest.raises(ValueError):
            clip_generator(*bad)


def test_initial_latent_is_noise_or_the_noised_reference():
    noise = initial_latent((2, 1, 4, 4), clip_generator(0, 0))
    assert torch.equal(noise, torch.randn(2, 1, 4, 4, generator=clip_generator(0, 0)))
    reference = torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(initial_latent((2, 1, 4, 4), clip_generator(0, 0), 0.3, reference),
                               add_noise(reference, noise, 0.3))
    with pytest.raises(ValueError, match="reference"):
        initial_latent((2, 1, 4, 4), clip_generator(0, 0), t0=0.5)


@pytest.mark.parametrize("fusion", ["weighted", "shifted"])
def test_tiled_sampling_is_independent_of_batch_size(fusion):
    plan = make_plan((24, 40), (16, 16), fusion)

    def denoise(windows, t, batch):
        offsets = 0.01 * torch.tensor(batch.indices, dtype=windows.dtype)
        return toy_velocity(windows, t) + offsets.view(-1, 1, 1, 1, 1)

    outputs = []
    for batch_size in (1, 7):
        z = initial_latent((2, 1, 24, 40), clip_generator(5, 2))
        outputs.append(sample_euler(FusedVelocity(plan, denoise, batch_size), z, flow_timesteps(4)))
    assert torch.equal(outputs[0], outputs[1])
