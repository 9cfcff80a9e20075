# pragma version 0.4.3
"""
@title Test-only ERC-20 that returns false instead of reverting when told to fail
@notice While `failing` is set, transfer and transferFrom move nothing and return False.
"""

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
failing: public(bool)


@deploy
def __init__(decimals_: uint8):
    self.name = "False USD"
    self.symbol = "FUSD"
    self.decimals = decimals_


@external
def set_failing(failing_: bool):
    self.failing = failing_


@external
def mint(to: address, amount: uint256):
    self.totalSupply += amount
    self.balanceOf[to] += amount


@external
def transfer(to: address, amount: uint256) -> bool:
    if self.failing:
        return False
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    if self.failing:
        return False
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True
