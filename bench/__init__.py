"""ARTi benchmarks: a seeded data generator and benchmarks reported as ratios against same-run baselines.

`python -m bench [--small] [--only NAME] [--reps N]` (or `arti bench ...`) runs them; see bench/README.md.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench` and `arti bench`."""
    from bench.runner import main as run  # imported here to keep `import bench` light

    return run(argv)
