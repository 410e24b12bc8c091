"""python -m tinyllm ... == tinyllm ..."""
import sys

from .cli import main

sys.exit(main())
