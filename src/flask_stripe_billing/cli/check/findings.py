"""The lines of ``flask billing check`` (what was looked at, its state, what it means) and
the report they make."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..reports import plural


@dataclass(frozen=True)
class Finding:
    """One line of the check: what was looked at, its state and what that means."""

    #: set, default, missing, invalid, ok, warning or failed.
    state: str
    subject: str
    detail: str = ""
    #: Whether this stops the webhook (or the online check) from working: exit code 1.
    problem: bool = False


def summary(findings: Sequence[Finding]) -> str:
    """The last line: ready, or the problems to fix."""
    problems = [f for f in findings if f.problem]
    missing = [f for f in findings if f.state == "missing" and not f.problem]
    warnings = [f for f in findings if f.state == "warning" and not f.problem]
    if problems:
        names = ", ".join(dict.fromkeys(f.subject for f in problems))
        return f"{plural(len(problems), 'problem')} to fix: {names}."
    notes = [plural(len(warnings), "warning")] if warnings else []
    if missing:
        notes.append(f"{plural(len(missing), 'optional setting')} missing")
    note = f" ({'; '.join(notes)})" if notes else ""
    return f"Ready: everything the webhook needs is in place{note}."


def report(sections: Sequence[tuple[str, Sequence[Finding]]]) -> str:
    """The findings under their section titles, aligned across sections, then the summary."""
    every = [finding for _, findings in sections for finding in findings]
    state_width = max(len(f.state) for f in every)
    subject_width = max(len(f.subject) for f in every)
    lines = []
    for title, findings in sections:
        lines.append(title)
        lines.extend(
            f"  {f.state.ljust(state_width)}  {f.subject.ljust(subject_width)}  {f.detail}".rstrip()
            for f in findings
        )
    lines.append(summary(every))
    return "\n".join(lines)
