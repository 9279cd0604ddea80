"""Training-step speed and memory: full fine-tuning vs LoSiA vs LoSiA-Pro (see losia_cl/bench.py)."""

from losia_cl.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
