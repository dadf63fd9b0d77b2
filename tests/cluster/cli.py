"""Running the real `chatnode` command in a process of its own, as an admin would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m chatnode ARGS` with no CHATNODE_* setting but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHATNODE_")}
    return subprocess.run([sys.executable, "-m", "chatnode", *args], capture_output=True,
                          text=True, input=stdin, env={**clean, **(env or {})}, cwd=cwd,
                          timeout=60, check=False)


def refused_in_one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a command that must stop at once: non-zero, no traceback, one line."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr.strip()


def write_config(path: Path, store_url: str | None = None, bus_url: str | None = None,
                 data_dir: Path | None = None) -> Path:
    lines = [] if data_dir is None else [f'data_dir = "{data_dir}"']
    if store_url is not None:
        lines += ["[store]", f'url = "{store_url}"']
    if bus_url is not None:
        lines += ["[bus]", f'url = "{bus_url}"']
    path.write_text("\n".join(lines) + "\n")
    return path
