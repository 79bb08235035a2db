"""Build hook: put the seed skill libraries and the veRL configs inside the wheel.

Everything else about the build is declared in pyproject.toml. The repository keeps the seed
libraries (``skills/<env>/``) and the veRL Hydra configs (``configs/verl/``) at the top level,
outside the import packages, so a plain wheel would carry neither. ``build_py`` copies them
to ``reskill_gym/seed_skills/`` and ``reskill_verl/configs/``, where
``reskill_gym.envs.registration.seed_library_path`` and ``reskill_verl.cli.config_dir`` look
after the checkout's folders. An editable install copies nothing: its packages resolve to the
checkout, whose ``skills/`` and ``configs/verl/`` are found first. MANIFEST.in puts both
folders in the sdist, so a wheel built from the sdist is complete too.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Source folder (relative to the project root) -> folder inside the built packages.
DATA_TREES = {"skills": "reskill_gym/seed_skills", "configs/verl": "reskill_verl/configs"}


def _data_files(src: str) -> list[Path]:
    """Every file under ``src`` except Python byte code, sorted (reproducible wheels)."""
    return sorted(
        p
        for p in Path(src).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


class BuildPyWithData(build_py):
    """``build_py`` that also copies :data:`DATA_TREES` into the build folder."""

    def _data_outputs(self) -> list[tuple[Path, Path]]:
        if self.editable_mode:
            return []
        pairs = []
        for src, dest in DATA_TREES.items():
            files = _data_files(src)
            if not files:
                raise FileNotFoundError(f"{src}/ is missing or empty: the wheel needs it")
            pairs += [(f, Path(self.build_lib, dest, f.relative_to(src))) for f in files]
        return pairs

    def run(self) -> None:
        super().run()
        for source, target in self._data_outputs():
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return super().get_outputs(include_bytecode) + [str(t) for _, t in self._data_outputs()]


setup(cmdclass={"build_py": BuildPyWithData})
