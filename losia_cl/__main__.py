"""``python -m losia_cl`` is ``losia-cl`` (the form ``torchrun -m losia_cl run ...`` starts)."""

from losia_cl.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
