"""Metric sections, one file each: a :class:`~policylab.metrics.api.Section` whose metrics
are declared right above the functions that compute them.

To add a section: write ``<name>.py`` here with ``SECTION = Section("<name>", "<Title>")``
and its decorated metric functions, then add it to ``SECTIONS`` in
:mod:`policylab.metrics.registry` (its place there is its columns' place in the metrics table).
tests/test_metric_sections.py runs every registered section.
"""
