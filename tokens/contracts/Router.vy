#pragma version 0.4.3
#pragma evm-version prague
"""
@title Router for one constant-product pair, with the Uniswap V2 router interface
@notice getAmountsOut and swapExactTokensForTokens have the signatures (and selectors)
        of the Uniswap V2 router, so that code written against this router works with any
        V2-compatible router. Paths have exactly two tokens: those of the pair.
        The caller approves the router for amountIn of the input token before swapping.
"""

from ethereum.ercs import IERC20


interface IPair:
    def token0() -> address: view
    def token1() -> address: view
    def getReserves() -> (uint112, uint112, uint32): view
    def swap(amount0Out: uint256, amount1Out: uint256, receiver: address): nonpayable


MAX_PATH_LENGTH: constant(uint256) = 8
FEE_DENOMINATOR: constant(uint256) = 1000
FEE_COMPLEMENT: constant(uint256) = 997

pair: public(address)
token0: public(address)
token1: public(address)


@deploy
def __init__(pair_: address):
    self.pair = pair_
    self.token0 = staticcall IPair(pair_).token0()
    self.token1 = staticcall IPair(pair_).token1()


@pure
@external
def getAmountOut(amountIn: uint256, reserveIn: uint256, reserveOut: uint256) -> uint256:
    return self._amount_out(amountIn, reserveIn, reserveOut)


@view
@external
def getAmountsOut(
    amountIn: uint256, path: DynArray[address, MAX_PATH_LENGTH]
) -> DynArray[uint256, MAX_PATH_LENGTH]:
    amounts: DynArray[uint256, MAX_PATH_LENGTH] = []
    zero_for_one: bool = False
    amounts, zero_for_one = self._amounts_out(amountIn, path)
    return amounts


@external
@nonreentrant
def swapExactTokensForTokens(
    amountIn: uint256,
    amountOutMin: uint256,
    path: DynArray[address, MAX_PATH_LENGTH],
    to: address,
    deadline: uint256,
) -> DynArray[uint256, MAX_PATH_LENGTH]:
    assert block.timestamp <= deadline, "EXPIRED"
    amounts: DynArray[uint256, MAX_PATH_LENGTH] = []
    zero_for_one: bool = False
    amounts, zero_for_one = self._amounts_out(amountIn, path)
    amount_out: uint256 = amounts[1]
    assert amount_out >= amountOutMin, "INSUFFICIENT_OUTPUT_AMOUNT"

    pair: address = self.pair
    assert extcall IERC20(path[0]).transferFrom(
        msg.sender, pair, amountIn, default_return_value=True
    ), "TRANSFER_FROM_FAILED"
    if zero_for_one:
        extcall IPair(pair).swap(0, amount_out, to)
    else:
        extcall IPair(pair).swap(amount_out, 0, to)
    return amounts


@view
@internal
def _amounts_out(
    amount_in: uint256, path: DynArray[address, MAX_PATH_LENGTH]
) -> (DynArray[uint256, MAX_PATH_LENGTH], bool):
    """
    @return The amounts along the path and whether the swap is token0 -> token1.
    """
    assert len(path) == 2, "INVALID_PATH"
    r0: uint112 = 0
    r1: uint112 = 0
    last: uint32 = 0
    r0, r1, last = staticcall IPair(self.pair).getReserves()
    reserve0: uint256 = convert(r0, uint256)
    reserve1: uint256 = convert(r1, uint256)
    if path[0] == self.token0 and path[1] == self.token1:
        return [amount_in, self._amount_out(amount_in, reserve0, reserve1)], True
    if path[0] == self.token1 and path[1] == self.token0:
        return [amount_in, self._amount_out(amount_in, reserve1, reserve0)], False
    raise "INVALID_PATH"


@pure
@internal
def _amount_out(amount_in: uint256, reserve_in: uint256, reserve_out: uint256) -> uint256:
    assert amount_in > 0, "INSUFFICIENT_INPUT_AMOUNT"
    assert reserve_in > 0 and reserve_out > 0, "INSUFFICIENT_LIQUIDITY"
    amount_in_with_fee: uint256 = amount_in * FEE_COMPLEMENT
    return amount_in_with_fee * reserve_out // (
        reserve_in * FEE_DENOMINATOR + amount_in_with_fee
    )
