"""The real-time tracker: MediaPipe's 478 landmarks on a tracked ROI, a sigma per landmark,
and the real-time fitter (solver.realtime) with identity and focal length refined on
keyframes. Implements the pipeline's `FrameTracker` protocol.
"""

from __future__ import annotations

import numpy as np

from ..landmarks import onnx_models
from ..landmarks.mediapipe478 import (CROP_LAYOUT, CROP_SIZE, LEFT_EYE_IDS, MOUTH_IDS,
                                      RIGHT_EYE_IDS, MediaPipe478)
from ..landmarks.roi import RoiTracker
from ..landmarks.sigma import base_sigma, landmark_sigma
from ..landmarks.stopwatch import NO_LAPS, NoLaps
from ..solver.camera import Camera as SolverCamera
from ..solver.energies import TERM_NAMES
from ..solver.face_model import FaceModel
from ..solver.realtime import RealtimeTracker
from ..solver.regions import face_area_triangles
from .performance import Camera
from .pipeline import FrameResult
from .posing import CameraPoser, project_camera_space, triangle_facing
from .preview import mesh_edges, subsample_edges

LANDMARK_SET = "mediapipe478"
#: Below this face probability the landmarks are not used and the ROI is re-detected.
MIN_PRESENCE = 0.5
#: Initial focal length in image-size units (max(width, height)): a 53 degree field of view.
DEFAULT_FOCAL_FACTOR = 1.0
PREVIEW_MAX_EDGES = 3000


def default_focal(width: int, height: int) -> float:
    """Initial focal length (pixels) for footage of unknown intrinsics."""
    return DEFAULT_FOCAL_FACTOR * float(max(width, height))


class Networks:
    """The ONNX sessions a tracker runs: face detectors (short range, then full range for
    small faces) and the 478-landmark network. Load once, share between trackers."""

    def __init__(self, threads: int = 1, face_mesh: bool = True):
        self.detectors = [onnx_models.FaceDetector(variant, threads=threads)
                          for variant in ("short", "full")]
        #: None with face_mesh=False (the detectors only, for another landmark network).
        self.landmarks = MediaPipe478(threads=threads) if face_mesh else None

    def detect(self, image: np.ndarray):
        for detector in self.detectors:
            faces = detector.detect(image)
            if faces:
                return faces
        return []


class LandmarkFitTracker:
    """Per-frame landmarks + fit for footage of size (width, height).

    face_index : which face to follow (None: the largest); focal : focal length in pixels
    when known (then it is not refined); networks : shared `Networks` (default: loaded here,
    single-threaded).
    """

    expression_names: tuple[str, ...]
    energy_names = TERM_NAMES
    #: Whether the next frame's sigma needs the landmark triangles' facing from this fit
    #: (MediaPipe's sigma model, `landmarks.sigma`; a dense network predicts its own sigma).
    sigma_from_facing = True

    def __init__(self, model: FaceModel, width: int, height: int, *,
                 face_index: int | None = None, focal: float | None = None,
                 networks: Networks | None = None):
        self._networks = networks or Networks()
        self._roi = RoiTracker(self._networks.detect, CROP_SIZE, RIGHT_EYE_IDS, LEFT_EYE_IDS,
                               MOUTH_IDS, face_index, CROP_LAYOUT)
        self._base_sigma = base_sigma(LANDMARK_SET)
        self._setup_fit(model, LANDMARK_SET, width, height, focal)

    def _setup_fit(self, model: FaceModel, landmark_set: str, width: int, height: int,
                   focal: float | None) -> None:
        """The fitter for `landmark_set`'s embedding, and the vertices posed per frame."""
        self.model = model
        self.embedding = model.landmark_embedding(landmark_set)
        self.expression_names = model.expression_names
        camera = SolverCamera.monocular(focal or default_focal(width, height), width, height)
        self._fitter = RealtimeTracker(model, self.embedding, camera,
                                       refine_identity=True, refine_focal=focal is None)
        # Posed every frame with `sigma_from_facing`: the landmark triangles' corners (their
        # normals inflate sigma); when a preview is drawn: the preview wireframe's vertices.
        edges = subsample_edges(mesh_edges(model.triangles[face_area_triangles(model)]),
                                PREVIEW_MAX_EDGES)
        preview_ids, local = np.unique(edges, return_inverse=True)
        self.preview_edges = local.reshape(-1, 2)
        self._preview_poser = CameraPoser(model, preview_ids)
        self._corner_poser = CameraPoser(model, model.triangles[self.embedding.triangles].ravel())
        self._facing: np.ndarray | None = None
        self._laps: NoLaps = NO_LAPS

    @property
    def laps(self) -> NoLaps:
        """Per-stage timing (`landmarks.stopwatch`): the stages of `track` are detect or roi,
        the landmark network's (see `MediaPipe478.__call__`; the dense tracker's:
        landmark_net), sigma, fit and pose. Off (`NO_LAPS`) by default; the benches set a
        `Stopwatch`."""
        return self._laps

    @laps.setter
    def laps(self, laps: NoLaps) -> None:
        self._laps = laps
        if self._networks.landmarks is not None:
            self._networks.landmarks.laps = laps

    @property
    def keyframes(self) -> int:
        """How many keyframes have refined identity / focal length so far."""
        return len(self._fitter.keyframes)

    @property
    def identity(self) -> np.ndarray:
        return self._fitter.beta

    @property
    def camera(self) -> Camera:
        return Camera.intrinsics_of(self._fitter.camera)

    @property
    def solver_camera(self) -> SolverCamera:
        """The fitter's current camera (focal length refined on keyframes)."""
        return self._fitter.camera

    def track(self, frame_index: int, image: np.ndarray) -> FrameResult:
        laps = self._laps
        roi = self._roi.locate(image)
        laps.lap("detect" if self._roi.detected else "roi")
        if roi is None:
            return self._lost()
        mu, presence = self._networks.landmarks(image, roi)
        if presence < MIN_PRESENCE:
            return self._lost()
        sigma = landmark_sigma(self._base_sigma, roi.scale, presence, roi.to_crop(mu), roi.size,
                               self._facing)
        laps.lap("sigma")
        return self._fit(mu, sigma)

    def _lost(self) -> FrameResult:
        """No face this frame: the next one runs the detector, and the fit restarts from the
        landmarks of the frame the face returns in (not from the pose held until then)."""
        self._roi.update(None, False)
        self._facing = None
        self._fitter.lose_track()
        return FrameResult()

    def _fit(self, mu: np.ndarray, sigma: np.ndarray) -> FrameResult:
        """Fit this frame's landmarks mu (L, 2), sigma (L,) (image pixels); the ROI follows."""
        laps = self._laps
        fit = self._fitter.track(mu, sigma)
        laps.lap("fit")
        if not fit.success:
            self._lost()
            return FrameResult(mu=mu, sigma=sigma)
        self._roi.update(self._roi_points(mu, fit.pixels), True)
        usable = np.isfinite(mu).all(1) & (sigma > 0)
        error = np.linalg.norm(fit.pixels - mu, axis=1)[usable] / sigma[usable]
        camera, beta = self._fitter.camera, self.identity
        if self.sigma_from_facing:
            corners = self._corner_poser.camera_space(beta, fit.psi, fit.theta, camera)
            self._facing = triangle_facing(corners.reshape(3, -1, 3))
        result = FrameResult(psi=fit.psi, theta=fit.theta, landmark_error=float(error.mean()),
                             energies=np.array([fit.energies[name] for name in TERM_NAMES]),
                             mu=mu, sigma=sigma,
                             project_vertices=lambda: project_camera_space(
                                 self._preview_poser.camera_space(beta, fit.psi, fit.theta,
                                                                  camera), camera))
        laps.lap("pose")
        return result

    @staticmethod
    def _roi_points(mu: np.ndarray, fitted: np.ndarray) -> np.ndarray:
        """The landmarks (L, 2) the next frame's crop is placed from: the network's."""
        return mu
