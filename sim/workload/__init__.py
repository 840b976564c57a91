"""What arrives: the ``traffic:`` specs (arrival processes, classes, length
distributions, SLOs), traces read from files, the generated ``Workload``
(arrays of arrivals, classes, lengths, prefix chains) and traffic surges."""
