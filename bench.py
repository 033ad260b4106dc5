#!/usr/bin/env python3
"""Check and time kernel variants: `python bench.py layernorm --variant 3`, `python bench.py --list`."""
import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
