"""A task for the two-worker test only (loaded with ``celery worker --include``): buys and burns
for the treasury key, with the nonces of the database's ledger."""

from __future__ import annotations

import os
from decimal import Decimal

from celery import shared_task
from django.db import connection


@shared_task(name="tests.tokens.buy_and_burn_for_key", ignore_result=False, acks_late=False)
def buy_and_burn_for_key(times: int) -> dict:
    from tokens.chain.runtime import chain_client
    from tokens.chain.txmanager import DbLedger

    try:
        client = chain_client()
        hashes = []
        for _ in range(times):  # a buy (approve + swap, one protocol at a time per key), then a burn
            bought = client.buy(amount=Decimal("1"), min_tokens_out=Decimal(0), ledger=DbLedger())
            hashes += [bought.tx_hash, client.burn(Decimal("0.001"), ledger=DbLedger())]
        return {"pid": os.getpid(), "hashes": hashes}
    finally:
        connection.close()
