"""The local node's chain on disk: a journal of the chain database's writes, replayed on start.

The embedded chain (py-evm under eth-tester) keeps everything -- blocks, receipts, state
tries -- in one in-memory key-value store. :class:`ChainJournal` records every write to that
store and appends it, after each request that wrote, to a JSON-lines file (flushed and
fsync'd before the node answers): the node's answer to ``eth_sendRawTransaction`` is only
sent once the transaction is on disk. Starting again reads the file back into a new store
and reopens the chain at its head, so old transaction hashes keep their receipts, blocks keep
their hashes and timestamps, and balances are what they were. This is exact, unlike replaying
transactions (which would depend on block timestamps and on the setup being deterministic).

File layout (mode 0600: the header holds the development treasury's key)::

    {"kind": "header", "version": 1, "fingerprint": "…", "chain": {router, pair, …}}
    {"kind": "writes", "set": {"<hex key>": "<hex value>", …}, "del": ["<hex key>", …]}
    …

A torn last line (the node died while writing it) is ignored: that request was never
answered. Anything else unusable -- unreadable file, other contracts (the fingerprint of the
committed artifacts changed), a chain without the deployed router -- raises
:class:`JournalError`; the node then moves the file aside and starts a fresh chain, and says
so (see :mod:`tokens.chain.node`). On every successful start the file is compacted to the
header and one snapshot of the live keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from web3 import Web3

from tokens.chain.artifacts import load_artifact
from tokens.chain.embedded import EmbeddedChain, SerializedEthereumTesterProvider

logger = logging.getLogger(__name__)

JOURNAL_VERSION = 1
CONTRACTS = ("Token", "Pair", "Router")
# What the header keeps of the chain besides its database (the EmbeddedChain's fields).
CHAIN_FIELDS = ("router", "pair", "azr_token", "zar_token", "treasury_address", "treasury_private_key")


class JournalError(Exception):
    """The journal cannot give back the chain it recorded (the message says why)."""


def contracts_fingerprint() -> str:
    """A hash of the committed contract artifacts: a journal made with others is stale."""
    digest = hashlib.sha256(f"v{JOURNAL_VERSION}".encode())
    for name in CONTRACTS:
        artifact = load_artifact(name)
        digest.update(json.dumps([name, artifact.abi, artifact.bytecode], sort_keys=True).encode())
    return digest.hexdigest()


class _RecordingStore(dict):
    """The chain's key-value store, remembering what changed since the last :meth:`take`."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.written: dict[bytes, bytes | None] = {}

    def __setitem__(self, key: bytes, value: bytes) -> None:
        super().__setitem__(key, value)
        self.written[key] = value

    def __delitem__(self, key: bytes) -> None:
        super().__delitem__(key)
        self.written[key] = None

    def take(self) -> dict[bytes, bytes | None]:
        written, self.written = self.written, {}
        return written


def _memory_db(chain: EmbeddedChain) -> MemoryDB:
    db = chain.w3.provider.ethereum_tester.backend.chain.chaindb.db
    inner = getattr(db, "wrapped_db", db)
    if not isinstance(inner, MemoryDB):
        raise JournalError(f"the embedded chain's database is a {type(inner).__name__}, not a MemoryDB")
    return inner


def _record(writes: dict[bytes, bytes | None]) -> dict[str, Any]:
    return {
        "kind": "writes",
        "set": {key.hex(): value.hex() for key, value in writes.items() if value is not None},
        "del": [key.hex() for key, value in writes.items() if value is None],
    }


class ChainJournal:
    """Records an embedded chain's database writes to ``path``; call :meth:`flush` after each
    request (under the node's lock)."""

    def __init__(self, path: Path, chain: EmbeddedChain, store: _RecordingStore) -> None:
        self.path = path
        self.chain = chain
        self._store = store
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the node's life

    @classmethod
    def create(cls, path: str | os.PathLike[str], chain: EmbeddedChain) -> ChainJournal:
        """Start a journal for ``chain`` (a new one): header and a snapshot, written atomically."""
        path = Path(path)
        memory = _memory_db(chain)
        store = _RecordingStore(memory.kv_store)
        memory.kv_store = store
        _write_atomically(path, chain, store)
        return cls(path, chain, store)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> ChainJournal:
        """The chain recorded in ``path``, at its head; the file compacted. :class:`JournalError`
        when it cannot be used."""
        path = Path(path)
        header, kv = _read(path)
        chain = _reopen(header, kv)
        store = _RecordingStore(kv)
        _memory_db(chain).kv_store = store
        _write_atomically(path, chain, store)
        return cls(path, chain, store)

    def flush(self) -> int:
        """Append what the chain wrote since the last flush, durably; the number of keys."""
        writes = self._store.take()
        if writes:
            self._file.write(json.dumps(_record(writes), separators=(",", ":")) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        return len(writes)

    def close(self) -> None:
        self.flush()
        self._file.close()


def _header(chain: EmbeddedChain) -> dict[str, Any]:
    return {
        "kind": "header",
        "version": JOURNAL_VERSION,
        "fingerprint": contracts_fingerprint(),
        "chain": {name: getattr(chain, name) for name in CHAIN_FIELDS},
    }


def _write_atomically(path: Path, chain: EmbeddedChain, kv: dict[bytes, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(json.dumps(_header(chain)) + "\n")
            file.write(json.dumps(_record(dict(kv)), separators=(",", ":")) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _read(path: Path) -> tuple[dict[str, Any], dict[bytes, bytes]]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise JournalError(f"{path} is unreadable: {exc}") from None
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise JournalError(f"{path} is empty")
    try:
        header = json.loads(lines[0])
    except ValueError:
        raise JournalError(f"{path}: the header is not JSON") from None
    if not isinstance(header, dict) or header.get("kind") != "header":
        raise JournalError(f"{path}: no header line")
    if header.get("version") != JOURNAL_VERSION:
        raise JournalError(f"{path}: journal version {header.get('version')!r}, this node writes {JOURNAL_VERSION}")
    if header.get("fingerprint") != contracts_fingerprint():
        raise JournalError(f"{path} was recorded with other contracts (their build artifacts changed since)")
    chain_fields = header.get("chain")
    if not isinstance(chain_fields, dict) or not all(isinstance(chain_fields.get(n), str) for n in CHAIN_FIELDS):
        raise JournalError(f"{path}: the header lacks some of {', '.join(CHAIN_FIELDS)}")

    kv: dict[bytes, bytes] = {}
    body = lines[1:]
    for number, line in enumerate(body, start=2):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or record.get("kind") != "writes":
                raise ValueError("not a writes record")
            updates = {bytes.fromhex(k): bytes.fromhex(v) for k, v in record["set"].items()}
            deletes = [bytes.fromhex(k) for k in record["del"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if number == len(lines):  # torn by a crash mid-write: that request was never answered
                logger.warning("%s: ignoring an incomplete last line (%s)", path, exc)
                break
            raise JournalError(f"{path}: line {number} is corrupt ({exc})") from None
        kv.update(updates)
        for key in deletes:
            kv.pop(key, None)
    if not kv:
        raise JournalError(f"{path} holds no chain data")
    return header, kv


def _reopen(header: dict[str, Any], kv: dict[bytes, bytes]) -> EmbeddedChain:
    """A chain over the recorded store, at its canonical head, with the header's contracts."""
    provider = SerializedEthereumTesterProvider()
    backend = provider.ethereum_tester.backend
    try:
        backend.chain = type(backend.chain)(AtomicDB(MemoryDB(kv)))
    except Exception as exc:  # a store without a canonical head, a missing trie node…
        raise JournalError(f"the recorded chain does not open: {type(exc).__name__}: {exc}") from None
    w3 = Web3(provider)
    fields = header["chain"]
    chain = EmbeddedChain(w3=w3, chain_id=w3.eth.chain_id,
                          **{name: Web3.to_checksum_address(fields[name]) if name != "treasury_private_key"
                             else fields[name] for name in CHAIN_FIELDS})
    try:
        missing = [name for name in ("router", "pair", "azr_token", "zar_token")
                   if not w3.eth.get_code(getattr(chain, name))]
        chain.client().balances()
    except Exception as exc:
        raise JournalError(f"the recorded chain is unusable: {type(exc).__name__}: {exc}") from None
    if missing:
        raise JournalError(f"the recorded chain has no contract at {', '.join(missing)}")
    return chain


def reset_notice_path(journal_path: str | os.PathLike[str]) -> Path:
    """Where the node says the chain was started afresh: ``chain-reset.json`` by the journal."""
    return Path(journal_path).with_name("chain-reset.json")


def read_reset_notice(journal_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last reset notice (``reset_at``, ``reason``, ``stale_journal``), or ``None``."""
    try:
        notice = json.loads(reset_notice_path(journal_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return notice if isinstance(notice, dict) else None


def open_or_reset(path: str | os.PathLike[str]) -> ChainJournal:
    """The chain recorded in ``path``; a new chain recorded there when there is none yet; and
    when the recorded one cannot be used, a new chain too, LOUDLY: the old file is moved aside
    (``<name>.stale-<time>``), a banner is logged and the reset notice is written."""
    from tokens.chain.embedded import build_embedded_chain

    path = Path(path)
    if not path.exists():
        return ChainJournal.create(path, build_embedded_chain())
    try:
        journal = ChainJournal.open(path)
    except JournalError as exc:
        reason = str(exc)
    else:
        logger.info("chain reopened from %s at block %s", path, journal.chain.w3.eth.block_number)
        return journal

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    stale = path.with_name(f"{path.name}.stale-{stamp}")
    os.replace(path, stale)
    journal = ChainJournal.create(path, build_embedded_chain())
    notice = {"reset_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "reason": reason,
              "stale_journal": str(stale)}
    notice_path = reset_notice_path(path)
    temporary = notice_path.with_name(f".{notice_path.name}.tmp")
    temporary.write_text(json.dumps(notice, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, notice_path)
    logger.error("\n%s\n", banner(notice))
    return journal


def banner(notice: dict[str, Any]) -> str:
    line = "!" * 78
    return "\n".join([
        line,
        "!!  THE LOCAL CHAIN WAS STARTED AFRESH: its recorded state could not be used.",
        f"!!  Why: {notice.get('reason')}",
        f"!!  The old journal is kept in {notice.get('stale_journal')}.",
        "!!  Buy-orders, transaction hashes and treasury balances in the database from",
        "!!  before this point are NOT on this chain (see `manage.py chain_reconcile`).",
        line,
    ])
