"""A Performance as a Live Link Face style CSV (no bpy).

The layout of the CSV files the Live Link Face app records::

    Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut,HeadYaw,HeadPitch,HeadRoll,
    LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll

one row per frame: ``HH:MM:SS:FF.mmm`` non-drop-frame timecode at the nominal (rounded)
frame rate (the sub-frame part is 000), 61 (the channel count), the 52 ARKit curves in
[0, 1], then head and eye rotations in radians. Frames without a fitted face are left out
(gaps, like the keyframes). The ARKit curves come from the Performance's expressions through
`arkit.match_names` (so ICT's ``browInnerUp_L``/``_R`` give ARKit's ``browInnerUp``).

Rotations: the head is the neck and head joints composed, the eyes their own joints, all
decomposed as yaw (about the model's up axis, positive turns the face to the subject's
left), then pitch (about the subject's left axis, positive looks down), then roll (about
the face's forward axis).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..solver.conventions import JOINT_NAMES, theta_rotation
from ..solver.model import rodrigues
from .arkit import ARKIT_NAMES, match_names
from .errors import TrackingError
from .performance import Performance

ROTATION_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch",
                    "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
HEADER = ("Timecode", "BlendShapeCount", *(name[0].upper() + name[1:] for name in ARKIT_NAMES),
          *ROTATION_COLUMNS)


@dataclass(frozen=True)
class LiveLinkTable:
    """The CSV's content. frames : (F,) source frame indices of the rows; values : (F, 61)
    ARKit curves then rotations; missing : ARKit names the Performance has no channel for
    (written as 0)."""

    timecodes: tuple[str, ...]
    frames: np.ndarray
    values: np.ndarray
    missing: tuple[str, ...]


def yaw_pitch_roll(rotations: np.ndarray) -> np.ndarray:
    """Rotation matrices (F, 3, 3) in model axes -> (F, 3) yaw, pitch, roll in radians,
    with R = Ry(yaw) @ Rx(pitch) @ Rz(roll)."""
    yaw = np.arctan2(rotations[:, 0, 2], rotations[:, 2, 2])
    pitch = np.arcsin(np.clip(-rotations[:, 1, 2], -1.0, 1.0))
    roll = np.arctan2(rotations[:, 1, 0], rotations[:, 1, 1])
    return np.column_stack([yaw, pitch, roll])


def timecode(frame: int, fps: float) -> str:
    """Non-drop-frame ``HH:MM:SS:FF.000`` of `frame` at the nominal rate round(fps)."""
    nominal = max(1, int(round(fps)))
    seconds, frames = divmod(int(frame), nominal)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:02d}.000"


def livelink_table(performance: Performance) -> LiveLinkTable:
    """The rows of the CSV for the Performance's valid frames."""
    valid = performance.valid
    if not valid.any():
        raise TrackingError("the performance has no frame with a fitted face; nothing to export")
    matching = match_names(performance.expression_names, ARKIT_NAMES)
    mixing = matching.mixing_matrix(performance.expression_names)
    curves = np.zeros((int(valid.sum()), len(ARKIT_NAMES)))
    columns = [ARKIT_NAMES.index(name) for name in matching.targets]
    curves[:, columns] = performance.psi[valid].astype(np.float64) @ mixing
    theta = performance.theta[valid]

    def joint(name):
        return rodrigues(theta[:, theta_rotation(JOINT_NAMES.index(name))])

    head = yaw_pitch_roll(joint("neck") @ joint("head"))
    eye_left, eye_right = yaw_pitch_roll(joint("eye_L")), yaw_pitch_roll(joint("eye_R"))
    frames = performance.frame_indices[valid]
    return LiveLinkTable(tuple(timecode(f, performance.fps) for f in frames.tolist()), frames,
                         np.hstack([np.clip(curves, 0.0, 1.0), head, eye_left, eye_right]),
                         matching.unmatched_targets)


def write_livelink_csv(performance: Performance, path: str | os.PathLike) -> LiveLinkTable:
    """Write the CSV (atomically: on failure any previous file is left as it was)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise TrackingError(f"cannot write {path}: folder {path.parent} does not exist")
    table = livelink_table(performance)
    temporary = path.with_name(path.name + ".tmp")
    count = len(HEADER) - 2
    try:
        with open(temporary, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(HEADER)
            for code, row in zip(table.timecodes, table.values.tolist()):
                writer.writerow([code, count, *(f"{value:.6f}" for value in row)])
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise TrackingError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return table
