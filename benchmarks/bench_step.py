"""Training-step speed and memory of the registered methods, side by side (see losia_cl/bench.py)."""

from losia_cl.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
