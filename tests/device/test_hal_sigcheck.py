# A board's signature verifier (hal/sigcheck.py) is the one the agent uses.
from hal.sigcheck import CountingVerifier
from agent.image import fmt
from agent.errors import BAD_SIGNATURE
from devkit import Rig
from tutil import read_data, raises, eq


def test_board_verifier_is_used():
    r = Rig()
    v = CountingVerifier()
    r.board.verifier = v
    r.dev.board.verifier = v
    r.provision()  # provision reboots: the new board needs the verifier again
    r.board.verifier = v
    r.download(read_data("core_v2.ota"))
    assert v.calls >= 2, v.calls  # the manifest as it arrives, and the slot from flash
    eq(r.dev.st.phase, 2, "held")


def test_a_verifier_that_refuses_is_obeyed():
    r = Rig()
    r.board.verifier = CountingVerifier(lambda pub, digest, sig: False)
    raises(BAD_SIGNATURE, r.provision)
