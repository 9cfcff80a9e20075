# pragma version 0.4.3
"""
@title Test-only ERC-20 whose transfer functions return nothing (USDT-style)
"""

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])


@deploy
def __init__(decimals_: uint8):
    self.name = "No Return USD"
    self.symbol = "NRUSD"
    self.decimals = decimals_


@external
def mint(to: address, amount: uint256):
    self.totalSupply += amount
    self.balanceOf[to] += amount


@external
def transfer(to: address, amount: uint256):
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount


@external
def transferFrom(owner: address, to: address, amount: uint256):
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount


@external
def approve(spender: address, amount: uint256):
    self.allowance[msg.sender][spender] = amount
