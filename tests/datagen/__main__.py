import sys

from tests.datagen import generate_all

generate_all(sys.argv[1] if len(sys.argv) > 1 else "build/testdata", force=True)
