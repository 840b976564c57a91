"""Scenario factories for the tests, and running a scenario the CLI must refuse."""

from __future__ import annotations

import copy
from pathlib import Path

from sim.cli import main
from sim.scenario.spec import Scenario, scenario_from_dict


def scenario_dict(**over) -> dict:
    """A small valid scenario as a dict; keyword arguments replace sections."""
    base = {
        "name": "test",
        "seed": 7,
        "fleet": [{
            "name": "p",
            "gpu": "h100-sxm",
            "replicas": 1,
            "model": "llama-3.1-8b",
            "engine": {"max_model_len": 8192},
        }],
        "router": {"name": "least-outstanding"},
        "traffic": {
            "duration_s": 20,
            "warmup_s": 2,
            "arrival": {"process": "poisson", "rate_rps": 5},
            "classes": [{
                "name": "chat",
                "prompt_tokens": {"dist": "uniform", "min": 16, "max": 1500},
                "output_tokens": {"dist": "uniform", "min": 1, "max": 300},
            }],
        },
    }
    for key, value in over.items():
        base[key] = copy.deepcopy(value)
    return base


def make_scenario(pool: dict | None = None, traffic: dict | None = None, **over) -> Scenario:
    """``pool`` / ``traffic`` entries update the first pool / the traffic section."""
    data = scenario_dict(**over)
    if pool:
        data["fleet"][0] = {**data["fleet"][0], **pool}
    if traffic:
        data["traffic"] = {**data["traffic"], **traffic}
    return scenario_from_dict(data)



def refused_run(capsys, tmp_path: Path, *args) -> tuple[int, str]:
    """``fleetcast run ARGS --out tmp_path/out`` on input it must refuse: its exit status and its
    stderr on one line, after checking there is no traceback, no output folder and no hidden
    leftover in ``tmp_path``."""
    out = tmp_path / "out"
    code = main(["run", *map(str, args), "--out", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not out.exists(), "a refused run wrote its output folder"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "hidden leftovers"
    return code, " ".join(err.split())
