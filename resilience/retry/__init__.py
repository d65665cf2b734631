"""The retry layer: the policy, the transport's classifier, the decisions of
one call (:mod:`~resilience.retry.engine`) and the loop the shells drive
(:mod:`~resilience.retry.flow`).

It stands above :mod:`resilience.core` (pure values and parsing) and the
pluggable layers it orchestrates (detectors, strategies, stores,
instrumentation), and below the shells.
"""
