"""The real-time tracker driven by our own dense landmark network (`landmarks.dense_network`):
the same ROI strategy and fitter as `landmark_tracker.LandmarkFitTracker`, with the network's
own sigma fed to the fitter. Implements the pipeline's `FrameTracker` protocol.

Per frame:

1. the crop: on the first frame and whenever the track is lost, the face detector
   (BlazeFace, `Networks(face_mesh=False)`), then a second pass from the network's own
   iBUG eye and mouth centres on that crop (the detector's keypoints are not the iBUG
   centres the network was trained to be cropped around); otherwise from the previous
   frame's fitted landmarks (the model's projection: steadier than the raw network output);
   always upright at the network's own layout (`DenseLandmarks.layout`: the
   `dense_network.CROP_LAYOUT` its run trained on, maybe zoomed; `crop_transform`, the
   definition training renders with);
2. the network: mu (L, 2) and sigma = exp(log sigma) (L,) mapped to image pixels, fed to the
   fitter unchanged (no hand-made sigma model);
3. the crop's views (`CropViews`): in real time (`REALTIME_VIEWS`) the network also reads
   the crop flipped left to right, in the same call, each landmark averaging its own and
   its mirror's prediction (`DenseLandmarks.in_crop`); offline mode (`OFFLINE_VIEWS`) reads
   that pair at three zooms and averages the landmarks over them: two and six times the
   network time, measured on the devset in training/README.md;
4. no face: the network has no presence output, so the track is lost when its median iBUG-68
   sigma exceeds `MAX_MEDIAN_SIGMA` of the crop, or when the fit fails.
"""

from __future__ import annotations

import numpy as np

from ..landmarks.dense_network import (LEFT_EYE_IDS, MOUTH_IDS, NUM_IBUG, REALTIME_VIEWS,
                                       RIGHT_EYE_IDS, CropViews, DenseLandmarks,
                                       crop_transform)
from ..landmarks.roi import RoiTracker
from ..solver.face_model import FaceModel
from ..solver.landmark_sets import mirror_landmarks
from .landmark_tracker import LandmarkFitTracker, Networks
from .pipeline import FrameResult

#: Above this median sigma of the iBUG-68 landmarks, as a fraction of the crop side, the
#: crop is taken to show no face (the track is lost, the next frame runs the detector).
#: Measured with the committed dense320 (training/README.md, run 6): all 400 devset faces
#: 0.008-0.024 (median 0.011), frontal faces in talking_1.mp4 and multi_face_hamilton.mp4
#: 0.009-0.020, that clip's profile (frames 21-45, which MediaPipe's face mesh rejects)
#: 0.022-0.048, 0.16-0.68 once the head turns away; crops of talking_1's first frame moved
#: off the face 0.013-0.54 (the small moves still show part of the face); a uniform grey
#: crop 0.79, uniform noise 0.14-0.28. Re-measured for run 7: devset faces 0.007-0.026
#: (median 0.011), grey 0.62, noise 0.15-0.19; for run 9: devset faces
#: 0.006-0.032 (median 0.010), grey 0.37, noise 0.10-0.13; for run 10: devset faces
#: 0.006-0.031 (median 0.011), grey 0.27, noise 0.08-0.12; for run 23 (devset faces in crops
#: placed from their labels): 0.006-0.033 (median 0.010), grey 0.52, noise 0.16-0.30; for
#: run 32 (the same way): 0.006-0.024 (median 0.009), grey 0.73, noise 0.10-0.26; for run 34:
#: 0.006-0.023 (median 0.009), grey 0.91, noise 0.17-0.28; for run 40 (crops zoomed
#: 1.1): 0.006-0.022 (median 0.010), grey 0.76, noise 0.32-0.49; for run 42 (zoomed 1.1):
#: 0.006-0.027 (median 0.010), grey 0.66, noise 0.33-0.50; for run 45 (the committed dense320
#: now, a soup of runs 42-44): 0.006-0.023 (median 0.010), grey 0.84, noise 0.15-0.27; for
#: dense703 run 25: devset faces 0.007-0.026 (median 0.010), grey 0.72, noise 0.13-0.28; for
#: run 35: 0.006-0.021 (median 0.010), grey 0.50, noise 0.21-0.29; for run 36 (the committed
#: dense703 now): 0.006-0.021 (median 0.009), grey 0.64, noise 0.33-0.50. A network trained
#: differently needs this re-measured.
MAX_MEDIAN_SIGMA = 0.06


class DenseFitTracker(LandmarkFitTracker):
    """Per-frame dense landmarks + fit for footage of size (width, height).

    network : the loaded `DenseLandmarks`; face_index : which face to follow (None: the
    largest); focal : focal length in pixels when known (then it is not refined);
    networks : shared detectors (default: loaded here, single-threaded, no face mesh);
    views : how each crop is read (step 3 above; offline mode: `OFFLINE_VIEWS`).
    """

    sigma_from_facing = False

    def __init__(self, model: FaceModel, width: int, height: int, network: DenseLandmarks, *,
                 face_index: int | None = None, focal: float | None = None,
                 networks: Networks | None = None, views: CropViews = REALTIME_VIEWS):
        self.network = network
        self.views = views
        self._mirror = (mirror_landmarks(model, model.landmark_embedding(network.landmark_set))
                        if views.mirror else None)
        self._networks = networks or Networks(face_mesh=False)
        self._roi = RoiTracker(self._networks.detect, network.size, RIGHT_EYE_IDS,
                               LEFT_EYE_IDS, MOUTH_IDS, face_index, network.layout)
        self._setup_fit(model, network.landmark_set, width, height, focal)

    def track(self, frame_index: int, image: np.ndarray) -> FrameResult:
        laps = self._laps
        roi = self._roi.locate(image)
        laps.lap("detect" if self._roi.detected else "roi")
        if roi is None:
            return self._lost()
        if self._roi.detected:      # a first look to place the crop, then the real one
            mu, sigma = self.network(image, roi)
            if self._confident(sigma, roi.scale):
                roi = crop_transform(mu, self.network.size, layout=self.network.layout)
                mu, sigma = self.network(image, roi, self._mirror, self.views.zooms)
        else:
            mu, sigma = self.network(image, roi, self._mirror, self.views.zooms)
        laps.lap("landmark_net")
        if not self._confident(sigma, roi.scale):
            return self._lost()
        return self._fit(mu, sigma)

    def _confident(self, sigma: np.ndarray, roi_scale: float) -> bool:
        """Whether the network's sigma (L,) image px says the crop shows a face."""
        median = float(np.median(sigma[:NUM_IBUG])) * roi_scale / self.network.size
        return median <= MAX_MEDIAN_SIGMA

    @staticmethod
    def _roi_points(mu: np.ndarray, fitted: np.ndarray) -> np.ndarray:
        """The landmarks (L, 2) the next frame's crop is placed from: the fitted ones."""
        return fitted
