"""`patchvsr wan init|train`: make a PatchVSR adapter for a local Wan base, and train it.

    patchvsr wan init BASE -o ADAPTER [--prompt TEXT] [--window PX] [--clip-frames N] [--lora-rank R] [...]
    patchvsr wan train ADAPTER --data DIR -o OUT --steps N [--batch B] [--lr LR] [--device auto|cpu|cuda]

BASE is a diffusers-layout Wan 2.1 text-to-video folder (transformer/, vae/, text_encoder/, tokenizer/), kept
wherever the user keeps it: nothing is downloaded. Upscaling then takes `--model ADAPTER`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from patchvsr.devices import DEVICE_HELP, device_arg
from patchvsr.errors import OptionError


def add_parser(subparsers) -> None:
    """Register `wan` (with its `init` and `train` subcommands) on the `patchvsr` subparsers.

    Args:
        subparsers (argparse._SubParsersAction): the `patchvsr` subparsers (`ArgumentParser.add_subparsers()`).
    """
    parser = subparsers.add_parser("wan", help="PatchVSR adapter for a local Wan video DiT: create, train",
                                   description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="wan_command", required=True, metavar="COMMAND")
    init = commands.add_parser("init", help="a fresh adapter for a Wan base folder (encodes the fixed prompt)")
    init.add_argument("base", type=Path, metavar="BASE", help="Wan diffusers folder (transformer/, vae/, ...)")
    init.add_argument("-o", "--output", type=Path, required=True, metavar="ADAPTER", help="adapter folder to write")
    init.add_argument("--prompt", default=None, help="the fixed prompt (default: a generic quality prompt)")
    init.add_argument("--window", type=int, default=512, help="window side in pixels, multiple of 32 (default 512)")
    init.add_argument("--clip-frames", type=int, default=17, help="frames per clip, 4k + 1 (default 17)")
    init.add_argument("--lora-rank", type=int, default=16, help="LoRA rank on the base, 0 for none (default 16)")
    init.add_argument("--patch-depth", type=int, default=2, help="patch-branch blocks (default 2)")
    init.add_argument("--global-depth", type=int, default=2, help="global-branch blocks (default 2)")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(func=run_init)
    train = commands.add_parser("train", help="train an adapter on a `patchvsr data` folder")
    train.add_argument("adapter", type=Path, metavar="ADAPTER", help="adapter folder (from `patchvsr wan init`)")
    train.add_argument("--data", type=Path, required=True, help="folder prepared by `patchvsr data`")
    train.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="trained adapter folder")
    train.add_argument("--steps", type=int, required=True)
    train.add_argument("--batch", type=int, default=1)
    train.add_argument("--lr", type=float, default=1e-4)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", type=device_arg, help=DEVICE_HELP)
    train.set_defaults(func=run_train)


def run_init(args: argparse.Namespace) -> int:
    """Run `patchvsr wan init`: create and save a fresh adapter.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.backends.wan_train import DEFAULT_PROMPT, create_adapter

    if args.window < 32 or args.window % 32 or args.clip_frames < 1 or (args.clip_frames - 1) % 4:
        raise OptionError(f"--window must be a multiple of 32 and --clip-frames 4k + 1, got {args.window} and "
                          f"{args.clip_frames}")
    if args.lora_rank < 0 or args.patch_depth < 1 or args.global_depth < 1:
        raise OptionError("--lora-rank must be >= 0, --patch-depth and --global-depth >= 1")
    model = create_adapter(args.base, args.output, prompt=args.prompt or DEFAULT_PROMPT, window=args.window,
                           clip_frames=args.clip_frames, lora_rank=args.lora_rank, seed=args.seed,
                           patch_depth=args.patch_depth, global_depth=args.global_depth)
    count = sum(p.numel() for p in model.trainable_parameters())
    print(f"adapter for {args.base} written to {args.output}: {count:,} trainable parameters", file=sys.stderr)
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Run `patchvsr wan train`: train an adapter and print its summary.

    Args:
        args (argparse.Namespace): the parsed command line.

    Returns:
        int: the exit code, 0.
    """
    from patchvsr.backends.wan_train import train_wan_adapter
    from patchvsr.devices import resolve_device

    if args.steps < 1 or args.batch < 1 or not args.lr > 0:
        raise OptionError("--steps and --batch must be >= 1 and --lr > 0")
    summary = train_wan_adapter(args.adapter, args.data, args.output, args.steps, batch=args.batch, lr=args.lr,
                                seed=args.seed, device=str(resolve_device(args.device)),
                                log=lambda line: print(line, file=sys.stderr, flush=True))
    print(" ".join(f"{key}={value}" for key, value in summary.items()))
    return 0
