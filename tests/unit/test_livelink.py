"""The Live Link Face style CSV writer (no bpy)."""

import csv

import numpy as np
import pytest

from densecap.solver.conventions import JOINT_NAMES, theta_rotation
from densecap.solver.model import rodrigues
from densecap.tracking.errors import TrackingError
from densecap.tracking.livelink import HEADER, timecode, write_livelink_csv, yaw_pitch_roll
from densecap.tracking.performance import Camera, Performance


def performance(face_model, valid):
    frames = len(valid)
    rng = np.random.default_rng(3)
    psi = rng.uniform(0, 1, (frames, face_model.num_expressions)).astype(np.float32)
    theta = np.zeros((frames, 18))
    theta[:, theta_rotation(JOINT_NAMES.index("neck"))] = [0.0, 0.2, 0.0]    # yaw
    theta[:, theta_rotation(JOINT_NAMES.index("head"))] = [0.1, 0.0, 0.0]    # pitch
    theta[:, theta_rotation(JOINT_NAMES.index("eye_L"))] = [0.0, 0.0, 0.05]  # roll
    return Performance(beta=np.zeros(face_model.num_identity), psi=psi, theta=theta,
                       camera=Camera(600.0, 640, 480), valid=np.array(valid),
                       landmark_error=np.where(valid, 0.5, np.nan),
                       energies=np.zeros((frames, 1)), energy_names=("e",),
                       frame_indices=np.arange(frames) + 28, fps=30.0,
                       expression_names=face_model.expression_names)


def test_yaw_pitch_roll_inverts_the_composition():
    angles = np.array([[0.3, -0.2, 0.1], [-1.0, 0.4, 0.7]])
    def axis(i, a):
        v = np.zeros((len(a), 3)); v[:, i] = a
        return rodrigues(v)
    matrices = axis(1, angles[:, 0]) @ axis(0, angles[:, 1]) @ axis(2, angles[:, 2])
    np.testing.assert_allclose(yaw_pitch_roll(matrices), angles, atol=1e-12)


def test_timecode():
    assert timecode(0, 30.0) == "00:00:00:00.000"
    assert timecode(30 * 3661 + 7, 29.97) == "01:01:01:07.000"


def test_csv_rows_columns_and_gaps(face_model, tmp_path):
    perf = performance(face_model, [True, False, True, True])
    table = write_livelink_csv(perf, tmp_path / "take.csv")
    rows = list(csv.reader(open(tmp_path / "take.csv")))
    assert tuple(rows[0]) == HEADER and len(HEADER) == 2 + 52 + 9
    assert len(rows) == 1 + 3 and table.missing == ("tongueOut",)
    assert [row[0] for row in rows[1:]] == ["00:00:00:28.000", "00:00:01:00.000",
                                            "00:00:01:01.000"]
    assert all(row[1] == "61" for row in rows[1:])
    column = {name: i for i, name in enumerate(HEADER)}
    names = face_model.expression_names
    first = [0.0, 0.0] + [float(v) for v in rows[1][2:]]
    assert first[column["JawOpen"]] == pytest.approx(perf.psi[0, names.index("jawOpen")], abs=1e-6)
    assert first[column["BrowInnerUp"]] == pytest.approx(
        perf.psi[0, [names.index("browInnerUp_L"), names.index("browInnerUp_R")]].mean(), abs=1e-6)
    assert first[column["TongueOut"]] == 0.0
    assert first[column["HeadPitch"]] == pytest.approx(0.1, abs=1e-6)
    assert first[column["HeadYaw"]] == pytest.approx(0.2, abs=1e-6)
    assert first[column["LeftEyeRoll"]] == pytest.approx(0.05, abs=1e-6)


def test_bad_input_writes_nothing(face_model, tmp_path):
    with pytest.raises(TrackingError, match="no frame with a fitted face"):
        write_livelink_csv(performance(face_model, [False, False]), tmp_path / "a.csv")
    with pytest.raises(TrackingError, match="does not exist"):
        write_livelink_csv(performance(face_model, [True]), tmp_path / "missing" / "a.csv")
    assert list(tmp_path.iterdir()) == []
