#!/usr/bin/env python3
"""Check a MyoPS 2020 or MS-CMRSeg 2019 download case by case; writes nothing (see README.md here).

Run `python data_download/check_myops.py --help` for the options.
"""

import sys

from pkd_lessons.realdata.commands import check_myops_main

if __name__ == "__main__":
    sys.exit(check_myops_main())
