"""Frozen skill-library evaluation: agents, paired runs with resume, reports with CIs and plots.

Exports ``EvalConfig``, ``EvalRun``, ``EpisodeRecord``, ``EvalAbortedError``, ``run_eval``,
``summarize``, ``write_report``, ``render_table``, ``EvalSummary``, ``make_agent``,
``parse_agent_spec``, ``parse_action`` and ``run_and_report``.

``reskill eval`` (see ``commands.py``) is the command-line face of ``run_and_report``; the
modules are ``agents`` (spec strings -> agents, reply parsing), ``runner`` (conditions,
episodes, JSONL, resume, workers) and ``report`` (statistics, table, report.md, PNGs).
Nothing heavy is imported here: torch loads only for ``local:`` agents, matplotlib only
when a report is written.

>>> from reskill_gym.evaluation import parse_agent_spec
>>> parse_agent_spec("anthropic:claude-sonnet-4-5").kind
'anthropic'
"""

from __future__ import annotations

from reskill_gym.evaluation.agents import make_agent, parse_action, parse_agent_spec
from reskill_gym.evaluation.commands import run_and_report
from reskill_gym.evaluation.report import EvalSummary, render_table, summarize, write_report
from reskill_gym.evaluation.runner import (
    EpisodeRecord,
    EvalAbortedError,
    EvalConfig,
    EvalRun,
    run_eval,
)

__all__ = [
    "EvalConfig",
    "EvalRun",
    "EpisodeRecord",
    "EvalAbortedError",
    "run_eval",
    "summarize",
    "write_report",
    "render_table",
    "EvalSummary",
    "make_agent",
    "parse_agent_spec",
    "parse_action",
    "run_and_report",
]
