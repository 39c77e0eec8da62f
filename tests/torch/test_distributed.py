"""DDP and FSDP2 on 2 gloo processes give every rank the importances of one process.

Each strategy's run (:mod:`distributed_workers`) trains a dense, a conv and an
embedding model with viann and taylor trackers, snapshotting per epoch and per
step, and a tracker resumed halfway from a saved state. Every rank's raw
importances must equal those of the same training in one process on the same
global batches. Under FSDP2 the tracked weights are sharded (a ``Linear`` and a
``Conv1d`` on their output units, the embedding table on its tokens), so the
ranks' statistics differ and only their reduction gives the whole layer's scores.

The 2-process runs are marked ``slow``; their fast variants (``*-one-rank``)
run the same training under DDP and FSDP2 in this process, on a gloo group of
one rank (the weights are still DTensors, the statistics still reduced), and
must equal the same one-process results.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import distributed_workers as workers  # noqa: E402

WORLD = 2
RTOL = 1e-5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(strategy: str, out: Path) -> list[dict[str, np.ndarray]]:
    out.mkdir()
    try:
        torch.multiprocessing.spawn(
            workers.worker, args=(WORLD, _free_port(), strategy, str(out)), nprocs=WORLD
        )
    finally:
        for rank in range(WORLD):
            path = out / f"rank{rank}.npz"
            if path.exists():
                with np.load(path) as saved:
                    if "error/traceback" in saved:
                        pytest.fail(f"rank {rank} failed:\n{saved['error/traceback']}")
    ranks = []
    for rank in range(WORLD):
        with np.load(out / f"rank{rank}.npz") as saved:
            ranks.append({key: saved[key] for key in saved.files})
    return ranks


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict[str, object]:
    """Every tracker's results from one process (world size 1, no process group)."""
    torch.manual_seed(0)
    state_dir = tmp_path_factory.mktemp("single")
    results = {}
    for kind in workers.TRACKED:
        for name, value in workers.train(kind, "single", 0, 1, state_dir).items():
            results[f"{kind}/{name}"] = value
    return results


def _run_one_rank(strategy: str, out: Path) -> list[dict[str, object]]:
    """Every model kind under ``strategy`` in this process, on a gloo group of one rank."""
    out.mkdir()
    store = f"file://{out / 'store'}"
    torch.distributed.init_process_group("gloo", init_method=store, rank=0, world_size=1)
    try:
        if strategy == "fsdp2":  # the tracked weight is sharded, as on 2 ranks
            from torch.distributed.tensor import DTensor

            sharded = workers.wrap(workers.make_model("dense"), "dense", strategy)
            assert isinstance(sharded[0].weight, DTensor)
        results = {}
        for kind in workers.TRACKED:
            for name, value in workers.train(kind, strategy, 0, 1, out).items():
                results[f"{kind}/{name}"] = value
    finally:
        torch.distributed.destroy_process_group()
    return [results]


STRATEGIES = [
    pytest.param("ddp", marks=pytest.mark.slow),
    pytest.param("fsdp2", marks=pytest.mark.slow),
    "ddp-one-rank",
    "fsdp2-one-rank",
]


@pytest.fixture(scope="module", params=STRATEGIES)
def distributed(request, tmp_path_factory, single) -> tuple[str, list[dict[str, np.ndarray]]]:
    strategy = request.param
    out = tmp_path_factory.mktemp(strategy) / "out"
    if strategy.endswith("-one-rank"):
        # ``single`` (requested above) has run before this process joins a group.
        return strategy, _run_one_rank(strategy.removesuffix("-one-rank"), out)
    return strategy, _run(strategy, out)


TRACKERS = [f"{scoring}_{cadence}" for scoring, cadence in workers.SETUPS] + [
    "resumed_viann",
    "resumed_taylor",
    "default_layer_taylor",
]


@pytest.mark.parametrize("kind", list(workers.TRACKED))
def test_every_rank_equals_one_process(distributed, single, kind):
    strategy, ranks = distributed
    for name in TRACKERS:
        key = f"{kind}/{name}"
        expected = np.asarray(single[key])
        assert expected.shape == (workers.N_FEATURES[kind],)
        assert np.ptp(expected) > 0, f"{key}: the one-process scores are all equal"
        for rank, results in enumerate(ranks):
            np.testing.assert_allclose(
                results[key],
                expected,
                rtol=RTOL,
                atol=1e-12,
                err_msg=f"{strategy} rank {rank} {key}",
            )
            assert int(results[f"{key}_n_updates"]) == single[f"{key}_n_updates"]


def test_the_planted_inputs_rank_first(single):
    for name in TRACKERS:
        dense = np.asarray(single[f"dense/{name}"])
        assert set(np.argsort(dense)[-2:]) == {0, 1}, name
        tokens = np.asarray(single[f"embedding/{name}"])
        assert int(np.argmax(tokens)) == 3, name


def test_filter_scores_of_a_sharded_convolution_equal_one_process(distributed, single):
    strategy, ranks = distributed
    for name in ("viann_epoch", "taylor_epoch", "steady_taylor_epoch"):
        key = f"conv/{name}_filters"
        assert np.ptp(single[key]) > 0
        for rank, results in enumerate(ranks):
            np.testing.assert_allclose(
                results[key], single[key], rtol=RTOL, atol=1e-12, err_msg=f"{strategy} {rank}"
            )


def test_a_resumed_tracker_equals_one_that_followed_the_whole_run(distributed):
    _, ranks = distributed
    for results in ranks:
        for kind in workers.TRACKED:
            for scoring in ("viann", "taylor"):
                np.testing.assert_allclose(
                    results[f"{kind}/resumed_{scoring}"],
                    results[f"{kind}/{scoring}_epoch"],
                    rtol=1e-12,
                )


def test_the_default_layer_is_the_tracked_one_and_tracked_shard_by_shard(distributed):
    _, ranks = distributed
    for results in ranks:
        for kind in workers.TRACKED:
            np.testing.assert_allclose(
                results[f"{kind}/default_layer_taylor"], results[f"{kind}/taylor_epoch"], rtol=1e-12
            )


def test_a_sharded_state_loads_only_into_the_rank_that_saved_it(distributed):
    strategy, ranks = distributed
    if strategy != "fsdp2":
        pytest.skip("only a sharded state is one rank's, and one rank has no other rank")
    for results in ranks:
        message = str(results["error/other_rank_state"])
        assert "same number of processes" in message, message


def test_fsdp1_flat_shards_are_rejected_with_a_pointer_to_fsdp2():
    """FSDP1 needs an accelerator, so its layout is built by hand here.

    With ``use_orig_params=True`` FSDP1 replaces each weight by a 1-D view of
    this rank's part of the flat parameter; the tracker must refuse it, not
    score a flat vector.
    """
    from torch import nn

    from neural_feature_importance import LayerSelectionError, VarianceImportanceTorch

    model = workers.make_model("dense")
    model[0].weight = nn.Parameter(model[0].weight.detach().reshape(-1)[:20].clone())
    with pytest.raises(LayerSelectionError, match=r"FSDP1.*fully_shard"):
        VarianceImportanceTorch(model, "0", scoring="taylor")
    with pytest.raises(LayerSelectionError, match=r"FSDP1.*fully_shard"):
        VarianceImportanceTorch(model).on_train_begin()
