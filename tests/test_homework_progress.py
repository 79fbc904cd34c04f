"""The progress bar: on stderr, by default only when stderr is a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

SPEC = """
[[problem]]
id = "sig"
kind = "answer"
expression = "sigmoid(x)"
"""


def check(tmp_path, terminal: bool, *options: str) -> tuple[str, str]:
    (tmp_path / "spec.toml").write_text(SPEC)
    subs = []
    for i, answer in enumerate(["sigmoid(x)*(1 - sigmoid(x))", "sigmoid(x)", "0"]):
        (tmp_path / f"s{i}.toml").write_text(f'[sig]\nx = "{answer}"\n')
        subs.append(str(tmp_path / f"s{i}.toml"))
    argv = [sys.executable, "-m", "symgrad.cli", "check", str(tmp_path / "spec.toml"), *subs, "--quiet",
            *options]
    if not terminal:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        return proc.stdout, proc.stderr
    main, secondary = pty.openpty()
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=secondary, text=True, timeout=300)
    finally:
        os.close(secondary)
    err = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the terminal's other end is closed and everything was read
            break
        if not chunk:
            break
        err += chunk
    os.close(main)
    return proc.stdout, err.decode()


@pytest.mark.parametrize("terminal", [True, False])
def test_the_progress_bar_shows_on_a_terminal_only(tmp_path, terminal):
    _, err = check(tmp_path, terminal)
    if terminal:
        assert "grading [" in err and "3/3" in err
    else:
        assert "grading [" not in err


def test_the_progress_bar_can_be_asked_for_or_refused(tmp_path):
    _, err = check(tmp_path, False, "--progress")
    assert "grading [" in err and "3/3" in err
    _, err = check(tmp_path, True, "--no-progress")
    assert "grading [" not in err
