"""A single-threaded client's own CPU in its stamps (calibration/logs/client_cpu.py), by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calibration.logs.client_cpu import apply_client_cpu, client_utilization


def _requests() -> pd.DataFrame:
    # A streams 0.10 .. 0.50 s (5 tokens), B 0.20 .. 0.40 s (3 tokens), C rejected
    return pd.DataFrame(
        {
            "request_id": [0, 1, 2],
            "arrival_s": [0.0, 0.15, 0.3],
            "first_token_s": [0.10, 0.20, np.nan],
            "finish_s": [0.50, 0.40, np.nan],
            "output_tokens": [5, 3, 4],
            "status": ["ok", "ok", "rejected"],
            "ttft_s": [0.10, 0.05, np.nan],
            "e2e_s": [0.50, 0.25, np.nan],
            "tpot_s": [0.10, 0.10, np.nan],
        }
    )


def test_client_cpu_by_hand():
    # 3 ms per request, 0.1 ms per chunk. A's first chunk: nobody else streaming -> 3 + 0.1 = 3.1 ms later;
    # B's first chunk at 0.20: A streams (one chunk ahead) -> 3 + 0.2 = 3.2 ms; B's last at 0.40: A still
    # streams -> 0.2 ms; A's last at 0.50: B done -> 0.1 ms. C (rejected) untouched.
    out = apply_client_cpu(_requests(), 3e-3, 1e-4)
    assert out["first_token_s"].tolist()[:2] == pytest.approx([0.1031, 0.2032])
    assert out["finish_s"].tolist()[:2] == pytest.approx([0.5001, 0.4002])
    assert out["ttft_s"].tolist()[:2] == pytest.approx([0.1031, 0.0532])
    assert out["e2e_s"].tolist()[:2] == pytest.approx([0.5001, 0.2502])
    assert out["tpot_s"].tolist()[:2] == pytest.approx([(0.5001 - 0.1031) / 4, (0.4002 - 0.2032) / 2])
    assert np.isnan(out.loc[2, "first_token_s"]) and out.loc[2, "status"] == "rejected"


def test_client_cpu_zero_changes_nothing():
    before = _requests()
    out = apply_client_cpu(before, 0.0, 0.0)
    pd.testing.assert_frame_equal(out, before)


def test_client_utilization_by_hand():
    # 8 chunks of 0.1 ms over 0 .. 0.5 s: 0.8 ms / 0.5 s = 0.0016
    assert client_utilization(_requests(), 1e-4) == pytest.approx(0.0016)


def test_sidecar_client_cpu_reaches_the_run_and_bad_values_are_located(tmp_path):
    from calibration.logs import load_log
    from sim.errors import FleetcastError

    log = tmp_path / "run.csv"
    log.write_text("arrival_s,first_token_s,last_token_s,prompt_tokens,output_tokens\n0,0.1,0.5,100,5\n")
    side = tmp_path / "fleetcast.yaml"
    side.write_text("gpu: h100-sxm\nmodel: llama-3.1-8b\nclient_cpu: {per_request_s: 0.003, per_chunk_s: 0.0001}\n")
    assert load_log(log).meta["client_cpu"] == {"per_request_s": 0.003, "per_chunk_s": 0.0001, "source": ""}
    side.write_text("gpu: h100-sxm\nmodel: llama-3.1-8b\nclient_cpu: {per_request_s: 0.003, per_chunk_s: -1}\n")
    with pytest.raises(FleetcastError, match="client_cpu"):
        load_log(log)


def test_client_cpu_beside_an_aggregate_table_is_a_located_error(tmp_path):
    from calibration.logs.aggregate import load_aggregate
    from sim.errors import FleetcastError

    table = tmp_path / "s.stages.csv"
    table.write_text("rate_rps,duration_s,prompt_tokens,output_tokens,ttft_p50_s\n1,10,10,10,0.1\n")
    (tmp_path / "fleetcast.yaml").write_text(
        "gpu: h100-sxm\nmodel: llama-3.1-8b\nclient_cpu: {per_request_s: 0.003, per_chunk_s: 0.0001}\n"
    )
    with pytest.raises(
        FleetcastError, match=r"fleetcast.yaml.*client_cpu is for per-request logs only, not s.stages.csv"
    ):
        load_aggregate(table)
