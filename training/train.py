"""Train a dense landmark network on synthetic renders (dev-only, CPU).

    python -m densecap.training.train --run build/training/dense320 [--landmark-set dense320]
        [--images 8000] [--steps 4000] [--batch 32] [--size 128] [--width 0.5]
        [--loss gnll|l2] [--lr 2e-3] [--head spatial|pool] [--label-range 1.5] [--beta 0]
        [--seed 0] [--init-from build/training/OTHER]
        [--renders generic|capture|capture-close|capture-brows] [--crop-zoom 1.0] [--clip-grad 0]
        [--threads 1] [--workers 1] [--max-minutes M]

The run folder (git-ignored under build/) holds `config.json`, the rendered dataset as
shards (`data/shard_XXXX.npz`, samples k*shard .. of the stream `--seed`; rendered once,
reused), `checkpoint.pt` (model, optimiser, step; written every `--checkpoint-every`
steps and when the time limit stops the run) and `log.jsonl`. Running the same command
again resumes from the checkpoint; a different config in the same folder is an error.

Optimiser: AdamW, learning rate warmed up linearly over the first 5 % of the steps, then
cosine to zero. A fresh run starts its position outputs at the mean training label
(of the labels the loss uses; `--init-mean`, default on): on 64 crops overfitted for 300 steps this halved the
iBUG-68 error (median NME 0.066 -> 0.028) against starting at the crop centre.

`--init-from RUN` starts the weights from another run's checkpoint (same head) with a fresh
optimiser and schedule: a warm restart on more data, another landmark set or input size
from the same backbone, or a wider backbone grown from a narrower one (`start_from_run`;
training/README.md, runs 7, 8 and 25); `training.import_onnx` makes such a run folder from an
exported (committed) network.

`--renders` picks the kind of renders (`synthetic.RENDER_STYLES`): the generator's own
("generic"), or most samples drawn in capture conditions (`synthetic.CaptureConditions`:
narrower head poses, a soft key light from the front; training/README.md, runs 31-32).

`--crop-zoom Z` renders the face Z times larger in the crop than `dense_network.CROP_LAYOUT`
places it (more pixels on the inner face, less room for the ears and the back of the head);
the export stores the layout, and the front end crops as the network was trained
(training/README.md, run 40).

Labels far off the crop (`--label-range`, default 1.5: more than a quarter crop beyond an
edge; about 4 % of the dense320 labels, 0.8 % of the iBUG-68 ones) are dropped from the
loss: a profile's back of the head or a point near the camera plane projects up to 25
half-crops away, and those few squared errors ruled every batch they fell in; with them
training stalled at the mean shape (training/README.md, run 5).

`--clip-grad N` clips the gradient's global norm to N (default 0: off, as every committed
run trained). A guard against GNLL spikes, not a cure for their cause: fine-tuned from an
import whose folded weights were 0.01-48,000 times a layer's usual scale (before
`import_onnx` rescaled them), run 33 went from loss -5.9 to 19,000 in 20 steps; clipped to
400 (its usual norms were 56-180) the spike reached 19 and the loss was still 0.27 above
the rescaled import's 1,500 steps later; the rescaled import trained without a spike
(training/README.md, run 33).

Batches: a fresh permutation of the dataset per epoch from (seed, epoch), so a resumed run
sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..solver import load_face_model
from ..tools.build_assets import EMBEDDINGS_DIR
from ..landmarks.dense_network import CROP_LAYOUT, to_normalised
from ..landmarks.roi import CropLayout
from .network import HEADS, LOSSES, DenseLandmarkNet, cells_per_side, widen
from .synthetic import SyntheticConfig, SyntheticRenderer, load_footage_frames, render_style

WARMUP_FRACTION = 0.05
#: The held-out samples of a run come from the stream seed + HELD_OUT_OFFSET.
HELD_OUT_OFFSET = 1000


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (stored in the run folder)."""

    landmark_set: str = "dense320"
    size: int = 128
    width: float = 0.5
    loss: str = "gnll"
    images: int = 8000
    shard: int = 200
    steps: int = 4000
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    weights: str = "uniform"          # or "sampling": lambda_i = the set's sampling weight
    head: str = "spatial"             # or "pool" (network.HEADS; the runs before 5)
    beta: float = 0.0                 # beta-NLL weighting of the GNLL (0: eq. 1 exactly)
    label_range: float = 1.5          # drop labels beyond this, normalised (0: keep all)
    init_mean: bool = True            # start the positions at the training labels' mean
    init_from: str = ""               # a run folder whose checkpoint weights start this run
    renders: str = "generic"          # synthetic.RENDER_STYLES: the kind of renders
    crop_zoom: float = 1.0            # the face this much larger than CROP_LAYOUT places it
    clip_grad: float = 0.0            # clip the gradient's global norm to this (0: off)
    seed: int = 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.label_range < 0.0 or 0.0 < self.label_range < 1.0:
            raise ValueError(f"label_range must be 0 (off) or >= 1, got {self.label_range}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.clip_grad < 0.0:
            raise ValueError(f"clip_grad must be 0 (off) or positive, got {self.clip_grad}")
        self.style()                          # an unknown style or a bad zoom is an error
        if self.weights not in ("uniform", "sampling"):
            raise ValueError(f"weights must be 'uniform' or 'sampling', got {self.weights!r}")
        if min(self.size, self.images, self.shard, self.steps, self.batch) <= 0:
            raise ValueError("size, images, shard, steps and batch must be positive")

    def style(self) -> SyntheticConfig:
        """The renders' `synthetic.SyntheticConfig`."""
        return render_style(self.renders, self.size, self.crop_zoom)

    def layout(self) -> CropLayout:
        """Where the run's crops put the face (`dense_network.CROP_LAYOUT`, zoomed)."""
        return CROP_LAYOUT.zoomed(self.crop_zoom)


def landmark_weights(landmark_set: str, mode: str, count: int) -> np.ndarray:
    """Per-landmark loss weights lambda (L,) float32: ones, or the set's sampling weights
    (landmarks/data/<set>_embedding.npz `weight`) scaled to mean 1."""
    if mode == "uniform":
        return np.ones(count, dtype=np.float32)
    with np.load(EMBEDDINGS_DIR / f"{landmark_set}_embedding.npz", allow_pickle=False) as data:
        weight = data["weight"].astype(np.float32)
    if len(weight) != count:
        raise ValueError(f"{landmark_set} has {len(weight)} weights for {count} landmarks")
    return weight / weight.mean()


# ----------------------------------------------------------------------------- data

_WORKER: dict = {}


def _worker_start(landmark_set: str, style: SyntheticConfig) -> None:
    _WORKER["renderer"] = SyntheticRenderer(load_face_model(), landmark_set, style,
                                            load_footage_frames())


def _worker_shard(job: tuple[int, int, int, str]) -> str:
    seed, start, count, path = job
    images, landmarks, visible = _WORKER["renderer"].batch(seed, start, count)
    tmp = Path(path).with_suffix(".tmp.npz")
    np.savez(tmp, images=images, landmarks=landmarks, visible=visible)
    tmp.replace(path)
    return path


def render_dataset(folder: Path, landmark_set: str, style: SyntheticConfig, seed: int,
                   images: int, shard: int, workers: int = 1) -> list[Path]:
    """Render (or reuse) the shards of `images` samples of the stream `seed` in `folder`,
    drawn as `style` says (`TrainConfig.style`).

    Returns the shard paths in order. Shards already on disk are kept (resumable).
    """
    folder.mkdir(parents=True, exist_ok=True)
    jobs, paths = [], []
    for k, start in enumerate(range(0, images, shard)):
        path = folder / f"shard_{k:04d}.npz"
        paths.append(path)
        if not path.is_file():
            jobs.append((seed, start, min(shard, images - start), str(path)))
    if jobs:
        if workers <= 1:
            _worker_start(landmark_set, style)
            for job in jobs:
                _worker_shard(job)
        else:
            with multiprocessing.get_context("fork").Pool(workers, _worker_start,
                                                          (landmark_set, style)) as pool:
                list(pool.imap_unordered(_worker_shard, jobs))
    return paths


def load_shards(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """images (n, S, S, 3) uint8, landmarks (n, L, 2) float32, visible (n, L) bool."""
    parts = [np.load(path, allow_pickle=False) for path in paths]
    return tuple(np.concatenate([p[key] for p in parts])
                 for key in ("images", "landmarks", "visible"))


def label_mask(normalised: np.ndarray, label_range: float) -> np.ndarray:
    """(n, L) bool: the labels (n, L, 2) normalised that training uses, those within
    `label_range` of the crop centre in both coordinates (1: the crop's edge; 0: all).

    Far off the crop (a profile's back of the head, points near the camera plane) labels
    reach |x| > 20: their squared errors, thousands of times a typical one, would rule the
    gradient (and Adam's second moments) of every batch they fall in."""
    if label_range == 0.0:
        return np.ones(normalised.shape[:-1], dtype=bool)
    return np.abs(normalised).max(-1) <= label_range


def image_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(n, S, S, 3) uint8 -> (n, 3, S, S) float32 network input, stored channels-last
    (the NHWC memory order: the CPU convolutions run ~1.6-1.8x faster than on NCHW)."""
    images = torch.as_tensor(images)
    return images.permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------- training

def learning_rate(config: TrainConfig, step: int) -> float:
    warmup = max(1, int(WARMUP_FRACTION * config.steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def batch_indices(config: TrainConfig, count: int, step: int) -> np.ndarray:
    """The dataset indices of batch `step` (deterministic, resumable)."""
    first = step * config.batch
    epoch, offset = divmod(first, count)
    order = np.random.default_rng([config.seed, epoch]).permutation(count)
    indices = order[offset:offset + config.batch]
    if len(indices) < config.batch:
        following = np.random.default_rng([config.seed, epoch + 1]).permutation(count)
        indices = np.concatenate([indices, following[:config.batch - len(indices)]])
    return indices


@dataclass
class TrainResult:
    """step: steps done in total; finished: step == config.steps; losses: this call's
    (step, loss) pairs; seconds: this call's wall time."""

    step: int
    finished: bool
    losses: list
    seconds: float


def build_network(config: TrainConfig, num_landmarks: int) -> DenseLandmarkNet:
    torch.manual_seed(config.seed)
    network = DenseLandmarkNet(num_landmarks, config.width, config.head, config.size)
    return network.to(memory_format=torch.channels_last)


def train(config: TrainConfig, run: Path, images: np.ndarray, landmarks: np.ndarray,
          max_seconds: float | None = None, checkpoint_every: int = 200,
          log=None) -> tuple[DenseLandmarkNet, TrainResult]:
    """Train (or resume) the run in folder `run` on the given data.

    images : (n, S, S, 3) uint8 BGR; landmarks : (n, L, 2) float32 crop px.
    Returns the network (train mode off) and what this call did.
    """
    run.mkdir(parents=True, exist_ok=True)
    _check_config(run, config)
    num_landmarks = landmarks.shape[1]
    network = build_network(config, num_landmarks)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    step = 0
    checkpoint = run / "checkpoint.pt"
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=True)
        network.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step = int(state["step"])
    normalised = to_normalised(landmarks, config.size).astype(np.float32)
    used = label_mask(normalised, config.label_range)
    mean = (normalised * used[..., None]).sum(0) / np.maximum(used.sum(0), 1)[:, None]
    if step == 0 and config.init_from:
        start_from_run(network, config, Path(config.init_from), mean)
    elif step == 0 and config.init_mean:
        network.set_mean_positions(mean)
    weights = torch.from_numpy(landmark_weights(config.landmark_set, config.weights,
                                                num_landmarks)
                               * used.astype(np.float32))              # (n, L)
    loss_function = LOSSES[config.loss]
    x_all = torch.from_numpy(images)                                   # uint8, per batch to float
    y_all = torch.from_numpy(normalised)
    start = time.perf_counter()
    losses = []
    network.train()
    with (run / "log.jsonl").open("a") as log_file:
        while step < config.steps:
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(config, step)
            index = torch.from_numpy(batch_indices(config, len(x_all), step))
            loss = loss_function(network(image_tensor(x_all[index])), y_all[index], weights[index],
                                 config.beta)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad:
                torch.nn.utils.clip_grad_norm_(network.parameters(), config.clip_grad)
            optimiser.step()
            step += 1
            losses.append((step, loss.item()))
            if step % 20 == 0 or step == config.steps:
                record = {"step": step, "loss": float(np.mean([l for _, l in losses[-20:]])),
                          "lr": learning_rate(config, step - 1),
                          "seconds": round(time.perf_counter() - start, 1)}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                if log:
                    log(record)
            if step % checkpoint_every == 0:
                _save(checkpoint, network, optimiser, step)
    _save(checkpoint, network, optimiser, step)
    network.eval()
    return network, TrainResult(step, step >= config.steps, losses, time.perf_counter() - start)


#: Config fields added after the first runs, with the values those runs had.
_OLDER_RUNS = {"head": "pool", "beta": 0.0, "label_range": 0.0, "init_from": "",
               "renders": "generic", "clip_grad": 0.0, "crop_zoom": 1.0}


def start_from_run(network: DenseLandmarkNet, config: TrainConfig, run: Path,
                   mean: np.ndarray) -> None:
    """Load run `run`'s checkpoint weights into `network` (same head).

    A wider network: the source is widened into it function-preservingly (`widen`; a
    narrower one is an error). Another input size: the convolutions are copied as they are (they slide over any size);
    a spatial head's weights are resampled from the source's cell grid to this one's
    (`resample_spatial_head`). Another landmark set: the backbone is copied, and each landmark's head rows from the
    source landmark nearest to it on the neutral face, its position bias moved by the
    difference of this run's mean labels `mean` (L, 2) normalised between the landmark and
    that source landmark's own nearest (for dense320 -> dense703 the sets share 320 points,
    and the rest start out predicting their neighbour, offset)."""
    other = run_config(run)
    if other.head != config.head:
        raise ValueError(f"--init-from {run}: head {other.head!r} differs from this "
                         f"run's {config.head!r}")
    if other.width > config.width:
        raise ValueError(f"--init-from {run}: width {other.width} is wider than this "
                         f"run's {config.width} (a network can be widened, not narrowed)")
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    if other.width != config.width:
        source_landmarks = state["head.bias"].shape[0] // 3
        source = DenseLandmarkNet(source_landmarks, other.width, other.head, other.size)
        source.load_state_dict(state)
        wider = DenseLandmarkNet(source_landmarks, config.width, config.head, other.size)
        widen(source, wider, seed=config.seed)
        state = wider.state_dict()
    if other.size != config.size and config.head == "spatial":
        state = {**state, "head.weight": resample_spatial_head(
            state["head.weight"], cells_per_side(other.size), cells_per_side(config.size))}
    if other.landmark_set != config.landmark_set:
        source, back = nearest_landmarks(config.landmark_set, other.landmark_set)
        weight = state["head.weight"].view(-1, 3, state["head.weight"].shape[1])[source]
        bias = state["head.bias"].view(-1, 3)[source].clone()
        bias[:, :2] += torch.as_tensor(mean - mean[back[source]], dtype=bias.dtype)
        state = {**state, "head.weight": weight.reshape(-1, weight.shape[2]),
                 "head.bias": bias.reshape(-1)}
    network.load_state_dict(state)


def resample_spatial_head(weight: torch.Tensor, cells: int, new_cells: int) -> torch.Tensor:
    """A spatial head's weight (3L, C * cells^2) for a `new_cells` x `new_cells` grid:
    (3L, C * new_cells^2), bilinear over the cell centres (both grids cover the whole crop),
    scaled by cells^2 / new_cells^2 so that a map of equal cells gives the same output."""
    rows = weight.shape[0]
    grid = weight.reshape(rows, -1, cells, cells)
    resampled = torch.nn.functional.interpolate(grid, size=(new_cells, new_cells),
                                                mode="bilinear", align_corners=False)
    return (resampled * (cells / new_cells) ** 2).reshape(rows, -1)


def nearest_landmarks(target: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """For each landmark of set `target`, the nearest of set `source` on the neutral face
    (L_target,); and for each `source` landmark the nearest `target` one (L_source,)."""
    from ..solver.landmark_sets import neutral_landmark_points
    model = load_face_model()
    points = [neutral_landmark_points(model, model.landmark_embedding(name))
              for name in (target, source)]
    distance = np.linalg.norm(points[0][:, None] - points[1][None], axis=2)
    return distance.argmin(1), distance.argmin(0)


def _check_config(run: Path, config: TrainConfig) -> None:
    path = run / "config.json"
    if path.is_file():
        stored = {**_OLDER_RUNS, **json.loads(path.read_text())}
        if stored != asdict(config):
            raise ValueError(f"{run} holds a run with another config: {stored}")
    else:
        path.write_text(json.dumps(asdict(config), indent=2))


def _save(path: Path, network, optimiser, step: int) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": network.state_dict(), "optimiser": optimiser.state_dict(),
                "step": step}, tmp)
    tmp.replace(path)


def run_config(run: Path) -> TrainConfig:
    """The config stored in run folder `run` (fields added since filled as `_OLDER_RUNS`)."""
    return TrainConfig(**{**_OLDER_RUNS, **json.loads((run / "config.json").read_text())})


def load_network(run: Path) -> tuple[TrainConfig, DenseLandmarkNet, int]:
    """The config, the network (eval mode) and the step of a run's checkpoint."""
    config = run_config(run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    num_landmarks = state["model"]["head.bias"].shape[0] // 3
    network = build_network(config, num_landmarks)
    network.load_state_dict(state["model"])
    return config, network.eval(), int(state["step"])


def predict(network: DenseLandmarkNet, images: np.ndarray, batch: int = 64
            ) -> np.ndarray:
    """Raw outputs (n, L, 3) float32 for images (n, S, S, 3) uint8."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            outputs.append(network(image_tensor(images[start:start + batch])).numpy())
    return np.concatenate(outputs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    for name, value in asdict(TrainConfig()).items():
        kind = (lambda text: text.lower() in ("1", "true", "yes")) if isinstance(value, bool) \
            else type(value)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="processes rendering the dataset")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TrainConfig(**{name: getattr(args, name) for name in asdict(TrainConfig())})
    started = time.perf_counter()
    paths = render_dataset(args.run / "data", config.landmark_set, config.style(), config.seed,
                           config.images, config.shard, args.workers)
    images, landmarks, _ = load_shards(paths)
    print(json.dumps({"dataset": len(images), "render_seconds": round(time.perf_counter() - started, 1)}),
          flush=True)
    budget = None if args.max_minutes is None else max(
        0.0, 60 * args.max_minutes - (time.perf_counter() - started))
    _, result = train(config, args.run, images, landmarks, budget, args.checkpoint_every,
                      log=lambda record: print(json.dumps(record), flush=True))
    print(json.dumps({"step": result.step, "finished": result.finished,
                      "train_seconds": round(result.seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
