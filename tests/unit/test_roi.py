"""ROI maths: known transforms recovered, round trips, crops sampled where the maths says."""

import numpy as np
import pytest

from densecap.landmarks.errors import LandmarkError
from densecap.landmarks.roi import (CropLayout, Detection, RoiTracker, RoiTransform, align_face,
                                    crop, landmarks_to_image, select_face, similarity_from_points,
                                    transform_from_detection, transform_from_landmarks)


def _similarity(scale, angle, translation):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, translation[0]],
                     [scale * s, scale * c, translation[1]]])


def test_similarity_recovers_a_known_transform_from_noisy_free_points():
    rng = np.random.default_rng(0)
    truth = _similarity(1.7, 0.4, (12.0, -30.0))
    source = rng.uniform(0, 500, size=(20, 2))
    target = source @ truth[:, :2].T + truth[:, 2]
    matrix = similarity_from_points(source, target)
    assert np.allclose(matrix, truth, atol=1e-9)
    roi = RoiTransform(matrix, 128)
    assert roi.scale == pytest.approx(1.7) and roi.rotation == pytest.approx(0.4)
    assert np.allclose(roi.to_image(roi.to_crop(source)), source, atol=1e-9)


def test_similarity_never_reflects():
    source = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mirrored = source * [-1.0, 1.0]
    assert np.linalg.det(similarity_from_points(source, mirrored)[:, :2]) >= 0


def test_align_face_puts_eyes_on_targets_for_a_rotated_face():
    layout = CropLayout(eye_distance=0.3, eye_y=0.4)
    # a face rolled by 30 degrees: right eye on the image's left, eyes 80 px apart
    angle = np.deg2rad(30)
    centre = np.array([300.0, 200.0])
    half = 40 * np.array([np.cos(angle), np.sin(angle)])
    right_eye, left_eye = centre - half, centre + half
    roi = align_face(right_eye, left_eye, 200, layout=layout)
    assert np.allclose(roi.to_crop([right_eye, left_eye]), [[70, 80], [130, 80]], atol=1e-9)
    assert roi.scale == pytest.approx(60 / 80)
    assert roi.rotation == pytest.approx(-angle)   # the roll is undone


def test_a_zoomed_layout_scales_the_targets_about_the_crop_centre():
    layout = CropLayout(eye_distance=0.25, eye_y=0.42, mouth_y=0.71)
    size = 128
    centre = size / 2
    np.testing.assert_allclose(layout.zoomed(1.1).targets(size),
                               1.1 * (layout.targets(size) - centre) + centre)
    assert layout.zoomed(1.0) == layout
    with pytest.raises(LandmarkError, match="zoom"):
        layout.zoomed(0.0)


def test_mouth_keeps_scale_when_the_eye_distance_shrinks_with_yaw():
    layout = CropLayout()
    size = 100
    targets = layout.targets(size)
    frontal = align_face(targets[0], targets[1], size, targets[2], layout)
    assert frontal.scale == pytest.approx(1.0) and frontal.rotation == pytest.approx(0.0)
    squeezed = targets.copy()
    squeezed[:2, 0] = 50 + 0.6 * (squeezed[:2, 0] - 50)   # eyes 40% closer, as in a head turn
    eyes_only = align_face(squeezed[0], squeezed[1], size, layout=layout)
    with_mouth = align_face(squeezed[0], squeezed[1], size, squeezed[2], layout)
    assert eyes_only.scale == pytest.approx(1 / 0.6)
    assert abs(with_mouth.scale - 1.0) < abs(eyes_only.scale - 1.0)


def test_crop_samples_where_the_transform_says():
    ys, xs = np.mgrid[:240, :320]
    blob = np.array([150.3, 100.8])           # image coords, pixel-corner origin
    image = np.exp(-((xs + 0.5 - blob[0]) ** 2 + (ys + 0.5 - blob[1]) ** 2) / (2 * 3.0 ** 2))
    roi = RoiTransform(_similarity(2.0, np.deg2rad(20), (-170.0, -245.0)), 96)
    patch = crop(image.astype(np.float32), roi, border="constant")
    assert patch.shape == (96, 96)
    expected = roi.to_crop(blob)
    assert np.all((expected > 20) & (expected < 76))
    ys, xs = np.mgrid[:96, :96]
    weights = patch / patch.sum()
    centroid = np.array([(weights * (xs + 0.5)).sum(), (weights * (ys + 0.5)).sum()])
    assert np.allclose(centroid, expected, atol=0.05)


def test_crop_with_unit_scale_is_an_exact_subimage():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, size=(50, 60, 3), dtype=np.uint8)
    roi = RoiTransform(_similarity(1.0, 0.0, (-7.0, -11.0)), 20)
    assert np.array_equal(crop(image, roi), image[11:31, 7:27])


def test_crop_border_modes():
    image = np.full((10, 10, 3), 200, np.uint8)
    roi = RoiTransform(_similarity(1.0, 0.0, (5.0, 5.0)), 20)   # half the crop is off-image
    assert crop(image, roi, border="constant")[0, 0, 0] == 0
    assert crop(image, roi, border="replicate")[0, 0, 0] == 200
    with pytest.raises(LandmarkError, match="border"):
        crop(image, roi, border="wrap")


def test_landmarks_to_image_round_trip_with_sigma():
    roi = RoiTransform(_similarity(0.5, -0.3, (10.0, 20.0)), 64)
    image_points = np.array([[100.0, 50.0], [130.0, 80.0], [90.0, 120.0]])
    mu, sigma = landmarks_to_image(roi.to_crop(image_points), np.array([1.0, 2.0, 0.5]), roi)
    assert np.allclose(mu, image_points)
    assert np.allclose(sigma, [2.0, 4.0, 1.0])   # a crop pixel is two image pixels


def _detection(x0, width, eyes=True):
    box = np.array([x0, 100.0, x0 + width, 100.0 + width])
    keypoints = np.array([[x0 + 0.3 * width, 140.0], [x0 + 0.7 * width, 140.0],
                          [x0 + 0.5 * width, 160.0], [x0 + 0.5 * width, 180.0]])
    return Detection(box, keypoints if eyes else keypoints[:1], 0.9)


def test_select_face_largest_by_default_and_by_index_from_the_left():
    faces = [_detection(400, 50), _detection(10, 80), _detection(200, 120)]
    assert select_face(faces) is faces[2]
    assert select_face(faces, 0) is faces[1]
    assert select_face(faces, 2) is faces[0]
    assert select_face([]) is None
    with pytest.raises(LandmarkError, match="only 3 face"):
        select_face(faces, 3)


def test_transform_from_detection_and_from_landmarks_agree():
    detection = _detection(100, 100)
    from_detection = transform_from_detection(detection, 128)
    landmarks = np.vstack([detection.keypoints[0] + [[-3, 0], [3, 0]],
                           detection.keypoints[1] + [[-3, 0], [3, 0]],
                           detection.keypoints[3] + [[-5, 0], [5, 0]]])
    from_landmarks = transform_from_landmarks(landmarks, [0, 1], [2, 3], 128, mouth_ids=[4, 5])
    assert np.allclose(from_detection.matrix, from_landmarks.matrix)
    with pytest.raises(LandmarkError, match="eye keypoints"):
        transform_from_detection(_detection(0, 50, eyes=False), 128)
    with pytest.raises(LandmarkError, match="out of range"):
        transform_from_landmarks(landmarks, [0, 9], [2, 3], 128)


def test_degenerate_points_raise():
    with pytest.raises(LandmarkError, match="coincide"):
        align_face(np.array([5.0, 5.0]), np.array([5.0, 5.0]), 64)
    with pytest.raises(LandmarkError, match="finite"):
        align_face(np.array([np.nan, 5.0]), np.array([5.0, 5.0]), 64)


def test_roi_tracker_detects_first_then_follows_landmarks_and_redetects_when_lost():
    calls = []
    face = _detection(100, 100)

    def detect(image):
        calls.append(image.shape)
        return [_detection(400, 40), face]

    landmarks = np.vstack([face.keypoints[[0]], face.keypoints[[1]], face.keypoints[[3]]])
    tracker = RoiTracker(detect, 128, [0], [1], [2])
    image = np.zeros((300, 600, 3), np.uint8)
    first = tracker.locate(image)
    assert tracker.detected and len(calls) == 1
    assert np.allclose(first.matrix, transform_from_detection(face, 128).matrix)
    tracker.update(landmarks + [10.0, 0.0], found=True)      # the face moved right
    second = tracker.locate(image)
    assert not tracker.detected and len(calls) == 1
    assert np.allclose(second.to_crop(landmarks[0] + [10.0, 0.0]), first.to_crop(landmarks[0]))
    tracker.update(None, found=False)                        # lost: detect again
    tracker.locate(image)
    assert tracker.detected and len(calls) == 2
    assert RoiTracker(lambda image: [], 128, [0], [1]).locate(image) is None
    assert RoiTracker(detect, 128, [0], [1], face_index=5).locate(image) is None
