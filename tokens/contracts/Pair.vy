#pragma version 0.4.3
#pragma evm-version prague
"""
@title Constant-product pair of two ERC-20 tokens (Uniswap V2 style)
@notice A swap is two steps, done atomically by the router: transfer the input token to
        the pair, then call swap() for the output. The pair checks that the product of the
        balances, each less 0.3% of its input, did not decrease.
        Liquidity is added by transferring both tokens to the pair and calling sync().
        The pair issues no liquidity shares: it provides the market of the embedded
        development chain, and its liquidity stays in it.
        Arithmetic is checked: balances too large for the invariant revert, and reserves
        are at most 2**112 - 1 (as in Uniswap V2).
        Price oracle (as in Uniswap V2): before the reserves change, the pair adds each
        token's price (the other reserve / its reserve, UQ112x112 fixed point) times the
        seconds since the last update to price0CumulativeLast / price1CumulativeLast, which
        wrap around at 2**256 like V2's; blockTimestampLast is the block time mod 2**32.
        A time-weighted average price is the difference of two readings over their interval.
"""

from ethereum.ercs import IERC20


event Swap:
    sender: indexed(address)
    amount0In: uint256
    amount1In: uint256
    amount0Out: uint256
    amount1Out: uint256
    receiver: indexed(address)


event Sync:
    reserve0: uint256
    reserve1: uint256


FEE_DENOMINATOR: constant(uint256) = 1000
FEE_NUMERATOR: constant(uint256) = 3
MAX_RESERVE: constant(uint256) = 2**112 - 1
Q112: constant(uint256) = 2**112

token0: public(address)
token1: public(address)
reserve0: public(uint256)
reserve1: public(uint256)
price0CumulativeLast: public(uint256)
price1CumulativeLast: public(uint256)
blockTimestampLast: public(uint32)


@deploy
def __init__(token0_: address, token1_: address):
    assert token0_ != empty(address) and token1_ != empty(address), "ZERO_ADDRESS"
    assert token0_ != token1_, "IDENTICAL_ADDRESSES"
    self.token0 = token0_
    self.token1 = token1_


@view
@external
def getReserves() -> (uint112, uint112, uint32):
    return (convert(self.reserve0, uint112), convert(self.reserve1, uint112), self.blockTimestampLast)


@external
@nonreentrant
def swap(amount0Out: uint256, amount1Out: uint256, receiver: address):
    assert amount0Out > 0 or amount1Out > 0, "INSUFFICIENT_OUTPUT_AMOUNT"
    reserve0: uint256 = self.reserve0
    reserve1: uint256 = self.reserve1
    assert amount0Out < reserve0 and amount1Out < reserve1, "INSUFFICIENT_LIQUIDITY"
    token0: address = self.token0
    token1: address = self.token1
    assert receiver != token0 and receiver != token1, "INVALID_TO"

    if amount0Out > 0:
        assert extcall IERC20(token0).transfer(
            receiver, amount0Out, default_return_value=True
        ), "TRANSFER_FAILED"
    if amount1Out > 0:
        assert extcall IERC20(token1).transfer(
            receiver, amount1Out, default_return_value=True
        ), "TRANSFER_FAILED"

    balance0: uint256 = staticcall IERC20(token0).balanceOf(self)
    balance1: uint256 = staticcall IERC20(token1).balanceOf(self)
    amount0In: uint256 = 0
    amount1In: uint256 = 0
    if balance0 > reserve0 - amount0Out:
        amount0In = balance0 - (reserve0 - amount0Out)
    if balance1 > reserve1 - amount1Out:
        amount1In = balance1 - (reserve1 - amount1Out)
    assert amount0In > 0 or amount1In > 0, "INSUFFICIENT_INPUT_AMOUNT"

    adjusted0: uint256 = balance0 * FEE_DENOMINATOR - amount0In * FEE_NUMERATOR
    adjusted1: uint256 = balance1 * FEE_DENOMINATOR - amount1In * FEE_NUMERATOR
    assert adjusted0 * adjusted1 >= reserve0 * reserve1 * FEE_DENOMINATOR**2, "K"

    self._update(balance0, balance1, reserve0, reserve1)
    log Swap(
        sender=msg.sender,
        amount0In=amount0In,
        amount1In=amount1In,
        amount0Out=amount0Out,
        amount1Out=amount1Out,
        receiver=receiver,
    )


@external
@nonreentrant
def sync():
    self._update(
        staticcall IERC20(self.token0).balanceOf(self),
        staticcall IERC20(self.token1).balanceOf(self),
        self.reserve0,
        self.reserve1,
    )


@internal
def _update(balance0: uint256, balance1: uint256, reserve0: uint256, reserve1: uint256):
    assert balance0 <= MAX_RESERVE and balance1 <= MAX_RESERVE, "OVERFLOW"
    block_timestamp: uint32 = convert(block.timestamp % 2**32, uint32)
    time_elapsed: uint32 = unsafe_sub(block_timestamp, self.blockTimestampLast)  # wraps, like V2
    if time_elapsed > 0 and reserve0 != 0 and reserve1 != 0:
        elapsed: uint256 = convert(time_elapsed, uint256)
        # (reserve << 112) // reserve < 2**224, times < 2**32: no overflow; the sums wrap.
        self.price0CumulativeLast = unsafe_add(self.price0CumulativeLast, reserve1 * Q112 // reserve0 * elapsed)
        self.price1CumulativeLast = unsafe_add(self.price1CumulativeLast, reserve0 * Q112 // reserve1 * elapsed)
    self.blockTimestampLast = block_timestamp
    self.reserve0 = balance0
    self.reserve1 = balance1
    log Sync(reserve0=balance0, reserve1=balance1)
