"""The short version of scripts/kill9: a few kill -9 at random moments and a SIGTERM, under
steady load from many devices; after each, every acknowledged message is in the log at its seq,
seqs have no gap, markers never went back; at the end every device's replica and ticks equal
the log."""

import random
from pathlib import Path

from chatnode.faults.kill9 import run_kill9


async def test_kill_9_under_load_loses_nothing_and_every_device_converges(
        tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    lines: list[str] = []
    result = await run_kill9(tmp_path / "data", rounds=4, users=6, rate=200, up_s=(0.5, 1.5),
                             seed=seed, say=lines.append)
    rerun = f"scripts/kill9 --seed {seed} makes the same choices"
    report = "\n".join([f"seed {seed} ({rerun})", *lines])
    assert result.problems == [], report
    assert result.rounds == 4, report
    assert result.acked > 100, report  # the load really ran
    assert result.reconnects >= 8 * 4, report  # every device came back after every stop
