"""ARKit channel names and the bpy-free math of retargeting (no bpy).

* `channel_key`: one spelling for the many ways rigs write an ARKit name, so
  ``eyeBlinkLeft``, ``EyeBlink_L``, ``eyeBlink_L``, ``eyeBlink.L`` and
  ``Face:EYEBLINK_LEFT`` all become ``"eyeblinkleft"``.
* `match_names`: which source channels drive which target channels; a target without a
  side (ARKit's ``browInnerUp``, ``cheekPuff``) takes the mean of the source's left and
  right channels, a sided target takes an unsided source. What did not match is listed.
* `BONE_PRESETS`: the DenseCap rig's neck, head and eye bones as named by Rigify and
  Auto-Rig Pro.
* `shape_key_curves`, `bone_rotations`, `smooth_curves`: per-channel gain/offset,
  optional smoothing, and a rotation moved from the DenseCap bone's axes to a target
  bone's axes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import TrackingError

#: The 52 ARKit blend shapes, in the order Apple lists them (and Live Link Face writes them).
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight",
    "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight", "jawForward",
    "jawRight", "jawLeft", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRight",
    "mouthLeft", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft",
    "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft",
    "noseSneerRight", "tongueOut")

#: DenseCap rig bone -> bone name in each preset (the user can edit the names afterwards).
BONE_PRESETS = {
    "RIGIFY": {"neck": "neck", "head": "head", "eye_L": "eye.L", "eye_R": "eye.R"},
    "AUTO_RIG_PRO": {"neck": "c_neck.x", "head": "c_head.x", "eye_L": "c_eye.l",
                     "eye_R": "c_eye.r"},
}
#: The DenseCap bones a retarget can drive, in rig order.
RETARGET_BONES = ("neck", "head", "eye_L", "eye_R")

_SEPARATORS = re.compile(r"[\s_.\-]+")
_SIDE_WORD = re.compile(r"[\s_.\-](l|r|left|right)$", re.IGNORECASE)
_SIDE_LETTER = re.compile(r"(?<=[a-z0-9])([LR])$")      # eyeBlinkL (capital after lower case)
_SIDES = {"l": "left", "r": "right", "left": "left", "right": "right"}


def channel_key(name: str) -> str:
    """The spelling-independent key of a channel name: lower case, no separators, no
    namespace, side suffix written ``left``/``right`` (``EyeBlink_L`` -> ``eyeblinkleft``)."""
    name = name.rsplit(":", 1)[-1].strip()
    base, dot, last = name.rpartition(".")
    if dot and base and last.lower() not in _SIDES:      # "blendShape1.eyeBlink_L"
        name = last
    side = ""
    match = _SIDE_WORD.search(name) or _SIDE_LETTER.search(name)
    if match:
        side = _SIDES[match.group(1).lower()]
        name = name[:match.start()]
    return _SEPARATORS.sub("", name).lower() + side


def _split_side(key: str) -> tuple[str, str]:
    for side in ("left", "right"):
        if key.endswith(side) and len(key) > len(side):
            return key[:-len(side)], side
    return key, ""


@dataclass(frozen=True)
class NameMatching:
    """How target channels are driven by source channels.

    targets : (M,) target names that matched
    sources : (M,) per target, the source names it takes the mean of (one or two)
    unmatched_targets : target names no source drives
    unused_sources : source names that drive no target
    """

    targets: tuple[str, ...]
    sources: tuple[tuple[str, ...], ...]
    unmatched_targets: tuple[str, ...]
    unused_sources: tuple[str, ...]

    def mixing_matrix(self, source_names: Sequence[str]) -> np.ndarray:
        """(S, M) float64: source values (F, S) @ this = target values (F, M)."""
        index = {name: i for i, name in enumerate(source_names)}
        matrix = np.zeros((len(source_names), len(self.targets)))
        for column, sources in enumerate(self.sources):
            for name in sources:
                matrix[index[name], column] = 1.0 / len(sources)
        return matrix


def match_names(source_names: Sequence[str], target_names: Sequence[str]) -> NameMatching:
    """Match target channel names to source channel names through `channel_key`.

    A target matches the source with the same key; failing that, a target without a side
    takes the mean of the source's left and right channels, and a sided target the source
    without a side. Two targets may share a source; a source key used twice keeps the first.
    """
    by_key: dict[str, str] = {}
    for name in source_names:
        by_key.setdefault(channel_key(name), name)
    targets, sources, unmatched, used = [], [], [], set()
    for target in target_names:
        key = channel_key(target)
        base, side = _split_side(key)
        if key in by_key:
            found = (by_key[key],)
        elif not side and f"{key}left" in by_key and f"{key}right" in by_key:
            found = (by_key[f"{key}left"], by_key[f"{key}right"])
        elif side and base in by_key:
            found = (by_key[base],)
        else:
            unmatched.append(target)
            continue
        targets.append(target)
        sources.append(found)
        used.update(found)
    unused = tuple(name for name in source_names if name not in used)
    return NameMatching(tuple(targets), tuple(sources), tuple(unmatched), unused)


def smooth_curves(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` frames along axis 0 (edges use the nearest
    value). values : (F, C) -> (F, C) float64; window 0 or 1 returns a copy."""
    values = np.asarray(values, dtype=np.float64)
    if window < 0:
        raise TrackingError(f"smoothing window must be >= 0 frames, got {window}")
    if window <= 1 or len(values) < 2:
        return values.copy()
    before, after = (window - 1) // 2, window // 2
    padded = np.concatenate([np.repeat(values[:1], before, axis=0), values,
                             np.repeat(values[-1:], after, axis=0)])
    cumulative = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(padded, axis=0)])
    return (cumulative[window:] - cumulative[:-window]) / window


def shape_key_curves(source_values: np.ndarray, source_names: Sequence[str],
                     matching: NameMatching, gain: np.ndarray | None = None,
                     offset: np.ndarray | None = None, smoothing: int = 0,
                     limits: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Target shape-key values (F, M) from source values (F, S).

    Each target is ``gain * mean(sources) + offset`` (gain, offset : (M,), default 1 and 0),
    smoothed over `smoothing` frames, then clipped to `limits` (lower (M,), upper (M,)),
    e.g. the target's slider range.
    """
    source_values = np.asarray(source_values, dtype=np.float64)
    if source_values.ndim != 2 or source_values.shape[1] != len(source_names):
        raise TrackingError(f"source values have shape {source_values.shape}, expected "
                            f"(frames, {len(source_names)})")
    count = len(matching.targets)
    gain = np.ones(count) if gain is None else np.asarray(gain, dtype=np.float64)
    offset = np.zeros(count) if offset is None else np.asarray(offset, dtype=np.float64)
    if gain.shape != (count,) or offset.shape != (count,):
        raise TrackingError(f"gain {gain.shape} and offset {offset.shape} must have one value "
                            f"per matched channel ({count})")
    values = smooth_curves(source_values @ matching.mixing_matrix(source_names) * gain + offset,
                           smoothing)
    if limits is not None:
        values = np.clip(values, limits[0], limits[1])
    return values


def bone_rotations(axis_angle: np.ndarray, source_to_target: np.ndarray, gain: float = 1.0,
                   smoothing: int = 0) -> np.ndarray:
    """A DenseCap bone's local rotations expressed in a target bone's rest axes.

    axis_angle : (F, 3) rotations in the DenseCap bone's axes (model axes); source_to_target :
    (3, 3) rotation from the DenseCap bone's rest axes to the target bone's (both in world
    space: ``target_rest.T @ source_rest``); gain scales the angle. Returns (F, 3) axis-angle
    vectors in the target bone's axes, smoothed over `smoothing` frames
    (``P R(v) P^T = R(P v)`` for a rotation P).
    """
    axis_angle = smooth_curves(np.asarray(axis_angle, dtype=np.float64) * gain, smoothing)
    return axis_angle @ np.asarray(source_to_target, dtype=np.float64).T
