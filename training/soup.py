"""Average the weights of several runs of one network: a "model soup" (Wortsman et al.,
ICML 2022; dev-only).

    python -m densecap.training.soup --run build/training/NAME --from RUN_A --from RUN_B [...]

The ingredients must agree on everything that shapes the network and its crops
(`SHAPE_FIELDS`); typically fine-tunes of one parent on different renders, so that they lie
in one basin of the loss, where their mean is a network too (not a general recipe: runs
trained apart average into noise). Every floating tensor of the checkpoints (weights,
biases, BatchNorm's running statistics) becomes the plain mean; integer buffers
(BatchNorm's batch counter) are the first run's. The new run folder holds `checkpoint.pt`
(no optimiser state: it is exported and benched, not resumed), `config.json` (the first
ingredient's, so the bench draws its held-out crops from the same stream) and `soup.json`
(the ingredients). Export and bench it as any run.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from .train import run_config

#: The config fields every ingredient must share: the network's shape and its input crops.
SHAPE_FIELDS = ("landmark_set", "size", "width", "head", "loss", "crop_zoom")


def soup_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of n state dicts with the same keys and shapes (integer tensors: the
    first's)."""
    first = states[0]
    for state in states[1:]:
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise ValueError("the checkpoints hold different networks")
    return {key: (torch.stack([state[key] for state in states]).mean(0)
                  if value.dtype.is_floating_point else value.clone())
            for key, value in first.items()}


def make_soup(run: Path, ingredients: list[Path]) -> Path:
    """Write the soup of `ingredients` (run folders) as run folder `run`; returns its
    checkpoint. ValueError when fewer than two runs are given or they differ in a
    `SHAPE_FIELDS` field."""
    if len(ingredients) < 2:
        raise ValueError("a soup needs at least two runs")
    configs = [asdict(run_config(path)) for path in ingredients]
    for path, config in zip(ingredients[1:], configs[1:]):
        differ = [name for name in SHAPE_FIELDS if config[name] != configs[0][name]]
        if differ:
            raise ValueError(f"{path} differs from {ingredients[0]} in {', '.join(differ)}")
    states = [torch.load(path / "checkpoint.pt", weights_only=True) for path in ingredients]
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(configs[0], indent=2))
    (run / "soup.json").write_text(json.dumps({
        "ingredients": [str(path) for path in ingredients],
        "steps": [int(state["step"]) for state in states]}, indent=2))
    checkpoint = run / "checkpoint.pt"
    torch.save({"model": soup_state([state["model"] for state in states]),
                "step": max(int(state["step"]) for state in states)}, checkpoint)
    return checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the soup's run folder")
    parser.add_argument("--from", dest="ingredients", type=Path, action="append",
                        required=True, help="a run folder to average (repeat)")
    args = parser.parse_args(argv)
    try:
        checkpoint = make_soup(args.run, args.ingredients)
    except (ValueError, FileNotFoundError) as exc:
        print(f"soup: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"checkpoint": str(checkpoint),
                      "ingredients": [str(path) for path in args.ingredients]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
