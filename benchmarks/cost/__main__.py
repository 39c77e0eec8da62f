"""``python -m benchmarks.cost``: see :mod:`benchmarks.cost.cli`."""

from benchmarks.cost.cli import main

if __name__ == "__main__":
    main()
