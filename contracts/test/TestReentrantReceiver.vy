# pragma version 0.4.3
"""
@title Test-only contract user that re-enters the protocol when it is paid
@notice Acts as a trader, LP, order owner or payout receiver (`exec` forwards any call as
        itself). Once `set_attack` names a target and calldata, `attack` (which the
        re-entrant token, TestReentrantToken, calls back during a transfer to or from this
        contract) makes that call with `raw_call(..., revert_on_failure=False)` and
        records whether it ran and succeeded, and the return or revert data: a contract
        receiver taking control mid-payout, as an ERC-777 hook or a full-gas ETH refund
        would give it. The attack runs once per `set_attack`. For tests only.
"""

MAX_CALLDATA: constant(uint256) = 1_024
MAX_RETURNDATA: constant(uint256) = 256

target: public(address)
payload: public(Bytes[MAX_CALLDATA])
armed: public(bool)
attempted: public(bool)
succeeded: public(bool)
returndata: public(Bytes[MAX_RETURNDATA])


@external
def exec(target: address, payload: Bytes[MAX_CALLDATA]) -> Bytes[MAX_RETURNDATA]:
    """
    @notice Call `target` as this contract; reverts with the callee's revert data.
    """
    return raw_call(target, payload, max_outsize=MAX_RETURNDATA)


@external
def set_attack(target: address, payload: Bytes[MAX_CALLDATA]):
    """
    @notice The call `attack` makes next; clears the last result.
    """
    self.target = target
    self.payload = payload
    self.armed = True
    self.attempted = False
    self.succeeded = False
    self.returndata = b""


@external
def attack():
    """
    @notice The re-entry (called back mid-transfer): make the armed call once, record it.
    """
    if not self.armed:
        return
    self.armed = False
    success: bool = False
    response: Bytes[MAX_RETURNDATA] = b""
    success, response = raw_call(self.target, self.payload, max_outsize=MAX_RETURNDATA, revert_on_failure=False)
    self.attempted = True
    self.succeeded = success
    self.returndata = response
