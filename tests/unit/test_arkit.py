"""ARKit name matching and the retarget curves (no bpy)."""

import numpy as np
import pytest

from densecap.solver.model import rodrigues
from densecap.tracking.arkit import (ARKIT_NAMES, BONE_PRESETS, RETARGET_BONES, bone_rotations,
                                     channel_key, match_names, shape_key_curves, smooth_curves)
from densecap.tracking.errors import TrackingError

ICT = ("browInnerUp_L", "browInnerUp_R", "eyeBlink_L", "eyeBlink_R", "jawOpen", "mouthLeft",
       "mouthSmile_L", "PupilDilate_L")


@pytest.mark.parametrize("name", ["eyeBlinkLeft", "EyeBlink_L", "eyeBlink_L", "eyeBlink.L",
                                  "EYEBLINK_LEFT", "Face:eyeBlink-l", "blendShape1.eyeBlinkLeft",
                                  "eyeBlinkL", "eye_blink_left"])
def test_spellings_share_one_key(name):
    assert channel_key(name) == "eyeblinkleft"


def test_directions_are_not_sides():
    assert channel_key("mouthLeft") == "mouthleft" != channel_key("mouth")
    assert channel_key("mouthRollLower") == "mouthrolllower"      # lower-case r is no side
    assert channel_key("jawRight") == channel_key("JawRight") == "jawright"


def test_match_names_pairs_lists_and_mixes():
    targets = ("EyeBlink_L", "eyeBlinkRight", "JAWOPEN", "browInnerUp", "mouthLeft",
               "tongueOut", "Basis2")
    matching = match_names(ICT, targets)
    assert matching.targets == ("EyeBlink_L", "eyeBlinkRight", "JAWOPEN", "browInnerUp",
                                "mouthLeft")
    assert matching.sources[3] == ("browInnerUp_L", "browInnerUp_R")
    assert matching.unmatched_targets == ("tongueOut", "Basis2")
    assert matching.unused_sources == ("mouthSmile_L", "PupilDilate_L")
    values = np.arange(2 * len(ICT), dtype=float).reshape(2, len(ICT))
    mixed = values @ matching.mixing_matrix(ICT)
    np.testing.assert_allclose(mixed[:, 3], values[:, :2].mean(axis=1))
    np.testing.assert_allclose(mixed[:, 0], values[:, 2])


def test_sided_target_takes_an_unsided_source():
    matching = match_names(("browInnerUp", "cheekPuff"), ("BrowInnerUp_L", "browInnerUpRight"))
    assert matching.sources == (("browInnerUp",), ("browInnerUp",))


def test_ict_names_cover_every_arkit_name_but_the_tongue(face_model):
    matching = match_names(face_model.expression_names, ARKIT_NAMES)
    assert matching.unmatched_targets == ("tongueOut",)
    assert set(matching.unused_sources) == {"PupilDilate_L", "PupilDilate_R"}


def test_shape_key_curves_gain_offset_smoothing_limits():
    matching = match_names(ICT, ("jawOpen", "eyeBlinkLeft"))
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, (9, len(ICT)))
    out = shape_key_curves(values, ICT, matching, gain=np.array([2.0, 1.0]),
                           offset=np.array([0.0, -0.1]))
    np.testing.assert_allclose(out[:, 0], 2 * values[:, 4])
    np.testing.assert_allclose(out[:, 1], values[:, 2] - 0.1)
    clipped = shape_key_curves(values, ICT, matching, gain=np.array([2.0, 1.0]),
                               limits=(np.zeros(2), np.ones(2)))
    assert clipped.max() <= 1.0 and clipped.min() >= 0.0
    smoothed = shape_key_curves(values, ICT, matching, smoothing=3)
    np.testing.assert_allclose(smoothed[4, 0], values[3:6, 4].mean())
    with pytest.raises(TrackingError, match="one value per matched channel"):
        shape_key_curves(values, ICT, matching, gain=np.ones(3))
    with pytest.raises(TrackingError, match="expected"):
        shape_key_curves(values[:, :3], ICT, matching)


def test_smooth_curves_keeps_constants_and_length():
    values = np.full((5, 2), 0.3)
    for window in (0, 1, 2, 4, 9):
        np.testing.assert_allclose(smooth_curves(values, window), values)
    with pytest.raises(TrackingError):
        smooth_curves(values, -1)


def test_bone_rotations_conjugate_into_the_target_axes():
    rng = np.random.default_rng(1)
    axis_angle = rng.uniform(-0.5, 0.5, (4, 3))
    change = rodrigues(np.array([0.3, -1.2, 0.7]))
    rotated = bone_rotations(axis_angle, change, gain=0.5)
    for source, target in zip(axis_angle, rotated):
        np.testing.assert_allclose(rodrigues(target),
                                   change @ rodrigues(0.5 * source) @ change.T, atol=1e-12)


def test_presets_name_every_retarget_bone():
    for preset in BONE_PRESETS.values():
        assert tuple(preset) == RETARGET_BONES
