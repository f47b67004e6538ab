"""Training log (CSV), its plot (PNG) and the validation metric (fidelity-mode PSNR-Y on held-out clips)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch import nn

from patchvsr.eval.metrics import psnr_y
from patchvsr.sampling import add_noise, predict_z0, velocity_target
from patchvsr.train.degrade import Degraded

# The validation PSNR-Y columns of each split (samples.VALIDATION_SPLITS) and their labels.
SPLIT_COLUMNS = {"val_psnr": "clips as they are", "val_psnr_soft": "soft sources", "val_psnr_crf30": "H.264 CRF 30",
                 "val_psnr_footage": "held-out footage"}
COLUMNS = ("step", "samples", "seconds", "lr", "loss", "val_loss",
           *(column for name in SPLIT_COLUMNS for column in (name, f"{name}_bicubic")))


class TrainLog:
    """Append-only CSV of COLUMNS; a resumed run first drops rows past its checkpoint's step."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is None or not self.path.exists():
            self.path.write_text(",".join(COLUMNS) + "\n")
        else:
            kept = [row for row in self.rows() if int(row["step"]) <= resume_step]
            self._write_rows(kept)

    def rows(self) -> list[dict[str, str]]:
        """The log's rows so far.

        Returns:
            list[dict[str, str]]: one dict per row, COLUMNS as keys (empty strings where not measured).
        """
        return _read(self.path)

    def _write_rows(self, rows: list[dict]) -> None:
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, **values: float) -> None:
        """One row; missing columns stay empty.

        Args:
            values: column -> float value, for columns of COLUMNS (others are dropped).
        """
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, COLUMNS).writerow({k: _fmt(values.get(k)) for k in COLUMNS})


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.9g}"  # 9 digits identify a float32


def plot_log(csv_path: Path, png_path: Path) -> None:
    """Training loss (raw and smoothed) and validation PSNR gain over bicubic, against the step.

    Args:
        csv_path (Path): a `TrainLog` CSV.
        png_path (Path): the PNG written.
    """
    import matplotlib  # noqa: PLC0415 - plotting is optional and slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = _read(csv_path)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    train = [(int(r["step"]), float(r["loss"])) for r in rows if r["loss"]]
    if train:
        steps, losses = map(np.array, zip(*train))
        left.plot(steps, losses, alpha=0.3, label="train loss")
        left.plot(steps, _smooth(losses), label="smoothed")
    val = [(int(r["step"]), float(r["val_loss"])) for r in rows if r["val_loss"]]
    if val:
        left.plot(*zip(*val), "o-", label="val loss")
    left.set(xlabel="step", ylabel="flow-matching MSE", yscale="log", title="loss")
    for name, label in SPLIT_COLUMNS.items():
        gains = [(int(r["step"]), float(r[name]) - float(r[f"{name}_bicubic"])) for r in rows if r.get(name)]
        if gains:
            right.plot(*zip(*gains), "o-", label=label)
    for axes in (left, right):
        if axes.lines:   # a log without rows yet (a finished run only exporting again) has none
            axes.legend()
    right.axhline(0.0, color="grey", lw=0.8)
    right.set(xlabel="step", ylabel="dB", title="validation PSNR-Y gain over bicubic (1 step, z = 0)")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)


def gains_text(values: dict) -> str:
    """'+2.08 dB (soft sources +1.45 dB, H.264 CRF 30 +0.40 dB)': the validation gains over bicubic in `values`.

    Args:
        values (dict): a row of the log's validation columns (splits it lacks are left out), with val_psnr.

    Returns:
        str: the gains, the clean split's first.
    """
    gains = [("" if name == "val_psnr" else f"{label} ") + f"{values[name] - values[f'{name}_bicubic']:+.2f} dB"
             for name, label in SPLIT_COLUMNS.items() if values.get(name) is not None]
    return gains[0] + (f" ({', '.join(gains[1:])})" if len(gains) > 1 else "")


def _read(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _smooth(values: np.ndarray, window: int = 25) -> np.ndarray:
    kernel = np.ones(min(window, len(values))) / min(window, len(values))
    padded = np.concatenate([np.full(len(kernel) - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def _to_uint8_frames(x: torch.Tensor) -> np.ndarray:
    """(B, 3, T, h, w) in [-1, 1] -> (B·T, h, w, 3) uint8."""
    frames = rearrange(((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8), "b c t h w -> (b t) h w c")
    return frames.cpu().numpy()


def mean_psnr_y(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Mean per-frame PSNR-Y (BT.601, as `patchvsr eval`) of two batches, each frame's capped at 100 dB.

    Args:
        reference (torch.Tensor): (B, 3, T, h, w) in [-1, 1].
        estimate (torch.Tensor): (B, 3, T, h, w) in [-1, 1] (clamped to it).

    Returns:
        float: dB.
    """
    values = [psnr_y(r, e) for r, e in zip(_to_uint8_frames(reference), _to_uint8_frames(estimate))]
    return float(np.mean([min(v, 100.0) for v in values]))


@torch.no_grad()
def validate(trainee: nn.Module, batches: list[tuple[Degraded, torch.Tensor, torch.Tensor]], residual_std: float,
             autocast) -> dict[str, float]:
    """Validation on fixed batches, already on the model's device.

    val_loss: flow-matching MSE at the batches' own t and noise; val_psnr: PSNR-Y of the fidelity-mode estimate
    (one Euler step from z = 0 at t = 1: HR = V_up + residual_std · z0_hat); val_psnr_bicubic: of V_up itself.

    Args:
        trainee (nn.Module): a `stages.Trainee`.
        batches (list[tuple[Degraded, torch.Tensor, torch.Tensor]]): (Degraded, t (B,), noise (B, 3, T, h, w)).
        residual_std (float): the run's residual scale, > 0.
        autocast (Callable): an `autocast_for` context factory.

    Returns:
        dict[str, float]: val_loss, val_psnr and val_psnr_bicubic (dB).
    """
    losses, estimates, references, bicubic = [], [], [], []
    for batch, t, noise in batches:
        z0 = (batch.hr - batch.lr_up) / residual_std
        view = t.view(-1, 1, 1, 1, 1)
        with autocast():
            v = trainee(add_noise(z0, noise, view), t, batch)
            zero = torch.zeros_like(z0)
            v_fidelity = trainee(zero, torch.ones_like(t), batch)
        losses.append(float(torch.mean((v.float() - velocity_target(z0, noise)) ** 2)))
        estimates.append(batch.lr_up + residual_std * predict_z0(zero, v_fidelity.float(), 1.0))
        references.append(batch.hr)
        bicubic.append(batch.lr_up)
    reference = torch.cat(references)
    return {"val_loss": float(np.mean(losses)), "val_psnr": mean_psnr_y(reference, torch.cat(estimates)),
            "val_psnr_bicubic": mean_psnr_y(reference, torch.cat(bicubic))}
