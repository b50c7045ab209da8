"""Issue 12: a long run shows its progress on a terminal and stays quiet when piped (tqdm,
``disable=None``: drawn only when the stream is a terminal)."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

from chargeback.tools.progress import Progress, count_lines

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "gateway-messages.jsonl"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_piped_the_bar_is_not_drawn_and_lines_pass_through() -> None:
    piped = io.StringIO()
    with Progress("replay", total=3, stream=piped) as progress:
        assert not progress.shown
        assert list(progress.each("abc")) == ["a", "b", "c"]
        progress.write("line 2: skipped (status-429)\n")
    assert piped.getvalue() == "line 2: skipped (status-429)\n"


def test_on_a_terminal_the_bar_is_drawn_and_lines_print_above_it() -> None:
    terminal = Terminal()
    with Progress("replay", total=3, stream=terminal) as progress:
        assert progress.shown
        for _ in progress.each(range(3)):
            pass
        progress.write("line 2: skipped (status-429)\n")
    shown = terminal.getvalue()
    assert "replay: 100%" in shown and "3/3" in shown and " messages/s" in shown
    assert "line 2: skipped (status-429)\n" in shown


def test_count_lines_gives_the_bar_its_total(tmp_path: Path) -> None:
    (tmp_path / "three").write_bytes(b"a\nb\nc")
    (tmp_path / "two").write_bytes(b"a\nb\n")
    assert [count_lines(tmp_path / n) for n in ("three", "two", "none")] == [3, 2, None]


def test_replay_on_a_terminal_shows_a_bar_and_piped_none(tmp_path: Path) -> None:
    """The command itself, its standard error a pseudo-terminal of 100 columns, then a pipe."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_CONN")},
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-m", "chargeback", "replay", str(SAMPLES), "--sink", "jsonl"]
    argv += ["--dead-letters", str(tmp_path / "dl")]
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    try:
        shown = subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=follower, env=env, timeout=120, check=False
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all is read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert shown.returncode == 0
    assert b"replay:" in drawn and b"14/14" in drawn and b" messages/s" in drawn
    piped = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert "messages/s" not in piped.stderr and "\r" not in piped.stderr
    assert (
        piped.stderr.splitlines()[-1] == "replay: received=14 emitted=10 skipped=2 dead_lettered=2"
    )
