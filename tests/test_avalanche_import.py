"""Importing losia_cl (and everything but losia_cl.avalanche) must not import Avalanche."""

from __future__ import annotations

import subprocess
import sys


def _imports_avalanche(code: str) -> bool:
    probe = code + "\nimport sys\nprint('avalanche' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


def test_losia_cl_and_its_packages_do_not_import_avalanche():
    assert not _imports_avalanche(
        "import losia_cl, losia_cl.cli, losia_cl.methods, losia_cl.trainer, losia_cl.streams, losia_cl.metrics, "
        "losia_cl.models, losia_cl.report\n"
        "from losia_cl.trainer.step import train_step\nfrom losia_cl.trainer.plan import BatchPlan\n"
        "from losia_cl.metrics import SubnetOverlapTracker, cl_metrics"
    )


def test_losia_cl_avalanche_imports_avalanche():
    assert _imports_avalanche("import losia_cl.avalanche")
