"""deploy/chatnode.service: systemd accepts it, and its ExecStart line, run as written (with this
checkout's chatnode and a temporary directory in place of /opt and /var/lib), serves and stops
cleanly on the unit's KillSignal within its TimeoutStopSec."""

from __future__ import annotations

import configparser
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

UNIT = Path(__file__).parents[2] / "deploy" / "chatnode.service"
CONFIG_EXAMPLE = Path(__file__).parents[2] / "config.example.toml"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this checkout's python.
    text = UNIT.read_text().replace("/opt/chatnode/bin/chatnode", f"{sys.executable} -m chatnode")
    (tmp_path / "chatnode.service").write_text(text)
    result = subprocess.run([analyze, "verify", str(tmp_path / "chatnode.service")],
                            capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines() if "chatnode.service" in line]
    assert result.returncode == 0 and problems == [], result.stderr


def test_the_units_command_line_serves_and_stops_within_its_timeout(tmp_path: Path) -> None:
    service = unit()["Service"]
    assert service["KillSignal"] == "SIGTERM"
    stop_timeout = float(service["TimeoutStopSec"])
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/chatnode/bin/chatnode"
    config = tmp_path / "config.toml"
    config.write_text(CONFIG_EXAMPLE.read_text().replace("port = 8420", "port = 0"))
    data_dir = tmp_path / "state"
    # systemd makes the StateDirectory under /var/lib; here, a temporary one.
    paths = {"/etc/chatnode/config.toml": str(config),
             f"/var/lib/{service['StateDirectory']}": str(data_dir)}
    argv = [sys.executable, "-m", "chatnode", *[paths.get(a, a) for a in argv[1:]]]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert f"(data in {data_dir})" in line, line
        url = line.split("listening on ")[1].split()[0]
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(stop_timeout) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
