"""`patchvsr data` and `patchvsr train`: argument parsing only; the work lives in data.py and loop.py."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from patchvsr.devices import DEVICE_HELP, device_arg
from patchvsr.errors import OptionError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `data` (and `train` when the training loop is importable).

    Args:
        subparsers (argparse._SubParsersAction): the `patchvsr` subparsers (`ArgumentParser.add_subparsers()`).
    """
    data = subparsers.add_parser("data", help="fetch photos and synthesise training clips",
                                 description="Fetch the training photos (Debian wallpaper packages + "
                                             "scikit-image images) and render HR clips into DIR/clips.")
    data.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: data)")
    data.add_argument("--clips", type=int, default=2048, help="training clips (default: 2048)")
    data.add_argument("--val-clips", type=int, default=64, help="validation clips (default: 64)")
    data.add_argument("--collection", choices=("v1", "v2", "v3"), default="v2",
                      help="source collection: v1 = the wallpaper packages of the first tiny model; v2 (default) "
                           "adds OpenCV's sample photos and footage and Stellarium's panoramas; v3 adds three "
                           "more real videos")
    data.add_argument("--footage-share", type=float, default=0.08,
                      help="share of training clips cut from real footage (default: 0.08)")
    data.add_argument("--footage-val-clips", type=int, default=0,
                      help="validation clips cut from the held-out last fifth of every video, a second "
                           "validation split (default: 0, none)")
    data.add_argument("--frames", type=int, default=8, help="frames per clip (default: 8)")
    data.add_argument("--size", type=int, default=192, help="clip side in pixels (default: 192)")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--raw", type=Path, default=None,
                      help="use photos already unpacked in this folder instead of fetching packages")
    data.set_defaults(func=run_data)
    _add_train_parser(subparsers)


def _add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train the base (stage 1) or the PatchVSR adapter (stage 2)",
        description="Train with accelerate (CPU, one GPU, or several devices via `accelerate launch`). "
                    "Defaults come from --preset; every option below overrides them.")
    train.add_argument("stage", choices=("base", "adapter"))
    train.add_argument("--data", type=Path, required=True, help="folder prepared by `patchvsr data`")
    train.add_argument("--out", type=Path, required=True, help="run folder (checkpoint/, model/, log.csv)")
    train.add_argument("--minutes", type=float, default=None, help="stop after this many minutes (this session)")
    train.add_argument("--steps", type=int, default=None, help="stop at this total step count")
    train.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    train.add_argument("--carry", type=Path, default=None, metavar="DIR",
                       help="the run's small state (float16 weights, step, data position; patchvsr.train.carry): "
                            "continue from DIR when --out has no checkpoint, and write it there at the end")
    train.add_argument("--preset", default="tiny", help="model and optimisation preset (test, tiny, lite, small)")
    train.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    train.add_argument("--base", default=None, help="adapter stage: the stage-1 model folder (OUT/model)")
    train.add_argument("--init", default=None,
                       help="adapter stage: start from this trained model folder (a fine-tune; same --base)")
    train.add_argument("--temporal-weight", type=float, default=None,
                       help="weight of the temporal-consistency loss term (default 0: off)")
    train.add_argument("--threads", type=int, default=None,
                       help="CPU threads for the model (default: torch's; 1 is faster on a busy machine)")
    for flag, kind in (("--batch", int), ("--lr", float), ("--warmup-steps", int), ("--ema", float),
                       ("--seed", int), ("--workers", int), ("--val-every", int), ("--val-clips", int),
                       ("--log-every", int), ("--checkpoint-minutes", float), ("--residual-std", float),
                       ("--weight-decay", float), ("--grad-clip", float)):
        train.add_argument(flag, type=kind, default=None)
    train.add_argument("--decay-steps", type=int, default=None,
                       help="end the run with a linear learning-rate decay to 0 over its last N steps "
                            "(needs --steps; a resumed run without a decay may be given one)")
    train.add_argument("--precision", default=None, choices=("bf16", "fp32"))
    train.add_argument("--t-one-share", type=float, default=None,
                       help="share of samples at t = 1 (fidelity mode; default 1.0 adapter, 0 base)")
    train.add_argument("--realistic-share", type=float, default=None,
                       help="share of samples with blur/noise/JPEG/H.264 (default 0)")
    train.add_argument("--soft-share", type=float, default=None,
                       help="share of samples from a soft source: the scene, HR target too, blurred (default 0)")
    train.add_argument("--lr-blur-share", type=float, default=None,
                       help="share of realistic samples whose LR only is blurred, taught to sharpen (default 0.3)")
    train.add_argument("--grain-share", type=float, default=None,
                       help="share of samples from a grainy source: noise on the scene, HR target too, which "
                            "counts as clean (default 0)")
    train.add_argument("--lr-noise-share", type=float, default=None,
                       help="share of realistic samples with sensor noise added to the LR (default 0.6)")
    train.add_argument("--jpeg-share", type=float, default=None,
                       help="share of realistic samples written as JPEG (default 0.4)")
    train.add_argument("--h264-share", type=float, default=None,
                       help="share of realistic samples written as H.264 (default 0.4; with --jpeg-share at most 1)")
    train.add_argument("--h264-presets", type=lambda text: tuple(text.split(",")), default=None,
                       metavar="P[,P...]", help="x264 presets drawn for the H.264 samples (default veryfast)")
    train.add_argument("--head-blocks", type=int, default=None,
                       help="adapter stage: grow the base's output head to N residual blocks (new ones start as "
                            "the identity; lite has 2)")
    train.add_argument("--tail-channels", type=int, default=None,
                       help="adapter stage: add a full-resolution tail of N channels after the base's output head "
                            "(it starts as the identity; lite has none)")
    train.add_argument("--scale-range", type=_scale_range, default=None, metavar="LO,HI",
                       help="downscaling factors drawn uniformly from [LO, HI] (default 2,4; e.g. 4,4: x4 only)")
    train.add_argument("--bicubic-share", type=float, default=None,
                       help="share of antialiased-bicubic (vs bilinear) downsampling (default 0.5)")
    train.add_argument("--clean-share", type=float, default=None,
                       help="share of samples without noise augmentation of the condition (default 0.5)")
    for ablation in ("global-branch", "lora", "position", "fixed-prompt"):
        train.add_argument(f"--no-{ablation}", action="store_true", help=f"ablation: without {ablation}")
    train.set_defaults(func=run_train)


def _scale_range(text: str) -> tuple[float, float]:
    """`--scale-range LO,HI` -> (LO, HI); the range itself is checked by `DegradeConfig`."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers LO,HI, got {text!r}") from None
    return low, high


def run_train(args: argparse.Namespace) -> int:
    """Run `patchvsr train`: train (or resume, or continue a carried run) and print its summary.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.train import config as train_config  # noqa: PLC0415 - keep `patchvsr --help` fast
    from patchvsr.train import carry, loop  # noqa: PLC0415

    ablations = {f"model__use_{name.replace('-', '_')}": False
                 for name in ("global-branch", "lora", "position", "fixed-prompt")
                 if getattr(args, f"no_{name.replace('-', '_')}")}
    options = {name: getattr(args, name) for name in (
        "batch", "lr", "warmup_steps", "ema", "seed", "workers", "val_every", "val_clips", "log_every",
        "checkpoint_minutes", "residual_std", "weight_decay", "grad_clip", "precision", "temporal_weight")}
    if args.decay_steps is not None and (args.steps is None or not 1 <= args.decay_steps <= args.steps):
        raise OptionError("--decay-steps N needs --steps S with 1 <= N <= S")
    decay = {"decay_start": args.steps - args.decay_steps, "decay_steps": args.decay_steps} \
        if args.decay_steps is not None else {}
    try:
        config = train_config.default_config(
            args.stage, args.preset, model__base=args.base, model__init=args.init, draw__t_one_share=args.t_one_share,
            degrade__realistic_share=args.realistic_share, degrade__bicubic_share=args.bicubic_share,
            degrade__soft_share=args.soft_share, degrade__lr_blur_share=args.lr_blur_share,
            degrade__clean_share=args.clean_share, degrade__grain_share=args.grain_share,
            degrade__lr_noise_share=args.lr_noise_share, degrade__jpeg_share=args.jpeg_share,
            degrade__h264_share=args.h264_share, degrade__h264_presets=args.h264_presets,
            degrade__scale_range=args.scale_range, model__head_blocks=args.head_blocks,
            model__tail_channels=args.tail_channels, **ablations, **options, **decay)
    except ValueError as err:
        raise OptionError(str(err)) from None
    if args.minutes is not None and args.minutes <= 0 or args.steps is not None and args.steps < 0:
        raise OptionError("--minutes must be > 0 and --steps >= 0")
    if args.threads is not None:
        if args.threads < 1:
            raise OptionError(f"--threads must be >= 1, got {args.threads}")
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.threads)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    checkpoint = args.out / "checkpoint"
    resume = args.resume or (args.carry is not None and checkpoint.exists())
    if args.carry is not None and not checkpoint.exists() and carry.has_carry(args.carry):
        carry.unpack(args.carry, checkpoint)
        log(f"continuing the run carried in {args.carry}")
        resume = True
    summary = loop.train(config, args.data, args.out, minutes=args.minutes, steps=args.steps,
                         resume=resume, device=args.device, log=log)
    if args.carry is not None:
        carry.pack(checkpoint, args.carry)
        log(f"carried the run's state to {args.carry}")
    print(" ".join(f"{key}={value}" for key, value in summary.items()))
    return 0


def run_data(args: argparse.Namespace) -> int:
    """Run `patchvsr data`: prepare the training clips and print what was made.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.train import data  # noqa: PLC0415 - keep `patchvsr --help` fast

    try:
        clip_config = dataclasses.replace(data.DataConfig().clip, frames=args.frames, size=args.size)
        config = data.DataConfig(clips=args.clips, val_clips=args.val_clips, seed=args.seed, clip=clip_config,
                                 collection=args.collection, footage_share=args.footage_share,
                                 footage_val_clips=args.footage_val_clips)
    except ValueError as err:
        raise OptionError(str(err)) from None
    manifest = data.prepare_data(args.out, config, raw_dir=args.raw,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    clip_bytes = sum(path.stat().st_size for path in (args.out / "clips").glob("*.npy"))
    counts = data.SourceCounts.of(manifest)
    footage_val = len(manifest["clips"].get("val_footage", []))
    held_out = f"+ {footage_val} held-out footage " if footage_val else ""
    print(f"{len(manifest['clips']['train'])} train + {len(manifest['clips']['val'])} val {held_out}clips of "
          f"{args.frames}x{args.size}x{args.size} from {counts.photos_used}/{counts.photos} photos "
          f"and {counts.videos} videos, "
          f"{clip_bytes / 1e6:.0f} MB in {args.out / 'clips'}, prepared in {manifest['seconds']:.0f} s")
    return 0
