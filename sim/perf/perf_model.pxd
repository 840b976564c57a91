# C types for perf_model.py when Cython compiles it (setup.py); perf_model.py is the reference.
# The step shapes are C doubles (callers pass ints, or a fit's mean shapes as floats): the hot
# methods' arithmetic is then the same IEEE double arithmetic Python does on int and float mixes.
cimport cython

cdef class PerfModel:
    # fields: generated from __slots__ in perf_model.py by tools/pxd_layout.py (do not edit)
    cdef public object gpu, model, quant, coeffs, source, compute_dtype, peak_flops, hbm_bw_bytes_s, kernels, _lin, _lm
    cdef public dict _affine
    cdef public long long tp, dp, _ep_gpus, _n_lin
    cdef public bint ep, cpu_overlap, _mla, _kdec, _kpre
    cdef public double clock_ratio, _t_step_s, _t_seq_s, _t_prefill_tok_s, _peak_max, _inv_flops_lin, _inv_flops_attn, _inv_bw, _inv_bw_attn, _lin_flops_tok, _w_base, _w_experts, _miss, _routed_flops_s_tok, _act_tok, _attn_flops_unit, _attn_flops_prefill, _kv_tok, _qo_bytes_tok, _b_decode, _dec_step, _dec_seq, _pre_step, _pre_chunk, _pre_tok, _pre_unit, _lin_last, _lm_last, _lin_slope, _lm_slope, _comm_fixed, _comm_tok, _layer_fixed, _b_v1
    cdef public long long _v1_heads
    cdef public double _sampler_row_s, _eager_s
    cdef public long long _graph_max_tokens
    cdef public double _eager_over_s
    cpdef double _weight_bytes(self, double T)
    @cython.locals(rows=double, cpu=double, t=double, T=double, seqs=double, f=double, b=double, imb=double)
    cpdef double step_time_s(self, double prefill_tokens, double prefill_attn, double num_decodes,
                             double decode_ctx_tokens, double num_prefill_seqs=*, double queries_per_decode=*)
    cpdef double step_cpu_s(self, double num_decodes, double num_prefill_seqs, double prefill_tokens,
                            double queries_per_decode=*)
    @cython.locals(f=double)
    cpdef double decode_b_s(self, double queries_per_decode)
    cpdef double decode_ctx_b_s(self, double num_decodes)
    @cython.locals(T=double, dec_pairs=double, per_gpu=double)
    cpdef double step_flops(self, double prefill_tokens, double prefill_attn, double num_decodes,
                            double decode_ctx_tokens, double num_prefill_seqs=*, double queries_per_decode=*)
    @cython.locals(T=double, per_gpu=double)
    cpdef double step_bytes(self, double prefill_tokens, double prefill_attn, double num_decodes,
                            double decode_ctx_tokens, double num_prefill_seqs=*, double queries_per_decode=*)
