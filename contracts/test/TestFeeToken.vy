# pragma version 0.4.3
"""
@title Test-only fee-on-transfer ERC-20
@notice With the fee on, 1 % of every transfer is burnt: taken from what the receiver gets,
        or (`sender_pays`) charged to the sender on top of the amount.
"""

from ethereum.ercs import IERC20
implements: IERC20

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
fee_on: public(bool)
sender_pays: public(bool)


@deploy
def __init__(decimals_: uint8):
    self.decimals = decimals_


@external
def set_fee_on(on: bool):
    self.fee_on = on


@external
def set_sender_pays(on: bool):
    self.sender_pays = on


@external
def mint(to: address, amount: uint256):
    self.totalSupply += amount
    self.balanceOf[to] += amount
    log IERC20.Transfer(sender=empty(address), receiver=to, value=amount)


@external
def transfer(to: address, amount: uint256) -> bool:
    self._transfer(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    self.allowance[owner][msg.sender] -= amount
    self._transfer(owner, to, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@internal
def _transfer(owner: address, to: address, amount: uint256):
    fee: uint256 = 0
    if self.fee_on:
        fee = amount // 100
    if self.sender_pays:
        self.balanceOf[owner] -= amount + fee
        self.balanceOf[to] += amount
    else:
        self.balanceOf[owner] -= amount
        self.balanceOf[to] += amount - fee
    self.totalSupply -= fee
    log IERC20.Transfer(sender=owner, receiver=to, value=amount if self.sender_pays else amount - fee)
