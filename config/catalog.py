"""The built-in provider catalog (``config/providers.yaml``, shipped as package data).

Each entry is a provider config as a user would write it, plus ``main: true`` for the default
set. Users enable an entry by id and override any field (see :func:`config.loader.deep_merge`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True)
class Catalog:
    entries: tuple[Mapping[str, Any], ...]
    #: The clouds and CDNs the entries stand on (their ``upstreams`` name these ids).
    upstreams: tuple[Mapping[str, Any], ...] = ()

    def get(self, provider_id: str) -> dict[str, Any] | None:
        for entry in self.entries:
            if entry["id"] == provider_id:
                return dict(entry)
        return None

    def ids(self) -> list[str]:
        return [entry["id"] for entry in self.entries]

    def main(self) -> Iterator[Mapping[str, Any]]:
        return (entry for entry in self.entries if entry.get("main"))

    def upstream(self, upstream_id: str) -> dict[str, Any] | None:
        found = next((u for u in self.upstreams if u["id"] == upstream_id), None)
        return dict(found) if found is not None else None


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    text = resources.files("config").joinpath("providers.yaml").read_text(encoding="utf-8")
    # the C loader where PyYAML has it: the catalog is ours and large, read at every start
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, chosen above
    return Catalog(entries=tuple(data["providers"]), upstreams=tuple(data.get("upstreams") or ()))
