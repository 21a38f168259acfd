"""Build the MediaPipe face-mesh correspondence: each of the network's 478 landmarks
(468 mesh + 10 iris) as a point on the ICT surface (triangle + barycentric).

    python -m densecap.tools.build_correspondence [--network onnx|mediapipe|mediapipe-crop]
                                                  [--out landmarks/data/mediapipe478_embedding.npz]
                                                  [--debug-dir DIR]

Method: render the ICT head (training/render) in a set of views (neutral, identities,
expressions, small head poses, lights; `VIEWS`), run the network on each render, and ray-cast
every predicted landmark onto the rendered surface through the id/barycentric buffers
(mesh landmarks onto the fitting skin: one on an eyeball, lash or tooth pixel snaps to
the nearest skin pixel; iris landmarks onto the sclera of their eye, corneal bulge
included). Each hit is carried to
the neutral mesh by its (triangle, barycentric), the per-view neutral points are
combined by their coordinate-wise median (robust to a few bad views), and the result is
snapped to the closest point of the same surface (skin or sclera).

Statistics saved with the embedding, per landmark:
    spread_mm  RMS distance (mm, neutral mesh) of the per-view points from the result
    spread_px  RMS distance (px in the network's 192 px crop) between the network's
               prediction and the projection of the embedded point, over the views: the
               residual the front end can use as a base sigma
    snapped    number of views where the landmark missed the surface (silhouette)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..landmarks.errors import LandmarkError
from ..solver import load_face_model, mesh
from ..solver.conventions import THETA_SIZE, THETA_TRANSLATION, theta_rotation
from ..solver.face_model import FaceModel
from ..training.render import HeadScene, PinholeCamera, model_to_camera, rasterize, render_head
from ..training.render.surface import closest_surface_points, ray_cast
from .build_assets import PARTS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "landmarks" / "data" / "mediapipe478_embedding.npz"
FORMAT_VERSION = 1
NUM_MESH = 468
NUM_LANDMARKS = 478
#: MediaPipe's iris landmarks: centre then four rim points, the first eye then the other.
IRIS_FIRST = range(468, 473)
IRIS_SECOND = range(473, 478)
#: The network's crop: MediaPipe's ROI is the landmark bounding box's longer side
#: scaled by ROI_SCALE, resampled to CROP_PX.
CROP_PX = 192
ROI_SCALE = 1.5
#: Render: a square image, camera DISTANCE_CM from the head, field of view FIELD_CM wide
#: at that distance (the face fills about the middle half).
IMAGE_PX = 512
DISTANCE_CM = 60.0
FIELD_CM = 36.0

#: A network: RGB image (H, W, 3) uint8 -> (478, 2) float pixel coordinates, or None.
Network = Callable[[np.ndarray], "np.ndarray | None"]


@dataclass(frozen=True)
class View:
    """One render configuration: identity beta, named expression weights, root rotation
    (axis-angle, rad) and root translation (cm, model axes)."""

    name: str
    identity_seed: int | None = None          # None: the neutral identity (beta = 0)
    identity_scale: float = 0.8
    expressions: dict = field(default_factory=dict)
    rotation: tuple = (0.0, 0.0, 0.0)
    translation: tuple = (0.0, -2.0, -DISTANCE_CM)
    light: tuple = (0.3, -0.4, -1.0)          # towards the light, camera axes


VIEWS = (
    View("neutral"),
    *(View(f"identity{seed}", identity_seed=seed) for seed in range(1, 11)),
    View("jaw_open", expressions={"jawOpen": 0.2}),
    View("smile", expressions={"mouthSmile_L": 0.5, "mouthSmile_R": 0.5}),
    View("half_blink", expressions={"eyeBlink_L": 0.3, "eyeBlink_R": 0.3}),
    View("brows_up", expressions={"browInnerUp_L": 0.5, "browInnerUp_R": 0.5,
                                  "browOuterUp_L": 0.5, "browOuterUp_R": 0.5}),
    View("pucker", expressions={"mouthPucker": 0.4}),
    View("yaw_left", rotation=(0.0, 0.25, 0.0)),
    View("yaw_right", rotation=(0.0, -0.25, 0.0)),
    View("pitch_up", rotation=(-0.15, 0.0, 0.0)),
    View("pitch_down", rotation=(0.15, 0.0, 0.0)),
    View("roll", rotation=(0.0, 0.0, 0.1)),
    View("identity1_yaw", identity_seed=1, rotation=(0.0, 0.2, 0.0)),
    View("identity2_pitch", identity_seed=2, rotation=(0.1, -0.15, 0.0)),
    View("identity3_smile", identity_seed=3, expressions={"mouthSmile_L": 0.4, "mouthSmile_R": 0.4}),
    View("light_left", light=(-1.0, -0.3, -0.6)),
    View("light_right", light=(1.0, -0.3, -0.6)),
    View("identity4_light_top", identity_seed=4, light=(0.0, -1.0, -0.5)),
    View("identity5_light_front", identity_seed=5, light=(0.0, 0.0, -1.0)),
)


@dataclass(frozen=True)
class Render:
    """A rendered view: camera-space vertices (N, 3), camera, RGB image (H, W, 3) uint8."""

    view: View
    points: np.ndarray
    camera: PinholeCamera
    image: np.ndarray


def view_parameters(model: FaceModel, view: View) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """beta (B,), psi (E,), theta (18,) of a view."""
    beta = np.zeros(model.num_identity)
    if view.identity_seed is not None:
        beta = view.identity_scale * np.random.default_rng(view.identity_seed).normal(size=model.num_identity)
    psi = np.zeros(model.num_expressions)
    for name, weight in view.expressions.items():
        psi[model.expression_names.index(name)] = weight
    theta = np.zeros(THETA_SIZE)
    theta[theta_rotation(0)] = view.rotation
    theta[THETA_TRANSLATION] = view.translation
    return beta, psi, theta


def render_views(model: FaceModel, scene: HeadScene, views: Sequence[View] = VIEWS,
                 size: int = IMAGE_PX) -> list[Render]:
    """Render each view with a centred camera (see IMAGE_PX, FIELD_CM)."""
    camera = PinholeCamera.centred(size * DISTANCE_CM / FIELD_CM, size)
    renders = []
    for view in views:
        points = model_to_camera(mesh(model, *view_parameters(model, view)))
        image = render_head(scene, points, camera, light_direction=view.light).image
        renders.append(Render(view, points, camera, image))
    return renders


@dataclass(frozen=True)
class Lookup:
    """Triangle subsets (indices into model.triangles) that landmarks are cast onto."""

    skin: np.ndarray     # fitting skin (face, head and neck); a landmark on an eyeball,
                         # lash or tooth pixel snaps to the nearest skin pixel
    iris: np.ndarray     # both scleras, corneal bulge included

    @classmethod
    def from_model(cls, model: FaceModel) -> "Lookup":
        def within(*parts):
            inside = np.zeros(model.num_vertices, dtype=bool)
            for part in parts:
                inside[PARTS[part][0]:PARTS[part][1] + 1] = True
            return np.nonzero(inside[model.triangles].all(1))[0].astype(np.int32)

        skin = np.intersect1d(within("face", "head_neck"), model.fitting_triangles)
        return cls(skin, within("sclera_L", "sclera_R"))


def cast_onto(model: FaceModel, render: Render, subset: np.ndarray, pixels: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast image points (L, 2) onto a triangle subset of a render (one-sided z-buffer).
    Returns triangle (L,) into model.triangles, barycentric (L, 3), snapped (L,) bool."""
    corners = model.triangles[subset]
    buffers = rasterize(render.points, corners, render.camera,
                        cull_back=np.ones(len(subset), dtype=bool))
    local, barycentric, snapped = ray_cast(buffers, render.points[corners], render.camera, pixels)
    return subset[local], barycentric, snapped


def surface_points(vertices: np.ndarray, model: FaceModel, triangles: np.ndarray,
                   barycentric: np.ndarray) -> np.ndarray:
    """Points (L, 3) of embedded landmarks on a mesh (N, 3)."""
    return np.einsum("lk,lkc->lc", barycentric, vertices[model.triangles[triangles]])


def crop_scale(landmarks: np.ndarray) -> float:
    """Pixels of the network's crop per image pixel, by MediaPipe's landmarks-to-ROI rule."""
    extent = landmarks[:NUM_MESH].max(0) - landmarks[:NUM_MESH].min(0)
    return CROP_PX / (ROI_SCALE * float(extent.max()))


@dataclass(frozen=True)
class Correspondence:
    """The embedding and its statistics (see the module docstring)."""

    triangles: np.ndarray     # (L,) int32 into model.triangles, all fitting
    barycentric: np.ndarray   # (L, 3) float32
    spread_mm: np.ndarray     # (L,) float32
    spread_px: np.ndarray     # (L,) float32, at the 192 px crop
    snapped: np.ndarray       # (L,) int32, views where the landmark missed the surface
    views: tuple[str, ...]    # names of the views used
    iris_first_eye: str       # "L" or "R": the ICT eye of MediaPipe's landmarks 468-472


def build_correspondence(model: FaceModel, renders: Sequence[Render],
                         predictions: Sequence[np.ndarray | None]) -> Correspondence:
    """Combine per-view network landmarks (L, 2) (None: no face found) into an embedding.

    Landmarks 0..467 are cast onto the skin, 468..477 (when there are 478) onto the
    scleras."""
    lookup = Lookup.from_model(model)
    used = [(r, np.asarray(p, dtype=np.float64)) for r, p in zip(renders, predictions) if p is not None]
    if not used:
        raise ValueError("the network found no face in any render")
    count = used[0][1].shape[0]
    iris = np.arange(NUM_MESH, count) if count == NUM_LANDMARKS else np.arange(0)
    regular = np.setdiff1d(np.arange(count), iris)
    neutral = model.neutral.astype(np.float64)
    canonical = np.empty((len(used), count, 3))
    snapped = np.zeros(count, dtype=np.int32)
    iris_side = []
    for i, (render, landmarks) in enumerate(used):
        tri, bary, miss = cast_onto(model, render, lookup.skin, landmarks[regular])
        canonical[i, regular] = surface_points(neutral, model, tri, bary)
        snapped[regular] += miss
        if len(iris):
            tri, bary, miss = cast_onto(model, render, lookup.iris, landmarks[iris])
            canonical[i, iris] = surface_points(neutral, model, tri, bary)
            snapped[iris] += miss
            iris_side.append(np.sign(canonical[i, iris[0], 0]))
    target = np.median(canonical, axis=0)
    triangles = np.empty(count, dtype=np.int32)
    barycentric = np.empty((count, 3))
    for group, subset in ((regular, lookup.skin), (iris, lookup.iris)):
        if len(group):
            triangles[group], barycentric[group], _ = closest_surface_points(
                neutral, model.triangles, subset, target[group])
    result_neutral = surface_points(neutral, model, triangles, barycentric)
    spread_mm = 10.0 * np.sqrt(((canonical - result_neutral) ** 2).sum(-1).mean(0))
    residual_px = np.empty((len(used), count))
    for i, (render, landmarks) in enumerate(used):
        embedded = surface_points(render.points, model, triangles, barycentric)
        error = np.linalg.norm(render.camera.project(embedded) - landmarks, axis=1)
        residual_px[i] = error * crop_scale(landmarks)
    first_eye = ""
    if iris_side:
        if len(set(iris_side)) != 1:
            raise ValueError("MediaPipe's first iris landed on different eyes across renders")
        first_eye = "L" if iris_side[0] > 0 else "R"     # ICT: +X is the subject's left
    return Correspondence(
        triangles=triangles, barycentric=barycentric.astype(np.float32),
        spread_mm=spread_mm.astype(np.float32),
        spread_px=np.sqrt((residual_px ** 2).mean(0)).astype(np.float32),
        snapped=snapped, views=tuple(r.view.name for r, _ in used), iris_first_eye=first_eye)


def save(correspondence: Correspondence, model: FaceModel, path: Path, network: str) -> None:
    """Write the embedding npz (allow_pickle=False). `corners` (L, 3) lets a reader check
    that its model's triangulation matches."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        format_version=np.asarray(FORMAT_VERSION, dtype=np.int32),
        triangles=correspondence.triangles,
        barycentric=correspondence.barycentric,
        corners=model.triangles[correspondence.triangles],
        spread_mm=correspondence.spread_mm,
        spread_px=correspondence.spread_px,
        snapped=correspondence.snapped,
        views=np.asarray(correspondence.views),
        iris_first_eye=np.asarray(correspondence.iris_first_eye),
        network=np.asarray(network),
    )


# ----------------------------------------------------------------------------- networks

class MediaPipeReference:
    """MediaPipe's own Python inference (the `mediapipe` package, dev-only): detector +
    478-landmark face mesh with attention, on the whole image."""

    def __init__(self):
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as exc:
            raise RuntimeError("the mediapipe reference needs `pip install mediapipe==0.10.21` "
                               f"(dev only): {exc}") from exc
        self._mesh = face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                        max_num_faces=1)

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            return None
        height, width = image.shape[:2]
        points = result.multi_face_landmarks[0].landmark
        # MediaPipe's normalised coordinates put pixel centres at integers (x * width):
        # shift by half a pixel to this project's corner origin (measured: rescaling an
        # image by 2 moves the raw output by 0.25 px, as a centre origin predicts).
        return np.array([[p.x * width, p.y * height] for p in points]) + 0.5


#: MediaPipe's eye-corner landmarks (subject's right outer, subject's left outer): the
#: ROI is rotated so the line through them is horizontal.
ROI_ROTATION_LANDMARKS = (33, 263)


def roi_from_landmarks(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """MediaPipe's landmarks-to-ROI rule: centre (2,) of the mesh landmarks' bounding box,
    side = ROI_SCALE x its longer side, and the rotation (rad) that levels the eyes."""
    mesh_points = landmarks[:NUM_MESH]
    right, left = landmarks[list(ROI_ROTATION_LANDMARKS)]
    angle = float(np.arctan2(left[1] - right[1], left[0] - right[0]))
    return (mesh_points.min(0) + mesh_points.max(0)) / 2.0, CROP_PX / crop_scale(landmarks), angle


class CropNetwork:
    """A crop-level face-mesh network applied to a whole image as MediaPipe tracks: the
    crop (CROP_PX square) is the ROI of the previous pass's landmarks, rotated upright;
    the first pass takes the centred square of the image.

    crop_network : (CROP_PX, CROP_PX, 3) uint8 RGB -> (478, 2) crop pixels, or None
    """

    def __init__(self, crop_network: Network, passes: int = 2):
        self._crop_network = crop_network
        self._passes = passes

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        height, width = image.shape[:2]
        centre, side, angle = np.array([width / 2.0, height / 2.0]), float(min(width, height)), 0.0
        landmarks = None
        for _ in range(self._passes):
            crop, a, b = crop_image(image, centre, side, angle)
            found = self._crop_network(crop)
            if found is None:
                return landmarks
            landmarks = np.asarray(found, dtype=np.float64) @ a.T + b
            centre, side, angle = roi_from_landmarks(landmarks)
        return landmarks


def crop_image(image: np.ndarray, centre: np.ndarray, side: float, angle: float,
               size: int = CROP_PX) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample the square ROI (centre (2,) px, side px, rotated by angle rad) to a
    size x size crop (bilinear, edges replicated).

    Returns the crop and the map of crop pixels u (corner origin) to image pixels:
    p = a @ u + b, a (2, 2), b (2,)."""
    import cv2
    c, s = np.cos(angle), np.sin(angle)
    a = (side / size) * np.array([[c, -s], [s, c]])
    b = np.asarray(centre, dtype=np.float64) - a @ np.array([size / 2.0, size / 2.0])
    # cv2 samples at pixel-centre coordinates: shift both sides by half a pixel.
    to_image = np.c_[a, a @ [0.5, 0.5] + b - 0.5]
    crop = cv2.warpAffine(image, to_image, (size, size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, a, b


#: Eye-corner landmarks of the face mesh (subject's right eye, subject's left eye) and the
#: side of the square eye crop for the iris network, as a multiple of the corner distance
#: (MediaPipe's iris graph).
class OnnxFaceMesh:
    """The project's ONNX networks (`landmarks.mediapipe478`) on a CROP_PX face crop:
    (CROP_PX, CROP_PX, 3) uint8 RGB -> (478, 2) crop pixels, or None when the
    face-presence probability is below 0.5."""

    def __init__(self, models_dir: Path | None = None):
        from ..landmarks.mediapipe478 import MediaPipe478
        from ..landmarks.roi import RoiTransform
        self._network = MediaPipe478(models_dir)
        self._identity = RoiTransform(np.hstack([np.eye(2), np.zeros((2, 1))]), CROP_PX)

    def __call__(self, crop_rgb: np.ndarray) -> np.ndarray | None:
        points, presence = self._network(np.ascontiguousarray(crop_rgb[..., ::-1]),
                                         self._identity)
        return points if presence >= 0.5 else None


NETWORKS = {"onnx": lambda: CropNetwork(OnnxFaceMesh()),
            "mediapipe": MediaPipeReference,
            "mediapipe-crop": lambda: CropNetwork(MediaPipeReference())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", choices=sorted(NETWORKS), default="onnx")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--debug-dir", type=Path, help="write the renders with landmarks here")
    args = parser.parse_args(argv)
    try:
        network = NETWORKS[args.network]()
    except (RuntimeError, LandmarkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = load_face_model()
    renders = render_views(model, HeadScene.from_model(model))
    predictions = [network(render.image) for render in renders]
    missing = [r.view.name for r, p in zip(renders, predictions) if p is None]
    if missing:
        print(f"warning: no face found in {', '.join(missing)}", file=sys.stderr)
    try:
        result = build_correspondence(model, renders, predictions)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save(result, model, args.out, args.network)
    if args.debug_dir:
        _write_debug(args.debug_dir, model, renders, predictions, result)
    print(f"wrote {args.out}: {len(result.triangles)} landmarks from {len(result.views)} views; "
          f"spread mm median {np.median(result.spread_mm):.2f} max {result.spread_mm.max():.2f}; "
          f"spread px@{CROP_PX} median {np.median(result.spread_px):.2f} "
          f"max {result.spread_px.max():.2f}; iris 468-472 on ICT eye _{result.iris_first_eye}")
    return 0


def _write_debug(folder: Path, model, renders, predictions, result) -> None:
    import cv2
    folder.mkdir(parents=True, exist_ok=True)
    for render, landmarks in zip(renders, predictions):
        image = cv2.cvtColor(render.image, cv2.COLOR_RGB2BGR)
        image = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)
        embedded = render.camera.project(
            surface_points(render.points, model, result.triangles, result.barycentric.astype(np.float64)))
        for point in embedded:
            cv2.circle(image, tuple(int(v) for v in 3 * point), 2, (0, 255, 0), -1)
        if landmarks is not None:
            for point in landmarks:
                cv2.circle(image, tuple(int(v) for v in 3 * point), 1, (0, 0, 255), -1)
        cv2.imwrite(str(folder / f"{render.view.name}.png"), image)


if __name__ == "__main__":
    raise SystemExit(main())
