"""Accuracy on real data: bundled data sets with appended irrelevant columns.

``python -m benchmarks.real_data`` (see :mod:`benchmarks.real_data.__main__`);
the data and metrics are in :mod:`benchmarks.real_data.data`, the runs in
:mod:`benchmarks.real_data.run`, the Keras networks in
:mod:`benchmarks.real_data.keras_run`, the tables in
:mod:`benchmarks.real_data.report`.
"""
