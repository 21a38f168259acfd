"""The measurement suite: one command that runs every bench section and writes
bench/results/*.json, bench/report.md and bench/plots/*.png.

    .venv/bin/python -m bench [--eval-dir DIR ...] [--clips DIR ...] [--limit 100]
                              [--frames 150] [--full] [--only SECTION ...] [--no-peer]

Sections run one after the other, each in its own process (so the thread caps hold and
each reports its own peak RSS), with NUMBA_NUM_THREADS / OMP_NUM_THREADS = 1 unless the
section is the 2-thread speed run. A failing section is logged (bench/results/logs/) and the
others still run; the exit status is 1 when any failed. The peer runs in ``.venv-peer``
(``make peer``); without it the peer's columns say so. Defaults keep the run under 15
minutes on 2 cores: 100 devset images, 150 frames per clip; --full takes everything.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .machine import machine_info, thread_env
from .peer_mediapipe import peer_key

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_RESULTS = ROOT / "bench" / "results"
PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"
SECTIONS = ("peer", "landmarks", "clips", "synthetic", "realtime_fit", "speed")


@dataclass(frozen=True)
class Step:
    """One process of the suite: its section, result name, command and thread count."""

    section: str
    name: str
    command: list[str]
    threads: int = 1


def plan(args: argparse.Namespace, results: Path) -> list[Step]:
    """The steps for the parsed arguments, in run order."""
    from .clips import find_clips
    py = sys.executable
    limit = [] if args.full else ["--limit", str(args.limit)]
    frames = "0" if args.full else str(args.frames)
    peer_dir = results / "peer"
    clips = find_clips(args.clips or [SHARED / "footage"])
    steps = []
    if PEER_PYTHON.is_file() and not args.no_peer:
        steps.append(Step("peer", "peer", [str(PEER_PYTHON), "-m", "bench.peer_mediapipe",
                                           "--out-dir", str(peer_dir), *limit]
                          + [a for d in args.eval_dir for a in ("--eval-dir", str(d))]
                          + [a for c in clips for a in ("--clip", str(c))]
                          + ([] if args.full else ["--frames", frames])))
    for eval_dir in args.eval_dir:
        steps.append(Step("landmarks", f"landmarks_{peer_key(eval_dir)}",
                          [py, "-m", "bench.landmarks_devset", "--eval-dir", str(eval_dir),
                           *limit, "--peer-dir", str(peer_dir)]))
    steps.append(Step("clips", "clips", [py, "-m", "bench.clips", "--frames", frames,
                                         "--peer-dir", str(peer_dir), "--samples-dir",
                                         str(results / "samples")]
                      + [a for c in clips for a in ("--clip", str(c))]))
    steps.append(Step("synthetic", "synthetic",
                      [py, "-m", "bench.synthetic_fits"]
                      + (["--faces", "10", "--frames", "60"] if args.full else [])))
    steps.append(Step("realtime_fit", "realtime_fit",
                      [py, "-m", "bench.realtime_fit", "--frames", "150" if args.full else "60"]
                      + ([] if args.full else ["--no-compile-times"])))
    speed_clip = next((c for c in clips if c.name == "talking_1.mp4"), clips[0])
    for threads in (1, 2):
        steps.append(Step("speed", f"speed_{threads}thread",
                          [py, "-m", "bench.speed", "--clip", str(speed_clip),
                           "--frames", frames]
                          + ([] if threads == 1 else ["--bake-frames", "0"]), threads))
    return [s for s in steps if not args.only or s.section in args.only]


def run_step(step: Step, results: Path) -> dict:
    """Run one step (its JSON goes to results/<name>.json, its output to logs/)."""
    logs = results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    command = list(step.command)
    if step.section != "peer":
        command += ["--out", str(results / f"{step.name}.json")]
    env = {**os.environ, **thread_env(step.threads)}
    print(f"bench: {step.name} ...", flush=True)
    start = time.monotonic()
    with open(logs / f"{step.name}.log", "w") as log:
        code = subprocess.run(command, cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - start
    print(f"bench: {step.name} {'done' if code == 0 else f'FAILED ({code})'} in "
          f"{seconds:.0f} s", flush=True)
    return {"name": step.name, "section": step.section, "threads": step.threads,
            "command": " ".join(command), "returncode": code, "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, action="append",
                        help="a folder with images/ + landmarks68.json (repeatable; default "
                             "../shared/devset)")
    parser.add_argument("--clips", type=Path, action="append",
                        help="a folder of videos, or one video (repeatable; default "
                             "../shared/footage)")
    parser.add_argument("--limit", type=int, default=100, help="images per eval dir")
    parser.add_argument("--frames", type=int, default=150, help="frames per clip")
    parser.add_argument("--full", action="store_true",
                        help="all images, all frames, more synthetic faces, JIT compile times")
    parser.add_argument("--only", choices=SECTIONS, action="append",
                        help="run only this section (repeatable); the report uses what is "
                             "in the results folder")
    parser.add_argument("--no-peer", action="store_true", help="skip the MediaPipe peer")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    args.eval_dir = [d.resolve() for d in (args.eval_dir or [SHARED / "devset"])]
    for eval_dir in args.eval_dir:
        if not (eval_dir / "landmarks68.json").is_file():
            parser.error(f"--eval-dir {eval_dir}: no landmarks68.json")
    args.clips = [c.resolve() for c in args.clips or []]
    results = args.results.resolve()
    results.mkdir(parents=True, exist_ok=True)
    started, started_utc = time.monotonic(), time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load_start = os.getloadavg()[0]
    steps = [run_step(step, results) for step in plan(args, results)]
    failed = any(s["returncode"] for s in steps)
    if args.only and (results / "suite.json").is_file():   # keep the other sections' record
        names = {s["name"] for s in steps}
        previous = json.loads((results / "suite.json").read_text())["steps"]
        steps = [s for s in previous if s["name"] not in names] + steps
    peer = ("ran" if any(s["section"] == "peer" for s in steps) else
            "skipped (--no-peer)" if args.no_peer else
            f"not installed ({PEER_PYTHON.relative_to(ROOT)}: make peer)")
    suite = {**machine_info(),
             "command": " ".join(["python -m bench", *(argv or sys.argv[1:])]),
             "started_utc": started_utc,
             "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
             "seconds": round(time.monotonic() - started, 1), "peer": peer, "steps": steps}
    (results / "suite.json").write_text(json.dumps(suite, indent=2) + "\n")
    from .report import write_report
    report = write_report(results, ROOT / "bench" if results == DEFAULT_RESULTS else results)
    print(f"bench: wrote {report} and {results}/ in {suite['seconds']:.0f} s")
    return 1 if failed else 0
