"""Test doubles and reference ports: for tests, dry runs and benchmarks, never for training.

Exports nothing at the package level; import the module you need:

- ``reskill_gym.testing.loopback``: ``LoopbackLLMServer``, a scripted LLM server on 127.0.0.1
  that speaks the OpenAI, Anthropic and Bedrock wire formats (real SDKs talk to it). Dry-run
  a config with no key: ``python -m reskill_gym.testing.loopback --port 8000`` and point the
  backend at ``openai:http://127.0.0.1:8000/openai/v1#loopback``.
- ``reskill_gym.testing.agents``: ``SearchMistakeAgent`` and ``ALFWorldMistakeAgent``,
  scripted agents that make typical mistakes on the real engines (``reskill creator
  record`` plays them through ``reskill_gym.rollout.record_episodes``).
- ``reskill_gym.testing.published_tracker``: a port of the published ReSkill version
  tracker, the oracle the version tester's parity test and benchmark compare against.
- ``reskill_gym.testing.workload``: the env benchmarks' shared settings and random,
  engine-meaningful actions.
- ``reskill_gym.testing.browser``: Debian's headless Chromium under Playwright, for the
  viewer's browser tests and its scale benchmark.

The core imports none of these (``reskill creator record`` imports the agents when run), and
importing this package imports no submodule, so it costs nothing.

>>> import reskill_gym.testing
>>> reskill_gym.testing.__all__
[]
"""

from __future__ import annotations

__all__: list[str] = []
