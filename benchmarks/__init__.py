"""Benchmarks of VIANN: accuracy against planted truth, and cost.

Two parts, one command each (see ``benchmarks/README.md``)::

    python -m benchmarks.truth     # importances vs known informative features
    python -m benchmarks.cost      # tracker overhead, time to importances, memory

Results go to ``benchmarks/results/`` (CSV, Markdown, PNG) and into the
generated sections of ``benchmarks/RESULTS.md``. The peers (Captum, SHAP) are
benchmark dependencies only: ``pip install -e ".[benchmarks,torch]"``.
"""
