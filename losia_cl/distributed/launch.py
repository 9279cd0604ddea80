"""``losia-cl run --nproc N``: start the same command under ``torchrun`` on this machine.

The command becomes ``python -m torch.distributed.run --standalone --nproc-per-node N -m losia_cl
run ...`` (the rendezvous picks a free port).  Each process gets ``OMP_NUM_THREADS`` = CPU cores / N
unless the variable is set.  Several machines: run ``torchrun`` yourself (docs/distributed.md).

``torchrun`` dies with the launcher (:mod:`~losia_cl.distributed.lifeline`; Linux), and each worker with
``torchrun``, so killing only the launcher leaves no process of the run behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from losia_cl.distributed.lifeline import LAUNCHER_ENV, tie_to_this_process
from losia_cl.errors import ConfigError


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without its ``--nproc N`` / ``--nproc=N`` options."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The command line that runs ``losia-cl <argv>`` in ``nproc`` processes of this machine."""
    if not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"nproc = {nproc!r} is invalid: it must be an integer >= 1")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "losia_cl", *argv]


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``losia-cl <argv>`` under torchrun in ``nproc`` processes; returns torchrun's exit code.

    torchrun is tied to this process: it gets SIGKILL when this process ends (Linux), and its
    workers, which find this process's pid in ``LOSIA_CL_LAUNCHER_PID``, die with torchrun.
    """
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env[LAUNCHER_ENV] = str(os.getpid())
    return subprocess.call(torchrun_command(nproc, without_nproc(argv)), env=env, preexec_fn=tie_to_this_process())
