"""Figures from raw samples, and the checks every run must pass."""

from __future__ import annotations

from collections.abc import Sequence


def percentile(samples: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile; None when there are no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_ms(samples_ns: Sequence[int]) -> dict[str, float | None]:
    ms = [s / 1e6 for s in samples_ns]
    return {"p50": _round(percentile(ms, 50)), "p99": _round(percentile(ms, 99)),
            "max": _round(max(ms) if ms else None)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Checks:
    """Collects what went wrong; a run with any failure exits non-zero."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def expect(self, ok: bool, failure: str) -> None:
        if not ok:
            self.failures.append(failure)

    @property
    def passed(self) -> bool:
        return not self.failures
