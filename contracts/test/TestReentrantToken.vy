# pragma version 0.4.3
"""
@title Test-only malicious ERC-20 (6 decimals) that re-enters during transfers
@notice Mintable by anyone. Once armed with a target and calldata, the next `transfer` or
        `transferFrom` moves the tokens, disarms (so the callback never recurses), then calls
        the target with `raw_call(..., revert_on_failure=False)` and records whether that
        re-entrant call succeeded in `reentry_succeeded` (and that it ran at all in
        `reentry_attempted`, with the revert data in `reentry_returndata`). The transfer
        itself always succeeds. `self_approve` lets the token act as a trader or LP on its own
        behalf, so an unlocked control call can succeed. For tests and devnets only.
"""

from ethereum.ercs import IERC20

implements: IERC20

MAX_CALLDATA: constant(uint256) = 1_024
MAX_RETURNDATA: constant(uint256) = 256

name: public(String[32])
symbol: public(String[8])
decimals: public(constant(uint8)) = 6
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])

armed: public(bool)
target: public(address)
payload: public(Bytes[MAX_CALLDATA])
reentry_attempted: public(bool)
reentry_succeeded: public(bool)
reentry_returndata: public(Bytes[MAX_RETURNDATA])


@deploy
def __init__():
    self.name = "Reentrant USD"
    self.symbol = "rUSD"


@external
def arm(target: address, payload: Bytes[MAX_CALLDATA]):
    """
    @notice Call `target` with `payload` during the next transfer; clears the last result.
    """
    self.armed = True
    self.target = target
    self.payload = payload
    self.reentry_attempted = False
    self.reentry_succeeded = False
    self.reentry_returndata = b""


@external
def disarm():
    self.armed = False


@external
def self_approve(spender: address, amount: uint256):
    """
    @notice Approve `spender` to pull the token contract's own balance.
    """
    self.allowance[self][spender] = amount
    log IERC20.Approval(owner=self, spender=spender, value=amount)


@external
def mint(to: address, amount: uint256):
    self.totalSupply += amount
    self.balanceOf[to] += amount
    log IERC20.Transfer(sender=empty(address), receiver=to, value=amount)


@external
def transfer(to: address, amount: uint256) -> bool:
    self._transfer(msg.sender, to, amount)
    self._callback()
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    self.allowance[owner][msg.sender] -= amount
    self._transfer(owner, to, amount)
    self._callback()
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@internal
def _transfer(owner: address, to: address, amount: uint256):
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    log IERC20.Transfer(sender=owner, receiver=to, value=amount)


@internal
def _callback():
    if not self.armed:
        return
    self.armed = False  # before the call: a re-entrant transfer must not recurse
    success: bool = False
    response: Bytes[MAX_RETURNDATA] = b""
    success, response = raw_call(
        self.target, self.payload, max_outsize=MAX_RETURNDATA, revert_on_failure=False
    )
    self.reentry_attempted = True
    self.reentry_succeeded = success
    self.reentry_returndata = response
