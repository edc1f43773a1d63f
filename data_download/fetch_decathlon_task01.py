#!/usr/bin/env python3
"""Download, verify and extract the Decathlon's Task01_BrainTumour (see README.md here).

Run `python data_download/fetch_decathlon_task01.py --help` for the options.
"""

import sys

from pkd_lessons.realdata.commands import fetch_task01_main

if __name__ == "__main__":
    sys.exit(fetch_task01_main())
