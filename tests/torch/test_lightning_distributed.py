"""Lightning's multi-process strategies give the importances of one process.

``ddp`` and ``model_parallel`` (FSDP2) run as a script on 2 CPU processes
(their launcher re-runs the script), once through and stopped and resumed from
a checkpoint; ``ddp_spawn`` trains in 2 worker
processes and the importances must reach the callback in this process. All
must equal a one-process fit on the same global batches
(:mod:`lightning_distributed_script`), and only the first rank logs.

The 2-process tests are marked ``slow``. Their fast variants train on one
device: ``ddp_spawn`` in one spawned worker process, ``ddp`` and
``model_parallel`` in this process (their launcher starts no other process
for one device) on a process group of one rank, through the same strategy,
checkpoint and resume.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

import lightning_distributed_script as script  # noqa: E402

RTOL = 1e-5
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict[str, np.ndarray]:
    tracked = script.fit("auto", 1, script.GLOBAL_BATCH, tmp_path_factory.mktemp("single"))
    results = {s: c.raw_importances_ for s, c in zip(script.SCORINGS, tracked, strict=True)}
    for scores in results.values():
        assert set(np.argsort(scores)[-2:]) == {0, 1}  # the planted inputs
    return results


@pytest.fixture
def one_rank_here():
    """Undo what a one-device fit under a distributed strategy leaves in this process.

    Lightning sets ``MASTER_PORT``, ``LOCAL_RANK``, ``OMP_NUM_THREADS``... and the
    thread count, and leaves the process group of one rank initialized.
    """
    environ, threads = dict(os.environ), torch.get_num_threads()
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    os.environ.clear()
    os.environ.update(environ)
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_ddp_spawn_hands_the_importances_to_the_main_process(single, tmp_path):
    tracked = script.fit("ddp_spawn", 2, script.BATCH, tmp_path)
    for scoring, callback in zip(script.SCORINGS, tracked, strict=True):
        assert callback.tracker is None  # this process trained nothing
        np.testing.assert_allclose(callback.raw_importances_, single[scoring], rtol=RTOL)
        assert list(callback.feature_names_in_) == [f"x{i}" for i in range(8)]
        assert callback.state_dict()["format_version"] == 1


def test_ddp_spawn_on_one_device_hands_the_importances_to_the_main_process(
    single, tmp_path, one_rank_here
):
    """The fast variant: one spawned worker process trains on the global batches."""
    tracked = script.fit("ddp_spawn", 1, script.GLOBAL_BATCH, tmp_path)
    for scoring, callback in zip(script.SCORINGS, tracked, strict=True):
        assert callback.tracker is None  # this process trained nothing
        np.testing.assert_allclose(callback.raw_importances_, single[scoring], rtol=RTOL)
        assert list(callback.feature_names_in_) == [f"x{i}" for i in range(8)]
        assert callback.state_dict()["format_version"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "model_parallel"])
def test_every_rank_equals_one_process_and_only_the_first_logs(single, tmp_path, strategy):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    run = subprocess.run(
        [sys.executable, str(HERE / "lightning_distributed_script.py"), strategy, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    for rank in range(2):
        with np.load(tmp_path / f"rank{rank}.npz") as saved:
            for scoring in script.SCORINGS:
                np.testing.assert_allclose(
                    saved[scoring], single[scoring], rtol=RTOL, err_msg=f"rank {rank} {scoring}"
                )
                # Stopped after an epoch's checkpoint, resumed from it in a new Trainer.
                np.testing.assert_allclose(saved[f"resumed_{scoring}"], saved[scoring], rtol=1e-9)
    # Three fits (whole, first part, resumed) of two callbacks each, logged by rank 0 only.
    logged = run.stderr.count("most important features")
    assert logged == 3 * len(script.SCORINGS), run.stderr[-4000:]
    # The strategy calls the model with the batch, forward swapped for training_step:
    # the inputs are still those of the inner forward call (no warning about the targets).
    assert "read by no trackable layer" not in run.stderr
    if strategy == "model_parallel":
        # Two fits start tracking (the resumed one resumes), on 2 ranks, per callback.
        assert run.stderr.count("this process holds indices") == 2 * 2 * len(script.SCORINGS)


@pytest.mark.parametrize("strategy", ["ddp", "model_parallel"])
def test_one_rank_in_this_process_equals_one_process_and_logs_once(
    single, tmp_path, strategy, one_rank_here, caplog
):
    """The fast variant of the 2-process run: the script's three fits on one device, here."""
    with caplog.at_level(logging.INFO, logger="neural_feature_importance"):
        tracked = script.fit(strategy, 1, script.GLOBAL_BATCH, tmp_path / "whole")
        script.fit(strategy, 1, script.GLOBAL_BATCH, tmp_path / "resumed", epochs=script.EPOCHS - 1)
        last = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
        resumed = script.fit(strategy, 1, script.GLOBAL_BATCH, tmp_path / "resumed", ckpt_path=last)
    assert torch.distributed.get_world_size() == 1  # the strategy's process group
    for scoring, whole, again in zip(script.SCORINGS, tracked, resumed, strict=True):
        np.testing.assert_allclose(whole.raw_importances_, single[scoring], rtol=RTOL)
        # Stopped after an epoch's checkpoint, resumed from it in a new Trainer.
        np.testing.assert_allclose(again.raw_importances_, whole.raw_importances_, rtol=1e-9)
    messages = [record.getMessage() for record in caplog.records]
    assert sum("most important features" in m for m in messages) == 3 * len(script.SCORINGS)
    assert not [m for m in messages if "read by no trackable layer" in m]
    if strategy == "model_parallel":
        # Two fits start tracking (the resumed one resumes), on 1 rank, per callback.
        held = sum("this process holds indices" in m for m in messages)
        assert held == 2 * len(script.SCORINGS)
