"""Run a program with slow checkpoint saves, so a test can kill it in the middle of a write.

    python tests/slowsave.py DELAY -m tinyllm train ...      (a module, like python -m)
    python tests/slowsave.py DELAY tests/faultloop.py ...    (a script)

Sets tinyllm.train.checkpoint.WRITE_DELAY (production code reads no environment variable for it).
"""
import runpy
import sys

from tinyllm.train import checkpoint

if __name__ == "__main__":
    checkpoint.WRITE_DELAY = float(sys.argv[1])
    if sys.argv[2] == "-m":
        sys.argv = [sys.argv[3], *sys.argv[4:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
