"""Usage errors of every subcommand: one line `patchvsr CMD: error: ... (see patchvsr CMD --help)`, exit 2;
`--device` takes auto, cpu, cuda and cuda:N everywhere; subcommand modules are never silently dropped."""

from __future__ import annotations

import argparse

import pytest
import torch

from patchvsr import cli
from patchvsr.cli import build_parser, main


def subcommands() -> list[str]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def one_usage_line(capsys, argv: list[str], prog: str) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    assert lines[0].startswith(f"{prog}: error: ") and lines[0].endswith(f"(see {prog} --help)"), lines[0]
    return lines[0]


def test_every_subcommand_is_registered():
    assert subcommands() == ["upscale", "batch", "preview", "fetch", "eval", "bench", "data", "train", "wan"]


@pytest.mark.parametrize("command", ["upscale", "batch", "preview", "fetch", "eval", "bench", "data", "train", "wan"])
def test_unknown_option_is_one_line_naming_the_subcommand(capsys, command):
    line = one_usage_line(capsys, [command, "--no-such-option"], f"patchvsr {command}")
    assert "--no-such-option" in line or "required" in line


@pytest.mark.parametrize("argv, prog, words", [
    (["upscale", "in.mp4", "-o", "out.mp4", "--scale", "abc"], "patchvsr upscale", "invalid float value: 'abc'"),
    (["upscale", "in.mp4"], "patchvsr upscale", "required: -o/--output"),
    (["batch", "a.mp4", "-o", "out", "--jobs", "two"], "patchvsr batch", "--jobs"),
    (["batch", "a.mp4", "-o", "out", "--format", "avi"], "patchvsr batch", "invalid choice"),
    (["eval", "bikes", "--frames", "many"], "patchvsr eval", "--frames"),
    (["train", "sideways", "--data", "d", "--out", "o"], "patchvsr train", "invalid choice"),
    (["wan", "train", "adapter"], "patchvsr wan train", "required"),
    (["wan"], "patchvsr wan", "required: COMMAND"),
    (["frobnicate"], "patchvsr", "invalid choice: 'frobnicate'"),
    ([], "patchvsr", "required: COMMAND"),
])
def test_argument_errors_are_one_line(capsys, argv, prog, words):
    assert words in one_usage_line(capsys, argv, prog)


def test_help_still_exits_0(capsys):
    assert main(["upscale", "--help"]) == 0 and "--device" in capsys.readouterr().out


EVAL = ["eval", "bikes", "--scale", "4", "--json", "e.json"]
BENCH = ["bench", "--json", "b.json"]


@pytest.mark.parametrize("command", [["upscale", "in.mp4", "-o", "out.mp4"], ["batch", "in.mp4", "-o", "out"],
                                     EVAL, BENCH, ["train", "base", "--data", "d", "--out", "o"]])
@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:1"])
def test_every_device_spelling_is_accepted(command, device):
    assert build_parser().parse_args([*command, "--device", device]).device == device


@pytest.mark.parametrize("command", [["upscale", "in.mp4", "-o", "out.mp4"], EVAL, BENCH,
                                     ["wan", "train", "a", "--data", "d", "-o", "o", "--steps", "1"]])
@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu", "cuda1"])
def test_unknown_device_is_a_usage_error(capsys, command, device):
    prog = "patchvsr " + " ".join(command[:2] if command[0] == "wan" else command[:1])
    assert "unknown device" in one_usage_line(capsys, [*command, "--device", device], prog)


def test_cuda_n_without_that_gpu_is_one_line(capsys, make_video, tmp_path):
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a GPU 7")
    assert main(["upscale", str(make_video("in.mkv", frames=2)), "-o", str(tmp_path / "o.mkv"), "-q",
                 "--device", "cuda:7"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("patchvsr: error: --device cuda:7") and "GPU" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


def test_a_missing_subcommand_module_is_an_error_not_a_missing_command(monkeypatch):
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", (*cli.SUBCOMMAND_MODULES, "patchvsr.commands.renamed"))
    with pytest.raises(ModuleNotFoundError, match="patchvsr.commands.renamed"):
        build_parser()
