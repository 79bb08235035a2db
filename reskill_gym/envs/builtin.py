"""The built-in envs, registered through the same :func:`register` route a plugin uses.

Exports ``ALFWORLD``, ``SCIENCEWORLD``, ``SEARCH``, ``TEXTWORLD`` and ``GYM`` (their
:class:`EnvSpec`).

Importing this module imports no engine: factories are ``"module:attr"`` strings.
"""

from __future__ import annotations

from reskill_gym.envs.registration import register
from reskill_gym.envs.spec import EnvSpec

__all__ = ["ALFWORLD", "SCIENCEWORLD", "SEARCH", "TEXTWORLD", "GYM"]

ALFWORLD = register(
    EnvSpec(
        name="alfworld",
        factory="reskill_gym.envs.alfworld:ALFWorldEnv",
        gym_id="ReSkill-ALFWorld-v0",
        description="ALFWorld households on the real TextWorld engine (six task types).",
        system_prompt="You are an expert agent operating in a household (the ALFRED embodied "
        "environment): you move between receptacles, open, take, put, clean, heat, cool and "
        "use objects to complete the task.",
        expert="lookahead",
        creator_vocabulary="""The agent acts in ALFWorld (a text household). Commands follow fixed templates:
- go to <receptacle> <N>          e.g. go to countertop 1
- open <receptacle> <N> / close <receptacle> <N>
- take <object> <N> from <receptacle> <N>
- move <object> <N> to <receptacle> <N>   (put an object down)
- heat / cool / clean <object> <N> with <receptacle> <N>   (microwave, fridge, sinkbasin)
- use <object> <N>                e.g. use desklamp 1
- examine <object or receptacle> <N>, inventory, look""",
        difficulties=("tiny", "small", "std"),
        # A small CPU model: small rooms and a short horizon (an untrained small policy sees
        # reward only there).
        local_agent_defaults={"difficulty": "tiny", "max_turns": 20},
    )
)

SCIENCEWORLD = register(
    EnvSpec(
        name="scienceworld",
        factory="reskill_gym.envs.scienceworld:ScienceWorldEnv",
        gym_id="ReSkill-ScienceWorld-v0",
        description="ScienceWorld experiments on the real simulator (Java).",
        system_prompt="You are an expert agent carrying out science experiments in a text "
        "world (ScienceWorld): you move between rooms, inspect, pick up, combine and use "
        "objects and devices to complete the task.",
        creator_vocabulary="""The agent acts in ScienceWorld (text science experiments). Free-form commands:
- go to <location>, look around, inventory, wait
- pick up <object>, put <object> in <container>, pour <source> into <container>
- activate <device> / deactivate <device>, use <object> on <target>
- mix <container>, focus on <object>""",
        requires=("java",),
    )
)

SEARCH = register(
    EnvSpec(
        name="search",
        factory="reskill_gym.envs.search:SearchEnv",
        gym_id="ReSkill-Search-v0",
        description="Search-augmented multi-hop QA (Search-R1 tags, embedded BM25 or a server).",
        system_prompt="You are a question-answering agent with a search engine. Follow the "
        "instructions in the observation to search and to give your answer.",
        # Search-R1's <search>/<answer> tags: the engine parses the reply itself.
        reply_format="passthrough",
        admissible_actions=False,
        creator_vocabulary="""The agent answers multi-hop questions with a search engine. Actions are tagged:
- <search> query </search>   returns passages between <information> tags
- <answer> short answer </answer>   ends the episode
Trigger patterns should match the tags, e.g. `<search>` (after any search) or `<answer>`.""",
    )
)

GYM = register(
    EnvSpec(
        name="gym",
        factory="reskill_gym.envs.gym_adapter:GymTextEnv",
        gym_id="ReSkill-Gym-v0",
        description="Any Gymnasium text env, unmodified (env kwargs: gym_id, env_kwargs, "
        "task_key, actions_key, won_key, ...; reskill_gym.envs.gym_adapter).",
        # which of its envs lists admissible actions is unknown here: generate is safe
        local_action_mode="generate",
    )
)

TEXTWORLD = register(
    EnvSpec(
        name="textworld",
        factory="reskill_gym.envs.twcooking:TextWorldCookingEnv",
        gym_id="ReSkill-TextWorld-v0",
        description="TextWorld Cooking games from TextWorld's own tw-cooking generator "
        "(seeded, generated offline, cached).",
        system_prompt="You are an expert agent cooking in a text house (TextWorld Cooking): "
        "you read the cookbook, find the ingredients, open containers, take, slice, dice, "
        "chop, fry, roast or grill them as the recipe says, prepare the meal and eat it.",
        # the engine's policy_commands re-plan from any state: labels by replay
        expert="replay",
        creator_vocabulary="""The agent acts in TextWorld Cooking (a text house with a cookbook). Commands:
- examine cookbook   (read the recipe first), look, inventory
- go north / south / east / west, open <container or door>, close <...>
- take <ingredient> [from <container>], drop <ingredient>, put <x> on <surface>
- slice / dice / chop <ingredient> with knife   (take the knife first)
- cook <ingredient> with stove (fry) / oven (roast) / BBQ (grill)
- prepare meal   (in the kitchen, with every ingredient prepared), eat meal""",
        difficulties=("tiny", "small", "std"),
        local_agent_defaults={"difficulty": "tiny", "max_turns": 20},
    )
)
