"""The dense landmark sets (tools/build_landmark_sets.py): committed data = a fresh build,
iBUG-68 first, every part of the head covered, iris points on the drawn iris border."""

import numpy as np
import pytest

from densecap.solver.model import vertices2landmarks
from densecap.tools import build_landmark_sets as sets
from densecap.tools.build_assets import EMBEDDINGS_DIR
from densecap.training.render.head import PUPIL_DEG, eye_geometry


@pytest.fixture(scope="module")
def built(face_model):
    return {name: sets.build_set(face_model, spec) for name, spec in sets.SETS.items()}


@pytest.mark.parametrize("name", sorted(sets.SETS))
def test_committed_file_is_the_build(built, name):
    """Equal to a fresh build, except that mirror-twin candidates (equal scores on the
    symmetric mesh, split by the last bit of another numpy's arithmetic) may come in
    swapped order as two consecutive picks."""
    fresh = built[name]
    with np.load(EMBEDDINGS_DIR / f"{name}_embedding.npz", allow_pickle=False) as data:
        committed = {key: data[key] for key in data.files}
    assert sorted(committed) == sorted(fresh)
    order = np.arange(len(fresh["triangles"]))
    for i in np.nonzero(committed["triangles"] != fresh["triangles"])[0]:
        twin = [j for j in (i - 1, i + 1) if 0 <= j < len(order)
                and fresh["triangles"][j] == committed["triangles"][i]]
        spec = sets.SETS[name]
        assert twin and i >= 68 + 2 * (spec.iris_rim + spec.pupil_rim), f"landmark {i} differs"
        order[i] = twin[0]
    for key, value in fresh.items():
        expected = value if key == "region_names" else value[order]
        np.testing.assert_array_equal(committed[key], expected, err_msg=key)


@pytest.mark.parametrize("name", sorted(sets.SETS))
def test_model_has_set_with_ibug_first(face_model, name):
    embedding = face_model.landmark_embedding(name)
    spec = sets.SETS[name]
    assert len(embedding) == spec.size
    ibug = face_model.landmark_embedding("ibug68")
    np.testing.assert_array_equal(embedding.triangles[:68], ibug.triangles)
    np.testing.assert_array_equal(embedding.barycentric[:68], ibug.barycentric)
    np.testing.assert_allclose(embedding.barycentric.sum(1), 1.0, atol=1e-6)
    assert (embedding.barycentric >= 0).all()
    # Distinct points: no two landmarks share a sampled triangle.
    assert len(np.unique(embedding.triangles[68:])) == spec.size - 68


@pytest.mark.parametrize("name,minimum", [("dense703", {"face": 400, "head": 60, "inner_mouth": 8,
                                                        "teeth": 3, "iris": 24}),
                                          ("dense320", {"face": 150, "head": 25, "inner_mouth": 4,
                                                        "teeth": 1, "iris": 8})])
def test_regions_covered(built, face_model, name, minimum):
    arrays = built[name]
    names = list(arrays["region_names"])
    for region, count in minimum.items():
        assert (arrays["region"] == names.index(region)).sum() >= count, region
    points = vertices2landmarks(face_model.neutral.astype(np.float64), arrays["corners"],
                                arrays["barycentric"].astype(np.float64))
    # Back of the head (z well behind the ears), the neck (below the jaw), both ears.
    assert (points[:, 2] < -5).sum() >= 10
    assert (points[:, 1] < -12).sum() >= 5
    for sign in (-1, 1):
        assert ((sign * points[:, 0] > 7) & (points[:, 1] > -2) & (points[:, 1] < 6)).sum() >= 5
    # The eyes are sampled more densely than the back of the head.
    eye_centre = points[36:42].mean(0)
    near_eye = (np.linalg.norm(points - eye_centre, axis=1) < 2.0).sum()
    back = (np.linalg.norm(points - np.array([0.0, 4.0, -9.0]), axis=1) < 2.0).sum()
    assert near_eye > 3 * max(back, 1)


def test_iris_points_on_the_iris_border(built, face_model):
    arrays = built["dense703"]
    neutral = face_model.neutral.astype(np.float64)
    iris = arrays["region"] == list(arrays["region_names"]).index("iris")
    points = vertices2landmarks(neutral, arrays["corners"][iris],
                                arrays["barycentric"][iris].astype(np.float64))
    spec = sets.SETS["dense703"]
    per_eye = spec.iris_rim + spec.pupil_rim
    for k, side in enumerate("RL"):
        centre, axis, _ = eye_geometry(neutral, side)
        eye = points[k * per_eye:(k + 1) * per_eye] - centre
        angle = np.degrees(np.arccos(eye @ axis / np.linalg.norm(eye, axis=1)))
        np.testing.assert_allclose(angle[:spec.iris_rim], sets.IRIS_RIM_DEG, atol=0.01)
        np.testing.assert_allclose(angle[spec.iris_rim:], PUPIL_DEG, atol=0.01)


def test_weighted_farthest_points_spacing_follows_weight():
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(0, 2, (4000, 2)), np.zeros(4000)]
    weights = np.where(points[:, 0] < 1, 2.0, 1.0)
    picked = sets.weighted_farthest_points(points, weights, np.zeros(4000, int),
                                           np.zeros((1, 3)), np.zeros(1, int), 200)
    assert len(np.unique(picked)) == 200
    heavy = (points[picked, 0] < 1).sum()
    # Spacing ~ 1/w in 2D: density ~ w^2, so about 4:1.
    assert 3.0 < heavy / (200 - heavy) < 5.5
    with pytest.raises(ValueError):
        sets.weighted_farthest_points(points, weights, np.zeros(4000, int), np.zeros((1, 3)),
                                      np.zeros(1, int), 5000)


def test_mirror_pairs_the_ibug_points_across_the_face(face_model):
    """iBUG-68 on the ICT head is symmetric: the jaw runs backwards, the midline (nose
    bridge, chin) is its own mirror, and pairing twice is the identity."""
    from densecap.solver.landmark_sets import mirror_landmarks
    mirror = mirror_landmarks(face_model, face_model.landmark_embedding("ibug68"))
    np.testing.assert_array_equal(mirror[:17], np.arange(17)[::-1])
    np.testing.assert_array_equal(mirror[27:31], np.arange(27, 31))
    np.testing.assert_array_equal(mirror[[36, 45, 48, 54]], [45, 36, 54, 48])
    np.testing.assert_array_equal(mirror[mirror], np.arange(68))


@pytest.mark.parametrize("name", sorted(sets.SETS))
def test_mirror_of_a_dense_set_is_an_involution(face_model, name):
    from densecap.solver.landmark_sets import mirror_landmarks
    mirror = mirror_landmarks(face_model, face_model.landmark_embedding(name))
    paired = np.flatnonzero(mirror >= 0)
    assert len(paired) > len(mirror) // 2
    assert np.mean(mirror[mirror[paired]] == paired) > 0.99
