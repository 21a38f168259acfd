"""`densecap track`: outputs, summary, and one-line errors with exit status 2 for bad input."""

import subprocess
import sys

import numpy as np
import pytest

from densecap.tracking import cli
from densecap.tracking.performance import load_performance

from tracker_for_tests import StripBrightnessTracker


def _factory(no_face_frames=()):
    def make(footage, mode, face_index):
        return StripBrightnessTracker(footage, no_face_frames)
    return make


@pytest.fixture(scope="module")
def clip(shared_dir):
    return str(shared_dir / "footage" / "talking_1.mp4")


def test_track_writes_performance_preview_and_summary(tmp_path, clip, capsys):
    out, preview = tmp_path / "perf.npz", tmp_path / "preview.mp4"
    status = cli.main(["track", clip, "--out", str(out), "--preview", str(preview),
                       "--start", "3", "--end", "15", "--quiet"],
                      tracker_factory=_factory({4, 5, 6, 10}))
    assert status == cli.EXIT_OK
    stdout = capsys.readouterr().out
    assert "tracked 12 frames (3-14)" in stdout
    assert "frames without a face: 4 (4-6, 10)" in stdout
    performance = load_performance(out)
    assert performance.num_frames == 12 and performance.valid.sum() == 8
    assert preview.stat().st_size > 0


def test_default_output_name_in_current_folder(tmp_path, clip, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["track", clip, "--end", "2", "--quiet"], tracker_factory=_factory()) == 0
    assert (tmp_path / "talking_1.npz").is_file()


def test_no_face_anywhere_writes_nothing(tmp_path, clip, capsys):
    out = tmp_path / "perf.npz"
    status = cli.main(["track", clip, "--end", "3", "--out", str(out), "--quiet"],
                      tracker_factory=_factory({0, 1, 2}))
    assert status == cli.EXIT_FAILED and not out.exists()
    assert "no face found" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["track", "/no/such/clip.mp4"], "footage file not found"),
    (["track", "{clip}", "--start", "10", "--end", "5"], "end frame"),
    (["track", "{clip}", "--out", "/no/such/folder/p.npz"], "does not exist"),
    (["track", "{clip}", "--preview", "/no/such/folder/p.mp4"], "does not exist"),
    (["track", "{clip}", "--face", "-1"], "--face"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, clip, capsys, arguments, message):
    argv = [a.format(clip=clip, tmp=tmp_path) for a in arguments]
    assert cli.main(argv, tracker_factory=_factory()) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("densecap: error: ") and message in err and "Traceback" not in err


def test_command_line_entry_point_reports_without_traceback(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "densecap.tracking", "track", str(empty)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "empty (0 bytes)" in result.stderr and "Traceback" not in result.stderr


def test_summary_ranges():
    assert cli._ranges(np.array([1, 2, 3, 7, 9, 10])) == "1-3, 7, 9-10"
    assert cli._ranges(np.arange(0, 40, 2), limit=3) == "0, 2, 4, ..."
