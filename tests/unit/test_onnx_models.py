"""The converted MediaPipe networks: parity with the TFLite runtime, decoding, bad input.

Needs ``make models`` (assets/models/*.onnx and the extracted .tflite files in build/) and the
dev requirement ``ai-edge-litert`` (the reference TFLite interpreter).
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from densecap.landmarks import onnx_models as om
from densecap.landmarks.errors import LandmarkError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DEVSET_IMAGES = [SHARED / "devset" / "images" / f"{i:04d}.webp" for i in (0, 97, 211, 333)]
STILL = SHARED / "footage" / "still_obama.jpg"
PARITY_PX = 0.01  # max landmark difference at the network's input resolution


@pytest.fixture(scope="module")
def checker():
    pytest.importorskip("ai_edge_litert", reason="reference TFLite runtime (dev requirement)")
    from densecap.tools.mediapipe_parity import ParityChecker

    return ParityChecker()


@pytest.mark.parametrize("path", DEVSET_IMAGES + [STILL], ids=lambda p: p.name)
def test_parity_with_tflite(checker, path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    diffs = checker.image(image)
    assert diffs["face_mesh_presence"] > 0.9  # a real face went through the face mesh
    for detector in ("detector", "full_range"):
        assert diffs[f"{detector}_regressors_scored_px"] < PARITY_PX
        assert diffs[f"{detector}_logits"] < 1e-2
    assert diffs["face_mesh_xy_px"] < PARITY_PX
    assert diffs["face_mesh_z_px"] < PARITY_PX
    assert diffs["face_mesh_presence_logit"] < 1e-3
    assert diffs["iris_contour_xy_px"] < PARITY_PX
    assert diffs["iris_iris_xy_px"] < PARITY_PX


def test_detector_finds_the_labelled_face():
    labels = json.loads((SHARED / "devset" / "landmarks68.json").read_text())
    detector = om.FaceDetector()
    for path in DEVSET_IMAGES:
        points = np.asarray(labels["images"][path.name]["landmarks"], dtype=np.float32)
        faces = detector.detect(cv2.imread(str(path), cv2.IMREAD_COLOR))
        assert len(faces) >= 1
        face = faces[0]
        assert face.box.shape == (4,) and face.keypoints.shape == (6, 2)
        # iBUG 36-41: subject's right eye; 42-47: left eye.
        for keypoint, eye in ((0, points[36:42]), (1, points[42:48])):
            distance = np.linalg.norm(face.keypoints[keypoint] - eye.mean(axis=0))
            inter_ocular = np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))
            assert distance < 0.35 * inter_ocular, (path.name, keypoint, distance)


def test_face_mesh_on_a_crop_matches_the_labels():
    labels = json.loads((SHARED / "devset" / "landmarks68.json").read_text())
    path = DEVSET_IMAGES[0]
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    points = np.asarray(labels["images"][path.name]["landmarks"], dtype=np.float32)
    box = om.FaceDetector().detect(image)[0].box
    crop, matrix = om.warp_square(image, (box[:2] + box[2:]) / 2,
                                  1.5 * (box[2] - box[0]), om.FACE_MESH_SIZE)
    landmarks, presence = om.FaceMesh()(crop)
    assert landmarks.shape == (468, 3) and presence > 0.9
    # Back to image pixels; mesh 1 is the nose tip, iBUG 30 the nose tip.
    inverse = cv2.invertAffineTransform(matrix)
    nose = inverse @ np.append(landmarks[1, :2], 1.0)
    inter_ocular = np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))
    assert np.linalg.norm(nose - points[30]) < 0.25 * inter_ocular


def test_iris_right_eye_is_flipped_back():
    iris = om.IrisLandmarks()
    eye = cv2.imread(str(STILL), cv2.IMREAD_COLOR)[200:264, 400:464].copy()
    contour_left, iris_left = iris(eye, is_right_eye=False)
    contour_right, iris_right = iris(np.ascontiguousarray(eye[:, ::-1]), is_right_eye=True)
    assert contour_left.shape == (71, 3) and iris_left.shape == (5, 3)
    mirrored = iris_right.copy()
    mirrored[:, 0] = om.IRIS_SIZE - mirrored[:, 0]
    np.testing.assert_allclose(mirrored, iris_left, atol=1e-3)


def test_full_range_detector_finds_the_performer():
    capture = cv2.VideoCapture(str(SHARED / "footage" / "multi_face_hamilton.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)  # the performer, face about 90 px wide
    ok, frame = capture.read()
    capture.release()
    assert ok
    faces = om.FaceDetector("full").detect(frame)
    assert len(faces) == 1 and faces[0].score > 0.6
    x0, y0, x1, y1 = faces[0].box
    assert 180 < x0 < x1 < 320 and 30 < y0 < y1 < 200 and 50 < x1 - x0 < 130, faces[0].box


def test_anchors_and_weighted_nms():
    short, full = om.DETECTORS["short"], om.DETECTORS["full"]
    anchors = om.ssd_anchors(short.size, short.layers)
    assert anchors.shape == (896, 2)
    assert np.allclose(anchors[0], [1 / 32, 1 / 32]) and np.allclose(anchors[-1], [15 / 16] * 2)
    assert om.ssd_anchors(full.size, full.layers).shape == (2304, 2)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    keypoints = np.zeros((3, 6, 2), np.float32)
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    kept = om.weighted_nms(boxes, keypoints, scores, 0.3)
    assert [k[2] for k in kept] == pytest.approx([0.9, 0.8])
    assert kept[0][0][0] == pytest.approx(0.6 / 1.5)  # score-weighted mean of x_min 0 and 1


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(LandmarkError, match="make models"):
        om.FaceMesh(model_path=tmp_path / "missing.onnx")
    mesh = om.FaceMesh()
    with pytest.raises(LandmarkError, match="192x192"):
        mesh(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(LandmarkError, match="uint8 BGR"):
        mesh(np.zeros((192, 192, 3), np.float32))
    assert om.FaceDetector().detect(np.zeros((240, 320, 3), np.uint8)) == []
    with pytest.raises(LandmarkError, match="variant"):
        om.FaceDetector("medium")


def test_rotated_crop_maps_back_to_the_image():
    """warp_square's angle and matrix: landmarks of a rotated image map back consistently."""
    image = cv2.imread(str(STILL), cv2.IMREAD_COLOR)
    detector, mesh = om.FaceDetector(), om.FaceMesh()

    def image_landmarks(img):
        face = detector.detect(img)[0]
        right_eye, left_eye = face.keypoints[0], face.keypoints[1]
        angle = np.arctan2(*(left_eye - right_eye)[::-1])
        crop, matrix = om.warp_square(img, (face.box[:2] + face.box[2:]) / 2,
                                      1.5 * (face.box[2] - face.box[0]), om.FACE_MESH_SIZE, angle)
        landmarks, presence = mesh(crop)
        assert presence > 0.9
        inverse = cv2.invertAffineTransform(matrix)
        return landmarks[:, :2] @ inverse[:, :2].T + inverse[:, 2]

    upright = image_landmarks(image)
    height, width = image.shape[:2]
    # cv2's rotation acts on pixel centres; shift to the corner convention for the points.
    rotation = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), 25.0, 1.0)
    rotated = cv2.warpAffine(image, rotation, (width, height), flags=cv2.INTER_LINEAR)
    corner_rotation = rotation.copy()
    corner_rotation[:, 2] += 0.5 - rotation[:, :2] @ np.array([0.5, 0.5])
    expected = upright @ corner_rotation[:, :2].T + corner_rotation[:, 2]
    inter_ocular = np.linalg.norm(upright[33] - upright[263])
    error = np.linalg.norm(image_landmarks(rotated) - expected, axis=1)
    assert np.median(error) < 0.03 * inter_ocular, np.median(error) / inter_ocular


def test_rgb_tensor_matches_the_plain_formula():
    image = np.random.default_rng(3).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    for low, high in ((0.0, 1.0), (-1.0, 1.0)):
        for view in (image, image[:, ::-1]):           # contiguous and a reversed view
            expected = (view[:, :, ::-1].astype(np.float32) * ((high - low) / 255.0) + low)
            np.testing.assert_array_equal(om.rgb_tensor(view, low, high), expected[None])


def test_both_eyes_in_one_call_equal_two_calls():
    iris = om.IrisLandmarks()
    image = cv2.imread(str(STILL), cv2.IMREAD_COLOR)
    tensors = np.concatenate([iris.tensor(image[200:264, 400:464], True),
                              iris.tensor(image[200:264, 470:534], False)])
    contour, points = iris.raw_eyes(tensors)
    assert contour.shape == (2, 71, 3) and points.shape == (2, 5, 3)
    for k in range(2):
        one_contour, one_points = iris.raw(tensors[k:k + 1])
        np.testing.assert_allclose(one_contour, contour[k], atol=1e-4)
        np.testing.assert_allclose(one_points, points[k], atol=1e-4)
    iris.batch_of_one = True                             # a model built with batch 1
    np.testing.assert_allclose(iris.raw_eyes(tensors)[1], points, atol=1e-4)
    pruned = om.MODELS_DIR / om.IRIS_ONLY_FILE
    if pruned.is_file():                                 # made by `make models`
        only = om.IrisLandmarks(pruned)
        assert not only.has_contour
        np.testing.assert_array_equal(only.raw_iris(tensors), iris.raw_iris(tensors))
        with pytest.raises(LandmarkError, match="raw_iris"):
            only.raw_eyes(tensors)
