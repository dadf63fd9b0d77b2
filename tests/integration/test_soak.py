"""A few seconds of scripts/soak: churn, a reconnect storm and steady traffic, after which every
device equals the log. (Whether memory stays flat needs minutes: that is the script's own run.)"""

import random
from pathlib import Path

from chatnode.faults.soak import Sample, flatness_problems, run_soak


async def test_a_short_soak_with_churn_and_a_storm_ends_with_every_device_equal_to_the_log(
        tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    lines: list[str] = []
    result = await run_soak(tmp_path / "data", seconds=8, users=6, rate=60, churn_s=3,
                            storm_s=5, every_s=2, seed=seed, judge_flatness=False,
                            say=lines.append)
    report = "\n".join([f"seed {seed}", *lines])
    assert result.problems == [], report
    assert len(result.samples) == 4, report
    assert sum(s.acked for s in result.samples) > 100, report
    assert sum(s.reconnects for s in result.samples) > 8, report  # churn and the storm


def sample(rss_mib: float, fds: int) -> Sample:
    return Sample(0, int(rss_mib * 2**20), fds, 0, 0, 0, 0, 0, 0, 0)


def test_flatness_allows_noise_after_the_warmup_and_catches_growth() -> None:
    flat = [sample(40, 30), sample(44, 36), sample(43, 34), sample(45, 40), sample(44, 38)]
    assert flatness_problems(flat, warmup=2) == []
    leaking = [*flat, sample(60, 38)]
    assert "memory grew" in flatness_problems(leaking, warmup=2)[0]
    fd_leak = [*flat, sample(44, 80)]
    assert "descriptors grew" in flatness_problems(fd_leak, warmup=2)[0]
