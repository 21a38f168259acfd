"""The result of tracking a clip: `Performance`, its versioned npz file, and its builder.

A Performance holds, for F tracked frames, E expressions, B identity modes and T energy terms:

=================  ==================  ====================================================
beta               (B,) float64        identity weights, one for the whole clip
psi                (F, E) float32      expression weights in [0, 1], ARKit names
theta              (F, 18) float64     pose (solver/conventions.py: 5 axis-angle joint
                                       rotations, then the root translation in cm)
camera             `Camera`            pinhole intrinsics in pixels (OpenCV axes)
valid              (F,) bool           a face was found and fitted in the frame
landmark_error     (F,) float32        mean sigma-normalised landmark residual of the fit,
                                       NaN where not valid
energies           (F, T) float32      final energy of each term, NaN where not valid
energy_names       (T,) str            names of the energy terms
frame_indices      (F,) int64          source frame index of each row, increasing
fps                float               frame rate of the source
expression_names   (E,) str            names of the psi columns
source             str                 the footage path (or webcam) that was tracked
mode               str                 "realtime" or "offline"
complete           bool                False when the run stopped early (cancel, read error)
=================  ==================  ====================================================

Frames without a face hold the pose (psi, theta) of the last valid frame (the first valid
frame for those before it; the neutral, zero pose when no frame is valid) and are flagged
``valid == False``, so curves stay continuous and a consumer can still leave gaps.

The file is an npz written with ``allow_pickle=False`` and checked field by field on load.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..solver.conventions import THETA_SIZE
from .errors import TrackingError

FORMAT_NAME = "densecap.performance"
FORMAT_VERSION = 1
MODES = ("realtime", "offline")


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels (image origin at the top-left pixel's corner).

    focal_length : focal length in pixels (square pixels)
    width, height : image size in pixels
    principal_point : (cx, cy) in pixels; the image centre when not given
    """

    focal_length: float
    width: int
    height: int
    principal_point: tuple[float, float] | None = None

    def __post_init__(self):
        if self.principal_point is None:
            object.__setattr__(self, "principal_point", (self.width / 2.0, self.height / 2.0))
        object.__setattr__(self, "principal_point", tuple(float(v) for v in self.principal_point))
        if not (np.isfinite(self.focal_length) and self.focal_length > 0):
            raise TrackingError(f"camera focal length must be a positive number, got "
                                f"{self.focal_length}")
        if self.width <= 0 or self.height <= 0:
            raise TrackingError(f"camera image size must be positive, got "
                                f"{self.width}x{self.height}")
        if len(self.principal_point) != 2 or not np.all(np.isfinite(self.principal_point)):
            raise TrackingError(f"camera principal point must be two finite numbers, got "
                                f"{self.principal_point}")

    @classmethod
    def intrinsics_of(cls, camera) -> "Camera":
        """The intrinsics of a `solver.camera.Camera` (its extrinsics are not kept)."""
        return cls(camera.focal, camera.width, camera.height, tuple(camera.principal_point))

    def matrix(self) -> np.ndarray:
        """(3, 3) float64 intrinsic matrix K (pixel-corner origin)."""
        cx, cy = self.principal_point
        return np.array([[self.focal_length, 0.0, cx], [0.0, self.focal_length, cy],
                         [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Performance:
    """Identity, per-frame expression and pose, camera and fit quality of a tracked clip.

    See the module docstring for the fields and their shapes. Construction validates every
    field and raises `TrackingError` on the first problem.
    """

    beta: np.ndarray
    psi: np.ndarray
    theta: np.ndarray
    camera: Camera
    valid: np.ndarray
    landmark_error: np.ndarray
    energies: np.ndarray
    energy_names: tuple[str, ...]
    frame_indices: np.ndarray
    fps: float
    expression_names: tuple[str, ...]
    source: str = ""
    mode: str = "realtime"
    complete: bool = True
    format_version: int = field(default=FORMAT_VERSION)

    def __post_init__(self):
        def set_(name, value):
            object.__setattr__(self, name, value)

        set_("beta", _array("beta", self.beta, np.float64, 1))
        set_("psi", _array("psi", self.psi, np.float32, 2))
        set_("theta", _array("theta", self.theta, np.float64, 2))
        set_("valid", _array("valid", self.valid, bool, 1))
        set_("landmark_error", _array("landmark_error", self.landmark_error, np.float32, 1,
                                      finite=False))
        set_("energies", _array("energies", self.energies, np.float32, 2, finite=False))
        set_("frame_indices", _array("frame_indices", self.frame_indices, np.int64, 1))
        set_("energy_names", tuple(str(n) for n in self.energy_names))
        set_("expression_names", tuple(str(n) for n in self.expression_names))
        set_("fps", float(self.fps))
        set_("source", str(self.source))
        set_("complete", bool(self.complete))
        if not isinstance(self.camera, Camera):
            raise TrackingError(f"camera must be a Camera, got {type(self.camera).__name__}")
        if self.format_version != FORMAT_VERSION:
            raise TrackingError(f"performance format version {self.format_version} is not "
                                f"supported (this DenseCap reads version {FORMAT_VERSION})")
        frames = self.psi.shape[0]
        if frames == 0:
            raise TrackingError("a performance needs at least one frame")
        expected = {"psi": (frames, len(self.expression_names)),
                    "theta": (frames, THETA_SIZE),
                    "valid": (frames,), "landmark_error": (frames,),
                    "energies": (frames, len(self.energy_names)), "frame_indices": (frames,)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise TrackingError(f"performance field {name} has shape "
                                    f"{getattr(self, name).shape}, expected {shape}")
        if self.psi.min() < 0.0 or self.psi.max() > 1.0:
            raise TrackingError(f"expression weights psi must lie in [0, 1], found "
                                f"[{self.psi.min():g}, {self.psi.max():g}]")
        if np.any(~np.isfinite(self.landmark_error[self.valid])) or \
                np.any(~np.isfinite(self.energies[self.valid])):
            raise TrackingError("fit quality (landmark_error, energies) must be finite on "
                                "valid frames")
        if self.frame_indices[0] < 0 or np.any(np.diff(self.frame_indices) <= 0):
            raise TrackingError("frame indices must be non-negative and strictly increasing")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise TrackingError(f"fps must be a positive number, got {self.fps}")
        if self.mode not in MODES:
            raise TrackingError(f"mode must be one of {MODES}, got {self.mode!r}")

    @property
    def num_frames(self) -> int:
        return self.psi.shape[0]

    @property
    def invalid_frames(self) -> np.ndarray:
        """(n,) int64 source frame indices of the frames without a fitted face."""
        return self.frame_indices[~self.valid]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the npz (atomically: a failed write leaves any previous file intact)."""
        path = Path(path)
        if not path.parent.is_dir():
            raise TrackingError(f"cannot write {path}: folder {path.parent} does not exist")
        arrays = {
            "format": np.array(FORMAT_NAME), "format_version": np.array(self.format_version),
            "beta": self.beta, "psi": self.psi, "theta": self.theta, "valid": self.valid,
            "landmark_error": self.landmark_error, "energies": self.energies,
            "energy_names": np.array(self.energy_names, dtype=str).reshape(-1),
            "frame_indices": self.frame_indices, "fps": np.array(self.fps),
            "expression_names": np.array(self.expression_names, dtype=str).reshape(-1),
            "source": np.array(self.source), "mode": np.array(self.mode),
            "complete": np.array(self.complete),
            "camera_focal_length": np.array(float(self.camera.focal_length)),
            "camera_image_size": np.array([self.camera.width, self.camera.height], np.int64),
            "camera_principal_point": np.array(self.camera.principal_point, np.float64),
        }
        try:
            handle, temporary = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **arrays)
            os.replace(temporary, path)
        except OSError as exc:
            raise TrackingError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return path


def load_performance(path: str | os.PathLike) -> Performance:
    """Read and validate a Performance npz; `TrackingError` says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise TrackingError(f"performance file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise TrackingError(f"{path} is not a readable performance file ({exc})") from exc
    if arrays.get("format", np.array("")).item() != FORMAT_NAME:
        raise TrackingError(f"{path} is not a DenseCap performance file")
    required = ("format_version", "beta", "psi", "theta", "valid", "landmark_error", "energies",
                "energy_names", "frame_indices", "fps", "expression_names", "source", "mode",
                "complete", "camera_focal_length", "camera_image_size", "camera_principal_point")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise TrackingError(f"{path} lacks {', '.join(missing)}")
    version = int(arrays["format_version"])
    if version > FORMAT_VERSION:
        raise TrackingError(f"{path} has format version {version}, newer than this DenseCap "
                            f"reads ({FORMAT_VERSION}): update the add-on")
    try:
        width, height = (int(v) for v in arrays["camera_image_size"])
        camera = Camera(float(arrays["camera_focal_length"]), width, height,
                        tuple(arrays["camera_principal_point"]))
        return Performance(
            beta=arrays["beta"], psi=arrays["psi"], theta=arrays["theta"], camera=camera,
            valid=arrays["valid"], landmark_error=arrays["landmark_error"],
            energies=arrays["energies"], energy_names=tuple(arrays["energy_names"]),
            frame_indices=arrays["frame_indices"], fps=float(arrays["fps"]),
            expression_names=tuple(arrays["expression_names"]), source=str(arrays["source"]),
            mode=str(arrays["mode"]), complete=bool(arrays["complete"]), format_version=version)
    except (TrackingError, TypeError, ValueError) as exc:
        raise TrackingError(f"{path}: {exc}") from exc


class PerformanceBuilder:
    """Collects per-frame results in growing arrays; `build()` at any time (e.g. on cancel)
    gives the Performance of the frames added so far.

    Memory is a few hundred bytes per frame (no images, no landmarks).
    """

    def __init__(self, expression_names: Sequence[str], energy_names: Sequence[str]):
        self.expression_names = tuple(expression_names)
        self.energy_names = tuple(energy_names)
        self._count = 0
        self._psi = np.zeros((64, len(self.expression_names)), np.float32)
        self._theta = np.zeros((64, THETA_SIZE), np.float64)
        self._valid = np.zeros(64, bool)
        self._landmark_error = np.full(64, np.nan, np.float32)
        self._energies = np.full((64, len(self.energy_names)), np.nan, np.float32)
        self._frame_indices = np.zeros(64, np.int64)

    def __len__(self) -> int:
        return self._count

    def add(self, frame_index: int, psi: np.ndarray | None = None, theta: np.ndarray | None = None,
            landmark_error: float = np.nan, energies: np.ndarray | None = None) -> None:
        """Append one frame: with `psi` (E,) and `theta` (18,) a fitted frame, without them a
        frame with no face (its pose is filled in by `build`)."""
        if self._count and frame_index <= self._frame_indices[self._count - 1]:
            raise TrackingError(f"frame {frame_index} added after frame "
                                f"{self._frame_indices[self._count - 1]}")
        if (psi is None) != (theta is None):
            raise TrackingError("a fitted frame needs both psi and theta")
        if self._count == len(self._valid):
            self._grow()
        row = self._count
        self._frame_indices[row] = frame_index
        if psi is not None:
            self._psi[row] = psi
            self._theta[row] = theta
            self._valid[row] = True
            self._landmark_error[row] = landmark_error
            if energies is not None:
                self._energies[row] = energies
        self._count += 1

    def build(self, beta: np.ndarray, camera: Camera, fps: float, source: str = "",
              mode: str = "realtime", complete: bool = True) -> Performance:
        """The Performance of the frames added so far (invalid frames hold the last pose)."""
        n = self._count
        if n == 0:
            raise TrackingError("no frames were tracked")
        valid = self._valid[:n].copy()
        psi, theta = self._psi[:n].copy(), self._theta[:n].copy()
        if not valid.any():
            psi[:], theta[:] = 0.0, 0.0
        else:
            # index of the last valid row at or before each row; rows before the first valid
            # one take the first valid row
            last_valid = np.maximum.accumulate(np.where(valid, np.arange(n), -1))
            last_valid[last_valid < 0] = np.argmax(valid)
            psi, theta = psi[last_valid], theta[last_valid]
        return Performance(beta=beta, psi=psi, theta=theta, camera=camera, valid=valid,
                           landmark_error=self._landmark_error[:n].copy(),
                           energies=self._energies[:n].copy(), energy_names=self.energy_names,
                           frame_indices=self._frame_indices[:n].copy(), fps=fps,
                           expression_names=self.expression_names, source=source, mode=mode,
                           complete=complete)

    def _grow(self) -> None:
        for name in ("_psi", "_theta", "_valid", "_landmark_error", "_energies", "_frame_indices"):
            old = getattr(self, name)
            new = np.empty((2 * old.shape[0],) + old.shape[1:], old.dtype)
            new[:old.shape[0]] = old
            new[old.shape[0]:] = np.nan if old.dtype.kind == "f" else 0
            setattr(self, name, new)


def _array(name: str, value, dtype, ndim: int, finite: bool = True) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TrackingError(f"performance field {name} is not an array: {exc}") from exc
    if array.ndim != ndim:
        raise TrackingError(f"performance field {name} has {array.ndim} dimensions, expected "
                            f"{ndim} (shape {array.shape})")
    kind = np.dtype(dtype).kind
    allowed = {"f": "fiub", "i": "iu", "b": "b"}[kind]
    if array.dtype.kind not in allowed:
        raise TrackingError(f"performance field {name} has dtype {array.dtype}, expected {dtype}")
    array = np.ascontiguousarray(array, dtype=dtype)
    if finite and kind == "f" and not np.all(np.isfinite(array)):
        raise TrackingError(f"performance field {name} has non-finite values")
    return array
