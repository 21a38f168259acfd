"""Performance: validation, npz round trip, bad files, holding the last pose."""

import numpy as np
import pytest

from densecap.tracking.errors import TrackingError
from densecap.tracking.performance import (Camera, Performance, PerformanceBuilder,
                                           load_performance)

EXPRESSIONS = tuple(f"expr{i}" for i in range(55))
TERMS = ("landmarks", "identity", "expression", "joints", "temporal")


def _pose(frame):
    return np.full(55, 0.01 * frame, np.float32), np.full(18, 0.1 * frame)


def _performance(**changes):
    builder = PerformanceBuilder(EXPRESSIONS, TERMS)
    for frame in range(4):
        psi, theta = _pose(frame)
        builder.add(frame * 2, psi, theta, 0.5 + frame, np.arange(5.0) + frame)
    fields = dict(beta=np.linspace(-1, 1, 100), camera=Camera(900.0, 640, 480), fps=25.0,
                  source="clip.mp4")
    performance = builder.build(**fields)
    if not changes:
        return performance
    values = {name: getattr(performance, name) for name in performance.__dataclass_fields__}
    values.update(changes)
    return Performance(**values)


def test_round_trip(tmp_path):
    performance = _performance()
    loaded = load_performance(performance.save(tmp_path / "perf.npz"))
    for name in ("beta", "psi", "theta", "valid", "landmark_error", "energies", "frame_indices"):
        assert np.array_equal(getattr(loaded, name), getattr(performance, name)), name
    assert loaded.camera == performance.camera
    assert loaded.camera.principal_point == (320.0, 240.0)
    assert (loaded.fps, loaded.source, loaded.mode, loaded.complete) == (25.0, "clip.mp4",
                                                                         "realtime", True)
    assert loaded.expression_names == EXPRESSIONS and loaded.energy_names == TERMS
    assert np.array_equal(loaded.frame_indices, [0, 2, 4, 6])
    assert np.allclose(loaded.camera.matrix(), [[900, 0, 320], [0, 900, 240], [0, 0, 1]])


def test_frames_without_a_face_hold_the_last_pose():
    builder = PerformanceBuilder(EXPRESSIONS, TERMS)
    builder.add(0)                               # no face yet: takes the first fitted pose
    for frame in (1, 2):
        builder.add(frame, *_pose(frame), 1.0, np.zeros(5))
    builder.add(3)
    builder.add(4)
    builder.add(5, *_pose(5), 1.0, np.zeros(5))
    performance = builder.build(np.zeros(100), Camera(500.0, 100, 100), 30.0, complete=False)
    assert performance.valid.tolist() == [False, True, True, False, False, True]
    assert np.array_equal(performance.invalid_frames, [0, 3, 4])
    held_from = [1, 1, 2, 2, 2, 5]
    assert np.array_equal(performance.theta, np.stack([_pose(f)[1] for f in held_from]))
    assert np.array_equal(performance.psi, np.stack([_pose(f)[0] for f in held_from]))
    assert np.isnan(performance.landmark_error[[0, 3, 4]]).all()
    assert np.isnan(performance.energies[3]).all() and not performance.complete


def test_no_face_anywhere_is_neutral_and_invalid():
    builder = PerformanceBuilder(EXPRESSIONS, TERMS)
    for frame in range(100):                    # past the initial capacity
        builder.add(frame)
    performance = builder.build(np.zeros(100), Camera(500.0, 100, 100), 30.0)
    assert not performance.valid.any() and performance.num_frames == 100
    assert not performance.psi.any() and not performance.theta.any()


def test_builder_grows_and_builds_partial_results():
    builder = PerformanceBuilder(EXPRESSIONS, TERMS)
    for frame in range(150):
        builder.add(frame, *_pose(frame % 50), 1.0, np.zeros(5))
        if frame == 70:
            partial = builder.build(np.zeros(100), Camera(500.0, 100, 100), 30.0, complete=False)
    assert partial.num_frames == 71 and not partial.complete
    performance = builder.build(np.zeros(100), Camera(500.0, 100, 100), 30.0)
    assert performance.num_frames == 150 and performance.valid.all()
    assert np.array_equal(performance.theta[120], _pose(20)[1])


@pytest.mark.parametrize("changes, message", [
    (dict(psi=np.full((4, 55), 1.5, np.float32)), r"\[0, 1\]"),
    (dict(psi=np.zeros((4, 54), np.float32)), "psi has shape"),
    (dict(theta=np.full((4, 18), np.nan)), "theta has non-finite"),
    (dict(frame_indices=np.array([0, 2, 2, 6])), "strictly increasing"),
    (dict(fps=0.0), "fps"),
    (dict(mode="fast"), "mode"),
    (dict(valid=np.ones(3, bool)), "valid has shape"),
    (dict(landmark_error=np.array([1.0, np.nan, 1.0, 1.0])), "finite on valid"),
    (dict(beta=np.zeros((2, 2))), "beta has 2 dimensions"),
    (dict(psi=np.array([["a"] * 55] * 4)), "dtype"),
])
def test_invalid_fields_raise(changes, message):
    with pytest.raises(TrackingError, match=message):
        _performance(**changes)


def test_camera_validation():
    with pytest.raises(TrackingError, match="focal"):
        Camera(-1.0, 100, 100)
    with pytest.raises(TrackingError, match="size"):
        Camera(500.0, 0, 100)


def test_no_frames_raises():
    with pytest.raises(TrackingError, match="no frames"):
        PerformanceBuilder(EXPRESSIONS, TERMS).build(np.zeros(100), Camera(1.0, 1, 1), 30.0)


def test_frames_must_increase():
    builder = PerformanceBuilder(EXPRESSIONS, TERMS)
    builder.add(5)
    with pytest.raises(TrackingError, match="after frame 5"):
        builder.add(5)


def test_bad_files(tmp_path):
    with pytest.raises(TrackingError, match="not found"):
        load_performance(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(TrackingError, match="not a readable performance file"):
        load_performance(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(TrackingError, match="not a DenseCap performance"):
        load_performance(tmp_path / "other.npz")
    path = _performance().save(tmp_path / "perf.npz")
    with np.load(path) as data:
        arrays = dict(data)
    np.savez(tmp_path / "newer.npz", **{**arrays, "format_version": np.array(99)})
    with pytest.raises(TrackingError, match="newer"):
        load_performance(tmp_path / "newer.npz")
    np.savez(tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if k != "theta"})
    with pytest.raises(TrackingError, match="lacks theta"):
        load_performance(tmp_path / "partial.npz")
    np.savez(tmp_path / "bad.npz", **{**arrays, "psi": arrays["psi"] + 2})
    with pytest.raises(TrackingError, match=r"bad.npz: .*\[0, 1\]"):
        load_performance(tmp_path / "bad.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(TrackingError, match="not a readable"):
        load_performance(truncated)


def test_save_refuses_a_missing_folder_and_keeps_previous_file(tmp_path):
    performance = _performance()
    with pytest.raises(TrackingError, match="does not exist"):
        performance.save(tmp_path / "nowhere" / "perf.npz")
    path = performance.save(tmp_path / "perf.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["perf.npz"]   # no temporary left over
    assert load_performance(path).num_frames == 4
