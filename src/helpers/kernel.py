"""The ``nlpdl-report`` kernel spec asks every client for an encrypted kernel.

``ipykernel install`` writes a kernel.json that declares ``supported_encryption: ["curve"]``,
but a client provisions CurveZMQ keys only when its KernelManager's ``transport_encryption``
is "auto" (jupyter_client >= 8.9), and its default is "disabled". The grid and the report set
"auto" themselves (helpers.settings.kernel_options); papermill's own command line (the
README's) loads no Jupyter config, so its kernels ran over plain TCP and logged "Kernel is
running over TCP without encryption". A kernel spec names the provisioner that starts its
kernels (metadata ``kernel_provisioner``, jupyter_client's supported extension point, read by
every client); :class:`CurveProvisioner`, registered in pyproject.toml as the
``jupyter_client.kernel_provisioners`` entry point :data:`PROVISIONER`, is jupyter_client's
local provisioner that asks for the keys ("auto") where the manager has left the default.

``python -m helpers.kernel NAME`` names it in the spec ``ipykernel install --sys-prefix``
registered for this environment: the Makefile's REGISTER_KERNEL runs both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import zmq
from jupyter_client.provisioning import LocalProvisioner

#: The entry point name of :class:`CurveProvisioner` (pyproject.toml).
PROVISIONER = "nlpdl-report-curve"


class CurveProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, with CurveZMQ keys unless the manager asked for
    "required" or the local libzmq has no CurveZMQ (then the kernel warns, as before)."""

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
        if (km is not None and "transport_encryption" not in kwargs
                and getattr(km, "transport_encryption", None) == "disabled"
                and zmq.has("curve")):
            kwargs["transport_encryption"] = "auto"
        return await super().pre_launch(**kwargs)


def spec_file(name: str, prefix: str | Path | None = None) -> Path:
    """kernel.json of the spec ``ipykernel install --sys-prefix --name NAME`` writes (or
    ``--prefix PREFIX``)."""
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / name / "kernel.json"


def use_provisioner(path: Path) -> dict[str, Any]:
    """Name :class:`CurveProvisioner` in the kernel spec at ``path``; returns the spec."""
    spec = json.loads(path.read_text())
    spec.setdefault("metadata", {})["kernel_provisioner"] = {"provisioner_name": PROVISIONER,
                                                             "config": {}}
    path.write_text(json.dumps(spec, indent=1) + "\n")
    return spec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.kernel", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the kernel spec's name (ipykernel install --name)")
    p.add_argument("--prefix", default=None, help="as ipykernel install --prefix "
                   "(default: this environment, as --sys-prefix)")
    args = p.parse_args(argv)
    path = spec_file(args.name, args.prefix)
    if not path.is_file():
        print(f"error: {path} does not exist: register the kernel first (ipykernel install "
              f"--sys-prefix --name {args.name}; make kernel does both).", file=sys.stderr)
        return 2
    use_provisioner(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
