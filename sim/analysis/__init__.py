"""From runs to answers: metrics of a run (``metrics``), the forecast of a
scenario (``forecast``), the cheapest fleet meeting the SLOs (``plan`` over
``candidates``), grids of overrides (``sweep``), paired comparisons of
variants (``compare``) and warnings about coefficients used out of range
(``range_warnings``)."""
