"""Synthetic training images of the ICT head with exact dense-landmark labels (dev-only).

Each sample is drawn from its own random stream ``default_rng([seed, index])``, so a
sample depends only on (seed, index, config) and datasets can be split, resumed and
rendered in parallel. A sample:

1. face: identity beta ~ N(0, 1) times a random scale; expression psi (ARKit weights in
   [0, 1]): nearly neutral, one expression, or a random combination, plus blinks (both
   eyes or one), jaw opening and brows lowered or raised; face proportions beyond ICT's
   identity space (`ShapeWarp`: chin length, lower face width, brow height); pose theta:
   root, neck and head rotations, gaze (eye joints); see `SyntheticConfig` for every range;
2. appearance: per-vertex albedo from `AlbedoSampler` (skin tone, lips, brows of random
   width, stubble or beard, blotches and freckles, eye colour, scalp hair above a random
   hairline, lipstick, eyeliner or eyeshadow); one directional light with cast shadows and
   a specular highlight, a coloured fill light, ambient light scaled by ambient occlusion,
   fine image-space skin texture, age lines (`Wrinkles`), brows drawn as hair (`BrowHair`,
   where the config asks for it);
3. camera: the head at a random distance and off-axis direction from a pinhole camera;
   the crop is placed as the front end places it (`landmarks.dense_network.crop_transform`:
   the eye centres and the mouth centre of the iBUG points at `CROP_LAYOUT`, zoomed by
   `crop_zoom`: the one definition training and run time share, stored with the exported
   network) and then jittered in
   rotation, scale and shift (the tracker's ROI is never exact). Because a 2D similarity
   of a pinhole image is again a pinhole image (camera rolled about its axis, focal and
   principal point moved), the head is rendered straight into the `size` px crop;
4. background (random textures, or crops of `../shared/footage` frames away from the
   face) with a hair mass behind the head, occluders drawn over the head (hair strands,
   glasses frames and tinted or dark lenses, bars, hand-like blobs, shoulders and a collar
   over the neck), then
   image augmentation (colour, exposure, grey, blur, noise, JPEG).

A config may draw most samples in capture conditions (`CaptureConditions`: a performer
facing the camera, narrower head poses, a soft key light from the front and above, a truer
white balance) and shade skin-like (`skin_lighting`); `RENDER_STYLES` names the mixes the
runs trained on. Those extra draws come from streams seeded by the sampled light, so a
sample's own stream, and every generic sample, stays as it was.

Labels: the projection of every landmark of the set (occluded ones included) in crop
pixels (corner origin), and a visibility flag (in front of the head's depth buffer and not
under an occluder). The networks take the crop as BGR, like the front end's frames.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ..landmarks.dense_network import CROP_LAYOUT, LEFT_EYE_IDS, RIGHT_EYE_IDS, crop_transform
from ..landmarks.roi import RoiTransform
from ..solver.conventions import MODEL_TO_OPENCV, NUM_JOINTS, THETA_SIZE, theta_rotation
from ..solver.face_model import FaceModel
from ..solver.model import forward_kinematics, joints, landmark_vertex_ids, rodrigues
from ..tools.build_assets import PARTS, smoothstep
from .render import (BROW_POLYLINES, UPPER_LID_POLYLINES, Albedo, HeadScene, PinholeCamera,
                     RasterBuffers, SkinLighting, ambient_occlusion, band_weight, ibug_vertices,
                     light_visibility, model_to_camera, nearest_on_polyline, polyline_distance,
                     render_head)

#: A landmark counts as visible when it is at most this far (cm) behind the depth buffer
#: and the pixel shows the same part (material, face and back of head as one): a thin
#: part in front (lashes, the sclera's rim over the iris, teeth behind lips) hides it.
VISIBLE_DEPTH_CM = 0.3
#: Nominal focal length (px) of the camera before cropping (only the ratio to the crop
#: matters; the head's off-axis angle and distance set the perspective).
NOMINAL_FOCAL = 1000.0
DEFAULT_FOOTAGE = Path(__file__).resolve().parent.parent.parent / "shared" / "footage"

SKIN_TONES = np.array([[0.96, 0.80, 0.70], [0.90, 0.70, 0.58], [0.78, 0.57, 0.43],
                       [0.62, 0.43, 0.30], [0.45, 0.30, 0.20], [0.30, 0.20, 0.14]])
HAIR_COLOURS = np.array([[0.05, 0.04, 0.03], [0.20, 0.13, 0.08], [0.40, 0.27, 0.15],
                         [0.75, 0.60, 0.38], [0.55, 0.25, 0.12], [0.55, 0.55, 0.55]])
#: Lipsticks (reds, pinks, browns, plums) and eye make-up (black, browns, greys, colours).
LIPSTICKS = np.array([[0.60, 0.08, 0.10], [0.80, 0.25, 0.35], [0.85, 0.45, 0.50],
                      [0.55, 0.30, 0.25], [0.35, 0.10, 0.18], [0.70, 0.20, 0.15]])
EYE_MAKEUP = np.array([[0.03, 0.03, 0.03], [0.20, 0.12, 0.08], [0.40, 0.30, 0.25],
                       [0.35, 0.35, 0.40], [0.25, 0.30, 0.45], [0.45, 0.30, 0.45]])
#: Grey-white hair that a greying beard is mixed towards.
GREY_HAIR = np.array([0.78, 0.77, 0.74])
IRIS_COLOURS = np.array([[0.30, 0.18, 0.09], [0.15, 0.09, 0.05], [0.30, 0.42, 0.60],
                         [0.35, 0.45, 0.30], [0.45, 0.40, 0.25], [0.45, 0.48, 0.52]])


@dataclass(frozen=True)
class SyntheticConfig:
    """Ranges of the random scene (angles in degrees, lengths in cm, sizes in crop px)."""

    size: int = 160
    crop_zoom: float = 1.0             # the face this much larger in the crop than CROP_LAYOUT
    identity_scale: tuple = (0.3, 1.3)
    neutral_prob: float = 0.15
    single_prob: float = 0.35          # else: a combination
    combination_rate: float = 0.15
    blink_prob: float = 0.2
    jaw_prob: float = 0.3
    brow_prob: float = 0.3             # brows lowered (mostly) or raised, on top of the above
    yaw_std: float = 30.0
    yaw_max: float = 85.0
    pitch_std: float = 12.0
    roll_std: float = 12.0
    neck_std: float = 6.0
    head_std: float = 6.0
    gaze_std: float = 15.0
    distance: tuple = (35.0, 160.0)
    off_axis_max: float = 18.0
    jitter_rotation: float = 6.0
    jitter_scale: float = 0.08
    jitter_shift: float = 0.04
    align_with_mouth_prob: float = 0.7
    footage_prob: float = 0.5
    hair_prob: float = 0.8             # scalp hair painted on the head
    hair_volume_prob: float = 0.7      # with hair: a hair mass behind the head
    long_hair_prob: float = 0.4        # with a hair mass: falling to the shoulders
    clothing_prob: float = 0.7         # shoulders and a collar over the neck
    shadow_prob: float = 0.7           # cast shadows (else ambient occlusion only)
    specular_max: float = 0.4
    fill_prob: float = 0.5             # a second, coloured light without shadows
    soft_key_prob: float = 0.0         # the key light soft, from the front and above
    skin_lighting_prob: float = 0.0    # `SkinLighting` shading (else Lambert + ambient)
    skin_texture_prob: float = 0.5     # fine multiplicative noise over the head (pores)
    wrinkle_prob: float = 0.35         # age lines on the face (`Wrinkles`)
    brow_hair_prob: float = 0.0        # brows as hair (`BrowHair`) instead of a flat band
    warp_prob: float = 0.9             # each of `ShapeWarp`'s three components
    chin_stretch: tuple = (-0.2, 0.45)  # the face below the mouth line, relative
    jaw_widening: tuple = (-0.12, 0.22)  # the lower face's width, relative
    brow_lift: tuple = (-0.7, 0.5)     # the brows and the forehead, cm
    beard_volume_prob: float = 0.6     # a full beard: its mass beyond the jaw line
    lipstick_prob: float = 0.15
    eye_makeup_prob: float = 0.15      # liner or shadow along the upper lids
    strands_prob: float = 0.25
    glasses_prob: float = 0.15
    lens_prob: float = 0.6             # with glasses: tinted lenses (some dark: sunglasses)
    bar_prob: float = 0.1
    blob_prob: float = 0.2
    white_balance: float = 0.25        # each colour channel's gain within 1 +- this
    grey_prob: float = 0.1
    blur_prob: float = 0.4
    noise_prob: float = 0.5
    jpeg_prob: float = 0.5
    lowres_prob: float = 0.15
    capture: "CaptureConditions | None" = None   # most samples drawn in capture conditions


@dataclass(frozen=True)
class CaptureConditions:
    """Samples drawn as a performer faces a capture camera: narrower head poses, milder
    expressions (where given), a soft key light from the front and above, a truer white
    balance (where given). Each field other than `wide_every` replaces the
    `SyntheticConfig` field of its name; the samples with index % wide_every ==
    wide_every - 1 keep the config's own ranges (profiles, grimaces, hard light)."""

    wide_every: int = 4
    yaw_std: float = 16.0
    pitch_std: float = 9.0
    roll_std: float = 8.0
    neutral_prob: float | None = None
    combination_rate: float | None = None
    soft_key_prob: float = 0.7
    white_balance: float | None = None

    def config_for(self, config: SyntheticConfig, index: int) -> SyntheticConfig:
        """The config sample `index` is drawn from."""
        if index % self.wide_every == self.wide_every - 1:
            return config
        changes = {name: value for name, value in asdict(self).items()
                   if name != "wide_every" and value is not None}
        return replace(config, **changes)


#: The third seed of the stream `BrowHair` draws from (with the sample's seed and index).
BROW_HAIR_STREAM = 7

#: The kinds of renders a run trains on (`training.train --renders`): SyntheticConfig fields
#: over the defaults. "capture" and "capture-close" are runs 31 and 32 (training/README);
#: "capture-brows" is "capture-close" with most brows drawn as hair (`BrowHair`).
RENDER_STYLES = {
    "generic": {},
    "capture": {"capture": CaptureConditions()},
    "capture-close": {"skin_lighting_prob": 0.7, "capture": CaptureConditions(
        wide_every=8, yaw_std=14.0, pitch_std=8.0, roll_std=6.0, neutral_prob=0.25,
        combination_rate=0.1, soft_key_prob=0.85, white_balance=0.12)},
}
RENDER_STYLES["capture-brows"] = {**RENDER_STYLES["capture-close"], "brow_hair_prob": 0.85}


def render_style(name: str, size: int, crop_zoom: float = 1.0) -> SyntheticConfig:
    """The SyntheticConfig of `RENDER_STYLES[name]` at crop size `size`, the face placed
    `crop_zoom` times larger than `CROP_LAYOUT` puts it."""
    if name not in RENDER_STYLES:
        raise ValueError(f"renders must be one of {sorted(RENDER_STYLES)}, got {name!r}")
    if crop_zoom <= 0.0:
        raise ValueError(f"crop_zoom must be positive, got {crop_zoom}")
    return SyntheticConfig(size=size, crop_zoom=crop_zoom, **RENDER_STYLES[name])


@dataclass(frozen=True)
class Sample:
    """One synthetic crop and its labels.

    image : (S, S, 3) uint8, BGR
    landmarks : (L, 2) float32, crop pixels, corner origin (may lie outside the crop)
    visible : (L,) bool, in front of the head surface and not under an occluder
    triangle_id : (S, S) int32, the head render's triangle per pixel (index into
        FaceModel.triangles, -1 background), before occluders
    scene : SceneParameters it was rendered from
    """

    image: np.ndarray
    landmarks: np.ndarray
    visible: np.ndarray
    triangle_id: np.ndarray = field(repr=False)
    scene: "SceneParameters" = field(repr=False)


@dataclass(frozen=True)
class SceneParameters:
    """What a sample shows: the face beta (B,), psi (E,), theta (18,) (model space), the
    `ShapeWarp` amounts warp (3,), the crop camera's extrinsics x_cam = rotation (3, 3) @ x
    + translation (3,), and the crop camera (PinholeCamera)."""

    beta: np.ndarray
    psi: np.ndarray
    theta: np.ndarray
    warp: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    camera: PinholeCamera


class PosedMesh:
    """M(beta, psi, theta) in float32 for rendering: one matrix product for the shape,
    blended rotations for the skinning (same result as `solver.model.mesh`)."""

    def __init__(self, model: FaceModel):
        self.model = model
        self.basis = np.concatenate([model.identity_basis, model.expression_basis]
                                    ).reshape(model.num_identity + model.num_expressions, -1)
        self.neutral = model.neutral.reshape(-1).astype(np.float32)
        self.weights = model.skin_weights.astype(np.float32)

    def __call__(self, beta: np.ndarray, psi: np.ndarray, theta: np.ndarray,
                 displacement: np.ndarray | None = None) -> np.ndarray:
        """(N, 3) float64 posed vertices, cm, model axes; displacement (N, 3) is added to
        the shaped vertices before skinning (`ShapeWarp`)."""
        coefficients = np.concatenate([beta, psi]).astype(np.float32)
        vertices = (self.neutral + coefficients @ self.basis).reshape(-1, 3)
        if displacement is not None:
            vertices = vertices + displacement.astype(np.float32)
        rotations = rodrigues(np.asarray(theta[:3 * NUM_JOINTS]).reshape(NUM_JOINTS, 3))
        global_rot, offsets = forward_kinematics(rotations, joints(self.model, beta),
                                                 self.model.joint_parents)
        blended = (self.weights @ global_rot.reshape(NUM_JOINTS, 9).astype(np.float32)
                   ).reshape(-1, 3, 3)
        posed = np.einsum("nij,nj->ni", blended, vertices) + self.weights @ offsets.astype(np.float32)
        return posed.astype(np.float64) + theta[3 * NUM_JOINTS:]


class ShapeWarp:
    """Face proportions beyond ICT's identity space: a smooth displacement (N, 3) (cm, model
    axes) of the shaped vertices, a function of their neutral position, added before
    skinning, so the labels (embedded surface points) follow it exactly.

    ``displacement(amounts)`` for amounts (3,) = (s, w, b):
    - chin length: the face below the mouth line stretched vertically by 1 + s down to the
      chin, the shift fading out over the upper neck (the torso's neck base stays);
    - lower face width: x scaled by 1 + w, ramping in from the cheekbones to below the
      mouth and fading out over the upper neck;
    - brow height: the brows and everything above them moved up by b cm, ramping in
      between the eyes' contours (1.4 cm from an eye's centre at most, they stay) and the
      brows (2.9 cm and more), above the eye line only (the eyeballs and lashes stay).
    Why: on real faces the network placed chins and brows by ICT's proportions more than
    by the image (the lower face of real faces stretched 15 % moved its chin 12 % of the way).
    Measured (training/README, runs 21-22): drawn this wide, the fitted devset error went
    from 8.00 to 7.91 % (brows 8.46 to 7.99 %) and the chin follows 29 % of the stretch.
    The neck and head pivots stay where the identity puts them (`joints(model, beta)`).
    """

    def __init__(self, model: FaceModel):
        neutral = model.neutral.astype(np.float64)
        ibug = neutral[ibug_vertices(model)]
        x, y = neutral[:, 0], neutral[:, 1]
        mouth_y, chin_y = ibug[48:60, 1].mean(), ibug[8, 1]
        eye_y = ibug[36:48, 1].mean()
        upper_neck = 1.0 - smoothstep(y, chin_y - 1.0, chin_y - 4.0)
        self.fields = np.zeros((3,) + neutral.shape)
        self.fields[0, :, 1] = -np.clip(mouth_y - y, 0.0, mouth_y - chin_y) * upper_neck
        self.fields[1, :, 0] = x * smoothstep(y, ibug[33, 1] + 2.5, mouth_y) * upper_neck
        eye_centres = np.stack([ibug[36:42, :2].mean(0), ibug[42:48, :2].mean(0)])
        from_eye = np.linalg.norm(neutral[:, None, :2] - eye_centres, axis=2).min(1)
        brow = smoothstep(from_eye, 1.8, 2.7) * smoothstep(y, eye_y + 0.3, eye_y + 1.2)
        brow[PARTS["eyeball_L"][0]:PARTS["eyelashes"][1] + 1] = 0.0
        self.fields[2, :, 1] = brow

    def sample(self, rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
        """amounts (3,): each component drawn with `config.warp_prob`, else 0."""
        ranges = (config.chin_stretch, config.jaw_widening, config.brow_lift)
        draws = np.array([rng.uniform(*r) for r in ranges])
        return draws * (rng.uniform(size=3) < config.warp_prob)

    def displacement(self, amounts: np.ndarray) -> np.ndarray:
        """(N, 3) for amounts (3,)."""
        return np.tensordot(amounts, self.fields, axes=1)


@dataclass(frozen=True)
class Appearance:
    """One sample's colours: albedo (N, 3) float32 RGB in [0, 1]; hair, beard (N,) float32
    in [0, 1], how much of each vertex is scalp hair, beard or stubble; hair_colour,
    beard_colour (3,) RGB in [0, 1]."""

    albedo: np.ndarray
    hair: np.ndarray
    hair_colour: np.ndarray
    beard: np.ndarray
    beard_colour: np.ndarray


class AlbedoSampler:
    """Random per-vertex albedo. The scene's albedo is linear in the `Albedo` colours,
    so it is computed once per colour slot (one-hot albedos) and mixed per sample; then
    skin variation, brows of random width, stubble or beard, and scalp hair are painted
    over it.

    Scalp hair (approximate, chosen by eye on renders): a vertex of the skin is hair above
    a hairline that runs from `HAIRLINE_FRONT` cm (model y; the brows are at 6.3) over the
    forehead down to `HAIRLINE_BACK` at the nape, kept above `EAR_GUARD_Y` around the ears."""

    SLOTS = tuple(Albedo.__dataclass_fields__)
    HAIRLINE_FRONT = (8.5, 12.0)
    HAIRLINE_BACK = (-10.0, -3.0)
    HAIRLINE_Z = (-2.0, 9.0)       # model z where the line is at the back / front height
    EAR_GUARD_Y = 5.5

    def __init__(self, model: FaceModel):
        zero = {slot: (0.0, 0.0, 0.0) for slot in self.SLOTS}
        self.mix = np.stack([
            HeadScene.from_model(model, Albedo(**{**zero, slot: (1.0, 1.0, 1.0)})).albedo[:, 0]
            for slot in self.SLOTS], 1)                                  # (N, slots)
        neutral = model.neutral.astype(np.float64)
        self.positions = neutral
        skin = self.mix[:, self.SLOTS.index("skin")]
        ibug = ibug_vertices(model)
        nose_y = neutral[ibug[33], 1]
        jaw = (neutral[:, 1] < nose_y) & (neutral[:, 2] > neutral[ibug[0], 2] - 1.0)
        self.stubble = skin * jaw * (neutral[:, 1] > neutral[ibug[8], 1] - 3.0)
        self.skin = skin
        self.brow_distance = polyline_distance(model, BROW_POLYLINES)
        self.lid_distance = polyline_distance(model, UPPER_LID_POLYLINES)
        x, y, z = neutral.T
        self.ear = (np.abs(x) > 6.5) & (z > -3.5) & (z < 4.5)
        low, high = self.HAIRLINE_Z
        self.hairline_position = np.clip((z - low) / (high - low), 0.0, 1.0)

    def __call__(self, rng: np.random.Generator, hair_prob: float = 0.0,
                 lipstick_prob: float = 0.0, eye_makeup_prob: float = 0.0,
                 painted_brows: bool = True) -> Appearance:
        """One sample's appearance; scalp hair, lipstick and eye make-up with the given
        probabilities; without `painted_brows` the brows are skin (`BrowHair` draws them;
        the same draws either way)."""
        tone = _palette(rng, SKIN_TONES)
        hair = _palette(rng, HAIR_COLOURS)
        colours = {
            "skin": tone,
            "lips": (_palette(rng, LIPSTICKS) if rng.uniform() < lipstick_prob
                     else tone * rng.uniform([0.7, 0.45, 0.45], [0.95, 0.75, 0.75])),
            "brows": hair * rng.uniform(0.8, 1.2) if rng.uniform() < 0.8 else tone * 0.7,
            "mouth": rng.uniform([0.25, 0.05, 0.05], [0.45, 0.18, 0.18]),
            "gums": rng.uniform([0.6, 0.3, 0.3], [0.85, 0.5, 0.5]),
            "teeth": rng.uniform(0.75, 0.95) * np.array([1.0, 0.97, 0.88]),
            "sclera": rng.uniform(0.8, 0.95) * np.array([1.0, 0.97, 0.95]),
            "iris": _palette(rng, IRIS_COLOURS),
            "pupil": np.full(3, rng.uniform(0.01, 0.05)),
            "lashes": hair * 0.5,
        }
        if not painted_brows:
            colours["brows"] = tone
        albedo = self.mix @ np.stack([np.asarray(colours[s], dtype=np.float64) for s in self.SLOTS])
        # Blotches: a few smooth bumps of darker/redder or lighter skin.
        variation = np.ones((len(albedo), 3))
        for _ in range(rng.integers(0, 6)):
            centre = self.positions[rng.integers(len(self.positions))]
            radius = rng.uniform(1.0, 4.0)
            bump = np.exp(-0.5 * np.sum((self.positions - centre) ** 2, 1) / radius ** 2)
            variation += np.outer(bump, rng.uniform(-0.15, 0.1, 3))
        if rng.uniform() < 0.2:  # freckles
            spots = rng.uniform(size=len(albedo)) < rng.uniform(0.01, 0.05)
            variation[spots] *= rng.uniform(0.6, 0.85)
        albedo = albedo * (1 + (variation - 1) * self.skin[:, None])
        if rng.uniform() < 0.6:  # brows of another width and darkness
            brows = (band_weight(np.abs(self.brow_distance), rng.uniform(0.2, 0.6))
                     * rng.uniform(0.5, 1.0))
            shade = rng.uniform(0.4, 1.1)
            if painted_brows:
                albedo = _paint(albedo, brows, hair * shade)
        if rng.uniform() < eye_makeup_prob:  # eyeliner (narrow, dark) or eyeshadow (wide)
            half = rng.uniform(0.04, 0.25)    # a band above the lid margin
            liner = band_weight(np.abs(self.lid_distance - half), half) * rng.uniform(0.4, 0.9)
            albedo = _paint(albedo, liner, _palette(rng, EYE_MAKEUP))
        beard, beard_colour = np.zeros(len(albedo)), hair
        if rng.uniform() < 0.3:  # stubble, or a beard (some greying)
            if rng.uniform() < 0.3:
                beard_colour = hair + rng.uniform(0.3, 1.0) * (GREY_HAIR - hair)
            beard = rng.uniform(0.1, 1.0) * self.stubble * rng.uniform(0.5, 1.0, len(albedo))
            albedo = _paint(albedo, beard, beard_colour)
        scalp = np.zeros(len(albedo))
        if rng.uniform() < hair_prob:
            front, back = rng.uniform(*self.HAIRLINE_FRONT), rng.uniform(*self.HAIRLINE_BACK)
            line = back + (front - back) * self.hairline_position ** rng.uniform(0.4, 1.0)
            line = np.where(self.ear, np.maximum(line, self.EAR_GUARD_Y), line)
            line = line + rng.normal(0, 0.25, len(line))
            scalp = self.skin * np.clip((self.positions[:, 1] - line) / 0.6 + 0.5, 0.0, 1.0)
            albedo = _paint(albedo, scalp, hair * rng.uniform(0.75, 1.25, (len(albedo), 1)))
        return Appearance(np.clip(albedo, 0.0, 1.0).astype(np.float32), scalp.astype(np.float32),
                          hair, beard.astype(np.float32), beard_colour)


def _paint(albedo: np.ndarray, weight: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """albedo (N, 3) blended towards colour (3,) or per-vertex colours (N, 3) by weight
    (N,) in [0, 1]."""
    return albedo * (1 - weight[:, None]) + weight[:, None] * colour


def _palette(rng: np.random.Generator, colours: np.ndarray) -> np.ndarray:
    """A random colour between two neighbouring palette entries, slightly varied."""
    k = rng.uniform(0, len(colours) - 1)
    low = int(k)
    colour = colours[low] + (k - low) * (colours[min(low + 1, len(colours) - 1)] - colours[low])
    return np.clip(colour * rng.uniform(0.9, 1.1, 3), 0.0, 1.0)


def _rotation_vector(rng, axes_std_deg, limit_deg=None) -> np.ndarray:
    """Axis-angle (3,) from normal pitch (X), yaw (Y), roll (Z) angles in degrees."""
    angles = rng.normal(0.0, axes_std_deg)
    if limit_deg is not None:
        angles = np.clip(angles, -np.asarray(limit_deg), limit_deg)
    rx, ry, rz = (rodrigues(np.radians(a) * axis) for a, axis in zip(angles, np.eye(3)))
    matrix = rz @ ry @ rx
    return cv2.Rodrigues(matrix)[0].ravel()


def random_face(rng: np.random.Generator, model: FaceModel, config: SyntheticConfig
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """beta (B,), psi (E,), theta (18,) of one sample (see the module docstring)."""
    names = model.expression_names
    beta = rng.normal(size=model.num_identity) * rng.uniform(*config.identity_scale)
    psi = np.zeros(model.num_expressions)
    mode = rng.uniform()
    if mode < config.neutral_prob:
        psi = rng.uniform(0, 0.1, model.num_expressions) * (rng.uniform(size=len(psi)) < 0.2)
    elif mode < config.neutral_prob + config.single_prob:
        psi[rng.integers(model.num_expressions)] = rng.uniform(0.3, 1.0)
    else:
        active = rng.uniform(size=len(psi)) < config.combination_rate
        psi[active] = rng.uniform(0, 1, active.sum())
    if rng.uniform() < config.blink_prob:
        amount = rng.uniform(0.5, 1.0)
        sides = ("_L", "_R") if rng.uniform() < 0.7 else (("_L",) if rng.uniform() < 0.5 else ("_R",))
        for side in sides:
            psi[names.index("eyeBlink" + side)] = amount
    if rng.uniform() < config.jaw_prob:
        psi[names.index("jawOpen")] = rng.uniform(0.2, 1.0)
    if rng.uniform() < config.brow_prob:   # brows lowered or raised (both sides alike)
        shape = ("browDown", "browInnerUp", "browOuterUp")[rng.choice(3, p=[0.6, 0.2, 0.2])]
        amount = rng.uniform(0.2, 1.0)
        for side in ("_L", "_R"):
            psi[names.index(shape + side)] = np.clip(amount + rng.normal(0, 0.1), 0.0, 1.0)
    theta = np.zeros(THETA_SIZE)
    theta[theta_rotation(0)] = _rotation_vector(
        rng, [config.pitch_std, config.yaw_std, config.roll_std],
        [2 * config.pitch_std, config.yaw_max, 3 * config.roll_std])
    theta[theta_rotation(1)] = _rotation_vector(rng, [config.neck_std] * 3)
    theta[theta_rotation(2)] = _rotation_vector(rng, [config.head_std] * 3)
    gaze = _rotation_vector(rng, [config.gaze_std, config.gaze_std, 0.0],
                            [2 * config.gaze_std, 2 * config.gaze_std, 0.0])
    theta[theta_rotation(3)] = gaze
    theta[theta_rotation(4)] = gaze + rng.normal(0, 0.01, 3)
    return beta, psi, theta


def crop_camera(roi: RoiTransform, focal: float) -> tuple[np.ndarray, PinholeCamera]:
    """Render straight into a crop. For an image of a camera with focal `focal` and
    principal point (0, 0), returns the roll (3, 3) to apply to its camera-space points and
    the camera whose image of the rolled points is ``roi``'s crop of the original image."""
    scale = roi.scale
    roll = np.eye(3)
    roll[:2, :2] = roi.matrix[:, :2] / scale
    principal = roi.matrix[:, 2]
    camera = PinholeCamera(focal=focal * scale, principal_point=(float(principal[0]),
                                                                 float(principal[1])),
                           width=roi.size, height=roi.size)
    return roll, camera


def project(points: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Pinhole projection (N, 3) camera points -> (N, 2) pixels (corner origin)."""
    return camera.focal * points[:, :2] / points[:, 2:3] + np.asarray(camera.principal_point)


def jitter_roi(rng: np.random.Generator, roi: RoiTransform, config: SyntheticConfig) -> RoiTransform:
    """The ROI moved about the crop centre by a random rotation, scale and shift."""
    half = roi.size / 2.0
    angle = np.radians(rng.normal(0, config.jitter_rotation))
    scale = np.exp(rng.normal(0, config.jitter_scale))
    shift = rng.normal(0, config.jitter_shift * roi.size, 2)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    offset = half + shift - linear @ np.full(2, half)
    matrix = linear @ roi.matrix[:, :2]
    return RoiTransform(np.hstack([matrix, (linear @ roi.matrix[:, 2] + offset)[:, None]]),
                        roi.size)


def soft_key_light(light: np.ndarray, probability: float) -> tuple[np.ndarray, float | None]:
    """With `probability`, a soft key light in place of the sampled `light` (3,) (towards
    the light, camera axes): from the front and above, with its ambient level; else
    (light, None). Drawn from a stream seeded by `light`, so the sample's own stream (and
    every other draw of the sample) is the same either way."""
    rng = np.random.default_rng(zlib.crc32(np.asarray(light, np.float64).tobytes()))
    if probability <= 0.0 or rng.uniform() > probability:
        return light, None
    key = np.array([rng.normal(0, 0.5), -rng.uniform(0.0, 0.6), -rng.uniform(0.8, 1.5)])
    return key, rng.uniform(0.35, 0.65)


def skin_lighting(light: np.ndarray, background: np.ndarray, probability: float
                  ) -> SkinLighting | None:
    """With `probability`, a random `SkinLighting` whose sky and ground colours are the
    background (S, S, 3) RGB image's top and bottom halves' (mixed with white), else None.
    Drawn from a stream seeded by `light` (3,) (see `soft_key_light`)."""
    if probability <= 0.0:
        return None
    rng = np.random.default_rng(np.frombuffer(np.asarray(light, np.float64).tobytes(), np.uint32))
    if rng.uniform() > probability:
        return None
    mix = rng.uniform(0.3, 0.8)

    def tint(pixels: np.ndarray) -> np.ndarray:
        colour = pixels.reshape(-1, 3).mean(0) / 255.0
        colour = colour / max(colour.mean(), 0.05)
        return (1 - mix) + mix * np.clip(colour, 0.2, 2.5)

    half = background.shape[0] // 2
    sky = tint(background[:half]) * rng.uniform(0.9, 1.3)
    ground = tint(background[half:]) * rng.uniform(0.3, 0.8)
    wrap = rng.uniform(0.1, 0.5) * np.array([1.0, 0.7, 0.55])
    return SkinLighting(wrap, sky, ground)


def texture_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8: smooth colour noise, optionally with stripes or a gradient."""
    cells = int(rng.integers(2, 24))
    low = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
    image = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    kind = rng.integers(3)
    if kind == 1:
        yy, xx = np.mgrid[0:size, 0:size]
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(3, size / 2)
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        image += (stripes[..., None] * rng.uniform(10, 60, 3)).astype(np.float32)
    elif kind == 2:
        image = image * 0.3 + rng.uniform(0, 255, 3).astype(np.float32) * 0.7
    image += rng.normal(0, rng.uniform(0, 12), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def load_footage_frames(folder: Path = DEFAULT_FOOTAGE, every: int = 15) -> list[np.ndarray]:
    """Background sources: the strips of footage frames away from the face. Every
    `every`-th frame of each clip and the stills; the left and right 30 % of each frame
    (the clips' faces are central; see ../shared/footage/README.md). BGR uint8 list;
    empty when the folder is absent."""
    strips = []
    paths = sorted(folder.glob("*.mp4")) + sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    for path in paths:
        capture = cv2.VideoCapture(str(path))
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                width = frame.shape[1]
                strips += [frame[:, :int(0.3 * width)].copy(), frame[:, int(0.7 * width):].copy()]
            index += 1
        capture.release()
    return strips


def footage_background(rng: np.random.Generator, strips: list[np.ndarray], size: int) -> np.ndarray:
    """(size, size, 3) uint8 BGR: a random square region of a random strip, resized."""
    strip = strips[rng.integers(len(strips))]
    height, width = strip.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(height, width))
    y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    region = strip[y:y + side, x:x + side]
    if rng.uniform() < 0.5:
        region = region[:, ::-1]
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)


def draw_occluders(rng: np.random.Generator, image: np.ndarray, eyes: np.ndarray,
                   config: SyntheticConfig) -> np.ndarray:
    """Draw occluders into `image` (S, S, 3) uint8 in place; returns their mask (S, S) bool.

    eyes : (2, 2) crop positions of the right and left eye centres (for glasses).
    """
    size = image.shape[0]
    mask = np.zeros(image.shape[:2], dtype=np.uint8)

    def colour(palette):
        return tuple(float(c) for c in 255 * _palette(rng, palette)[::-1])

    if rng.uniform() < config.strands_prob:  # hair strands falling from the top or a side
        hair = colour(HAIR_COLOURS)
        for _ in range(rng.integers(3, 30)):
            point = np.array([rng.uniform(0, size), rng.uniform(-0.1, 0.3) * size])
            if rng.uniform() < 0.3:
                point = point[::-1] if rng.uniform() < 0.5 else np.array([size - point[1], point[0]])
            direction = rng.uniform(-0.6, 0.6) + np.pi / 2
            path = [point.copy()]
            for _ in range(rng.integers(4, 12)):
                direction += rng.normal(0, 0.25)
                point = point + rng.uniform(4, 14) * np.array([np.cos(direction), np.sin(direction)])
                path.append(point.copy())
            polyline = np.round(np.array(path)).astype(np.int32)
            thickness = int(rng.integers(1, 4))
            shade = tuple(c * rng.uniform(0.7, 1.3) for c in hair)
            cv2.polylines(image, [polyline], False, shade, thickness, cv2.LINE_AA)
            cv2.polylines(mask, [polyline], False, 1, thickness)
    if rng.uniform() < config.glasses_prob:  # frames around the eyes, bridge and temples
        frame = colour(HAIR_COLOURS) if rng.uniform() < 0.7 else tuple(rng.uniform(0, 255, 3))
        distance = np.linalg.norm(eyes[1] - eyes[0])
        axes = (int(distance * rng.uniform(0.3, 0.42)), int(distance * rng.uniform(0.2, 0.32)))
        angle = float(np.degrees(np.arctan2(*(eyes[1] - eyes[0])[::-1])))
        thickness = int(rng.integers(1, 4))
        centres = [tuple(int(v) for v in np.round(centre)) for centre in eyes]
        if rng.uniform() < config.lens_prob:   # tinted lenses; dark ones hide the eyes
            dark = rng.uniform() < 0.25
            lens = np.zeros_like(mask)
            for c in centres:
                cv2.ellipse(lens, c, axes, angle, 0, 360, 1, -1)
            inside = lens.astype(bool)
            alpha = rng.uniform(0.6, 0.9) if dark else rng.uniform(0.05, 0.3)
            tint = rng.uniform(0, 60, 3) if dark else rng.uniform(120, 255, 3)
            image[inside] = np.clip(image[inside] * (1 - alpha) + alpha * tint, 0, 255
                                    ).astype(np.uint8)
            if dark:
                mask |= lens
        for c in centres:
            cv2.ellipse(image, c, axes, angle, 0, 360, frame, thickness, cv2.LINE_AA)
            cv2.ellipse(mask, c, axes, angle, 0, 360, 1, thickness)
        inner = [tuple(int(v) for v in np.round(eyes[k] + (1 - 2 * k) * (eyes[1] - eyes[0]) * 0.3))
                 for k in (0, 1)]
        cv2.line(image, inner[0], inner[1], frame, thickness, cv2.LINE_AA)
        cv2.line(mask, inner[0], inner[1], 1, thickness)
    if rng.uniform() < config.bar_prob:  # a thick bar or a cap's brim
        p0 = rng.uniform(-0.2, 1.2, 2) * size
        p1 = rng.uniform(-0.2, 1.2, 2) * size
        thickness = int(rng.integers(3, max(4, size // 6)))
        shade = tuple(rng.uniform(0, 255, 3))
        cv2.line(image, tuple(int(v) for v in p0), tuple(int(v) for v in p1), shade, thickness)
        cv2.line(mask, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 1, thickness)
    if rng.uniform() < config.blob_prob:  # a hand-like blob entering from the bottom or a side
        skin = np.array(colour(SKIN_TONES))
        centre = np.array([rng.uniform(0.1, 0.9), rng.uniform(0.5, 1.1)]) * size
        if rng.uniform() < 0.4:
            centre = np.array([rng.choice([-0.05, 1.05]), rng.uniform(0.3, 1.0)]) * size
        for _ in range(rng.integers(1, 5)):
            c = tuple(int(v) for v in centre + rng.normal(0, 0.08 * size, 2))
            axes = tuple(int(v) for v in rng.uniform(0.06, 0.25, 2) * size)
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(image, c, axes, angle, 0, 360, tuple(skin * rng.uniform(0.8, 1.1)), -1,
                        cv2.LINE_AA)
            cv2.ellipse(mask, c, axes, angle, 0, 360, 1, -1)
    return mask.astype(bool)


def add_skin_texture(rng: np.random.Generator, image: np.ndarray, head: np.ndarray) -> None:
    """Fine multiplicative noise (2-8 %, blurred over 0.4-1.2 px: pores, skin grain)
    over the head pixels head (S, S) bool of `image` (S, S, 3) uint8, in place.
    Approximate: image-space noise, not a texture that moves with the skin."""
    size = image.shape[0]
    noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0),
                             sigmaX=rng.uniform(0.4, 1.2))
    factor = 1.0 + rng.uniform(0.02, 0.08) * noise / max(float(noise.std()), 1e-6)
    image[head] = np.clip(image[head] * factor[head][:, None], 0, 255).astype(np.uint8)


def skin_coordinates(buffers: RasterBuffers, skin: np.ndarray, neutral_xy: np.ndarray,
                     triangles: np.ndarray, focal: float) -> tuple:
    """The skin pixels skin (S, S) bool of the render buffers as (rows (n,), cols (n,),
    their points on the neutral face's x-y plane (n, 2) cm, image px per cm there (n,)):
    where paint placed on the neutral face (`Wrinkles`, `BrowHair`) lands in the image."""
    rows, cols = np.nonzero(skin)
    corners = neutral_xy[triangles[buffers.triangle_id[rows, cols]]]
    points = np.einsum("nc,nci->ni", buffers.barycentric[rows, cols], corners)
    return rows, cols, points, focal / buffers.depth[rows, cols]


class Wrinkles:
    """Age lines painted over the render's skin pixels, placed on the neutral face so they
    move with the skin: forehead lines, frown lines between the brows, nasolabial folds,
    crow's feet and lines under the eyes, each a darker line of a given width (cm) whose
    profile is at least `MIN_WIDTH_PX` wide in the image. Approximate (chosen by eye on
    renders): painted, not modelled; no fold geometry or self-shadowing."""

    MIN_WIDTH_PX = 0.5

    def __init__(self, model: FaceModel):
        self.neutral_xy = model.neutral[:, :2].astype(np.float64)
        self.triangles = model.triangles
        ibug = model.neutral[ibug_vertices(model)].astype(np.float64)
        self.ibug = ibug[:, :2]
        self.centre_x = float(ibug[27:31, 0].mean())
        self.brow_y = float(ibug[17:27, 1].mean())
        # +1 or -1: the model x direction from the subject's right eye (iBUG 36) to the left
        self.outward = np.sign(ibug[45, 0] - ibug[36, 0])

    def lines(self, rng: np.random.Generator) -> list[tuple[np.ndarray, float, float]]:
        """One face's lines: (polyline (m, 2) neutral x-y cm, darkness in [0, 1], width cm)."""
        age = rng.uniform(0.3, 1.0)
        ibug, out = self.ibug, self.outward
        lines = []

        def add(points, darkness=(0.1, 0.4), width=(0.03, 0.08)):
            lines.append((np.asarray(points, dtype=np.float64),
                          age * rng.uniform(*darkness), rng.uniform(*width)))

        if rng.uniform() < 0.8:                         # forehead lines
            spacing, height = rng.uniform(0.5, 1.0), rng.uniform(0.8, 1.4)
            for k in range(rng.integers(1, 5)):
                half = rng.uniform(1.5, 4.5)
                x = self.centre_x + rng.normal(0, 0.5) + np.linspace(-half, half, 9)
                y = (self.brow_y + height + k * spacing + rng.uniform(-0.01, 0.03)
                     * (x - self.centre_x) ** 2 + rng.uniform(0, 0.08) * np.sin(
                         rng.uniform(0.5, 2.0) * x + rng.uniform(0, 2 * np.pi)))
                add(np.stack([x, y], 1))
        if rng.uniform() < 0.4:                         # frown lines between the brows
            for side in (-1, 1)[:rng.integers(1, 3)]:
                x = self.centre_x + side * rng.uniform(0.2, 0.6)
                add([[x, self.brow_y - rng.uniform(0.3, 0.8)],
                     [x + side * rng.uniform(0, 0.2), self.brow_y + rng.uniform(0.3, 1.0)]])
        for nostril, corner, side in ((31, 48, -out), (35, 54, out)):
            start = ibug[nostril] + [side * rng.uniform(0.4, 0.8), rng.uniform(0.1, 0.5)]
            end = ibug[corner] + [side * rng.uniform(0.2, 0.6), -rng.uniform(0.2, 1.2)]
            middle = (start + end) / 2 + [side * rng.uniform(0.1, 0.4), 0.0]
            if rng.uniform() < 0.7:                     # nasolabial folds
                add([start, middle, end], darkness=(0.15, 0.5), width=(0.05, 0.15))
        for outer, inner, side in ((36, 39, -out), (45, 42, out)):
            if rng.uniform() < 0.5:                     # crow's feet
                for angle in np.radians(rng.uniform(-35, 35, rng.integers(1, 4))):
                    start = ibug[outer] + [side * rng.uniform(0.3, 0.6), 0.0]
                    length = rng.uniform(0.5, 1.3)
                    add([start, start + length * np.array([side * np.cos(angle), np.sin(angle)])])
            if rng.uniform() < 0.5:                     # under the eyes
                drop = rng.uniform(0.4, 0.9)
                a, b = ibug[inner] - [0.0, drop * 0.8], ibug[outer] - [0.0, drop * 0.6]
                add([a, (a + b) / 2 - [0.0, rng.uniform(0.1, 0.4)], b])
        return lines

    def paint(self, rng: np.random.Generator, image: np.ndarray, buffers: RasterBuffers,
              skin: np.ndarray, focal: float) -> None:
        """Darken image (S, S, 3) uint8 in place along one face's lines, on the skin pixels
        skin (S, S) bool of the render buffers (triangle ids into FaceModel.triangles)."""
        rows, cols, points, px_per_cm = skin_coordinates(buffers, skin, self.neutral_xy,
                                                         self.triangles, focal)
        if len(rows) == 0:
            return
        factor = np.ones(len(rows))
        for polyline, darkness, width in self.lines(rng):
            distance = nearest_on_polyline(points, polyline)[0] * px_per_cm
            sigma = np.maximum(width * px_per_cm, self.MIN_WIDTH_PX)
            factor *= 1.0 - darkness * np.exp(-0.5 * (distance / sigma) ** 2)
        image[rows, cols] = np.clip(image[rows, cols] * factor[:, None], 0, 255).astype(np.uint8)


class BrowHair:
    """Eyebrows drawn as hair over the render's face-skin pixels, in place of the albedo's
    flat band (`AlbedoSampler` painted_brows=False): along each iBUG brow polyline and
    centred on it (where the labels put the brow), thick at the head (the inner end) and
    tapering to the tail, with soft, ragged edges and strands along the brow (a noise
    texture in the brow's own coordinates, so it moves with the skin), darkening the
    shaded pixels towards the hair colour. Approximate (chosen by eye on renders): painted,
    not modelled; no hair volume over the skin."""

    MIN_FEATHER_PX = 0.5
    #: the strand texture: cells per cm, and its extent along / across a brow (cm)
    CELLS_PER_CM = 16
    ALONG_CM, ACROSS_CM = (-1.0, 7.0), (-1.2, 1.2)

    def __init__(self, model: FaceModel):
        neutral = model.neutral.astype(np.float64)
        self.neutral_xy = neutral[:, :2]
        self.triangles = model.triangles
        ibug = neutral[ibug_vertices(model), :2]
        middle = ibug[27:31, 0].mean()
        self.polylines = []                 # (5, 2) each, from the inner end outwards
        for ids in BROW_POLYLINES:
            line = ibug[list(ids)]
            self.polylines.append(line if abs(line[0, 0] - middle) < abs(line[-1, 0] - middle)
                                  else line[::-1])
        self.lengths = [float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum())
                        for line in self.polylines]                      # cm

    def strands(self, rng: np.random.Generator) -> np.ndarray:
        """(across, along) cells in [0, 1]: noise streaked along the brow."""
        cells = [int((high - low) * self.CELLS_PER_CM) for low, high in (self.ACROSS_CM,
                                                                         self.ALONG_CM)]
        noise = cv2.GaussianBlur(rng.normal(0, 1, cells).astype(np.float32), (0, 0),
                                 sigmaX=rng.uniform(2.0, 5.0), sigmaY=0.6)
        return 1.0 / (1.0 + np.exp(-3.0 * noise / max(float(noise.std()), 1e-6)))

    def paint(self, rng: np.random.Generator, image: np.ndarray, buffers: RasterBuffers,
              skin: np.ndarray, focal: float, colour_ratio: np.ndarray) -> None:
        """Darken image (S, S, 3) uint8 in place over the brows, on the skin pixels skin
        (S, S) bool of the render buffers; colour_ratio (3,) in the image's channel order:
        the brow hair's colour over the skin's (the shaded pixel is multiplied by it where
        the hair is dense and opaque)."""
        rows, cols, points, px_per_cm = skin_coordinates(buffers, skin, self.neutral_xy,
                                                         self.triangles, focal)
        if len(rows) == 0:
            return
        head, tail = rng.uniform(0.22, 0.5), rng.uniform(0.05, 0.22)
        taper = rng.uniform(0.7, 2.5)
        feather = np.maximum(rng.uniform(0.04, 0.2), self.MIN_FEATHER_PX / px_per_cm)
        sparseness, slant = rng.uniform(0.0, 0.8), rng.uniform(0.0, 1.2)
        opacity = rng.uniform(0.35, 0.95)
        strands = self.strands(rng)
        density = np.zeros(len(rows))
        for polyline, length in zip(self.polylines, self.lengths):
            distance, foot, along = nearest_on_polyline(points, polyline)
            t = along / length                                          # 0 head, 1 tail
            across = np.where(points[:, 1] >= foot[:, 1], distance, -distance)
            half = head + (tail - head) * t ** taper
            band = np.clip((half - distance) / feather + 0.5, 0.0, 1.0)
            # strands rise towards the head of the brow: the texture read along a slant there
            u = ((along - slant * across * (1.0 - t) - self.ALONG_CM[0])
                 * self.CELLS_PER_CM).astype(int)
            v = ((across - self.ACROSS_CM[0]) * self.CELLS_PER_CM).astype(int)
            hair = strands[np.clip(v, 0, strands.shape[0] - 1), np.clip(u, 0, strands.shape[1] - 1)]
            density = np.maximum(density, band * (1.0 - sparseness * hair))
        factor = 1.0 - opacity * density[:, None] * (1.0 - np.asarray(colour_ratio)[None])
        image[rows, cols] = np.clip(image[rows, cols] * factor, 0, 255).astype(np.uint8)


def draw_hair_volume(rng: np.random.Generator, image: np.ndarray, scalp: np.ndarray,
                     centre: np.ndarray, down: np.ndarray, eye_distance: float,
                     colour: np.ndarray, long_hair_prob: float) -> None:
    """Draw a hair mass into the background `image` (S, S, 3) uint8 BGR in place (the
    head is rendered over it): the convex hull of the projected scalp-hair vertices
    scalp (k, 2) px, grown about the head's centre (2,), and with probability
    `long_hair_prob` extended along the head's downward direction down (2,) (unit) by
    2-5 eye distances. colour: (3,) RGB in [0, 1], streaked along `down`."""
    size = image.shape[0]
    outline = centre + (scalp - centre) * rng.uniform(1.0, 1.2)
    if rng.uniform() < long_hair_prob:
        across = np.array([-down[1], down[0]])
        side = (outline - centre) @ across
        ends = outline[[np.argmin(side), np.argmax(side)]]
        outline = np.vstack([outline, ends + down * eye_distance * rng.uniform(2.0, 5.0)])
    inside = _hull_mask(outline, size)
    image[inside] = hair_texture(rng, size, down, colour)[inside]


def _hull_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(S, S) bool: the convex hull of points (k, 2) px filled (anti-aliased edge, > 0)."""
    hull = cv2.convexHull(np.clip(points, -4 * size, 5 * size).astype(np.float32))
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(hull[:, 0] * 16).astype(np.int32)], 1, cv2.LINE_AA, shift=4)
    return mask.astype(bool)


def hair_texture(rng: np.random.Generator, size: int, down: np.ndarray, colour: np.ndarray
                 ) -> np.ndarray:
    """(S, S, 3) uint8 BGR hair of colour (3,) RGB in [0, 1], streaked along down (2,)."""
    angle = np.degrees(np.arctan2(down[1], down[0])) - 90.0
    streaks = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0),
                               sigmaX=0.6, sigmaY=rng.uniform(3, 8))
    streaks = cv2.warpAffine(streaks, cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0),
                             (size, size), borderMode=cv2.BORDER_REFLECT)
    shade = 255 * colour[::-1] * rng.uniform(0.35, 0.9)
    hair = shade * (1 + rng.uniform(0.5, 1.5) * streaks[..., None] / max(streaks.std(), 1e-6) * 0.25)
    return np.clip(hair, 0, 255).astype(np.uint8)


def draw_beard_volume(rng: np.random.Generator, image: np.ndarray, beard: np.ndarray,
                      mouth: np.ndarray, down: np.ndarray, eye_distance: float,
                      colour: np.ndarray, allowed: np.ndarray) -> None:
    """A full beard's volume beyond the face's silhouette, in `image` (S, S, 3) uint8 BGR in
    place: the convex hull of the projected beard vertices beard (k, 2) px grown about the
    mouth centre (2,) and extended along down (2,) by up to an eye distance, drawn only
    where `allowed` (S, S) bool (background and neck, not the face, which has the beard in
    its albedo), so the jaw line disappears into it. Approximate: a flat mass, no strands
    over the face."""
    size = image.shape[0]
    outline = mouth + (beard - mouth) * rng.uniform(1.0, 1.15)
    outline = np.vstack([outline, outline + down * eye_distance * rng.uniform(0.0, 1.0)])
    inside = _hull_mask(outline, size) & allowed
    image[inside] = hair_texture(rng, size, down, colour)[inside]


def torso_outline(rng: np.random.Generator) -> np.ndarray:
    """(11, 3) model-space outline (cm; y up, z forward) of shoulders and a collar
    below the ICT neck: a crew or V neckline, random shoulder width and height.
    Approximate (no body model): a flat polygon facing forward."""
    collar_y = rng.uniform(-15.0, -11.0)
    neckline_y = collar_y - (rng.uniform(3.0, 10.0) if rng.uniform() < 0.3 else rng.uniform(0.0, 2.0))
    width = rng.uniform(15.0, 21.0)
    shoulder_y = rng.uniform(-19.0, -16.0)
    right = [(width + 3.0, -70.0, -2.0), (width + 1.0, -30.0, -2.0), (width, shoulder_y, -2.0),
             (0.6 * width, shoulder_y + 1.5, 0.0), (6.0, collar_y, 3.0)]
    left = [(-x, y, z) for x, y, z in right[::-1]]
    return np.array(left + [(0.0, neckline_y, 5.0)] + right)


def draw_clothing(rng: np.random.Generator, image: np.ndarray, outline: np.ndarray,
                  allowed: np.ndarray) -> np.ndarray:
    """Fill the projected torso outline (m, 2) px in `image` (S, S, 3) uint8 in place,
    only where `allowed` (S, S) bool (background and neck, not the face); returns the
    drawn mask (S, S) bool. A flat colour with a shading gradient, or a texture."""
    size = image.shape[0]
    mask = np.zeros((size, size), dtype=np.uint8)
    polygon = np.round(np.clip(outline, -4 * size, 5 * size) * 16).astype(np.int32)
    cv2.fillPoly(mask, [polygon], 1, cv2.LINE_AA, shift=4)
    inside = mask.astype(bool) & allowed
    if rng.uniform() < 0.3:
        fill = texture_background(rng, size).astype(np.float32)
    else:
        yy, xx = np.mgrid[0:size, 0:size] / size
        gradient = 1 + rng.uniform(-0.4, 0.4) * (xx - 0.5) + rng.uniform(-0.4, 0.4) * (yy - 0.5)
        fill = rng.uniform(0, 255, 3) * gradient[..., None]
    image[inside] = np.clip(fill[inside], 0, 255).astype(np.uint8)
    return inside


def _rigid_transform(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation (3, 3) and translation (3,) taking points source (n, 3) to
    target (n, 3) (Kabsch)."""
    source_mean, target_mean = source.mean(0), target.mean(0)
    u, _, vt = np.linalg.svd((source - source_mean).T @ (target - target_mean))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rotation, target_mean - rotation @ source_mean


def augment(rng: np.random.Generator, image: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    """Colour, exposure, grey, blur, low resolution, noise and JPEG: (S, S, 3) uint8 ->
    (S, S, 3) uint8."""
    work = image.astype(np.float32) / 255.0
    work = (work * rng.uniform(1.0 - config.white_balance, 1.0 + config.white_balance, 3)
            * rng.uniform(0.6, 1.4))
    work = np.clip(work, 0, 1) ** rng.uniform(0.7, 1.5)
    contrast = rng.uniform(0.7, 1.3)
    work = (work - work.mean()) * contrast + work.mean()
    if rng.uniform() < config.grey_prob:
        work[:] = work.mean(2, keepdims=True)
    image = np.clip(work * 255 + 0.5, 0, 255).astype(np.uint8)
    size = image.shape[0]
    if rng.uniform() < config.lowres_prob:
        small = int(size * rng.uniform(0.3, 0.7))
        image = cv2.resize(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA),
                           (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.uniform() < config.blur_prob:
        if rng.uniform() < 0.25:
            length = int(rng.integers(3, 8))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2] = 1.0 / length
            rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                               float(rng.uniform(0, 180)), 1.0)
            kernel = cv2.warpAffine(kernel, rotation, (length, length))
            image = cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))
        else:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.5))
    if rng.uniform() < config.noise_prob:
        noise = rng.normal(0, rng.uniform(1, 10), image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.uniform() < config.jpeg_prob:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 95))])
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image


class SyntheticRenderer:
    """Synthetic crops of the ICT head with the labels of one landmark set.

    Parameters
    ----------
    model : FaceModel with the landmark set
    landmark_set : e.g. "dense320", "dense703"
    config : SyntheticConfig
    footage : background sources from `load_footage_frames` (empty: textures only)
    """

    def __init__(self, model: FaceModel, landmark_set: str = "dense320",
                 config: SyntheticConfig = SyntheticConfig(), footage: list | None = None):
        self.model = model
        self.config = config
        self.embedding = model.landmark_embedding(landmark_set)
        self.corner_ids = landmark_vertex_ids(model, self.embedding)
        self.scene = HeadScene.from_model(model)
        self.albedo = AlbedoSampler(model)
        self.mesh = PosedMesh(model)
        self.footage = footage or []
        material = np.repeat(model.polygon_material, model.polygon_sizes - 2).astype(np.int16)
        material[material == model.material_names.index("M_BackHead")] = \
            model.material_names.index("M_Face")
        self.part = np.append(material, -1)            # triangle -> part; -1 background
        self.face_part = model.material_names.index("M_Face")
        self.wrinkles = Wrinkles(model)
        self.brow_hair = BrowHair(model)
        # the skin just around the brows, whose colour the brow hair darkens from
        brow_distance = np.abs(self.albedo.brow_distance)
        self.brow_skin_ids = np.nonzero((brow_distance > 0.8) & (brow_distance < 1.5))[0]
        self.warp = ShapeWarp(model)
        neutral = model.neutral.astype(np.float64)
        skin = np.arange(PARTS["face"][0], PARTS["head_neck"][1] + 1)
        self.head_ids = skin
        self.neck_base_ids = skin[neutral[skin, 1] < -12.0]
        self.neck_base = neutral[self.neck_base_ids]      # the torso follows these rigidly
        # Clothing may cover the neck (triangles below the jaw) and the background.
        self.below_jaw = np.append(neutral[model.triangles, 1].mean(1) < -10.0, True)
        # Ambient occlusion once, on the mean face with the jaw half open (mouth interior
        # and teeth then see some sky; approximate for other shapes).
        psi = np.zeros(model.num_expressions)
        psi[model.expression_names.index("jawOpen")] = 0.5
        self.occlusion = ambient_occlusion(
            self.scene, self.mesh(np.zeros(model.num_identity), psi, np.zeros(THETA_SIZE)))

    def with_config(self, config: SyntheticConfig) -> "SyntheticRenderer":
        """The same renderer (model, landmark set, footage) with another config, sharing
        the precomputed scene data."""
        other = copy.copy(self)
        other.config = config
        return other

    def landmark_points(self, vertices: np.ndarray) -> np.ndarray:
        """(L, 3) landmark points from mesh vertices (N, 3)."""
        return np.einsum("lc,lci->li", self.embedding.barycentric, vertices[self.corner_ids])

    def sample(self, seed: int, index: int) -> Sample:
        """The sample `index` of the dataset `seed` (deterministic)."""
        rng = np.random.default_rng([seed, index])
        config = self.config
        if config.capture is not None:
            config = config.capture.config_for(config, index)
        beta, psi, theta = random_face(rng, self.model, config)
        warp = self.warp.sample(rng, config)
        distance = rng.uniform(*config.distance)
        off_axis = np.radians(rng.uniform(0, config.off_axis_max))
        direction = rng.uniform(0, 2 * np.pi)
        translation = distance * np.array([np.tan(off_axis) * np.cos(direction),
                                           np.tan(off_axis) * np.sin(direction), 1.0])
        posed = self.mesh(beta, psi, theta, self.warp.displacement(warp))
        lmk = self.landmark_points(model_to_camera(posed, translation=translation))
        image_points = NOMINAL_FOCAL * lmk[:68, :2] / lmk[:68, 2:3]
        roi = crop_transform(image_points, config.size,
                             use_mouth=rng.uniform() < config.align_with_mouth_prob,
                             layout=CROP_LAYOUT.zoomed(config.crop_zoom))
        roi = jitter_roi(rng, roi, config)
        roll, camera = crop_camera(roi, NOMINAL_FOCAL)
        rotation, translation = roll @ MODEL_TO_OPENCV, roll @ translation
        vertices = model_to_camera(posed, rotation, translation)
        lmk = self.landmark_points(vertices)
        points = project(lmk, camera)
        eyes = np.stack([points[list(RIGHT_EYE_IDS)].mean(0), points[list(LEFT_EYE_IDS)].mean(0)])
        eye_distance = float(np.linalg.norm(eyes[1] - eyes[0]))
        down = points[48:60].mean(0) - eyes.mean(0)
        down /= max(np.linalg.norm(down), 1e-9)
        if self.footage and rng.uniform() < config.footage_prob:
            background = footage_background(rng, self.footage, config.size)
        else:
            background = texture_background(rng, config.size)
        # brows as hair: drawn from a stream of their own, so a config without them draws
        # every sample as before
        brow_rng = (np.random.default_rng([seed, index, BROW_HAIR_STREAM])
                    if config.brow_hair_prob > 0.0 else None)
        brow_hair = brow_rng is not None and brow_rng.uniform() < config.brow_hair_prob
        appearance = self.albedo(rng, config.hair_prob, config.lipstick_prob,
                                 config.eye_makeup_prob, painted_brows=not brow_hair)
        if appearance.hair.max() > 0.5 and rng.uniform() < config.hair_volume_prob:
            pixels = project(vertices, camera)
            draw_hair_volume(rng, background, pixels[appearance.hair > 0.5],
                             pixels[self.head_ids].mean(0), down, eye_distance,
                             appearance.hair_colour, config.long_hair_prob)
        scene = replace(self.scene, albedo=appearance.albedo)
        light = rng.normal(0, 1, 3) * [1.0, 1.0, 0.5] - [0.0, 0.0, rng.uniform(0.3, 1.5)]
        light, key_ambient = soft_key_light(light, config.soft_key_prob)
        shadow = (light_visibility(self.scene, vertices, light)
                  if rng.uniform() < config.shadow_prob else None)
        fill_direction = rng.normal(0, 1, 3) * [1.0, 1.0, 0.5] - [0.0, 0.0, rng.uniform(0.0, 1.0)]
        fill_colour = (rng.uniform(0.1, 0.5) * rng.uniform(0.5, 1.0, 3)
                       if rng.uniform() < config.fill_prob else np.zeros(3))
        ambient = rng.uniform(0.2, 0.6)       # drawn even under a soft key: the stream stays
        background = np.ascontiguousarray(background[..., ::-1])     # BGR -> RGB
        render = render_head(scene, vertices, camera, light_direction=light,
                             ambient=ambient if key_ambient is None else key_ambient,
                             diffuse=rng.uniform(0.4, 1.0), background=background,
                             occlusion=self.occlusion, shadow=shadow,
                             specular=rng.uniform(0.0, config.specular_max),
                             shininess=rng.uniform(8.0, 60.0), fill_direction=fill_direction,
                             fill_colour=fill_colour,
                             environment=skin_lighting(light, background,
                                                       config.skin_lighting_prob))
        image = np.ascontiguousarray(render.image[..., ::-1])   # RGB -> BGR
        if rng.uniform() < config.skin_texture_prob:
            add_skin_texture(rng, image, render.buffers.mask)
        if appearance.beard.max() > 0.6 and rng.uniform() < config.beard_volume_prob:
            draw_beard_volume(rng, image, project(vertices[appearance.beard > 0.5], camera),
                              points[48:60].mean(0), down, eye_distance, appearance.beard_colour,
                              self.below_jaw[render.buffers.triangle_id])
        skin = self.part[render.buffers.triangle_id] == self.face_part
        if rng.uniform() < config.wrinkle_prob:
            self.wrinkles.paint(rng, image, render.buffers, skin, camera.focal)
        if brow_hair:
            hair = appearance.hair_colour * brow_rng.uniform(0.35, 1.0)
            skin_colour = appearance.albedo[self.brow_skin_ids].mean(0)
            ratio = np.clip(hair / np.maximum(skin_colour, 1e-3), 0.03, 1.0)[::-1]  # BGR
            self.brow_hair.paint(brow_rng, image, render.buffers, skin, camera.focal, ratio)
        occluded = draw_occluders(rng, image, eyes, config)
        if rng.uniform() < config.clothing_prob:
            body_rotation, body_translation = _rigid_transform(self.neck_base,
                                                               posed[self.neck_base_ids])
            torso = torso_outline(rng) @ body_rotation.T + body_translation
            outline = project(model_to_camera(torso, rotation, translation), camera)
            occluded |= draw_clothing(rng, image, outline,
                                      self.below_jaw[render.buffers.triangle_id])
        image = augment(rng, image, config)
        visible = _visible(points, lmk[:, 2], render.buffers.depth,
                           self.part[render.buffers.triangle_id],
                           self.part[self.embedding.triangles], occluded)
        return Sample(image, points.astype(np.float32), visible, render.buffers.triangle_id,
                      SceneParameters(beta, psi, theta, warp, rotation, translation, camera))

    def batch(self, seed: int, start: int, count: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples start..start+count-1: images (n, S, S, 3) uint8 BGR, landmarks (n, L, 2)
        float32 crop px, visible (n, L) bool."""
        samples = [self.sample(seed, start + k) for k in range(count)]
        return (np.stack([s.image for s in samples]), np.stack([s.landmarks for s in samples]),
                np.stack([s.visible for s in samples]))


def _visible(points: np.ndarray, depth: np.ndarray, depth_buffer: np.ndarray,
             part_buffer: np.ndarray, part: np.ndarray, occluded: np.ndarray) -> np.ndarray:
    """(L,) bool: inside the crop, not behind the surface or another part, not under an
    occluder. points (L, 2) px, depth (L,) cm, part (L,); buffers (S, S)."""
    size = depth_buffer.shape[0]
    col = np.floor(points[:, 0]).astype(np.int64)
    row = np.floor(points[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    visible = np.zeros(len(points), dtype=bool)
    r, c = row[inside], col[inside]
    visible[inside] = ((depth[inside] <= depth_buffer[r, c] + VISIBLE_DEPTH_CM)
                       & (part_buffer[r, c] == part[inside]) & ~occluded[r, c])
    return visible
