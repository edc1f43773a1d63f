"""``python -m pkd_lessons`` is the ``pkd-lessons`` command; torchrun starts it so:
``torchrun --nproc-per-node N -m pkd_lessons train ...``."""

from pkd_lessons.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
