#!/usr/bin/env bash
# On a machine with a CUDA GPU, from the repository root: the tests that need a GPU
# (the step path never synchronises: torch.cuda.set_sync_debug_mode("error")), then the
# per-step cost of the gradient modes on the four networks of `torch_step`, on the GPU.
# Writes benchmarks/results/cuda/cost_torch_step.{md,csv}; RESULTS.md is left alone.
set -euo pipefail
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
python -m pytest tests/torch/test_step_path_host_sync.py -q -k gpu
python -m benchmarks.cost --parts torch_step --device cuda --no-update --out benchmarks/results/cuda
