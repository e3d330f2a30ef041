"""The database's transaction ledger: nonces safe across processes and machines, every signed
transaction kept before it is broadcast, and the settling of a nonce's transactions.

- :class:`DbLedger` is the :class:`tokens.chain.client.TxLedger` of the services. Taking a nonce
  locks the sender's :class:`ChainSender` row (``SELECT ... FOR UPDATE``); the transaction is
  signed and its :class:`ChainTransaction` row written in the same database transaction, which
  commits before the broadcast. So two processes never sign one nonce, and a crash after the
  commit leaves the signed transaction on record (the sweep broadcasts it again).
- The next nonce is the lowest of: a nonce at or above the node's pending nonce all of whose
  transactions the node refused (a gap to fill), else max(the row's ``next_nonce``, the node's
  pending nonce) -- the row catches up with a node that is ahead and never goes back below a
  nonce that was used.
- :func:`swap_outcome` reconciles a buy-order: it looks up every hash of its swap (the first and
  its replacements, one nonce), records the one that was mined -- once -- and drops the others;
  it replaces a swap still pending after ``replace_after_seconds`` -- or, once the swap is past its
  deadline, cancels it: a zero-value transfer takes the nonce (purpose ``cancel``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.types import TxReceipt

from tokens.chain import runtime
from tokens.chain.client import ChainClient
from tokens.chain.errors import ChainFeeAboveCapError, ChainTransportError, LedgerRefusal, NonceHeld
from tokens.chain.tx import FeePolicy, MemoryLedger, SignedTx, TxPurpose, gwei_to_wei
from tokens.models import BuyOrder, BuyOrderConfig, ChainSender, ChainTransaction

logger = logging.getLogger(__name__)

Tx = ChainTransaction

# Why a transaction is ``send_failed`` when the broadcast got no answer and the node said it does
# not hold it (rather than refusing it in so many words).
NOT_RECEIVED = "the node did not receive it (no answer to the broadcast, then not found)"

# A transaction recorded but not yet confirmed sent is being broadcast (by this or another
# process) for at most this long; after it, a nonce none of whose transactions the node holds
# is free again.
IN_FLIGHT_SECONDS = 30

_memory_exclusive = MemoryLedger()  # the exclusive section on databases without advisory locks


def fee_policy(config: BuyOrderConfig, *, replace: bool = True) -> FeePolicy:
    """The settings' fees in wei, and when a pending transaction is replaced."""
    return FeePolicy(max_fee_per_gas=gwei_to_wei(config.max_fee_per_gas),
                     priority_fee_per_gas=gwei_to_wei(config.priority_fee_per_gas),
                     replace_after=config.replace_after_seconds if replace else None)


def _locked_sender(chain_id: int, address: str) -> ChainSender:
    ChainSender.objects.get_or_create(chain_id=chain_id, address=address)
    return ChainSender.objects.select_for_update().get(chain_id=chain_id, address=address)


def next_nonce(sender: ChainSender, pending_nonce: int) -> int:
    """The nonce to take now (the caller holds the sender's row lock).

    A nonce below ``next_nonce`` but not below the node's pending nonce is taken again when none
    of its transactions is live: all refused, or signed but never confirmed sent for longer than
    :data:`IN_FLIGHT_SECONDS` (a broadcast in progress elsewhere is live). Taking a nonce again
    is safe -- of one nonce's transactions at most one is ever mined; skipping one is not: every
    later transaction waits behind the gap.
    """
    floor = max(sender.next_nonce, pending_nonce)
    live = Tx.objects.filter(sender=sender, nonce=OuterRef("nonce")).filter(
        Q(status__in=[Tx.Status.SENT, Tx.Status.MINED, Tx.Status.REVERTED, Tx.Status.DROPPED])
        | Q(status=Tx.Status.SIGNED, created_at__gt=timezone.now() - timedelta(seconds=IN_FLIGHT_SECONDS)))
    gap = (Tx.objects.filter(sender=sender, nonce__gte=pending_nonce, nonce__lt=floor)
           .exclude(Exists(live)).order_by("nonce").values_list("nonce", flat=True).first())
    return floor if gap is None else gap


class DbLedger:
    """Nonces and signed transactions in the database (see the module docstring).

    Use it outside any open database transaction: its rows must be committed before the broadcast.
    """

    def __init__(self, *, buy_order_id: int | None = None) -> None:
        self.buy_order_id = buy_order_id

    def record(self, *, sender: ChecksumAddress, chain_id: int, pending_nonce: int,
               sign: Callable[[int], SignedTx], purpose: TxPurpose) -> SignedTx:
        with transaction.atomic():
            row = _locked_sender(chain_id, sender)
            self._refuse_unwanted(purpose)
            nonce = next_nonce(row, pending_nonce)
            if purpose == "swap":
                self._refuse_another_nonce(nonce)
            signed = sign(nonce)
            again = Tx.objects.filter(tx_hash=signed.tx_hash).update(  # the very same transaction, once more
                status=Tx.Status.SIGNED, error="", created_at=timezone.now(), settled_at=None)
            if not again:
                attempt = Tx.objects.filter(sender=row, nonce=nonce).aggregate(n=Max("attempt"))["n"]
                _create(row, signed, purpose=purpose, buy_order_id=self.buy_order_id,
                        attempt=0 if attempt is None else attempt + 1)
            if nonce + 1 > row.next_nonce:
                row.next_nonce = nonce + 1
                row.save(update_fields=["next_nonce", "updated_at"])
        logger.info("nonce %s of %s taken by %s (%s)", nonce, sender, signed.tx_hash, purpose)
        return signed

    def record_replacement(self, original: SignedTx, replacement: SignedTx, *,
                           purpose: TxPurpose | None = None) -> None:
        with transaction.atomic():
            old = Tx.objects.select_for_update().select_related("sender").get(tx_hash=original.tx_hash)
            attempt = Tx.objects.filter(sender=old.sender, nonce=old.nonce).aggregate(n=Max("attempt"))["n"]
            new = _create(old.sender, replacement, purpose=purpose or old.purpose, buy_order_id=old.buy_order_id,
                          attempt=attempt + 1)
            old.replaced_by = new
            old.save(update_fields=["replaced_by"])

    def _refuse_unwanted(self, purpose: TxPurpose) -> None:
        """Under the sender's row lock, before a nonce is taken: a swap only for an order still
        ``pending`` (its row locked: a reconciliation failing it as abandoned waits, then sees
        the swap), and one burn per order (a second actor finishing the same order would burn
        tokens held for others). :class:`LedgerRefusal` otherwise: nothing is signed."""
        if self.buy_order_id is None:
            return
        if purpose == "swap":
            status = list(BuyOrder.objects.select_for_update().filter(pk=self.buy_order_id)
                          .values_list("status", flat=True))
            if status != [BuyOrder.Status.PENDING]:
                now = status[0] if status else "gone"
                raise LedgerRefusal(f"buy-order {self.buy_order_id} is not pending ({now}): its swap is not signed")
        elif purpose == "burn":
            burn = (Tx.objects.filter(buy_order_id=self.buy_order_id, purpose=Tx.Purpose.BURN)
                    .exclude(status__in=[Tx.Status.SEND_FAILED, Tx.Status.DROPPED])
                    .values_list("tx_hash", flat=True).first())
            if burn is not None:
                raise LedgerRefusal(f"buy-order {self.buy_order_id} has a burn already ({burn}): not signed twice")

    def _refuse_another_nonce(self, nonce: int) -> None:
        """A buy-order's swaps share one nonce: a new one at another nonce than an earlier swap
        that may still be held (signed, sent, or "not received" -- a node can be wrong about that)
        could be mined beside it, buying twice. :class:`NonceHeld` then: nothing is signed."""
        if self.buy_order_id is None:
            return
        held = (Tx.objects.filter(buy_order_id=self.buy_order_id, purpose=Tx.Purpose.SWAP).exclude(nonce=nonce)
                .filter(Q(status__in=[Tx.Status.SIGNED, Tx.Status.SENT, Tx.Status.MINED, Tx.Status.REVERTED])
                        | Q(status=Tx.Status.SEND_FAILED, error=NOT_RECEIVED))
                .values_list("nonce", flat=True).first())
        if held is not None:
            raise NonceHeld(f"buy-order {self.buy_order_id}: its earlier swap may still be held at nonce {held}; "
                            f"a swap at nonce {nonce} is not signed")

    def sent(self, tx: SignedTx) -> None:
        Tx.objects.filter(tx_hash=tx.tx_hash, status=Tx.Status.SIGNED).update(status=Tx.Status.SENT,
                                                                              sent_at=timezone.now())

    def send_failed(self, tx: SignedTx, error: str) -> None:
        with transaction.atomic():
            if Tx.objects.filter(tx_hash=tx.tx_hash, status=Tx.Status.SIGNED).update(
                    status=Tx.Status.SEND_FAILED, error=error[:2000], settled_at=timezone.now()):
                # A refused replacement replaces nothing: the transaction it was for is the
                # newest of its nonce again (the sweep follows it, the nonce is not lost).
                Tx.objects.filter(replaced_by__tx_hash=tx.tx_hash).update(replaced_by=None)

    def not_received(self, tx: SignedTx) -> None:
        """``send_failed``, marked :data:`NOT_RECEIVED`: the nonce may be taken again, but a swap of
        the same order only at that nonce (:meth:`_refuse_another_nonce`)."""
        self.send_failed(tx, NOT_RECEIVED)

    def mined(self, tx_hash: str, *, status: int, block_number: int) -> None:
        record_mined(tx_hash, status=status, block_number=block_number)

    @contextmanager
    def exclusive(self, *, sender: ChecksumAddress, chain_id: int) -> Iterator[None]:
        """A PostgreSQL session advisory lock per (chain, sender), across processes and machines
        (released by the database if the process dies); a process lock on other databases."""
        if connection.vendor != "postgresql":
            with _memory_exclusive.exclusive(sender=sender, chain_id=chain_id):
                yield
            return
        key = int.from_bytes(hashlib.sha256(f"tokens.sender:{chain_id}:{sender}".encode()).digest()[:8], "big",
                             signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _create(sender: ChainSender, tx: SignedTx, *, purpose: str, buy_order_id: int | None, attempt: int) -> Tx:
    return Tx.objects.create(
        sender=sender, nonce=tx.nonce, attempt=attempt, tx_hash=tx.tx_hash, purpose=purpose,
        buy_order_id=buy_order_id, to_address=tx.to, data=tx.data, value=tx.value, gas_limit=tx.gas,
        max_fee_per_gas=tx.max_fee_per_gas, max_priority_fee_per_gas=tx.max_priority_fee_per_gas,
        raw_transaction=HexBytes(tx.raw).to_0x_hex())


def record_mined(tx_hash: str, *, status: int, block_number: int) -> bool:
    """``tx_hash`` is mined: it becomes ``mined`` (or ``reverted``) and every other transaction of
    its nonce ``dropped`` -- once: False when it was recorded already (or is not ours)."""
    with transaction.atomic():
        row = Tx.objects.select_for_update().filter(tx_hash=tx_hash).first()
        if row is None or row.status in (Tx.Status.MINED, Tx.Status.REVERTED):
            return False
        now = timezone.now()
        row.status = Tx.Status.MINED if status == 1 else Tx.Status.REVERTED
        row.block_number, row.settled_at, row.error = block_number, now, ""
        row.save(update_fields=["status", "block_number", "settled_at", "error"])
        Tx.objects.filter(sender_id=row.sender_id, nonce=row.nonce).exclude(pk=row.pk).exclude(
            status=Tx.Status.SEND_FAILED).update(status=Tx.Status.DROPPED, settled_at=now,
                                                 error=f"nonce {row.nonce} was taken by {tx_hash}")
    return True


def signed_tx(row: Tx) -> SignedTx:
    """A recorded transaction as the client signs it again."""
    return SignedTx(tx_hash=row.tx_hash, raw=bytes(HexBytes(row.raw_transaction)),
                    sender=Web3.to_checksum_address(row.sender.address), chain_id=row.sender.chain_id,
                    nonce=row.nonce, to=Web3.to_checksum_address(row.to_address), data=row.data, gas=row.gas_limit,
                    value=int(row.value), max_fee_per_gas=int(row.max_fee_per_gas),
                    max_priority_fee_per_gas=int(row.max_priority_fee_per_gas))


@dataclass(frozen=True)
class SwapOutcome:
    state: Literal["mined", "cancelled", "pending", "unknown", "none"]
    receipt: TxReceipt | None = None
    note: str = ""
    last_signed_at: object = None  # the newest swap row's creation time


_SWAP_FAMILY = (Tx.Purpose.SWAP, Tx.Purpose.CANCEL)


def swap_outcome(client: ChainClient, order: BuyOrder, *, config: BuyOrderConfig,
                 on_signed: Callable[[str], None] | None = None) -> SwapOutcome:
    """Where the swap of ``order`` is: every hash of it is looked up (newest first).

    ``mined``: one was (recorded once, the others dropped) -- its receipt. ``cancelled``: the
    zero-value transaction that took the nonce of a swap pending past its deadline was mined
    (the note names it): nothing was bought. ``pending``: the node holds one; when it has been
    pending longer than ``replace_after_seconds`` it is replaced (same nonce, fees +12.5%, within
    the cap -- else it waits, and the note says why), or cancelled once past its deadline.
    ``unknown``: the node knows none; signed ones never confirmed sent are broadcast again.
    ``none``: no swap was ever signed.
    """
    rows = list(Tx.objects.filter(buy_order=order, purpose__in=_SWAP_FAMILY).select_related("sender")
                .order_by("-created_at", "-id"))
    if not rows:
        return SwapOutcome("none")
    last_signed_at = next((row.created_at for row in rows if row.purpose == Tx.Purpose.SWAP), rows[0].created_at)
    pending: list[Tx] = []
    for row in rows:
        state, receipt = client.lookup(row.tx_hash)
        if state == "mined":
            record_mined(row.tx_hash, status=receipt["status"], block_number=receipt["blockNumber"])
            if row.purpose == Tx.Purpose.CANCEL:
                return SwapOutcome("cancelled", receipt, note=row.tx_hash, last_signed_at=last_signed_at)
            return SwapOutcome("mined", receipt, last_signed_at=last_signed_at)
        if state == "confirming":  # in a block, not deep enough yet: neither settled nor replaced
            return SwapOutcome("pending", note=f"{row.tx_hash} in block {receipt['blockNumber']}, waiting for "
                                               f"{client.confirmations} blocks on top",
                               last_signed_at=last_signed_at)
        if state == "pending":
            if row.status == Tx.Status.SIGNED:  # the broadcast got no answer, but the node holds it
                DbLedger().sent(signed_tx(row))
            pending.append(row)
    if pending:
        _, note = _replace_if_stuck(client, pending[0], config, on_signed)
        return SwapOutcome("pending", note=note, last_signed_at=last_signed_at)
    for row in rows:
        if row.status == Tx.Status.SIGNED:  # committed, then the process stopped before the broadcast?
            done, note = _send_again(client, row, config)
            if done != "waiting":
                return SwapOutcome("pending", note=note, last_signed_at=last_signed_at)
    return SwapOutcome("unknown", last_signed_at=last_signed_at)


def past_its_deadline(client: ChainClient, row: Tx) -> bool:
    """Whether ``row`` is a swap whose deadline the wall clock has passed: mined now, it could
    only revert ``EXPIRED``."""
    if row.purpose != Tx.Purpose.SWAP:
        return False
    deadline = client.swap_deadline(row.data)
    return deadline is not None and runtime.wall_clock() > deadline


def swaps_past_their_deadline(client: ChainClient, order: BuyOrder, *, margin: int) -> bool | None:
    """Whether every swap signed for ``order`` is past the deadline it carries by ``margin``
    seconds (none can still be mined with effect); ``None`` when there is none, or a deadline
    cannot be read."""
    swaps = list(Tx.objects.filter(buy_order=order, purpose=Tx.Purpose.SWAP).values_list("data", flat=True))
    deadlines = [client.swap_deadline(data) for data in swaps]
    if not deadlines or None in deadlines:
        return None
    return runtime.wall_clock() > max(deadlines) + margin


Done = Literal["replaced", "cancelled", "rebroadcast", "waiting"]


def _not_ours(client: ChainClient, row: Tx) -> str | None:
    """Why ``row`` must not be signed again by ``client``: another key signed it (a rotated
    treasury key would sign its nonce for the wrong account)."""
    if Web3.to_checksum_address(row.sender.address) != client.treasury_address:
        return f"{row.tx_hash} was signed by {row.sender.address}, not this client's key: left alone"
    return None


def _resign(client: ChainClient, row: Tx, config: BuyOrderConfig, *, cancel: bool, why: str,
            on_signed: Callable[[str], None] | None = None) -> tuple[Done, str]:
    """``row`` signed again on its nonce at bumped fees (within the cap), by this client's key
    only: as itself, or -- ``cancel`` -- as a zero-value transfer that only takes the nonce (a
    swap past its deadline: mined, it could only revert at its full gas; the cancellation costs
    21,000). A fee above the cap is noted on the row, which waits."""
    if reason := _not_ours(client, row):
        return "waiting", reason
    done: Done = "cancelled" if cancel else "replaced"
    try:
        if cancel:
            new = client.cancel(signed_tx(row), policy=fee_policy(config), ledger=DbLedger())
        else:
            new = client.replace(signed_tx(row), policy=fee_policy(config), ledger=DbLedger(), on_signed=on_signed)
    except ChainFeeAboveCapError as exc:
        Tx.objects.filter(pk=row.pk).update(error=str(exc))
        return "waiting", f"{row.tx_hash} {why}, not {done}: {exc}"
    except ChainTransportError as exc:
        return "waiting", f"{row.tx_hash} {why}, refused by the node: {exc}"
    return done, f"{row.tx_hash} {why}: {done} by {new.tx_hash}"


def _replace_if_stuck(client: ChainClient, row: Tx, config: BuyOrderConfig,
                      on_signed: Callable[[str], None] | None) -> tuple[Done, str]:
    """Replace ``row`` when it has been pending longer than ``replace_after_seconds``: with itself
    at bumped fees, or -- a swap past its deadline -- with a cancellation."""
    since = row.sent_at or row.created_at
    if since > timezone.now() - timedelta(seconds=config.replace_after_seconds):
        return "waiting", f"{row.tx_hash} pending since {since:%H:%M:%S}"
    if past_its_deadline(client, row):
        return _resign(client, row, config, cancel=True, why="past its deadline")
    return _resign(client, row, config, cancel=False, why="stuck", on_signed=on_signed)


def _send_again(client: ChainClient, row: Tx, config: BuyOrderConfig) -> tuple[Done, str]:
    """``row`` that the node does not hold, on its nonce again: a swap past its deadline is
    cancelled; one the node once took and then lost (evicted: often too low a fee, or a
    reorganised block) is replaced with bumped fees; one never confirmed sent goes out as its
    stored bytes."""
    if past_its_deadline(client, row):
        return _resign(client, row, config, cancel=True, why="past its deadline")
    if row.status == Tx.Status.SENT:
        return _resign(client, row, config, cancel=False, why="lost by the node")
    try:
        client.rebroadcast(bytes(HexBytes(row.raw_transaction)), row.tx_hash)
    except ChainTransportError as exc:
        return "waiting", f"{row.tx_hash} could not be broadcast again: {exc}"
    Tx.objects.filter(pk=row.pk, status__in=Tx.OPEN_STATUSES).update(status=Tx.Status.SENT, sent_at=timezone.now())
    return "rebroadcast", f"{row.tx_hash} broadcast again"


def sweep(client: ChainClient, config: BuyOrderConfig) -> dict[str, int]:
    """Settle or unstick every open transaction of ``client``'s sender older than
    ``replace_after_seconds``: a mined one is recorded (the rest of its nonce dropped), one still
    pending is replaced (same nonce, fees +12.5%, within the cap), one the node lost is replaced
    the same way (or broadcast again, when it was never confirmed sent) -- a swap past its
    deadline is cancelled instead. Returns how many of each."""
    counts = {"mined": 0, "replaced": 0, "cancelled": 0, "rebroadcast": 0, "waiting": 0}
    cutoff = timezone.now() - timedelta(seconds=config.replace_after_seconds)
    heads = (Tx.objects.filter(sender__chain_id=client.chain_id, sender__address=client.treasury_address,
                               status__in=Tx.OPEN_STATUSES, replaced_by__isnull=True, created_at__lte=cutoff)
             .select_related("sender").order_by("nonce"))
    for head in heads:
        family = list(Tx.objects.filter(sender=head.sender, nonce=head.nonce, status__in=Tx.OPEN_STATUSES)
                      .order_by("-attempt"))
        states = {}
        for row in family:
            state, receipt = client.lookup(row.tx_hash)
            states[row.tx_hash] = state
            if state == "mined":
                record_mined(row.tx_hash, status=receipt["status"], block_number=receipt["blockNumber"])
                counts["mined"] += 1
                break
            if state == "confirming":  # in a block, not deep enough yet: wait, never replace
                counts["waiting"] += 1
                break
        else:
            if "pending" in states.values():
                done, note = _replace_if_stuck(client, head, config, None)
            else:
                done, note = _send_again(client, head, config)
            counts[done] += 1
            (logger.warning if done == "waiting" else logger.info)("transaction sweep: %s", note)
    return counts
