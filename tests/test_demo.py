"""``make demo`` (examples/demo.py) prints a readable table: every line under the header is
a step, or an ``app log:`` / ``answer:`` line under its step; the legend has no stray marks.
Its purchase section shows bob's credits granted once and taken back by a full refund."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
STEP = re.compile(r" ?\d+\. .+ (ok|FAIL: .+)$")


@pytest.fixture(scope="module")
def demo_output() -> list[str]:
    """The demo's output lines, run once for this module (it takes some seconds)."""
    done = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_the_demo_prints_every_log_line_under_its_step_and_a_clean_legend(
    demo_output: list[str],
) -> None:
    lines = demo_output
    header = next(i for i, line in enumerate(lines) if "what is sent" in line)
    end = lines.index("", header)  # the table ends at the first blank line (sections follow)
    table = lines[header + 1 : end]
    assert "All steps ended as expected." in lines[end:]
    assert len([line for line in table if STEP.match(line)]) >= 9
    for line in table:
        assert STEP.match(line) or line.startswith(("        app log: ", "        answer: ")), line
    assert "        app log: Stripe webhook signature rejected: " in "\n".join(table)
    legend = lines[2:header]
    assert not any(line.rstrip().endswith(" -") for line in legend), legend


def test_the_demo_grants_bobs_credits_once_and_a_full_refund_takes_them_back(
    demo_output: list[str],
) -> None:
    lines = demo_output
    start = next(i for i, line in enumerate(lines) if line.startswith("One-time purchases"))
    end = lines.index("", start)
    section = lines[start + 2 : end]  # under the title and the column header
    columns = lines[start + 1].split()
    assert columns == ["what", "is", "sent", "HTTP", "outcome", "credits", "bob's", "purchase"]
    rows = [line.split()[-6:] for line in section if STEP.match(line)]
    assert rows == [
        ["200", "processed", "200", "paid", "0.00/30.00", "ok"],
        ["200", "duplicate", "200", "paid", "0.00/30.00", "ok"],
        ["200", "processed", "200", "partially_refunded", "10.00/30.00", "ok"],
        ["200", "processed", "0", "refunded", "30.00/30.00", "ok"],
        ["200", "duplicate", "0", "refunded", "30.00/30.00", "ok"],
        ["200", "stale", "0", "refunded", "30.00/30.00", "ok"],
    ]
    # The example's receivers ran once each: one grant, one take-back, under their steps.
    logs = [line.strip() for line in section if not STEP.match(line)]
    assert logs == [
        "app log: bob@example.com bought 200 credits (pi_demo_bob_credits)",
        "app log: 200 credits taken back: pi_demo_bob_credits refunded",
    ]
    assert section[1].startswith("        app log: bob@example.com bought")
    assert section[-3].startswith("        app log: 200 credits taken back")
    assert "bob buys 2 packs: checkout.session.completed" in section[0]
