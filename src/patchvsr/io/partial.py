"""The hidden state folder of an unfinished run, beside the output: segments, progress.json, a lock.

`OUT.mp4` is written as `.OUT.mp4.patchvsr.partial/` holding
- `progress.json`: input identity (path, size, modification time), every option that shapes the output,
  the number of finished segments, and whether all segments and the final file are complete;
- `segment_000000.nut`, ... (or `frames/` with PNGs for a folder output), and the assembled `output.mp4`;
- `lock`: held (flock) while a process works on it, so two runs cannot write the same output.
progress.json is replaced atomically after each finished segment, so after a crash or `kill -9` it names
only segments that are complete on disk. The folder is renamed into place / removed on success.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from patchvsr.errors import OptionError, OutputError

STATE_VERSION = 1


class PartialRun:
    """State of the run writing `dst`. Open it with `start` (new run) or `resume` before anything else."""

    def __init__(self, dst: Path):
        self.dst = dst
        self.folder = dst.parent / f".{dst.name}.patchvsr.partial"
        self.record: dict = {}
        self._lock = None

    def exists(self) -> bool:
        """Whether an interrupted run left its state folder.

        Returns:
            bool: True if the folder exists.
        """
        return self.folder.exists()

    def start(self, record: dict) -> None:
        """Create a fresh state folder (replacing an old one) and write the first progress.json.

        Args:
            record (dict): what shapes the output (JSON-serialisable; see `patchvsr.api.run_record`).

        Raises:
            OutputError: if the folder cannot be created, or another run holds the old one.
        """
        if self.exists():
            self._take_lock()  # refuse to delete the state of a run still in progress
            self.release()
            shutil.rmtree(self.folder)
        try:
            self.folder.mkdir()
        except OSError as err:
            raise OutputError(f"{self.dst.parent}: cannot write there ({err.strerror})") from err
        self._take_lock()
        self.record = {**record, "version": STATE_VERSION, "segments_done": 0, "complete": False,
                       "assembled": False}
        self._save()

    def resume(self, record: dict) -> None:
        """Take over the state of an earlier run; OptionError if it was made for other input or options.

        Args:
            record (dict): what shapes the output; every key must match the saved state.

        Raises:
            OptionError: if a key differs from the interrupted run's.
            OutputError: if the state is unreadable or another run holds it.
        """
        self._take_lock()
        try:
            saved = json.loads((self.folder / "progress.json").read_text())
        except (OSError, ValueError) as err:
            self.release()
            raise OutputError(f"{self.folder}: unreadable progress state ({err}); use --overwrite to "
                              "start over") from err
        for key, value in record.items():
            if saved.get(key) != value:
                self.release()
                raise OptionError(f"cannot resume: {key} differs from the interrupted run "
                                  f"({saved.get(key)} then, {value} now); use the same input and options "
                                  f"or --overwrite to start over")
        self.record = saved

    def segment_path(self, index: int, suffix: str) -> Path:
        """The file of segment `index` in the state folder.

        Args:
            index (int): the segment's index, >= 0.
            suffix (str): the segment's suffix, e.g. ".nut".

        Returns:
            Path: `segment_<index:06d><suffix>` in the state folder.
        """
        return self.folder / f"segment_{index:06d}{suffix}"

    @property
    def frames_folder(self) -> Path:
        return self.folder / "frames"

    def final_path(self, suffix: str) -> Path:
        """The assembled output in the state folder.

        Args:
            suffix (str): the output's suffix, e.g. ".mp4".

        Returns:
            Path: `output<suffix>` in the state folder.
        """
        return self.folder / f"output{suffix}"

    def segment_done(self, index: int) -> None:
        """Record segment `index` as finished (and every one before it) in progress.json.

        Args:
            index (int): the segment's index, >= 0.
        """
        self.record["segments_done"] = index + 1
        self._save()

    def mark(self, key: str) -> None:
        """Record a finished phase: `complete` (all segments written) or `assembled` (final file written).

        Args:
            key (str): "complete" or "assembled".
        """
        self.record[key] = True
        self._save()

    def finish(self, produced: Path) -> None:
        """Move the finished output (file or folder) over `dst` and remove the state folder.

        Args:
            produced (Path): the finished output (in the state folder, or `dst` itself).
        """
        if produced != self.dst:
            if produced.is_dir() and self.dst.is_dir():
                os.replace(self.dst, self.folder / "replaced")  # removed with the state folder
            os.replace(produced, self.dst)
        self.remove()

    def release(self) -> None:
        """Keep the state for a later --resume; just drop the lock."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def remove(self) -> None:
        self.release()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _take_lock(self) -> None:
        self._lock = open(self.folder / "lock", "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            self._lock.close()
            self._lock = None
            raise OutputError(f"{self.dst}: another patchvsr run is writing this output") from err

    def _save(self) -> None:
        temp = self.folder / "progress.json.tmp"
        with open(temp, "w") as file:
            json.dump(self.record, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, self.folder / "progress.json")
