"""Rectified flow: the one place that defines the flow convention, plus the Euler sampler and schedules.

Convention (written here only; everyone else calls these functions):
    z_t = (1 - t) * z0 + t * eps,      t in [0, 1], t = 0 data, t = 1 noise
    v   = eps - z0                     (what the model predicts; dz_t/dt = v)
so z0 = z_t - t * v and a step from t to t_next is z + (t_next - t) * v.

The sampler follows k-diffusion's shape: a pure function of a velocity callable, a start latent and a
schedule. Tiling enters only through the callable (`patchvsr.tiling.FusedVelocity`). Randomness comes from
`clip_generator(seed, clip_index)`, so results do not depend on batch sizes or worker counts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

VelocityFn = Callable[[torch.Tensor, float, int], torch.Tensor]


def add_noise(z0: torch.Tensor, noise: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """z_t = (1 - t) * z0 + t * noise.

    Args:
        z0 (torch.Tensor): clean latent, any shape.
        noise (torch.Tensor): noise of z0's shape.
        t (float or torch.Tensor): time in [0, 1]; a tensor must broadcast against z0.

    Returns:
        torch.Tensor: z_t, of the broadcast shape of z0 and t.
    """
    return (1 - t) * z0 + t * noise


def velocity_target(z0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The training target v = noise - z0.

    Args:
        z0 (torch.Tensor): clean latent, any shape.
        noise (torch.Tensor): noise of z0's shape.

    Returns:
        torch.Tensor: v, same shape as z0.
    """
    return noise - z0


def predict_z0(z_t: torch.Tensor, velocity: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Clean estimate z0 = z_t - t * v (one Euler step from t straight to 0).

    Args:
        z_t (torch.Tensor): latent at time t, any shape.
        velocity (torch.Tensor): predicted velocity v, z_t's shape.
        t (float or torch.Tensor): time in [0, 1]; a tensor must broadcast against z_t.

    Returns:
        torch.Tensor: the z0 estimate, of the broadcast shape of z_t and t.
    """
    return z_t - t * velocity


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Timestep shift shift*t / (1 + (shift-1)*t), as diffusers' flow-matching schedulers.

    Args:
        t (torch.Tensor): timesteps in [0, 1], any shape.
        shift (float): > 0; 1 = no shift, > 1 moves steps towards t = 1 (noise).

    Returns:
        torch.Tensor: shifted timesteps, t's shape and dtype, still in [0, 1] (0 and 1 stay fixed).

    Raises:
        ValueError: if shift is not > 0.
    """
    if not shift > 0:
        raise ValueError(f"shift must be > 0, got {shift!r}")
    return shift * t / (1 + (shift - 1) * t)


def flow_timesteps(steps: int, t0: float = 1.0, shift: float = 1.0) -> torch.Tensor:
    """Euler schedule: uniform in [1, 0], shifted by `shift_timesteps`, then scaled by t0.

    Args:
        steps (int): number of sampling steps, >= 1.
        t0 (float, *optional*, defaults to 1.0): start time in (0, 1] (t0 < 1: start from a noised input
            instead of pure noise).
        shift (float, *optional*, defaults to 1.0): timestep shift, > 0 (1 = none).

    Returns:
        torch.Tensor: (steps + 1,) float64, strictly decreasing from t0 to 0.

    Raises:
        ValueError: for steps < 1, t0 outside (0, 1] or shift <= 0.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not 0 < t0 <= 1:
        raise ValueError(f"t0 must be in (0, 1], got {t0!r}")
    uniform = torch.linspace(1, 0, steps + 1, dtype=torch.float64)
    return t0 * shift_timesteps(uniform, shift)


def sample_euler(
    velocity_fn: VelocityFn,
    z: torch.Tensor,
    timesteps: torch.Tensor | list[float],
    callback: Callable[[dict], None] | None = None,
) -> torch.Tensor:
    """Rectified-flow Euler sampler (Liu et al. 2022, "Flow Straight and Fast"): z += (t_next - t) * v.

    Args:
        velocity_fn (VelocityFn): velocity_fn(z, t, step_index) -> v, same shape as z.
        z (torch.Tensor): the latent at timesteps[0], any shape.
        timesteps (torch.Tensor or list[float]): (S + 1,) decreasing in [0, 1], usually ending at 0.
        callback (Callable[[dict], None], *optional*): gets {"i", "t", "t_next", "z", "v"} after every step.

    Returns:
        torch.Tensor: the latent at timesteps[-1], same shape and dtype as z.
    """
    ts = [float(t) for t in timesteps]
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        velocity = velocity_fn(z, t, i)
        z = z + (t_next - t) * velocity
        if callback is not None:
            callback({"i": i, "t": t, "t_next": t_next, "z": z, "v": velocity})
    return z


def clip_generator(seed: int, clip_index: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator seeded from (seed, clip_index) by numpy's SeedSequence (well mixed, reproducible).

    Draw noise on "cpu" and move it for results identical across devices.

    Args:
        seed (int): the run's seed, >= 0.
        clip_index (int): the clip's index in the stream, >= 0.
        device (str or torch.device, *optional*, defaults to "cpu"): the generator's device.

    Returns:
        torch.Generator: a generator on `device`.

    Raises:
        ValueError: if seed or clip_index is not an integer >= 0.
    """
    for name, value in (("seed", seed), ("clip_index", clip_index)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    state = np.random.SeedSequence([int(seed), int(clip_index)]).generate_state(2, np.uint32)
    generator = torch.Generator(device=device)
    generator.manual_seed((int(state[0]) << 31) ^ int(state[1]))
    return generator


def initial_latent(
    shape: tuple[int, ...],
    generator: torch.Generator,
    t0: float = 1.0,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Start latent z_{t0}: pure noise at t0 = 1, or `reference` noised to t0 (`add_noise`) for t0 < 1.

    Args:
        shape (tuple[int, ...]): latent shape, e.g. (C, T, H, W).
        generator (torch.Generator): draws the noise, float32 ~ N(0, I), on its device.
        t0 (float, *optional*, defaults to 1.0): start time in (0, 1]; below 1 needs `reference`.
        reference (torch.Tensor, *optional*): the clean latent to noise, of `shape`.

    Returns:
        torch.Tensor: a latent of `shape`: float32 on the generator's device, or on `reference`'s device and
        dtype when given.

    Raises:
        ValueError: for t0 < 1 without a reference, or a reference of another shape.
    """
    noise = torch.randn(shape, generator=generator, device=generator.device)
    if reference is None:
        if t0 != 1.0:
            raise ValueError(f"t0 = {t0} < 1 needs a reference latent to noise")
        return noise
    if tuple(reference.shape) != tuple(shape):
        raise ValueError(f"reference shape {tuple(reference.shape)} differs from latent shape {tuple(shape)}")
    return add_noise(reference, noise.to(reference.device, reference.dtype), t0)
