"""A training process SIGKILLed mid-epoch and restarted from its checkpoint loses nothing.

Preempted jobs and out-of-memory kills end a training process with no chance
to clean up: no ``finally``, no ``on_train_end``, no last save. What survives
is the last end-of-epoch checkpoint, and a restart from it must give the
importances an uninterrupted run gives: bit for bit for ``scoring="viann"``
and to ``rtol=1e-12`` for ``scoring="taylor"``, with the same number of
snapshots. ``test_resume.py`` and ``test_lightning.py`` check in-process
resumes; here the kill is real (``os.kill(os.getpid(), SIGKILL)`` between two
batches), the state crosses a process boundary through ``torch.save`` and a
Lightning checkpoint, and the resumed process rebuilds the tracker from
scratch, as a user's restarted job would.

Each case runs ``crash_resume_training.py`` three times in subprocesses: once
uninterrupted, once killed after batch index ``KILL_AT_BATCH`` of epoch
``KILL_AT_EPOCH`` (before that epoch's checkpoint), and once resumed from the
checkpoint of the epoch before. The script seeds everything and uses one
thread, so the training itself (checked through the final weights) is
reproducible and any difference would come from the tracker's state.

These runs are marked ``slow``. Their fast variant runs the same script's
``main()`` in this process, 3 epochs instead of 6, with the kill replaced by an
exception raised at the same point (so the state still reaches the resumed run
only through the checkpoint file, but no process dies).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import crash_resume_training as script
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(signal, "SIGKILL"),
    reason="needs POSIX SIGKILL",
)

SCRIPT = Path(__file__).with_name("crash_resume_training.py")
EPOCHS = 6
KILL_AT_EPOCH = 3
KILL_AT_BATCH = 2  # 0-based: after the 3rd of 7 batches, mid-epoch
TIMEOUT_S = 120

FRAMEWORKS = [
    "torch",
    pytest.param(
        "lightning",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("lightning") is None, reason="needs lightning"
        ),
    ),
]


@pytest.fixture
def start():
    """Start the training script in a fresh single-threaded process; reaped at teardown.

    Runs that do not depend on each other overlap, which halves the wall time
    on two cores (most of a run is importing torch and Lightning).
    """
    processes = []

    def start(framework, scoring, checkpoint_dir, out, *options):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        command = [
            sys.executable,
            str(SCRIPT),
            f"--framework={framework}",
            f"--scoring={scoring}",
            f"--epochs={EPOCHS}",
            f"--checkpoint-dir={checkpoint_dir}",
            f"--out={out}",
            *options,
        ]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        processes.append(process)
        return process

    yield start
    for process in processes:  # a failed assertion may leave one running
        if process.poll() is None:
            process.kill()
            process.communicate()


def _wait(process):
    """Wait for a run (at most ``TIMEOUT_S``); returns its exit status and stderr."""
    _, stderr = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, stderr


def _results(process, out):
    """The results of a run that must exit normally."""
    returncode, stderr = _wait(process)
    assert returncode == 0, stderr[-4000:]
    with np.load(out) as result:
        return dict(result)


def _checkpoint_of_epoch(framework, checkpoint_dir, epoch):
    """The end-of-epoch checkpoint file of ``epoch``, or None if it was never written."""
    pattern = f"epoch={epoch}.pt" if framework == "torch" else f"epoch={epoch}-step=*.ckpt"
    matches = sorted(checkpoint_dir.glob(pattern))
    assert len(matches) <= 1, matches
    return matches[0] if matches else None


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("scoring", ["viann", "taylor"])
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(start, tmp_path, framework, scoring):
    crash_dir = tmp_path / "crash"
    whole_run = start(framework, scoring, tmp_path / "whole", tmp_path / "whole.npz")
    killed_run = start(
        framework,
        scoring,
        crash_dir,
        tmp_path / "killed.npz",
        f"--kill-at-epoch={KILL_AT_EPOCH}",
        f"--kill-at-batch={KILL_AT_BATCH}",
    )

    returncode, stderr = _wait(killed_run)
    assert returncode == -signal.SIGKILL, stderr[-4000:]
    assert not (tmp_path / "killed.npz").exists()
    # Killed mid-epoch: the epoch before was saved, the killed epoch was not.
    checkpoint = _checkpoint_of_epoch(framework, crash_dir, KILL_AT_EPOCH - 1)
    assert checkpoint is not None, sorted(p.name for p in crash_dir.iterdir())
    assert _checkpoint_of_epoch(framework, crash_dir, KILL_AT_EPOCH) is None
    assert not list(crash_dir.glob("*.tmp"))
    if framework == "lightning":
        checkpoint = crash_dir / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=True)  # the tracker's state needs no pickle
    assert saved["epoch"] == KILL_AT_EPOCH - 1

    # Restart from the checkpoint, as a rescheduled job would (while the
    # uninterrupted run may still be going).
    resumed_run = start(
        framework, scoring, crash_dir, tmp_path / "resumed.npz", f"--resume={checkpoint}"
    )
    whole = _results(whole_run, tmp_path / "whole.npz")
    resumed = _results(resumed_run, tmp_path / "resumed.npz")
    _assert_resumed_equals_whole(resumed, whole, scoring, EPOCHS, KILL_AT_EPOCH)


def _assert_resumed_equals_whole(resumed, whole, scoring, epochs, kill_at_epoch):
    # The run learned the target, which depends on inputs 0 and 1 only.
    assert set(np.argsort(whole["feature_importances"])[::-1][:2]) == {0, 1}
    assert int(whole["first_epoch"]) == 0
    assert int(resumed["first_epoch"]) == kill_at_epoch  # it resumed, not restarted
    # The training itself resumed exactly, so the tracker saw the same weights.
    np.testing.assert_array_equal(resumed["weight"], whole["weight"])
    assert int(resumed["n_updates"]) == int(whole["n_updates"]) == epochs
    for key in ("raw_importances", "feature_importances"):
        if scoring == "viann":
            np.testing.assert_array_equal(resumed[key], whole[key], err_msg=key)
        else:
            np.testing.assert_allclose(resumed[key], whole[key], rtol=1e-12, err_msg=key)


class _Killed(Exception):
    """Raised by the fast variant where the script would SIGKILL itself."""


FAST_EPOCHS = 3
FAST_KILL_AT_EPOCH = 2


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("scoring", ["viann", "taylor"])
def test_stopped_mid_epoch_in_this_process_then_resume_equals_uninterrupted(
    tmp_path, monkeypatch, framework, scoring
):
    """The fast variant: the script's ``main()`` here, 3 epochs, an exception for the kill."""

    def stop_mid_epoch(args, epoch, batch_idx):
        if epoch == args.kill_at_epoch and batch_idx == args.kill_at_batch:
            raise _Killed

    monkeypatch.setattr(script, "maybe_kill", stop_mid_epoch)

    def run(checkpoint_dir, out, *options):
        script.main(
            [
                f"--framework={framework}",
                f"--scoring={scoring}",
                f"--epochs={FAST_EPOCHS}",
                f"--checkpoint-dir={checkpoint_dir}",
                f"--out={out}",
                *options,
            ]
        )
        with np.load(out) as result:
            return dict(result)

    whole = run(tmp_path / "whole", tmp_path / "whole.npz")
    crash_dir = tmp_path / "crash"
    with pytest.raises(_Killed):
        run(
            crash_dir,
            tmp_path / "killed.npz",
            f"--kill-at-epoch={FAST_KILL_AT_EPOCH}",
            f"--kill-at-batch={KILL_AT_BATCH}",
        )
    assert not (tmp_path / "killed.npz").exists()
    checkpoint = _checkpoint_of_epoch(framework, crash_dir, FAST_KILL_AT_EPOCH - 1)
    assert checkpoint is not None, sorted(p.name for p in crash_dir.iterdir())
    assert _checkpoint_of_epoch(framework, crash_dir, FAST_KILL_AT_EPOCH) is None
    if framework == "lightning":
        checkpoint = crash_dir / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["epoch"] == FAST_KILL_AT_EPOCH - 1

    resumed = run(crash_dir, tmp_path / "resumed.npz", f"--resume={checkpoint}")
    _assert_resumed_equals_whole(resumed, whole, scoring, FAST_EPOCHS, FAST_KILL_AT_EPOCH)
