import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session", autouse=True)
def _testdata():
    from tests.datagen import generate_all
    generate_all(os.path.join(ROOT, "build", "testdata"))
