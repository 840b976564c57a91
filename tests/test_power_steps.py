"""Issue 27 item 1: power forms on the simulator's own step decomposition (calibration/power_steps.py,
calibration/power_forms.py --steps) against the shipped law, and the data's repeat scatter."""

from __future__ import annotations

import math

import pytest

from calibration import power_forms


def test_step_fractions_by_hand():
    # a 10 ms step: 6 ms of kernels, 2 ms of all-reduces -> 0.6 / 0.2 / 0.2 of the step waits on the CPU
    r = {"t_step_s": 0.010, "t_kernel_s": 0.006, "t_comm_s": 0.002, "measured_itl_p50_s": 0.016}
    assert power_forms._fractions(r, False) == pytest.approx([0.6, 0.2, 0.2])
    # the measured 16 ms step: 6/16, 2/16, the rest 8/16
    assert power_forms._fractions(r, True) == pytest.approx([0.375, 0.125, 0.5])
    # kernels longer than the replay's mean step: no gap, the parts share the kernels' time
    r2 = {"t_step_s": 0.004, "t_kernel_s": 0.006, "t_comm_s": 0.002}
    assert power_forms._fractions(r2, False) == pytest.approx([0.75, 0.25, 0.0])


def test_repeat_scatter_by_hand():
    """configs.csv holds three configurations twice (all on H100): Qwen3-30B-A3B-Instruct-2507 on
    2 GPUs at caps 256 (954.878 / 1093.402 W) and 512 (953.171 / 1100.593 W), gpt-oss-20b gpqa on 1
    GPU at 96 (587.997 / 605.079 W). Spreads: 138.524 / 1024.140 = 13.53%, 147.422 / 1026.882 =
    14.36%, 17.082 / 596.538 = 2.86%; sigma = sqrt(mean(spread²) / 2) = sqrt(0.013242 / 2) = 8.14%;
    a perfect model's mean |error| from that noise 8.14% x sqrt(2/pi) = 6.49%."""
    rep = power_forms.repeat_scatter()
    assert sorted(round(s, 4) for s in rep["spreads"]) == [0.0286, 0.1353, 0.1436]
    assert rep["sigma"] == pytest.approx(0.0814, abs=2e-4)
    assert rep["noise_mean_abs_err"] == pytest.approx(0.0649, abs=2e-4)


@pytest.mark.slow
def test_step_part_forms_miss_the_targets_and_fit_no_mechanism():
    """The table in calibration/README.md ("Step parts"): every ML.ENERGY entry replayed, each form
    fitted on the training models' configurations and scored on the held-back ones."""
    rows = power_forms.step_rows()
    assert len(rows) == 356
    assert all(float(r["t_comm_s"]) == 0.0 for r in rows if int(r["num_gpus"]) == 1)
    assert all(float(r["t_comm_s"]) > 0.0 for r in rows if int(r["num_gpus"]) > 1)
    table = {(t["gpu"], t["form"]): t for t in power_forms.step_table(rows)}
    shipped = {
        g: table[(g, next(f for gg, f in table if gg == g and f.startswith("shipped")))] for g in ("h100-sxm", "b200")
    }
    # the shipped law's measured error on the replayed held-back configurations (57 H100, 61 B200)
    assert shipped["h100-sxm"]["configs"][1] == 57 and shipped["b200"]["configs"][1] == 61
    # H100: the law power8 shipped (linear + log2(GPUs), robust relative; before it 8.6 %)
    assert 0.065 < shipped["h100-sxm"]["held_back"]["mean"] < 0.075
    assert 0.125 < shipped["b200"]["held_back"]["mean"] < 0.14
    assert (
        abs(shipped["h100-sxm"]["held_back"]["set_mean"]) < 0.05
        and abs(shipped["b200"]["held_back"]["set_mean"]) < 0.05
    )
    # the forms on the replay's step decomposition reach neither target, gain under 2 points on the
    # shipped law, and the best one's watts are no mechanism: a negative CPU-wait part on H100, an
    # all-reduce part above the kernels on B200 (calibration/README.md: why it is not shipped)
    replay_forms = [f for f in power_forms.STEP_FORMS if f.startswith("step parts (replay)")]
    assert len(replay_forms) == 3
    for g in ("h100-sxm", "b200"):
        errs = [table[(g, f)]["held_back"]["mean"] for f in replay_forms]
        assert min(errs) > 0.05
        assert shipped[g]["held_back"]["mean"] - min(errs) < 0.02
    best = "step parts (replay) + mfu + mbu"
    assert table[("h100-sxm", best)]["coef"][2] < 0
    assert table[("b200", best)]["coef"][1] > table[("b200", best)]["coef"][0]
    # the all-reduce fraction alone: its watts change sign between the GPUs (less on H100, more on
    # B200), so it is no mechanism the two share
    comm = "all-reduce fraction (replay) + mfu + mbu"
    assert table[("h100-sxm", comm)]["coef"][1] < 0 < table[("b200", comm)]["coef"][1]
    # with the measured step the mechanism shows: the all-reduce and CPU-wait parts draw less than
    # the kernels, and the held-back error falls below the shipped law's on both GPUs (still > 5%)
    diag = next(f for f in power_forms.STEP_FORMS if f.startswith("diagnostic"))
    for g in ("h100-sxm", "b200"):
        w_kernel, w_comm, w_gap = table[(g, diag)]["coef"][:3]
        assert w_comm < w_kernel and w_gap < w_kernel
        assert 0.05 < table[(g, diag)]["held_back"]["mean"] < shipped[g]["held_back"]["mean"]
        assert math.isfinite(table[(g, diag)]["held_back"]["set_mean"])
