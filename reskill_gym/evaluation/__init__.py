"""Frozen skill-library evaluation: agents, paired runs with resume, reports with CIs and plots.

Exports ``EvalConfig``, ``EvalRun``, ``EvalEpisode``, ``EvalAbortedError``, ``run_eval``,
``summarize``, ``write_eval_report``, ``render_table``, ``EvalSummary``, ``make_agent``,
``parse_agent_spec``, ``run_and_report``, ``ExpertConfig``, ``ExpertState``, ``ExpertScore``,
``run_expert``, ``summarize_expert`` and ``write_expert_report``.

``reskill eval`` (see ``commands.py``) is the command-line face of ``run_and_report``; the
modules, each one concern: ``config`` (``EvalConfig`` and its ``expert:`` block), ``agents``
(spec strings -> agents that answer a turn), ``player`` (one episode through the turn
contract :mod:`reskill_gym.rollout`, turn retries), ``episode_log`` (the JSONL records, torn
writes, what a resume must keep), ``runner`` (conditions, jobs, workers, resume) and
``report`` (statistics, table, report.md, PNGs). ``--metric expert``: ``states`` (planner and
perturbed trajectories, look-ahead labels), ``expert`` (conditions none / library / placebo
/ shuffled, scoring through the turn contract) and ``expert_report``. Nothing heavy is
imported here: torch loads only for ``local:`` agents, matplotlib only when a report is
written.

>>> from reskill_gym.evaluation import parse_agent_spec
>>> parse_agent_spec("anthropic:claude-sonnet-4-5").kind
'anthropic'
"""

from __future__ import annotations

from reskill_gym.evaluation.agents import make_agent, parse_agent_spec
from reskill_gym.evaluation.commands import run_and_report
from reskill_gym.evaluation.config import EvalAbortedError, EvalConfig, ExpertConfig
from reskill_gym.evaluation.episode_log import EvalEpisode
from reskill_gym.evaluation.expert import ExpertScore, run_expert
from reskill_gym.evaluation.expert_report import summarize_expert, write_expert_report
from reskill_gym.evaluation.report import EvalSummary, render_table, summarize, write_eval_report
from reskill_gym.evaluation.runner import EvalRun, run_eval
from reskill_gym.evaluation.states import ExpertState

__all__ = [
    "EvalConfig",
    "EvalRun",
    "EvalEpisode",
    "EvalAbortedError",
    "run_eval",
    "summarize",
    "write_eval_report",
    "render_table",
    "EvalSummary",
    "make_agent",
    "parse_agent_spec",
    "run_and_report",
    "ExpertConfig",
    "ExpertState",
    "ExpertScore",
    "run_expert",
    "summarize_expert",
    "write_expert_report",
]
