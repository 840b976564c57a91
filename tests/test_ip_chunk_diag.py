"""calibration.ip_chunk_diag: the stage compositions it derives from measured medians (issues 23/24, inference-perf's
prefix-caching set). Expectations by hand."""

import pytest

from calibration.ip_chunk_diag import composition, computed_tokens, mixed_step_s


def test_computed_tokens_after_the_last_cached_full_block():
    # a 203-token prompt behind a 194-token shared prefix: 12 full blocks (192 tokens) hit, 11 computed
    assert computed_tokens(203, 194) == 11
    # the last prompt token is always computed: a 195-token prompt hits min(194, 194) -> 12 blocks, 3 computed
    assert computed_tokens(195, 194) == 3
    # a prefix shorter than a block hits nothing
    assert computed_tokens(100, 15) == 100
    # no shared prefix (or no prefix caching): the whole prompt
    assert computed_tokens(204.1, None) == 204.1


def test_stage_composition_by_hand():
    # chunking set stage 1 as converted: achieved 43.27 req/s, TTFT p50 26.8742 ms, E2E p50 522.963 ms:
    # decode 496.0888 ms over 63 steps = 7.87443 ms; 43.27 x 0.4960888 = 21.466 decoding; 43.27 x 7.87443 ms
    # = 0.34073 prompts per step
    step, n, k = composition(43.27, 0.0268742, 0.522963)
    assert step == pytest.approx(7.87443e-3, rel=1e-5)
    assert n == pytest.approx(21.466, rel=1e-4)
    assert k == pytest.approx(0.34073, rel=1e-4)
    # an idle stage still decodes its own request
    assert composition(1.0, 0.03, 0.48)[1] == 1.0


class _Linear:
    """A step of n + 10 k seconds (n decodes, k prompt chunks)."""

    def step_time_s(self, q, attn, n, ctx, num_prefill_seqs=0):
        return n + 10 * num_prefill_seqs


def test_mixed_step_weights_the_whole_counts_around_the_mean():
    # 2.5 decodes and 0.5 chunks per step on a linear step: 2.5 + 10 x 0.5 = 7.5
    assert mixed_step_s(_Linear(), 2.5, 0.5, 11, 235) == pytest.approx(7.5)
    # whole counts: exactly that step
    assert mixed_step_s(_Linear(), 3.0, 2.0, 11, 235) == pytest.approx(23.0)
