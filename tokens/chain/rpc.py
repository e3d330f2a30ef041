"""Talking to a node: which exceptions mean what, their translation into :mod:`tokens.chain.errors`,
and the secrets a message must never carry (the provider URI's key, the treasury key).

Shared by the contract calls (:mod:`tokens.chain.client`) and the transaction layer
(:mod:`tokens.chain.sending`). Pure Python; knows nothing of the embedded chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_typing import ChecksumAddress
from eth_utils.exceptions import ValidationError as EvmValidationError
from web3 import Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    BadResponseFormat,
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    Web3RPCError,
)

from tokens.chain.config import ChainConfig
from tokens.chain.errors import ChainConfigError, ChainError, ChainRevertError, ChainTransportError

# A revert: the tester raises TransactionFailed, web3 raises ContractLogicError for a node.
REVERT_ERRORS = (ContractLogicError, TransactionFailed)
# Transient: the request did not reach the node, timed out, or the node refused it before
# executing it (a refused transaction, e.g. a stale nonce, is safe to sign and send again).
TRANSPORT_ERRORS = (
    OSError,  # includes every requests exception (connection, timeout, HTTP status)
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    BadResponseFormat,
    Web3RPCError,
    EvmValidationError,
    TesterValidationError,
)

# The node saw the transaction and refused it (it was not queued): its nonce is free again.
REFUSED_ERRORS = (Web3RPCError, EvmValidationError, TesterValidationError)
# What a node says when it refuses a transaction (geth, erigon, nethermind, the embedded chain's
# validation): only these make a transaction "refused". Any other answer -- a proxy's or a load
# balancer's error, "internal error", a rate limit -- may come from a node that took it.
REFUSAL_MARKERS = ("nonce", "underpriced", "insufficient funds", "enough balance", "base fee", "intrinsic gas",
                   "gas limit", "fee cap", "fee too low", "invalid sender", "exceeds the configured cap")


def is_refusal(exc: Exception) -> bool:
    """Whether ``exc`` says the node refused the transaction (so it does not hold it)."""
    if isinstance(exc, (EvmValidationError, TesterValidationError)):
        return True  # the embedded chain's own validation, in this process
    message = error_message(exc).lower()
    return any(marker in message for marker in REFUSAL_MARKERS)


def connect(config: ChainConfig) -> Web3:
    """A connection to ``config.provider_uri`` over HTTP, without hidden retries."""
    if config.provider_uri is None:
        raise ChainConfigError(
            "no provider URI and no connection: the embedded chain's client comes from "
            "tokens.chain.runtime.client_for(config)"
        )
    return Web3(
        Web3.HTTPProvider(
            config.provider_uri,
            request_kwargs={"timeout": config.request_timeout},
            # No hidden retries: the buy-order service retries with its backoff.
            exception_retry_configuration=None,
        )
    )


def endpoint(provider_uri: str | None) -> str:
    """The node's scheme, host and port, nothing that may be a secret."""
    if provider_uri is None:
        return "embedded"
    parts = urlsplit(provider_uri)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def scrub(text: str, provider_uri: str | None) -> str:
    """``text`` without the secret parts a provider URI may hold (API keys, credentials)."""
    if provider_uri is None:
        return text
    parts = urlsplit(provider_uri)
    for secret in (parts.path, parts.query, parts.username, parts.password):
        if secret and secret != "/":
            text = text.replace(secret, "***")
    return text


def error_message(exc: Exception) -> str:
    return exc.message if isinstance(exc, Web3RPCError) else str(exc)


@contextmanager
def translated(action: str, provider_uri: str | None) -> Iterator[None]:
    """Turn provider and EVM exceptions into :class:`ChainError` subclasses."""
    try:
        yield
    except ChainError:
        raise
    except REVERT_ERRORS as exc:
        raise ChainRevertError(revert_reason(exc)) from exc
    except BadFunctionCallOutput as exc:
        raise ChainError(f"{action}: a contract returned nothing: is the address right?") from exc
    except Web3RPCError as exc:
        if "revert" in exc.message.lower():
            raise ChainRevertError(revert_reason(exc)) from exc
        raise ChainTransportError(
            f"{action}: the node refused the request: {scrub(exc.message, provider_uri)}"
        ) from None
    except TRANSPORT_ERRORS as exc:
        raise ChainTransportError(f"{action}: {type(exc).__name__}: {scrub(str(exc), provider_uri)}") from None


def revert_reason(exc: Exception) -> str:
    message = getattr(exc, "message", None) or (str(exc.args[0]) if exc.args else "")
    for prefix in ("execution reverted: ", "execution reverted"):
        if message.startswith(prefix):
            message = message[len(prefix) :]
            break
    return message.strip() or "reverted without a reason"


def treasury_account(private_key: str | None) -> LocalAccount:
    if not private_key:
        raise ChainConfigError("the treasury private key is not configured")
    try:
        return Account.from_key(private_key)
    except Exception:
        # Never let the key reach a message or a traceback.
        raise ChainConfigError("the treasury private key is malformed") from None


def checksum_address(value: str | None, label: str) -> ChecksumAddress:
    if not value or not Web3.is_address(value):
        raise ChainConfigError(f"the {label} address is missing or malformed: {value!r}")
    return Web3.to_checksum_address(value)
