"""The per-step episode log: round trip, plain-gzip compatibility, recovery without an index,
resume truncation, live following."""

from __future__ import annotations

import gzip
import json

from reskill_gym.episode import Episode, Turn
from reskill_gym.step_episodes import (
    EPISODES_DIR,
    StepEpisodes,
    shown_skill_texts,
    truncate_step_episodes,
    write_step_episodes,
)


def _episode(step: int, i: int, *, won: bool = False) -> Episode:
    turns = [
        Turn(
            observation=f"obs {k} <script>alert(1)</script>",
            action=f"go to desk {k}",
            reply=f"<action>go to desk {k}</action>",
            parse="tagged",
            skill_ids=["plan@2"] if k == 0 else [],
            valid=k != 1,
        )
        for k in range(3)
    ]
    return Episode(
        episode_id=f"s{step}-g0-r{i}",
        env_id="ReSkill-ALFWorld-v0",
        task_id=f"t{i}",
        task_type="pick_and_place_simple",
        step=step,
        arm="candidate" if i % 2 else "incumbent",
        library_version="aaaaaaaaaaaa",
        group_id=f"s{step}-g0",
        turns=turns,
        won=won,
        reward=float(won),
    )


def test_round_trip_and_plain_gzip(tmp_path) -> None:
    eps = [_episode(0, i, won=i == 1) for i in range(4)]
    path = write_step_episodes(tmp_path, 0, eps, skill_texts={"plan@2": "Plan.", "other@1": "x"})
    # any gzip reader sees JSONL: one Episode per line
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert [Episode.model_validate_json(line) for line in lines] == eps
    log = StepEpisodes(tmp_path)
    entries = log.entries()
    assert [e.episode_id for e in entries] == [e.episode_id for e in eps]
    assert [e.won for e in entries] == [False, True, False, False]
    assert (
        entries[2].invalid_turns == 1 and entries[2].turns == 3 and entries[2].skills == ["plan@2"]
    )
    assert log.read(entries[3]) == eps[3]
    # only the texts of skills that fired are kept
    index = json.loads((tmp_path / EPISODES_DIR / "step_000000.index.json").read_text())
    assert index["skills"] == {"plan@2": "Plan."}


def test_follow_replace_truncate(tmp_path) -> None:
    log = StepEpisodes(tmp_path)
    assert log.entries() == [] and not log.refresh()
    write_step_episodes(tmp_path, 0, [_episode(0, 0)])
    assert log.refresh() and len(log.entries()) == 1
    write_step_episodes(tmp_path, 1, [_episode(1, 0), _episode(1, 1)])
    assert log.refresh() and [e.step for e in log.entries()] == [0, 1, 1]
    assert not log.refresh()  # nothing new
    write_step_episodes(tmp_path, 1, [_episode(1, 5)])  # the step replayed after a resume
    assert log.refresh() and [e.episode_id for e in log.entries()] == ["s0-g0-r0", "s1-g0-r5"]
    assert truncate_step_episodes(tmp_path, 1) == 2
    assert log.refresh() and [e.step for e in log.entries()] == [0]


def test_step_file_without_index_is_scanned(tmp_path) -> None:
    eps = [_episode(3, i) for i in range(3)]
    write_step_episodes(tmp_path, 3, eps)
    folder = tmp_path / EPISODES_DIR
    (folder / "step_000003.index.json").unlink()  # a crash between the two renames
    data = (folder / "step_000003.jsonl.gz").read_bytes()
    (folder / "step_000003.jsonl.gz").write_bytes(data + data[:10])  # and a torn tail
    log = StepEpisodes(tmp_path)
    entries = log.entries()
    assert [e.episode_id for e in entries] == [e.episode_id for e in eps]
    assert log.read(entries[1]) == eps[1]
    assert list(folder.iterdir()) == [folder / "step_000003.jsonl.gz"]  # the reader wrote nothing


def test_shown_skill_texts_from_views(tmp_path) -> None:
    from reskill_gym.skills import LibraryView, Skill, Trigger

    view = LibraryView(
        "aaaaaaaaaaaa",
        [
            Skill(
                name="plan",
                description="d",
                content="Plan first.",
                trigger=Trigger(type="beginning"),
            )
        ],
    )

    def lookup(version: str) -> LibraryView:
        if version != view.version:
            raise KeyError(version)  # a pruned version
        return view

    eps = [_episode(0, 0), _episode(0, 1).model_copy(update={"library_version": "bbbbbbbbbbbb"})]
    texts = shown_skill_texts(eps, lookup)
    assert list(texts) == ["plan@2"] and "Plan first." in texts["plan@2"]


def test_credentials_are_cut_from_the_free_text(tmp_path) -> None:
    ep = _episode(0, 0)
    ep.turns[1].reply = "curl -H 'Authorization: Bearer abcdefghijklmnop1234' http://x"
    ep.task = "use key sk-ant-abcdefghijklmnopqrstu"
    ep.turns[2].prompt = "x-api-key: hunter2hunter2 and the skills"
    write_step_episodes(tmp_path, 0, [ep])
    log = StepEpisodes(tmp_path)
    back = log.read(log.entries()[0])
    assert "abcdefghijklmnop1234" not in back.turns[1].reply and "[REDACTED]" in back.turns[1].reply
    assert "sk-ant" not in back.task
    assert "hunter2" not in (back.turns[2].prompt or "") and back.turns[0].prompt is None
    assert back.turns[0] == ep.turns[0] and back.turns[2].action == ep.turns[2].action
