"""Reproducible experiments; [`paper`][] is the VIANN paper's comparison.

Importing this package imports neither Keras nor pandas; they load when an
experiment runs.
"""
