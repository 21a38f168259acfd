"""DenseCap benchmarks and evaluations: `python -m bench` runs the suite (see README.md)."""
