"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""


class PatchVSRError(Exception):
    """Something the user can fix (bad input, bad option, unwritable output). The message is one line."""


class InputError(PatchVSRError):
    """The input file or folder cannot be read as a video."""


class OutputError(PatchVSRError):
    """The output cannot be written (exists, unwritable, disk full, same as input)."""


class OptionError(PatchVSRError):
    """A command-line option or API argument has a value outside its documented range."""
