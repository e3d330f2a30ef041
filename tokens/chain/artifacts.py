"""The committed contract build artifacts (ABI and bytecode), loaded without the compiler."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

BUILD_DIR = Path(__file__).resolve().parent.parent / "contracts" / "build"


@dataclass(frozen=True)
class ContractArtifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


@cache
def load_artifact(name: str) -> ContractArtifact:
    """The artifact of contract ``name`` (``Token``, ``Pair`` or ``Router``)."""
    data = json.loads((BUILD_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return ContractArtifact(name=name, abi=data["abi"], bytecode=data["bytecode"])
