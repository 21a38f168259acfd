"""bench.metrics on hand-made cases: known NME (both normalisations), failure rate, CED and
jitter; and bench.report on a results folder with sections missing."""

import json

import numpy as np
import pytest

from densecap.bench import metrics


def _face(iod: float = 10.0) -> np.ndarray:
    """(68, 2) points: outer eye corners 36 / 45 `iod` (<= 18) apart, the box 20 x 5 px."""
    points = np.zeros((68, 2))
    points[:, 0] = np.linspace(0.0, 20.0, 68)
    points[:, 1] = np.linspace(0.0, 5.0, 68)
    points[36], points[45] = [2.0, 2.0], [2.0 + iod, 2.0]     # inside the box
    return points


def test_nme_known_shift():
    gt = np.stack([_face(10.0), _face(16.0)])
    pred = gt + [3.0, 4.0]                                   # every point 5 px off
    errors = metrics.nme(pred, gt)
    np.testing.assert_allclose(errors["iod"], [0.5, 5.0 / 16.0])
    np.testing.assert_allclose(errors["bbox"], [5.0 / 10.0, 5.0 / 10.0])   # sqrt(20 * 5)


def test_nme_one_point_off():
    gt = _face()[None]
    pred = gt.copy()
    pred[0, 0] += [6.8, 0.0]                                 # one point of 68 off by 6.8 px
    np.testing.assert_allclose(metrics.nme(pred, gt)["iod"], [0.1 / 10.0])


def test_nme_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        metrics.nme(np.zeros((2, 68, 2)), np.zeros((3, 68, 2)))


def test_failure_rate_ced_and_summary():
    errors = np.array([0.02, 0.05, 0.12, np.inf])            # the last: no face found
    assert metrics.failure_rate(errors) == 0.5
    np.testing.assert_allclose(metrics.ced(errors, [0.0, 0.05, 0.1, 1.0]),
                               [0.0, 0.5, 0.5, 0.75])
    summary = metrics.summary(errors)
    assert summary["mean_percent"] == pytest.approx(100 * (0.02 + 0.05 + 0.12) / 3, abs=1e-3)
    assert summary["median_percent"] == pytest.approx(8.5)
    assert (summary["failure_rate_percent"], summary["missed"], summary["count"]) == (50.0, 1, 4)


def test_jitter_constant_velocity_is_zero_and_known_acceleration():
    t = np.arange(6, dtype=float)
    base = np.random.default_rng(0).uniform(0, 100, (1, 5, 2))
    moving = base + (2.0 * t)[:, None, None]                 # constant velocity
    assert metrics.jitter(moving, np.ones(6, bool), 10.0) == pytest.approx(0.0, abs=1e-12)
    # a point alternating +-1 px in x: acceleration 4 px every frame
    shaking = base + np.array([[[(-1.0) ** k, 0.0]] for k in range(6)])
    assert metrics.jitter(shaking, np.ones(6, bool), 8.0) == pytest.approx(0.5)
    # per-frame scale: the middle frame's normaliser is used
    scale = np.array([1.0, 2.0, 4.0, 4.0, 4.0, 4.0])
    expected = np.mean([4 / 2.0, 4 / 4.0, 4 / 4.0, 4 / 4.0])
    assert metrics.jitter(shaking, np.ones(6, bool), scale) == pytest.approx(expected)


def test_jitter_skips_invalid_frames():
    points = np.zeros((5, 3, 2))
    points[2] = 100.0                                        # a bad frame, flagged invalid
    valid = np.array([True, True, False, True, True])
    assert np.isnan(metrics.jitter(points, valid, 1.0))      # no valid triple left
    valid[2] = True
    assert metrics.jitter(points, valid, 1.0) > 0
    assert np.isnan(metrics.jitter(points[:2], valid[:2], 1.0))


def test_report_with_missing_sections(tmp_path):
    pytest.importorskip("matplotlib")
    from densecap.bench.report import write_report
    results = tmp_path / "results"
    results.mkdir()
    per_image = [0.05, 0.07, None]
    summary = metrics.summary(np.array([0.05, 0.07, np.inf]))
    method = {"label": "raw", "available": True, "nme_inter_ocular": summary,
              "nme_bbox": summary, "per_image_nme_inter_ocular": per_image}
    (results / "landmarks_x.json").write_text(json.dumps({
        "eval_dir": "/data/x", "images": 3, "seconds_per_image_median": 0.5,
        "timing_note": "t", "methods": {"raw": method, "peer": {
            "available": False, "reason": "no peer"}}}))
    report = write_report(results, tmp_path).read_text()
    assert "| 68-pt NME inter-ocular (x, 3 images) | raw 6.00 %, fitted n/a | n/a |" in report
    assert "no clips.json" in report and (tmp_path / "plots" / "ced.png").is_file()


def test_shape_error_removes_offset_and_optionally_size():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(50, 3))                      # cm
    fitted = 1.1 * truth + np.array([3.0, -2.0, 5.0])     # 10 % larger, moved
    assert metrics.shape_error_mm(fitted, truth, remove_scale=True) == pytest.approx(0.0, abs=1e-9)
    centred = truth - truth.mean(0)
    expected = 10.0 * np.linalg.norm(0.1 * centred, axis=1).mean()
    assert metrics.shape_error_mm(fitted, truth, remove_scale=False) == pytest.approx(expected)


def test_speed_stages_add_up_to_the_frame_time():
    from densecap.bench.speed import summarise
    rows = [{"decode": 0.001, "detect": 0.004, "face_net": 0.002, "pipeline": 0.0001},
            {"decode": 0.001, "roi": 0.0002, "face_net": 0.002, "fit": 0.003,
             "pipeline": 0.0001},
            {"decode": 0.001, "roi": 0.0002, "face_net": 0.002, "fit": 0.050,
             "pipeline": 0.0001},
            {"decode": 0.002, "roi": 0.0002, "face_net": 0.003, "fit": 0.004,
             "pipeline": 0.0001}]
    summary = summarise(rows, [False, False, True, False])
    assert (summary["steady_frames"], summary["keyframe_frames"],
            summary["detect_frames"]) == (2, 1, 1)
    for key in ("steady_mean_ms", "all_frames_mean_ms", "ms_per_frame_mean"):
        table = summary[key]
        assert sum(v for k, v in table.items() if k != "total") == pytest.approx(
            table["total"], abs=2e-3)
    assert summary["steady_mean_ms"]["fit"] == pytest.approx(3.5)
    assert summary["all_frames_mean_ms"]["detect"] == pytest.approx(1.0)
    # steady frames 1 and 3 without decode: 5.3 and 7.3 ms, median 6.3
    assert summary["steady_median_ms_excluding_decode"] == pytest.approx(6.3)


def _rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def _markups(count: int = 80):
    """Labels: random faces (a face's shape from five modes, as faces vary along few, then a
    random similarity); predictions: the same faces with a systematic markup difference
    (fixed offsets in the face's frame) and noise."""
    rng = np.random.default_rng(1)
    base, modes = _face(12.0), rng.normal(0.0, 1.0, (5, 68, 2))
    offset = rng.normal(0.0, 1.0, (68, 2))
    gt, pred = [], []
    for _ in range(count):
        shape = base + np.tensordot(rng.normal(0.0, 0.8, 5), modes, axes=1)
        scale, rotation = rng.uniform(1, 3), _rotation(rng.uniform(-0.5, 0.5))
        shift = rng.uniform(-50, 50, 2)
        gt.append(scale * shape @ rotation.T + shift)
        pred.append(scale * (shape + offset + rng.normal(0.0, 0.1, (68, 2))) @ rotation.T
                    + shift)
    return np.stack(pred), np.stack(gt)


def test_label_translation_removes_a_systematic_markup_difference():
    pred, gt = _markups()
    before = metrics.nme(pred, gt)["iod"].mean()
    after = metrics.nme(metrics.label_translated(pred, gt), gt)["iod"].mean()
    assert after < 0.1 * before


def test_label_translation_never_sees_the_label_it_is_scored_against():
    pred, gt = _markups()
    moved = gt.copy()
    moved[7] += 5.0                                  # one image's label changed
    np.testing.assert_allclose(metrics.label_translated(pred, moved)[7],
                               metrics.label_translated(pred, gt)[7])


def test_label_translation_rejects_mismatched_or_too_few_images():
    with pytest.raises(ValueError):
        metrics.label_translated(np.zeros((20, 68, 2)), np.zeros((21, 68, 2)))
    with pytest.raises(ValueError):
        metrics.label_translated(np.zeros((5, 68, 2)), np.zeros((5, 68, 2)))
