"""calibration.ip_step_diag: the decode time per token it prints (issues 23/24, inference-perf diagnosis)."""

import pytest

from calibration.ip_step_diag import _decode_ms


def test_decode_time_per_token_is_e2e_less_ttft_over_the_later_tokens():
    # vllm stage 0 as converted: E2E p50 479.609 ms, TTFT p50 31.0269 ms, 64 output tokens:
    # (479.609 - 31.0269) / 63 = 7.1204 ms by hand
    assert _decode_ms({"e2e_p50_s": 0.479609, "ttft_p50_s": 0.0310269}) == pytest.approx(7.1204e-3, abs=1e-7)


def test_decode_time_needs_both_figures():
    assert _decode_ms({"e2e_p50_s": 0.5}) is None
    assert _decode_ms({"ttft_p50_s": 0.03, "e2e_p50_s": None}) is None
