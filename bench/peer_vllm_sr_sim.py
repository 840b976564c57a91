"""vllm-sr-sim (PyPI ``vllm-sr-sim``, module ``fleet_sim``) on a workload that bench/sim_speed.py wrote.

Run by ``bench/sim_speed.py --peer-python PYTHON`` with an interpreter that has vllm-sr-sim
installed (it is not a fleetcast dependency; this file imports nothing of fleetcast):

    PYTHON bench/peer_vllm_sr_sim.py WORKLOAD.npz REPLICAS REPEAT

The same requests as fleetcast's case (arrival times, prompt and output tokens), one pool of
REPLICAS H100-80GB instances (``H100_80GB``, max context 16,384 as fleetcast's pool), instances
balanced by active + queued requests (``least_loaded``, the nearest to fleetcast's
least-outstanding router). Timed: building the request objects and ``Fleet.run``, as fleetcast's
case times ``simulate`` (workload, run, records). Prints one JSON line: the best of REPEAT runs
in CPU seconds (``time.process_time``) and wall seconds.
"""

from __future__ import annotations

import gc
import json
import sys
import time

import numpy as np
from fleet_sim import __version__
from fleet_sim.core.fleet import Fleet, FleetConfig, PoolConfig
from fleet_sim.core.request import Request
from fleet_sim.gpu_profiles.profiles import H100_80GB


def main() -> int:
    path, replicas, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = np.load(path)
    arrival = data["arrival_s"].tolist()
    prompt = data["prompt_tokens"].tolist()
    output = data["output_tokens"].tolist()

    def once():
        cfg = FleetConfig(
            pools=[PoolConfig("h100", H100_80GB, replicas, 16384, lb_strategy="least_loaded")],
            router_type="RandomRouter",  # one pool: every request goes to it
        )
        arrivals = [(a, Request(i, a, p, o)) for i, (a, p, o) in enumerate(zip(arrival, prompt, output))]
        return Fleet(cfg).run(arrivals)

    cpu, wall, done = [], [], 0
    for _ in range(repeat):
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        res = once()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        done = len(res.completed)
    print(
        json.dumps(
            {
                "peer": "vllm-sr-sim " + __version__,
                "replicas": replicas,
                "requests": len(arrival),
                "completed": done,
                "cpu_s": min(cpu),
                "wall_s": min(wall),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
