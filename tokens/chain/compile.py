"""Compile the Vyper contracts of ``tokens/contracts`` into committed JSON artifacts.

Run ``python -m tokens.chain.compile`` after changing a contract source; the test suite
recompiles and compares with the committed artifacts. Vyper is a development dependency:
the application loads the artifacts (see :mod:`tokens.chain.artifacts`), never the compiler.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
BUILD_DIR = CONTRACTS_DIR / "build"

Artifact = dict[str, Any]


def compile_contracts() -> dict[str, Artifact]:
    """Compile every ``*.vy`` source; return ``{contract name: {"abi", "bytecode"}}``.

    The output depends on the sources and the compiler version only (the EVM version is
    pinned by each source's pragma), so it is deterministic.
    """
    import vyper  # development dependency, imported only when compiling

    artifacts: dict[str, Artifact] = {}
    for source in sorted(CONTRACTS_DIR.glob("*.vy")):
        output = vyper.compile_code(
            source.read_text(encoding="utf-8"),
            contract_path=source.name,
            output_formats=["abi", "bytecode"],
        )
        artifacts[source.stem] = {"abi": output["abi"], "bytecode": output["bytecode"]}
    return artifacts


def render_artifact(artifact: Artifact) -> str:
    """The committed text of an artifact: pretty, key-sorted JSON with a final newline."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def main() -> int:
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    for name, artifact in compile_contracts().items():
        path = BUILD_DIR / f"{name}.json"
        path.write_text(render_artifact(artifact), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
