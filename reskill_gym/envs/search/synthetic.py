"""A deterministic, fictional encyclopedia and the questions asked over it.

Exports ``SyntheticConfig``, ``KnowledgeBase``, ``TEMPLATES``, ``SEEN_TEMPLATES``,
``UNSEEN_TEMPLATES``, ``GENERATOR_VERSION``, ``generate_knowledge_base`` and
``load_or_generate``.

Why synthetic: the real Search-R1 stack needs a 21M-passage Wikipedia dump and a GPU index;
tests and small-model training need something that runs offline in a second, whose answers
cannot be memorised from pre-training, and whose evidence is known exactly. The generator
invents countries, cities, rivers, mountains, universities, companies, people and books with
mutually consistent attributes (a company is founded after its founder is born, a book is
published by a publishing house, a city lies on a river that flows through its country) and
renders each as an encyclopedia-style passage with varied phrasing. Names are built from
syllables, so no text is copied from anywhere.

Questions come from templates. ``train`` and ``seen`` share the single-hop and two-hop
"bridge" templates (``seen`` holds out questions, not templates); ``unseen`` uses held-out
templates: comparisons, yes/no questions and a bridge over a relation never asked in
training. Every question records its gold passages and the entity to search at each hop.

Generation takes ~0.2 s; ``load_or_generate`` writes the result once under the cache folder
as ``corpus.jsonl`` (wiki-18 layout) and ``{train,seen,unseen}.jsonl`` (FlashRAG layout), so
the files can be inspected or served by any Search-R1-style retriever.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock

from reskill_gym import safe_files
from reskill_gym.atomic import atomic_write_text
from reskill_gym.envs.search.corpus import (
    Corpus,
    Passage,
    default_cache_dir,
    load_corpus_jsonl,
    write_corpus_jsonl,
)
from reskill_gym.envs.search.qa_data import QAExample, load_qa_file, write_qa_jsonl

__all__ = [
    "SyntheticConfig",
    "KnowledgeBase",
    "TEMPLATES",
    "SEEN_TEMPLATES",
    "UNSEEN_TEMPLATES",
    "GENERATOR_VERSION",
    "generate_knowledge_base",
    "load_or_generate",
]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1

SEEN_TEMPLATES: tuple[str, ...] = (
    "single_birthplace",
    "single_founder",
    "single_headquarters",
    "single_author",
    "single_river",
    "single_mountain_country",
    "single_university_founded",
    "bridge_author_birthplace",
    "bridge_founder_university",
    "bridge_headquarters_river",
    "bridge_publisher_headquarters",
    "bridge_mountain_capital",
)
UNSEEN_TEMPLATES: tuple[str, ...] = (
    "compare_founded",
    "compare_born",
    "compare_river_length",
    "compare_mountain_height",
    "yesno_same_country",
    "bridge_employer_ceo",
)
TEMPLATES: tuple[str, ...] = SEEN_TEMPLATES + UNSEEN_TEMPLATES


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes of the generated world; the defaults give ~3,300 passages and ~4,000 questions.

    >>> SyntheticConfig(seed=3).cache_key()
    'synthetic-v1-seed3-8ac8174a'
    """

    seed: int = 0
    n_countries: int = 24
    n_cities: int = 360
    n_rivers: int = 120
    n_mountains: int = 120
    n_universities: int = 90
    n_companies: int = 360
    n_people: int = 900
    n_books: int = 450
    train_per_template: int = 250
    seen_per_template: int = 40
    unseen_per_template: int = 60

    def __post_init__(self) -> None:
        if self.n_countries < 2 or self.n_cities < 2 * self.n_countries:
            raise ValueError("need >= 2 countries and >= 2 cities per country")
        for name in (
            "n_rivers",
            "n_mountains",
            "n_universities",
            "n_companies",
            "n_people",
            "n_books",
        ):
            if getattr(self, name) < 4:
                raise ValueError(f"{name} must be >= 4, got {getattr(self, name)}")

    def cache_key(self) -> str:
        import hashlib

        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()
        return f"synthetic-v{GENERATOR_VERSION}-seed{self.seed}-{digest[:8]}"


@dataclass
class KnowledgeBase:
    """A corpus plus questions per split (``train``/``seen``/``unseen``)."""

    corpus: Corpus
    examples: dict[str, list[QAExample]]
    config: SyntheticConfig = field(default_factory=SyntheticConfig)

    def example_index(self) -> dict[str, QAExample]:
        return {ex.id: ex for split in self.examples.values() for ex in split}


# ----- vocabulary ---------------------------------------------------------------------------
_ONSETS = "b br c d dr f g gr h k kr l m n p pr r s st t tr v z th sh".split()
_VOWELS = "a e i o u a e o ai ei ou ia".split()
_CODAS = ["", "", "", "n", "r", "l", "s", "nd", "rn", "th", "m", "sk", "rd"]
_INNER_CODAS = ["", "", "", "n", "r", "l", "s"]
_OCCUPATIONS = (
    "novelist", "poet", "historian", "journalist", "engineer", "architect", "physicist",
    "economist", "painter", "composer", "chemist", "diplomat",
)  # fmt: skip
_WRITERS = {"novelist", "poet", "historian", "journalist"}
_INDUSTRIES = (
    "shipbuilding", "textile", "software", "pharmaceutical", "mining", "brewing", "aerospace",
    "banking", "telecommunications", "rail transport", "steel",
)  # fmt: skip
_COMPANY_SUFFIX = ("Industries", "Holdings", "Works", "Group", "Systems", "Corporation", "Labs")
_PUBLISHER_SUFFIX = ("Press", "House", "Books")
_GENRES = (
    "novel", "poetry collection", "history", "memoir", "science fiction novel", "biography",
    "essay collection", "crime novel",
)  # fmt: skip
_ADJ = (
    "Silent", "Amber", "Broken", "Hollow", "Northern", "Crimson", "Quiet", "Distant", "Iron",
    "Glass", "Winter", "Burning", "Patient", "Salt", "Paper", "Last", "Golden", "Drowned",
    "Evening", "Borrowed", "Sleeping", "Wandering", "Bitter", "Secret", "Narrow", "Pale",
)  # fmt: skip
_NOUN = (
    "Harbor", "Orchard", "Lantern", "Meridian", "Archive", "Garden", "Compass", "River", "Tower",
    "Cartographer", "Season", "Bridge", "Atlas", "Choir", "Ledger", "Frontier", "Mirror",
    "Observatory", "Weaver", "Threshold", "Kingdom", "Engine", "Island", "Letters", "Clockmaker",
)  # fmt: skip
_CURRENCY = ("crown", "mark", "florin", "thaler", "ducat", "real")
_PRONOUNS = {"he": ("He", "his"), "she": ("She", "her")}


class _Namer:
    """Unique fictional words from syllables (shared pool so a surname is never a city)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, min_syll: int = 2, max_syll: int = 3) -> str:
        for _ in range(10_000):
            n = self.rng.randint(min_syll, max_syll)
            parts = [self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(n)]
            parts = [p + self.rng.choice(_INNER_CODAS) for p in parts[:-1]] + [
                parts[-1] + self.rng.choice(_CODAS)
            ]
            w = "".join(parts)
            if 4 <= len(w) <= 10 and w not in self.used:
                self.used.add(w)
                return w.capitalize()
        raise RuntimeError("name space exhausted")  # pragma: no cover - 10^6+ combinations


@dataclass
class _Entity:
    kind: str
    name: str
    attrs: dict = field(default_factory=dict)
    passages: list[str] = field(default_factory=list)  # passage ids, main first


def _fmt_int(n: int) -> str:
    return f"{n:,}"


class _World:
    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.namer = _Namer(self.rng)
        self.passages: list[Passage] = []
        self.countries: list[_Entity] = []
        self.cities: list[_Entity] = []
        self.rivers: list[_Entity] = []
        self.mountains: list[_Entity] = []
        self.universities: list[_Entity] = []
        self.companies: list[_Entity] = []
        self.people: list[_Entity] = []
        self.books: list[_Entity] = []

    # -- entities ---------------------------------------------------------------------------
    def build(self) -> None:
        r = self.rng
        ranges = [
            f"{self.namer.word()} Mountains" for _ in range(max(3, self.cfg.n_mountains // 10))
        ]
        waters = [
            f"the {self.namer.word()} Sea" if r.random() < 0.5 else f"Lake {self.namer.word()}"
            for _ in range(max(3, self.cfg.n_rivers // 6))
        ]
        for _ in range(self.cfg.n_countries):
            root = self.namer.word(2, 2).rstrip("aeiou") or "Ost"
            name = root + r.choice(["ia", "land", "ora", "avia"])
            demonym = root + r.choice(["ian", "ish", "ese"])
            self.countries.append(
                _Entity("country", name, {"demonym": demonym, "currency": f"{demonym.lower()} {r.choice(_CURRENCY)}".capitalize(),
                        "language": demonym, "population": r.randint(800_000, 60_000_000), "independence": r.randint(1650, 1990)})
            )  # fmt: skip
        for i in range(self.cfg.n_rivers):
            countries = [self.countries[i % len(self.countries)]]
            if r.random() < 0.35:
                other = r.choice(self.countries)
                if other is not countries[0]:
                    countries.append(other)
            self.rivers.append(
                _Entity(
                    "river",
                    f"{self.namer.word()} River",
                    {"countries": countries, "mouth": r.choice(waters)},
                )
            )
        lengths = r.sample(range(90, 4200), len(self.rivers))
        for river, length in zip(self.rivers, lengths):
            river.attrs["length"] = length
        for i in range(self.cfg.n_cities):
            country = self.countries[i % len(self.countries)]
            rivers = [rv for rv in self.rivers if country in rv.attrs["countries"]]
            self.cities.append(
                _Entity("city", self.namer.word(), {"country": country, "river": r.choice(rivers),
                        "population": r.randint(12_000, 4_500_000), "founded": r.randint(600, 1900),
                        "elevation": r.randint(2, 2400)})
            )  # fmt: skip
        for country in self.countries:
            country.attrs["capital"] = next(c for c in self.cities if c.attrs["country"] is country)
        heights = r.sample(range(900, 8600), self.cfg.n_mountains)
        for h in heights:
            country = r.choice(self.countries)
            self.mountains.append(
                _Entity("mountain", f"Mount {self.namer.word()}", {"country": country, "height": h,
                        "range": r.choice(ranges), "first_ascent": r.randint(1780, 1990)})
            )  # fmt: skip
        for river in self.rivers:
            in_country = [
                m for m in self.mountains if m.attrs["country"] in river.attrs["countries"]
            ]
            river.attrs["source"] = r.choice(in_country or self.mountains)
        for _ in range(self.cfg.n_universities):
            city = r.choice(self.cities)
            name = (
                f"University of {city.name}"
                if r.random() < 0.4
                and not any(u.name == f"University of {city.name}" for u in self.universities)
                else f"{self.namer.word()} {r.choice(['University', 'Institute of Technology', 'College'])}"
            )
            self.universities.append(
                _Entity(
                    "university",
                    name,
                    {
                        "city": city,
                        "founded": r.randint(1150, 1960),
                        "students": r.randint(1_500, 60_000),
                    },
                )
            )
        firsts = [self.namer.word(1, 2) for _ in range(max(40, self.cfg.n_people // 3))]
        lasts = [self.namer.word(2, 3) for _ in range(max(60, self.cfg.n_people // 2))]
        full_names: set[str] = set()
        while len(self.people) < self.cfg.n_people:
            name = f"{r.choice(firsts)} {r.choice(lasts)}"
            if name in full_names:
                continue
            full_names.add(name)
            born = r.randint(1890, 1996)
            eligible = [u for u in self.universities if u.attrs["founded"] < born + 18]
            self.people.append(
                _Entity("person", name, {"born": born, "birthplace": r.choice(self.cities),
                        "occupation": r.choice(_OCCUPATIONS), "gender": r.choice(["he", "she"]),
                        "university": r.choice(eligible or self.universities)})
            )  # fmt: skip
        n_publishers = max(4, self.cfg.n_companies // 6)
        ceo_pool = [p for p in self.people if 1940 <= p.attrs["born"] <= 1990] or self.people
        for i in range(self.cfg.n_companies):
            publisher = i < n_publishers
            founder = r.choice(self.people)
            founded = min(2021, founder.attrs["born"] + r.randint(24, 50))
            suffix = r.choice(_PUBLISHER_SUFFIX if publisher else _COMPANY_SUFFIX)
            ceo = r.choice(ceo_pool)
            while ceo is founder:
                ceo = r.choice(ceo_pool)
            company = _Entity(
                "company", f"{self.namer.word()} {suffix}",
                {"founder": founder, "founded": founded, "headquarters": r.choice(self.cities),
                 "industry": "publishing" if publisher else r.choice(_INDUSTRIES),
                 "employees": r.randint(40, 90_000), "ceo": ceo, "ceo_since": max(founded, r.randint(1995, 2022))},
            )  # fmt: skip
            founder.attrs.setdefault("founded", []).append(company)
            ceo.attrs.setdefault("ceo_of", []).append(company)
            self.companies.append(company)
        by_founding = sorted(self.companies, key=lambda c: c.attrs["founded"])
        founding_years = [c.attrs["founded"] for c in by_founding]
        for person in self.people:
            n_older = bisect.bisect_right(founding_years, person.attrs["born"] + 40)
            person.attrs["employer"] = r.choice(by_founding[: max(1, n_older)])
            person.attrs["joined"] = max(
                person.attrs["employer"].attrs["founded"], person.attrs["born"] + r.randint(22, 35)
            )
        publishers = self.companies[:n_publishers]
        writers = [p for p in self.people if p.attrs["occupation"] in _WRITERS] or self.people
        titles: set[str] = set()
        while len(self.books) < self.cfg.n_books:
            pattern = r.random()
            if pattern < 0.5:
                title = f"The {r.choice(_ADJ)} {r.choice(_NOUN)}"
            elif pattern < 0.8:
                title = f"The {r.choice(_NOUN)} of {r.choice(self.cities).name}"
            else:
                noun = r.choice(_NOUN)
                title = f"{r.choice(_ADJ)} {noun if noun.endswith('s') else noun + 's'}"
            if title in titles:
                continue
            titles.add(title)
            author = r.choice(writers)
            book = _Entity(
                "book", title,
                {"author": author, "year": min(2023, author.attrs["born"] + r.randint(24, 70)),
                 "publisher": r.choice(publishers), "genre": r.choice(_GENRES), "pages": r.randint(96, 880)},
            )  # fmt: skip
            author.attrs.setdefault("books", []).append(book)
            self.books.append(book)

    # -- passages ---------------------------------------------------------------------------
    def _add(self, entity: _Entity, text: str, title: str | None = None) -> None:
        pid = str(len(self.passages))
        self.passages.append(Passage(pid, title or entity.name, " ".join(text.split())))
        entity.passages.append(pid)

    def render(self) -> None:
        r = self.rng
        for c in self.countries:
            a = c.attrs
            self._add(c, (
                f"{c.name} is a country with a population of about {_fmt_int(a['population'])}. "
                f"Its capital and largest city is {a['capital'].name}. {c.name} became independent in "
                f"{a['independence']}. The official language is {a['language']} and the currency is the "
                f"{a['currency']}. "
                + r.choice([f"The country is known for its {r.choice(_INDUSTRIES)} industry.",
                            f"Much of {c.name} is drained by rivers flowing towards the coast."])
            ))  # fmt: skip
        for city in self.cities:
            a = city.attrs
            capital = (
                " It is the capital of the country."
                if a["country"].attrs["capital"] is city
                else ""
            )
            self._add(city, r.choice([
                f"{city.name} is a city in {a['country'].name}, on the banks of the {a['river'].name}. "
                f"Founded in {a['founded']}, it had a population of {_fmt_int(a['population'])} at the last census.{capital} "
                f"The city lies at an elevation of {a['elevation']} metres.",
                f"{city.name} is a city of {_fmt_int(a['population'])} inhabitants in {a['country'].name}.{capital} "
                f"The {a['river'].name} flows through the city, which was founded in {a['founded']} "
                f"and sits {a['elevation']} metres above sea level.",
            ]))  # fmt: skip
        for river in self.rivers:
            a = river.attrs
            lands = " and ".join(c.name for c in a["countries"])
            along = [c.name for c in self.cities if c.attrs["river"] is river][:3]
            towns = f" Cities along its course include {', '.join(along)}." if along else ""
            self._add(river, (
                f"The {river.name} is a river in {lands}. It rises on the slopes of {a['source'].name} and "
                f"flows for {_fmt_int(a['length'])} kilometres before emptying into {a['mouth']}.{towns}"
            ))  # fmt: skip
        for m in self.mountains:
            a = m.attrs
            self._add(m, (
                f"{m.name} is a mountain in {a['country'].name}, part of the {a['range']}. "
                f"Its summit stands {_fmt_int(a['height'])} metres above sea level. "
                f"The first recorded ascent was made in {a['first_ascent']}."
            ))  # fmt: skip
        for u in self.universities:
            a = u.attrs
            self._add(u, (
                f"{u.name} is a public research university in {a['city'].name}, {a['city'].attrs['country'].name}. "
                f"It was founded in {a['founded']} and enrols about {_fmt_int(a['students'])} students."
            ))  # fmt: skip
        for co in self.companies:
            a = co.attrs
            self._add(co, r.choice([
                f"{co.name} is a {a['industry']} company headquartered in {a['headquarters'].name}, "
                f"{a['headquarters'].attrs['country'].name}. It was founded in {a['founded']} by {a['founder'].name}. "
                f"The company employs about {_fmt_int(a['employees'])} people; its chief executive is {a['ceo'].name}.",
                f"{co.name} is a {a['industry']} company founded by {a['founder'].name} in {a['founded']}. "
                f"Its headquarters are in {a['headquarters'].name}. {a['ceo'].name} has been chief executive "
                f"since {a['ceo_since']}, and the firm has about {_fmt_int(a['employees'])} employees.",
            ]))  # fmt: skip
        for p in self.people:
            a = p.attrs
            subj, poss = _PRONOUNS[a["gender"]]
            last = p.name.split()[-1]
            demonym = a["birthplace"].attrs["country"].attrs["demonym"]
            self._add(p, (
                f"{p.name} (born {a['born']}) is a {demonym} {a['occupation']}. {subj} was born in "
                f"{a['birthplace'].name} and grew up by the {a['birthplace'].attrs['river'].name}. "
                f"{subj} studied at {a['university'].name}, graduating in {a['born'] + r.randint(21, 25)}."
            ))  # fmt: skip
            career = [f"{last} worked for {a['employer'].name} from {a['joined']}."]
            for company in a.get("founded", []):
                career.append(f"In {company.attrs['founded']}, {last} founded {company.name}.")
            for company in a.get("ceo_of", []):
                career.append(
                    f"{subj} has been chief executive of {company.name} since {company.attrs['ceo_since']}."
                )
            books = a.get("books", [])
            if books:
                listed = ", ".join(f"{b.name} ({b.attrs['year']})" for b in books[:4])
                career.append(f"{poss.capitalize()} published works include {listed}.")
            else:
                career.append(f"{last} is best known for {poss} work as a {a['occupation']}.")
            self._add(p, " ".join(career))
        for b in self.books:
            a = b.attrs
            self._add(b, (
                f"{b.name} is a {a['year']} {a['genre']} by the {a['author'].attrs['occupation']} "
                f"{a['author'].name}. It was published by {a['publisher'].name} and runs to {a['pages']} pages."
            ))  # fmt: skip


# ----- questions ----------------------------------------------------------------------------
def _aliases(entity: _Entity) -> tuple[str, ...]:
    if entity.kind == "river":
        return (entity.name, entity.name.removesuffix(" River"))
    if entity.kind == "mountain":
        return (entity.name, entity.name.removeprefix("Mount "))
    return (entity.name,)


_Candidate = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _candidates(w: _World, template: str, rng: random.Random) -> list[_Candidate]:
    """All (question, answers, gold passage ids, hop queries) of a template."""
    out: list[_Candidate] = []
    if template == "single_birthplace":
        for p in w.people:
            out.append(
                (
                    f"In which city was {p.name} born?",
                    (p.attrs["birthplace"].name,),
                    (p.passages[0],),
                    (f"{p.name} born",),
                )
            )
    elif template == "single_founder":
        for c in w.companies:
            out.append(
                (
                    f"Who founded {c.name}?",
                    (c.attrs["founder"].name,),
                    (c.passages[0],),
                    (f"{c.name} founded",),
                )
            )
    elif template == "single_headquarters":
        for c in w.companies:
            out.append(
                (
                    f"In which city is {c.name} headquartered?",
                    (c.attrs["headquarters"].name,),
                    (c.passages[0],),
                    (f"{c.name} headquarters",),
                )
            )
    elif template == "single_author":
        for b in w.books:
            out.append(
                (f"Who wrote {b.name}?", (b.attrs["author"].name,), (b.passages[0],), (b.name,))
            )
    elif template == "single_river":
        for c in w.cities:
            out.append(
                (
                    f"Which river flows through {c.name}?",
                    _aliases(c.attrs["river"]),
                    (c.passages[0],),
                    (f"{c.name} city",),
                )
            )
    elif template == "single_mountain_country":
        for m in w.mountains:
            out.append(
                (
                    f"In which country is {m.name} located?",
                    (m.attrs["country"].name,),
                    (m.passages[0],),
                    (m.name,),
                )
            )
    elif template == "single_university_founded":
        for u in w.universities:
            out.append(
                (
                    f"In what year was {u.name} founded?",
                    (str(u.attrs["founded"]),),
                    (u.passages[0],),
                    (f"{u.name} founded",),
                )
            )
    elif template == "bridge_author_birthplace":
        for b in w.books:
            au = b.attrs["author"]
            out.append(
                (
                    f"In which city was the author of {b.name} born?",
                    (au.attrs["birthplace"].name,),
                    (b.passages[0], au.passages[0]),
                    (b.name, f"{au.name} born"),
                )
            )
    elif template == "bridge_founder_university":
        for c in w.companies:
            f = c.attrs["founder"]
            out.append(
                (
                    f"Which university did the founder of {c.name} attend?",
                    (f.attrs["university"].name,),
                    (c.passages[0], f.passages[0]),
                    (f"{c.name} founded", f"{f.name} studied"),
                )
            )
    elif template == "bridge_headquarters_river":
        for c in w.companies:
            hq = c.attrs["headquarters"]
            out.append(
                (
                    f"Which river flows through the city where {c.name} is headquartered?",
                    _aliases(hq.attrs["river"]),
                    (c.passages[0], hq.passages[0]),
                    (f"{c.name} headquarters", f"{hq.name} city"),
                )
            )
    elif template == "bridge_publisher_headquarters":
        for b in w.books:
            pub = b.attrs["publisher"]
            out.append(
                (
                    f"In which city is the publisher of {b.name} headquartered?",
                    (pub.attrs["headquarters"].name,),
                    (b.passages[0], pub.passages[0]),
                    (b.name, f"{pub.name} headquarters"),
                )
            )
    elif template == "bridge_mountain_capital":
        for m in w.mountains:
            co = m.attrs["country"]
            out.append(
                (
                    f"What is the capital of the country where {m.name} is located?",
                    (co.attrs["capital"].name,),
                    (m.passages[0], co.passages[0]),
                    (m.name, f"{co.name} capital"),
                )
            )
    elif template == "bridge_employer_ceo":
        for p in w.people:
            emp = p.attrs["employer"]
            out.append(
                (
                    f"Who is the chief executive of the company that {p.name} works for?",
                    (emp.attrs["ceo"].name,),
                    (p.passages[1], emp.passages[0]),
                    (f"{p.name} worked for", f"{emp.name} chief executive"),
                )
            )
    elif template.startswith("compare_"):
        pools: dict[str, tuple[list[_Entity], Callable[[_Entity], int], str, bool, str]] = {
            "compare_founded": (w.companies, lambda e: e.attrs["founded"], "Which company was founded earlier, {a} or {b}?", False, " founded"),
            "compare_born": (w.people, lambda e: e.attrs["born"], "Who was born first, {a} or {b}?", False, " born"),
            "compare_river_length": (w.rivers, lambda e: e.attrs["length"], "Which river is longer, the {a} or the {b}?", True, ""),
            "compare_mountain_height": (w.mountains, lambda e: e.attrs["height"], "Which mountain is higher, {a} or {b}?", True, ""),
        }  # fmt: skip
        pool, key, text, larger, cue = pools[template]
        seen_pairs: set[tuple[str, str]] = set()
        for _ in range(len(pool) * 2):
            a, b = rng.sample(pool, 2)
            if key(a) == key(b) or (a.name, b.name) in seen_pairs or (b.name, a.name) in seen_pairs:
                continue
            seen_pairs.add((a.name, b.name))
            win = max((a, b), key=key) if larger else min((a, b), key=key)
            out.append(
                (
                    text.format(a=a.name, b=b.name),
                    _aliases(win),
                    (a.passages[0], b.passages[0]),
                    (a.name + cue, b.name + cue),
                )
            )
    elif template == "yesno_same_country":
        for i, a in enumerate(w.cities):
            same = i % 2 == 0
            while True:
                b = rng.choice(w.cities)
                if b is not a and (b.attrs["country"] is a.attrs["country"]) == same:
                    break
            out.append(
                (
                    f"Are {a.name} and {b.name} located in the same country?",
                    ("yes" if same else "no",),
                    (a.passages[0], b.passages[0]),
                    (f"{a.name} city", f"{b.name} city"),
                )
            )
    else:
        raise KeyError(f"unknown template {template!r}; known: {TEMPLATES}")
    return out


def generate_knowledge_base(config: SyntheticConfig | None = None) -> KnowledgeBase:
    """Build the world, its passages and its questions, in memory, deterministically.

    >>> kb = generate_knowledge_base(SyntheticConfig(seed=1, n_countries=2, n_cities=8,
    ...     n_rivers=4, n_mountains=4, n_universities=4, n_companies=6, n_people=12, n_books=6))
    >>> sorted(kb.examples), kb.examples["train"][0].data_source
    (['seen', 'train', 'unseen'], 'synthetic')
    """
    cfg = config or SyntheticConfig()
    world = _World(cfg)
    world.build()
    world.render()
    examples: dict[str, list[QAExample]] = {"train": [], "seen": [], "unseen": []}
    for template in TEMPLATES:
        rng = random.Random(f"{cfg.seed}:{template}")
        cands = _candidates(world, template, rng)
        rng.shuffle(cands)
        if template in SEEN_TEMPLATES:
            n_seen = min(cfg.seen_per_template, len(cands) // 3)
            parts = {
                "seen": cands[:n_seen],
                "train": cands[n_seen : n_seen + cfg.train_per_template],
            }
        else:
            parts = {"unseen": cands[: cfg.unseen_per_template]}
        for split, chosen in parts.items():
            for k, (question, answers, gold, hops) in enumerate(chosen):
                examples[split].append(
                    QAExample(
                        id=f"{template}-{split}-{k:03d}",
                        question=question,
                        answers=answers,
                        task_type=template,
                        data_source="synthetic",
                        split=split,
                        gold_passage_ids=gold,
                        hop_queries=hops,
                        metadata={"hops": len(hops)},
                    )
                )
    return KnowledgeBase(Corpus(world.passages), examples, cfg)


def load_or_generate(
    config: SyntheticConfig | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> KnowledgeBase:
    """Load the knowledge base from the cache folder, generating and writing it on first use.

    Safe under concurrent first use (e.g. two ``AsyncVectorEnv`` workers): a file lock
    serialises generation and every file is written atomically.
    """
    cfg = config or SyntheticConfig()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / "search" / cfg.cache_key()
    meta_path = folder / "meta.json"
    memo_key = (str(folder.resolve()), _stamp(folder))
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if meta_path.is_file():
            try:
                corpus = load_corpus_jsonl(folder / "corpus.jsonl")
                examples = {
                    s: load_qa_file(folder / f"{s}.jsonl", split=s)
                    for s in ("train", "seen", "unseen")
                }
                meta = json.loads(safe_files.read_text(meta_path))
                if meta.get("fingerprint") == corpus.fingerprint:
                    kb = KnowledgeBase(corpus, examples, cfg)
                    _MEMO[(memo_key[0], _stamp(folder))] = kb
                    return kb
                logger.warning(
                    "synthetic KB cache %s is stale (fingerprint mismatch); regenerating", folder
                )
            except (OSError, ValueError) as exc:
                logger.warning("synthetic KB cache %s unreadable (%s); regenerating", folder, exc)
        start = time.perf_counter()
        kb = generate_knowledge_base(cfg)
        write_corpus_jsonl(folder / "corpus.jsonl", kb.corpus)
        for split, items in kb.examples.items():
            write_qa_jsonl(folder / f"{split}.jsonl", items)
        meta = {"config": asdict(cfg), "generator_version": GENERATOR_VERSION, "fingerprint": kb.corpus.fingerprint,
                "passages": len(kb.corpus), "questions": {s: len(v) for s, v in kb.examples.items()}}  # fmt: skip
        atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True))
        logger.info("generated synthetic KB %s in %.2fs", folder, time.perf_counter() - start)
        _MEMO[(memo_key[0], _stamp(folder))] = kb
        return kb


# Several envs in one process (tests, a SyncVectorEnv) share one parsed copy. Keyed by the
# files' modification times so an edited or regenerated cache is re-read.
_MEMO: dict[tuple[str, tuple[int, ...]], KnowledgeBase] = {}


def _stamp(folder: Path) -> tuple[int, ...]:
    names = ("meta.json", "corpus.jsonl", "train.jsonl", "seen.jsonl", "unseen.jsonl")
    try:
        return tuple((folder / n).stat().st_mtime_ns for n in names)
    except FileNotFoundError:
        return ()
