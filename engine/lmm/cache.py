"""On-disk cache of LMM responses: asking the same thing twice costs no HTTP call.

The key is a SHA-256 over everything that shapes the answer: the image bytes' hash, the crop
boxes, the exact JPEG sent, the prompt text, model, endpoint, N, temperature and max tokens.
An entry stores the response texts and token usage, never the API key. A corrupt or foreign
entry is ignored (and rewritten by the next store), never fatal."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from engine.contacts.file import TokenUsage
from engine.files import atomic_file
from engine.lmm.client import SamplingRequest

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "prosepose" / "lmm"


@dataclass(frozen=True)
class CachedResponses:
    texts: tuple[str, ...]
    usage: TokenUsage
    cut: tuple[tuple[int, int], ...] = ()  # (index, full length) of texts stored cut


def cache_key(
    request: SamplingRequest,
    *,
    image_sha256: str,
    boxes: Sequence[Sequence[int]],
    model: str,
    base_url: str,
) -> str:
    material = {
        "version": CACHE_VERSION,
        "image_sha256": image_sha256,
        "boxes": [list(box) for box in boxes],
        "image_sent_sha256": hashlib.sha256(request.image_data_url.encode("ascii")).hexdigest(),
        "system": request.prompt.system,
        "user": request.prompt.user,
        "model": model,
        "base_url": base_url.rstrip("/"),
        "samples": request.samples,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str, samples: int) -> CachedResponses | None:
        """The entry, or None when absent, unreadable or not ``samples`` responses."""
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            if data.get("version") != CACHE_VERSION or data.get("key") != key:
                return None
            texts = data["texts"]
            if not isinstance(texts, list) or len(texts) != samples or not all(isinstance(t, str) for t in texts):
                return None
            cut = tuple((int(index), int(chars)) for index, chars in data.get("cut", []))
            return CachedResponses(texts=tuple(texts), usage=TokenUsage.from_dict(data["usage"]), cut=cut)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def store(self, key: str, texts: Sequence[str], usage: TokenUsage, cut: Sequence[tuple[int, int]] = ()) -> None:
        """Atomic write (flushed to disk, then renamed into place); a cache that cannot be
        written is skipped silently (it only saves time). Texts are stored as given: the
        contacts command hands over texts already cut to the stored length."""
        data = {"version": CACHE_VERSION, "key": key, "texts": list(texts), "usage": usage.to_dict(),
                "cut": [list(item) for item in cut]}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with atomic_file(self._path(key), "w", encoding="utf-8") as stream:
                json.dump(data, stream)
        except OSError:
            pass
