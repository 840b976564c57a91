"""Test tiers and a CPU-time report.

Tiers (markers declared in pyproject.toml): ``slow`` marks the tests that each cost
tens of CPU-seconds (a second plan, the fuzz suite, the memory slope, plans over
several seeds); ``-m "not slow and not real_server"`` is the development loop and
``-m "slow and not real_server"`` the rest (CI's stage 1 runs both at once). A ``-m`` on the command
line replaces addopts' ``-m 'not real_server'``, hence the explicit ``and not
real_server``.

``--cpu-durations=N`` lists the N tests that used the most CPU (this process plus the
child processes it waited for: the CLI in a subprocess, plan workers), setup and
teardown included. Unlike ``--durations`` (wall time) it does not grow when other
work shares the cores.
"""

from __future__ import annotations

import resource

import pytest

_CPU_S: dict[str, float] = {}


def _cpu_s() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def pytest_addoption(parser):
    parser.addoption("--cpu-durations", type=int, default=None, metavar="N",
                     help="list the N tests that used the most CPU time (children included)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.config.getoption("cpu_durations") is None:
        yield
        return
    start = _cpu_s()
    yield
    _CPU_S[item.nodeid] = _cpu_s() - start


def pytest_terminal_summary(terminalreporter, config):
    n = config.getoption("cpu_durations")
    if n is None or not _CPU_S:
        return
    tr = terminalreporter
    tr.write_sep("=", f"most CPU time, {n} tests (setup + call + teardown, children included)")
    for nodeid, cpu_s in sorted(_CPU_S.items(), key=lambda kv: -kv[1])[:n]:
        tr.write_line(f"{cpu_s:8.2f}s cpu  {nodeid}")
    tr.write_line(f"{sum(_CPU_S.values()):8.2f}s cpu  in all {len(_CPU_S)} tests")
