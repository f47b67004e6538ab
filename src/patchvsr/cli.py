"""`patchvsr` command line: parses, calls the Python API, reports errors as one line.

Each subcommand is a module of `patchvsr.commands` that exposes `add_parser(subparsers)`, which registers its
arguments and sets `func(args) -> int` as the parser default; SUBCOMMAND_MODULES is the one list of them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from patchvsr.errors import PatchVSRError
from patchvsr.version import __version__

# Subcommand modules, in the order `patchvsr --help` lists them.
SUBCOMMAND_MODULES = (
    "patchvsr.commands.upscale",
    "patchvsr.commands.batch",
    "patchvsr.commands.preview",
    "patchvsr.commands.fetch",
    "patchvsr.commands.evaluate",
    "patchvsr.commands.train",
    "patchvsr.commands.wan",
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with usage errors on one line: `patchvsr upscale: error: ... (see patchvsr upscale --help)`.

    Subcommand parsers inherit the class (argparse builds them with the parent's type), so every
    subcommand reports the same way; the exit code stays argparse's 2.
    """

    def error(self, message: str) -> NoReturn:
        """Print the usage error on one line with a hint at --help, and exit with code 2.

        Args:
            message (str): argparse's message (whitespace, line breaks included, collapsed to single spaces).

        Raises:
            SystemExit: always, with code 2.
        """
        message = " ".join(message.split())  # argparse may wrap a long message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The `patchvsr` parser with every subcommand of SUBCOMMAND_MODULES registered.

    Returns:
        argparse.ArgumentParser: an `ArgumentParser` (one-line usage errors).
    """
    parser = ArgumentParser(prog="patchvsr", description="Patch-wise video super-resolution.")
    parser.add_argument("--version", action="version", version=f"patchvsr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command parser that parsed the chosen command, e.g. the one of `patchvsr wan train`.

    Args:
        parser (argparse.ArgumentParser): the top-level parser.
        args (argparse.Namespace): what it parsed.

    Returns:
        argparse.ArgumentParser: the innermost subcommand parser chosen (`parser` itself without subcommands).
    """
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or getattr(args, actions[0].dest, None) is None:
            return parser
        parser = actions[0].choices[getattr(args, actions[0].dest)]


def main(argv: list[str] | None = None) -> int:
    """Run the `patchvsr` command line; errors are reported as one line on stderr.

    Args:
        argv (list[str], optional): the arguments after the program name; None: `sys.argv[1:]`.

    Returns:
        int: the exit code: 0 success, 2 a usage or PatchVSR error, 130 interrupted, 1 an internal error.
    """
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the subcommand that was given them, so the hint names its --help
            innermost(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as done:  # --help, --version, or a usage error already printed on one line
        return int(done.code or 0)
    debug = args.debug or bool(os.environ.get("PATCHVSR_DEBUG"))
    try:
        return int(args.func(args) or 0)
    except PatchVSRError as err:
        print(f"patchvsr: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("patchvsr: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - last line of defence: one line, traceback only on request
        if debug:
            raise
        print(f"patchvsr: internal error: {type(err).__name__}: {err} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
