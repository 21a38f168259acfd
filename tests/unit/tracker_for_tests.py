"""TEST-ONLY FrameTracker: a deterministic function of the image, no face model, no network.

It exists to drive tracking/pipeline.py and the CLI in tests; it is not a tracker and is never
shipped. psi are the mean brightness of 55 horizontal strips; "no face" on the frames listed.
"""

import numpy as np

from densecap.tracking.performance import Camera
from densecap.tracking.pipeline import FrameResult

EXPRESSIONS = tuple(f"strip{i}" for i in range(55))
TERMS = ("brightness", "contrast")


class StripBrightnessTracker:
    def __init__(self, footage, no_face_frames=(), on_frame=None):
        self.expression_names = EXPRESSIONS
        self.energy_names = TERMS
        grid = np.stack(np.meshgrid(np.linspace(0.2, 0.8, 6), np.linspace(0.2, 0.8, 6)), -1)
        self._vertices = (grid.reshape(-1, 2) * [footage.width, footage.height])
        self.preview_edges = np.array([[i, i + 1] for i in range(35) if (i + 1) % 6])
        self.no_face_frames = set(no_face_frames)
        self.on_frame = on_frame
        self.identity = np.zeros(100)
        self.camera = Camera(1000.0, footage.width, footage.height)
        self.frames_seen = []

    def track(self, frame_index, image):
        self.frames_seen.append(frame_index)
        if self.on_frame is not None:
            self.on_frame(frame_index)
        if frame_index in self.no_face_frames:
            return FrameResult()
        grey = image.mean(axis=2)
        psi = np.array([strip.mean() for strip in np.array_split(grey, 55)]) / 255.0
        theta = np.zeros(18)
        theta[15:] = image.reshape(-1, 3).mean(axis=0)
        return FrameResult(psi=psi, theta=theta, landmark_error=float(grey.std() / 255.0),
                           energies=np.array([grey.mean(), grey.std()]),
                           mu=self._vertices[::3], sigma=np.linspace(0.5, 10, 12),
                           vertices_2d=self._vertices)
