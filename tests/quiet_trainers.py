"""Quiet CPU trainers shared by the Lightning and Hugging Face tests.

``quiet_trainer`` is a Lightning ``Trainer`` and ``quiet_training_arguments``
the Hugging Face ``TrainingArguments`` of a test run: on the CPU, with no
logger, progress bar, summary, checkpoints or reporting integration, so that
a test only sees what it asks for. ``tests/conftest.py`` puts this directory
on ``sys.path``; import the framework with ``pytest.importorskip`` first.
"""

import logging


def quiet_trainer(root, epochs, callbacks, **options):
    """A CPU Lightning ``Trainer`` with no logger, progress bar, summary or checkpoints.

    `options` override or add ``Trainer`` arguments (a strategy and its devices,
    ``enable_checkpointing=True`` beside a ``ModelCheckpoint``).
    """
    from lightning.pytorch import Trainer

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    settings = {
        "max_epochs": epochs,
        "callbacks": callbacks,
        "accelerator": "cpu",
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": root,
        "enable_checkpointing": False,
    }
    return Trainer(**{**settings, **options})


def quiet_training_arguments(output_dir, **options):
    """CPU ``TrainingArguments`` that save, log and report nothing; `options` override them."""
    import transformers

    settings = {
        "output_dir": str(output_dir),
        "report_to": [],
        "use_cpu": True,
        "disable_tqdm": True,
        "save_strategy": "no",
        "logging_strategy": "no",
        "seed": 0,
    }
    return transformers.TrainingArguments(**(settings | options))
