"""Measurements, results as ratios against a baseline measured in the same run, the table and the JSON."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_JSON_SAMPLES = 2000


@dataclass
class Measurement:
    """Wall-clock seconds of each repetition (warm-ups excluded)."""

    samples: list[float] = field(default_factory=list)
    rows: int | None = None  # rows processed per repetition, for throughput

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        if len(self.samples) < 2:
            return self.samples[0]
        return statistics.quantiles(self.samples, n=20, method="inclusive")[18]

    def rows_per_s(self, seconds: float | None = None) -> float | None:
        if not self.rows:
            return None
        return self.rows / (self.median if seconds is None else seconds)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median_ms": round(self.median * 1000, 3),
            "p95_ms": round(self.p95 * 1000, 3),
            "min_ms": round(min(self.samples) * 1000, 3),
            "max_ms": round(max(self.samples) * 1000, 3),
            "reps": len(self.samples),
        }
        if len(self.samples) <= MAX_JSON_SAMPLES:
            out["samples_ms"] = [round(s * 1000, 3) for s in self.samples]
        else:  # per-request latencies: percentiles instead of every sample
            q = statistics.quantiles(self.samples, n=100, method="inclusive")
            out["percentiles_ms"] = {f"p{p}": round(q[p - 1] * 1000, 3) for p in (1, 5, 25, 50, 75, 90, 95, 99)}
        if self.rows:
            out["rows"] = self.rows
            out["rows_per_s_median"] = round(self.rows_per_s() or 0, 1)
        return out


def measure_interleaved(runs: dict[str, Callable[[], float]], *, warmup: int, reps: int) -> dict[str, Measurement]:
    """Run each callable `warmup` then `reps` times, rotating the order every repetition so drift hits all alike.

    Each callable returns the seconds it measured itself (so it can keep setup out of the timing).
    """
    names = list(runs)
    out = {name: Measurement() for name in names}
    for i in range(warmup + reps):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = runs[name]()
            if i >= warmup:
                out[name].samples.append(seconds)
    return out


@dataclass
class Result:
    """One comparison: a measurement against its same-run baseline, with a target on their ratio.

    kind "time": ratio = median time / baseline median time (lower is better; target `<=`); with
        `stat="p95"`, the 95th percentiles are compared instead of the medians.
    kind "throughput": ratio = rows/s / baseline rows/s (higher is better; target `>=`).
    kind "score": the ratio is `value`, a quality score measured against the baseline (e.g. recall@10 of
        an approximate search against the exact one); the measurements only carry the timings.
    """

    benchmark: str
    name: str
    kind: str
    measured: Measurement
    baseline_name: str
    baseline: Measurement
    target_op: str
    target: float | None
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    stat: str = "median"
    value: float | None = None

    @property
    def ratio(self) -> float:
        if self.kind == "score":
            return float(self.value or 0.0)
        if self.stat == "p95":
            return self.measured.p95 / self.baseline.p95
        if self.kind == "throughput":
            return (self.measured.rows_per_s() or 0) / (self.baseline.rows_per_s() or 1)
        return self.measured.median / self.baseline.median

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio <= self.target if self.target_op == "<=" else self.ratio >= self.target

    @property
    def unit(self) -> str:
        return "" if self.kind == "score" else "x"

    def ratio_text(self) -> str:
        if self.kind == "score":
            return f"{self.ratio:.3f}"
        return f"{self.ratio:.2f}x" + (" (p95)" if self.stat == "p95" else "")

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "name": self.name,
            "kind": self.kind,
            "measured": self.measured.as_json(),
            "baseline_name": self.baseline_name,
            "baseline": self.baseline.as_json(),
            "ratio": round(self.ratio, 4),
            "stat": "value" if self.kind == "score" else self.stat,
            "target": None if self.target is None else f"{self.target_op} {self.target}{self.unit}",
            "target_op": self.target_op,
            "target_value": self.target,
            "met": self.met,
            "params": self.params,
            "note": self.note,
        }


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.1f} ms" if ms < 10_000 else f"{ms / 1000:,.2f} s"


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def format_table(results: Sequence[Result]) -> str:
    header = ("name", "median", "p95", "rows/s", "baseline", "base median", "base rows/s", "ratio", "target", "met?")
    rows = [header]
    for r in results:
        rows.append((
            r.name,
            _ms(r.measured.median),
            _ms(r.measured.p95),
            _rate(r.measured.rows_per_s()),
            r.baseline_name,
            _ms(r.baseline.median),
            _rate(r.baseline.rows_per_s()),
            r.ratio_text(),
            "-" if r.target is None else f"{r.target_op} {r.target}{r.unit}",
            {True: "yes", False: "NO", None: "n/a"}[r.met],
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {1, 2, 3, 5, 6, 7}
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)


class Stopwatch:
    """`with Stopwatch() as sw: ...` then `sw.seconds`."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
