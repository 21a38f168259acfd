"""What every bench JSON carries about the machine, and the thread settings it ran under.

`single_thread_env` must run before numpy / numba / onnxruntime start their thread pools:
the bench modules call it at import time (`python -m bench.X` imports this first).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from pathlib import Path

THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


def cpu_name() -> str:
    """The CPU model ("model name" in /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that cap numba / OpenMP / BLAS at `threads` threads."""
    return {name: str(threads) for name in THREAD_VARIABLES}


def single_thread_env() -> None:
    """Default every thread variable to 1 in this process (a caller's setting wins)."""
    for name, value in thread_env(1).items():
        os.environ.setdefault(name, value)


def threads_in_use() -> int:
    """The numba thread cap this process runs with (NUMBA_NUM_THREADS)."""
    return int(os.environ.get("NUMBA_NUM_THREADS", "1"))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def machine_info() -> dict:
    """cpu, logical cores, python and platform: the header of every bench JSON."""
    return {"cpu": cpu_name(), "logical_cores": os.cpu_count(),
            "python": platform.python_version(), "platform": sys.platform}


def write_json(report: dict, path: Path | None) -> str:
    """`report` with the machine header, as indented JSON; also written to `path` if given."""
    text = json.dumps({**machine_info(), **report}, indent=2)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return text
