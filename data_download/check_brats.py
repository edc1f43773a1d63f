#!/usr/bin/env python3
"""Check a BraTS download case by case; writes nothing (see README.md here).

Run `python data_download/check_brats.py --help` for the options.
"""

import sys

from pkd_lessons.realdata.commands import check_brats_main

if __name__ == "__main__":
    sys.exit(check_brats_main())
