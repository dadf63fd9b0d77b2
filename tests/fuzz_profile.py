"""The hypothesis settings of the fuzz tests: bounded for CI, longer on request.

`CHATNODE_FUZZ_EXAMPLES=N` runs every fuzz test with N examples instead of its own default,
for a long local run (e.g. twenty times the default before a release).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "chatnode-fuzz",
    # Network examples vary in time with the machine's load; that is not what we test here.
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
    # No example database: the suite runs without writing caches into the worktree.
    database=None,
    print_blob=True,
)


def fuzz_settings(default_examples: int) -> settings:
    """The fuzz profile with `default_examples`, or CHATNODE_FUZZ_EXAMPLES when it is set."""
    examples = int(os.environ.get("CHATNODE_FUZZ_EXAMPLES") or default_examples)
    return settings(settings.get_profile("chatnode-fuzz"), max_examples=examples)
