"""``make demo`` (examples/demo.py) prints a readable table: every line under the header is
a step, or an ``app log:`` / ``answer:`` line under its step; the legend has no stray marks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
STEP = re.compile(r" ?\d+\. .+ (ok|FAIL: .+)$")


def test_the_demo_prints_every_log_line_under_its_step_and_a_clean_legend() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
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
