"""The committed contract artifacts are exactly what the committed sources compile to."""

from tokens.chain.compile import BUILD_DIR, CONTRACTS_DIR, compile_contracts, render_artifact


def test_committed_artifacts_match_a_recompile() -> None:
    compiled = compile_contracts()

    assert sorted(compiled) == ["Pair", "Router", "Token"]
    assert sorted(path.stem for path in BUILD_DIR.glob("*.json")) == sorted(compiled)
    for name, artifact in compiled.items():
        committed = (BUILD_DIR / f"{name}.json").read_bytes()
        assert committed == render_artifact(artifact).encode(), (
            f"{name}.json is stale: run python -m tokens.chain.compile"
        )


def test_sources_pin_the_compiler_and_the_evm_version() -> None:
    for source in CONTRACTS_DIR.glob("*.vy"):
        text = source.read_text(encoding="utf-8")
        assert "#pragma version 0.4.3\n" in text, source.name
        assert "#pragma evm-version prague\n" in text, source.name
