"""Parity of the converted ONNX networks against MediaPipe's TFLite networks.

Dev/test only. The reference is the TFLite runtime (``ai_edge_litert``, the interpreter
MediaPipe embeds) running the very ``.tflite`` files that ``tools/mediapipe_models.py``
extracted from the mediapipe 0.10.21 wheel into its cache. Both runtimes get identical input
tensors, made from real images: the letterboxed image for the detector, a square crop around
the first detected face for the face mesh, and crops around both eyes (from the face-mesh
eye corners) for the iris network.

Differences are reported in each network's input pixels (128, 192, 64 px), the face-mesh
presence as a logit.

Usage: ``python -m tools.mediapipe_parity [IMAGE ...]`` (default: the devset images and the
footage stills in ../shared) prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..landmarks import onnx_models as om

TFLITE_DIR = Path(__file__).resolve().parents[1] / "build" / "mediapipe" / "tflite"
#: Face-mesh eye-corner landmark indices (subject's right eye, subject's left eye).
EYE_CORNERS = {"right": (33, 133), "left": (362, 263)}


class TfliteReference:
    """One TFLite network under the reference interpreter; outputs in TFLite order."""

    def __init__(self, stem, tflite_dir=TFLITE_DIR):
        from ai_edge_litert.interpreter import Interpreter

        path = Path(tflite_dir) / f"{stem}.tflite"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run `make models`")
        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_indices = [d["index"] for d in self.interpreter.get_output_details()]

    def __call__(self, tensor):
        self.interpreter.set_tensor(self.input_index, tensor)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i).copy() for i in self.output_indices]


class ParityChecker:
    """Runs ONNX and TFLite side by side on images; collects max absolute differences."""

    def __init__(self, tflite_dir=TFLITE_DIR):
        self.detector = om.FaceDetector()
        self.mesh = om.FaceMesh()
        self.iris = om.IrisLandmarks()
        self.reference = {stem: TfliteReference(stem, tflite_dir) for stem in
                          ("face_detection_short_range", "face_landmark", "iris_landmark")}

    def image(self, image_bgr) -> dict:
        """Max |ONNX - TFLite| per output for one image (only detector keys if no face)."""
        boxed, _, _ = self.detector.letterbox(image_bgr)
        tensor = om.rgb_tensor(boxed, -1.0, 1.0)
        regressors, logits = self.detector.raw(tensor)
        ref_regressors, ref_logits = self.reference["face_detection_short_range"](tensor)
        regressor_diff = np.abs(regressors - ref_regressors[0])
        # Anchors that can become detections (score >= 0.5 in either runtime); the others
        # reach magnitudes of 1e4 in the black letterbox border, where float32 rounding alone
        # gives differences of 1e-2.
        scored = (logits >= 0) | (ref_logits[0, :, 0] >= 0)
        diffs = {"detector_regressors_px": regressor_diff.max(),
                 "detector_regressors_relative": (regressor_diff / np.maximum(
                     np.abs(ref_regressors[0]), 1.0)).max(),
                 "detector_regressors_scored_px": regressor_diff[scored].max(initial=0.0),
                 "detector_logits": np.abs(logits - ref_logits[0, :, 0]).max()}
        faces = self.detector.detect(image_bgr)
        if not faces:
            return {k: float(v) for k, v in diffs.items()}
        box = faces[0].box
        crop, matrix = om.warp_square(image_bgr, (box[:2] + box[2:]) / 2,
                                      1.5 * max(box[2] - box[0], box[3] - box[1]),
                                      om.FACE_MESH_SIZE)
        tensor = om.rgb_tensor(crop, 0.0, 1.0)
        landmarks, logit = self.mesh.raw(tensor)
        ref_landmarks, ref_logit = self.reference["face_landmark"](tensor)
        diffs["face_mesh_xy_px"] = np.abs(landmarks[:, :2]
                                          - ref_landmarks.reshape(-1, 3)[:, :2]).max()
        diffs["face_mesh_z_px"] = np.abs(landmarks[:, 2] - ref_landmarks.reshape(-1, 3)[:, 2]).max()
        diffs["face_mesh_presence_logit"] = abs(logit - float(ref_logit.ravel()[0]))
        diffs["face_mesh_presence"] = 1.0 / (1.0 + np.exp(-logit))
        for side, (a, b) in EYE_CORNERS.items():
            corners = landmarks[[a, b], :2]
            eye, _ = om.warp_square(crop, corners.mean(axis=0),
                                    2.3 * np.linalg.norm(corners[1] - corners[0]), om.IRIS_SIZE)
            if side == "right":
                eye = np.ascontiguousarray(eye[:, ::-1])
            tensor = om.rgb_tensor(eye, 0.0, 1.0)
            contour, iris = self.iris.raw(tensor)
            ref_contour, ref_iris = self.reference["iris_landmark"](tensor)
            for key, ours, ref in (("iris_contour", contour, ref_contour),
                                   ("iris_iris", iris, ref_iris)):
                diff = np.abs(ours[:, :2] - ref.reshape(-1, 3)[:, :2]).max()
                name = f"{key}_xy_px"
                diffs[name] = max(diffs.get(name, 0.0), diff)
        return {k: float(v) for k, v in diffs.items()}


def summarise(per_image: dict) -> dict:
    """Max over images of every difference (min of the presence), plus counts."""
    keys = sorted({k for d in per_image.values() for k in d})
    summary = {k: (min if k == "face_mesh_presence" else max)(
        d[k] for d in per_image.values() if k in d) for k in keys}
    summary["images"] = len(per_image)
    summary["images_with_face"] = sum("face_mesh_xy_px" in d for d in per_image.values())
    return summary


def default_images():
    shared = Path(__file__).resolve().parents[1].parent / "shared"
    return (sorted((shared / "devset" / "images").glob("*.webp"))
            + sorted((shared / "footage").glob("*.jpg")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path)
    args = parser.parse_args(argv)
    checker = ParityChecker()
    per_image = {}
    for path in args.images or default_images():
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"cannot read {path}", file=sys.stderr)
            continue
        per_image[path.name] = checker.image(image)
    json.dump({"max_abs_diff": summarise(per_image)}, sys.stdout, indent=1)  # presence: min
    print()


if __name__ == "__main__":
    main()
