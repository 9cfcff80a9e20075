# pragma version 0.4.3
"""
@title Test-only Chainlink-style reference feed with a settable answer
"""

decimals: public(uint8)
answer: public(int256)
updated_at: public(uint256)
round_id: public(uint80)


@deploy
def __init__(decimals_: uint8):
    self.decimals = decimals_


@external
def set_answer(answer_: int256, updated_at_: uint256):
    """
    @notice Set the answer and its update time (0 means now).
    """
    self.answer = answer_
    self.updated_at = updated_at_ if updated_at_ != 0 else block.timestamp
    self.round_id += 1


@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    return self.round_id, self.answer, self.updated_at, self.updated_at, self.round_id
