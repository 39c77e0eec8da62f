"""The ``keras_gradients`` part's paired statistics and its Markdown tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from benchmarks.cost.tables import (
    cells,
    data_lines,
    fmt_int,
    fmt_ms,
    fmt_pct,
    fmt_us,
    markdown_table,
    quartiles,
)

TAYLOR_GOAL_PCT = 2.0
"""The most CPU time the taylor tap may add to an epoch, in percent."""


def _paired_stats(group: pd.DataFrame, column: str, steps: int) -> dict[str, float]:
    """Paired statistics of one clock (``epoch_seconds`` or ``epoch_cpu_seconds``)."""
    wide = group.pivot(index="repeat", columns="variant", values=column)

    def paired(a: str, b: str) -> list[float]:
        return list(100.0 * (wide[a] - wide[b]) / wide[b])

    taylor_pct = paired("taylor", "plain")
    plain = wide["plain"].to_numpy()
    out = {
        "plain_epoch": float(np.median(plain)),
        "viann_epoch": float(wide["viann"].median()),
        "taylor_epoch": float(wide["taylor"].median()),
        "taylor_slower_rounds": float(np.sum(np.asarray(taylor_pct) > 0)),
        "taylor_us_per_step": float(1e6 * np.median(wide["taylor"] - wide["plain"]) / steps),
    }
    if "steady_taylor" in wide:
        out["steady_taylor_epoch"] = float(wide["steady_taylor"].median())
        med, q1, q3 = quartiles(paired("steady_taylor", "plain"))
        out.update({"steady_overhead_pct": med, "steady_overhead_q1": q1, "steady_overhead_q3": q3})
    for key, values in (
        ("taylor_overhead", taylor_pct),
        ("taylor_vs_viann", paired("taylor", "viann")),
        ("viann_overhead", paired("viann", "plain")),
        ("noise", list(100.0 * np.diff(plain) / plain[:-1])),
    ):
        med, q1, q3 = quartiles(values)
        out.update({f"{key}_pct": med, f"{key}_q1": q1, f"{key}_q3": q3})
    return out


def summarise_keras_gradients(fits: pd.DataFrame) -> pd.DataFrame:
    """One row per (backend, model): paired overheads (median, IQR) and the hooks' times.

    A round's overhead is ``100 * (taylor - plain) / plain`` of the steady
    epoch time (median of the epochs after the first) of the fits of that
    round, which ran next to each other; ``noise`` is the same statistic for
    plain against the next round's plain, the run-to-run spread of the machine.
    The statistics are computed on CPU time (columns without a suffix) and on
    wall time (``_wall``).
    """
    out: list[dict[str, Any]] = []
    if fits.empty:
        return pd.DataFrame(out)
    main_fits = fits[fits["kind"] == "fit"]
    for (backend, model), group in main_fits.groupby(["backend", "model"], sort=False):
        first = group.pivot(index="repeat", columns="variant", values="first_epoch_seconds")
        taylor = group[group["variant"] == "taylor"]
        viann = group[group["variant"] == "viann"]
        steps = int(group["steps_per_epoch"].iloc[0])
        same = (fits["backend"] == backend) & (fits["model"] == model)
        refits = fits[same & (fits["kind"] == "refit")].set_index("variant")
        blocks = fits[same & (fits["kind"] == "step")]
        row: dict[str, Any] = {
            "backend": backend,
            "model": model,
            "data": group["data"].iloc[0],
            "rounds": int(group["repeat"].nunique()),
            "timed_epochs": int(group["epochs"].iloc[0]) - 1,
            "steps_per_epoch": steps,
        }
        row.update(_paired_stats(group, "epoch_cpu_seconds", steps))
        row.update(
            {f"{k}_wall": v for k, v in _paired_stats(group, "epoch_seconds", steps).items()}
        )
        row.update(
            {
                "first_epoch_extra_seconds": float(np.median(first["taylor"] - first["plain"])),
                "plain_first_epoch_seconds": float(first["plain"].median()),
                "on_train_begin_seconds": float(taylor["on_train_begin_seconds"].median()),
                "install_seconds": float(taylor["install_seconds"].median()),
                "on_epoch_end_seconds": float(taylor["on_epoch_end_seconds"].median()),
                "drain_seconds": float(taylor["drain_seconds"].median()),
                "on_train_end_seconds": float(taylor["on_train_end_seconds"].median()),
                "viann_on_epoch_end_seconds": float(viann["on_epoch_end_seconds"].median()),
                "gradient_reads": int(taylor["gradient_reads"].median()),
                "plain_traces": int(group[group["variant"] == "plain"]["traces"].median()),
                "taylor_traces": int(taylor["traces"].median()),
                "refit_plain_traces": _cell(refits, "plain", "traces"),
                "refit_taylor_traces": _cell(refits, "taylor", "traces"),
                "refit_first_epoch_extra_seconds": _cell(refits, "taylor", "first_epoch_seconds")
                - _cell(refits, "plain", "first_epoch_seconds"),
                "optimizer_after_fit": ",".join(sorted(set(taylor["optimizer_after_fit"]))),
                "library_warnings": " | ".join(
                    sorted({w for w in group["library_warnings"].dropna().astype(str) if w})
                ),
            }
        )
        row.update(_step_stats(blocks, row))
        row["verdict"] = _verdict(row)
        out.append(row)
    return pd.DataFrame(out)


def _step_stats(blocks: pd.DataFrame, row: dict[str, Any]) -> dict[str, float]:
    """The step profile's statistics, and the overhead it predicts for ``fit``.

    ``estimated_overhead_pct`` = (extra CPU time per step x steps per epoch +
    the taylor callback's ``on_epoch_end``) / plain's CPU time per epoch.
    """
    keys = ("step_plain_us", "step_taylor_us", "step_extra_us", "step_extra_q1", "step_extra_q3")
    if blocks.empty:
        return {**dict.fromkeys(keys, np.nan), "estimated_overhead_pct": np.nan}
    wide = blocks.pivot(index="repeat", columns="variant", values="step_us")
    extra, q1, q3 = quartiles(list(wide["taylor"] - wide["plain"]))
    per_epoch = extra * 1e-6 * row["steps_per_epoch"] + row["on_epoch_end_seconds"]
    steady: dict[str, float] = {}
    if "steady_taylor" in wide:
        s_extra, s_q1, s_q3 = quartiles(list(wide["steady_taylor"] - wide["plain"]))
        steady = {
            "step_steady_us": float(wide["steady_taylor"].median()),
            "step_steady_extra_us": s_extra,
            "step_steady_extra_q1": s_q1,
            "step_steady_extra_q3": s_q3,
            "step_steady_extra_pct": 100.0 * s_extra / float(wide["plain"].median()),
        }
    return {
        **steady,
        "step_plain_us": float(wide["plain"].median()),
        "step_taylor_us": float(wide["taylor"].median()),
        "step_extra_us": extra,
        "step_extra_q1": q1,
        "step_extra_q3": q3,
        "step_blocks": len(wide),
        "estimated_overhead_pct": 100.0 * per_epoch / row["plain_epoch"],
    }


def _cell(table: pd.DataFrame, index: str, column: str) -> float:
    if index not in table.index:
        return np.nan
    return float(table.loc[index, column])


def _verdict(row: dict[str, Any]) -> str:
    """The goal, judged on the step profile's estimate; the noise, on the paired fits."""
    med, q1, q3 = row["taylor_overhead_pct"], row["taylor_overhead_q1"], row["taylor_overhead_q3"]
    estimate = row.get("estimated_overhead_pct", np.nan)
    if not np.isfinite(med):
        return "n/a"
    noise = (
        "fits: within noise" if q1 <= 0.0 <= q3 else "fits: slower" if q1 > 0 else "fits: faster"
    )
    if not np.isfinite(estimate):
        goal = "meets" if q3 <= TAYLOR_GOAL_PCT else "misses" if q1 > TAYLOR_GOAL_PCT else "?"
    else:
        goal = "meets" if estimate <= TAYLOR_GOAL_PCT else "misses"
    return f"{goal} {TAYLOR_GOAL_PCT:g} %; {noise}"


def _stat(summary: pd.DataFrame, key: str, suffix: str = "") -> list[str]:
    """A paired statistic's column: median % [q1, q3] of ``key`` (CPU time, or ``_wall``)."""
    return cells(summary, fmt_pct, *(f"{key}_{q}{suffix}" for q in ("pct", "q1", "q3")))


def _unless_missing(fmt: str) -> Any:
    """``fmt.format`` of a value, ``"n/a"`` where the first value is missing."""
    return lambda value, *rest: "n/a" if not np.isfinite(value) else fmt.format(value, *rest)


def _ms_pair(a: float, b: float, template: str = "{} / {}") -> str:
    """Two times in ms (``fmt_ms``) in ``template``."""
    return template.format(fmt_ms(a), fmt_ms(b))


def _labelled(summary: pd.DataFrame, columns: dict[str, list[str]]) -> pd.DataFrame:
    """A table with a ``model (backend)`` column, then ``columns``."""
    label = cells(summary, "{} ({})".format, "model", "backend")
    return pd.DataFrame({"model (backend)": label, **columns})


def fit_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paired fits: epoch times and paired differences, CPU and wall time."""
    s = summary
    return _labelled(
        s,
        {
            "steps/epoch": cells(s, lambda n: f"{int(n):,}", "steps_per_epoch"),
            "plain epoch, CPU / wall": cells(s, _ms_pair, "plain_epoch", "plain_epoch_wall"),
            "taylor epoch, CPU / wall": cells(s, _ms_pair, "taylor_epoch", "taylor_epoch_wall"),
            "taylor - plain, CPU": _stat(s, "taylor_overhead"),
            "slower in": cells(
                s, lambda n, of: f"{int(n)} / {int(of)}", "taylor_slower_rounds", "rounds"
            ),
            "noise, CPU": _stat(s, "noise"),
            "taylor - viann, CPU": _stat(s, "taylor_vs_viann"),
            "viann - plain, CPU": _stat(s, "viann_overhead"),
            "taylor - plain, wall": _stat(s, "taylor_overhead", "_wall"),
            "noise, wall": _stat(s, "noise", "_wall"),
        },
    )


def step_profile_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The compiled step alone: plain and taylor step, the extra and the estimate."""
    s = summary
    extra = ("step_extra_us", "step_extra_q1", "step_extra_q3")
    return _labelled(
        s,
        {
            "plain step": cells(s, fmt_us, "step_plain_us"),
            "taylor step": cells(s, fmt_us, "step_taylor_us"),
            "extra per step": cells(s, _unless_missing("{:+.0f} µs [{:+.0f}, {:+.0f}]"), *extra),
            "of the step": cells(
                s,
                lambda e, p: "n/a" if not np.isfinite(e) else f"{100 * e / p:+.1f} %",
                "step_extra_us",
                "step_plain_us",
            ),
            "fit step": cells(
                s, lambda e, n: fmt_us(1e6 * e / n), "plain_epoch", "steps_per_epoch"
            ),
            "estimated": cells(s, _unless_missing("{:+.1f} %"), "estimated_overhead_pct"),
            **_steady_columns(s),
            "paired fits": _stat(s, "taylor_overhead"),
            "verdict": list(s["verdict"]),
        },
    )


def _steady_columns(s: pd.DataFrame) -> dict[str, list[str]]:
    """The steady_taylor (recommended mode) columns of the step table, when it was run."""
    if "step_steady_extra_us" not in s:
        return {}
    extra = ("step_steady_extra_us", "step_steady_extra_q1", "step_steady_extra_q3")
    return {
        "steady_taylor step": cells(s, fmt_us, "step_steady_us"),
        "steady extra per step": cells(s, _unless_missing("{:+.0f} µs [{:+.0f}, {:+.0f}]"), *extra),
        "steady of the step": cells(s, _unless_missing("{:+.1f} %"), "step_steady_extra_pct"),
        "steady paired fits": cells(
            s,
            _unless_missing("{:+.1f} % [{:+.1f}, {:+.1f}]"),
            "steady_overhead_pct",
            "steady_overhead_q1",
            "steady_overhead_q3",
        ),
    }


def hook_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The taylor callback's hooks, traces and the second fit."""
    s = summary

    def bracket(a: float, b: float) -> str:
        return _ms_pair(a, b, "{} ({})")

    return _labelled(
        s,
        {
            "on_train_begin (install)": cells(
                s, bracket, "on_train_begin_seconds", "install_seconds"
            ),
            "on_epoch_end (drain)": cells(s, bracket, "on_epoch_end_seconds", "drain_seconds"),
            "viann on_epoch_end": cells(s, fmt_ms, "viann_on_epoch_end_seconds"),
            "on_train_end": cells(s, fmt_ms, "on_train_end_seconds"),
            "first epoch, taylor - plain": cells(
                s,
                lambda a, b: _ms_pair(a, b, "{} of {}"),
                "first_epoch_extra_seconds",
                "plain_first_epoch_seconds",
            ),
            "traces plain / taylor": cells(
                s, lambda a, b: f"{int(a)} / {int(b)}", "plain_traces", "taylor_traces"
            ),
            "traces, 2nd fit": cells(
                s,
                lambda a, b: f"{fmt_int(a)} / {fmt_int(b)}",
                "refit_plain_traces",
                "refit_taylor_traces",
            ),
            "2nd fit's first epoch, taylor - plain": cells(
                s, fmt_ms, "refit_first_epoch_extra_seconds"
            ),
            "gradient reads": cells(s, lambda n: f"{int(n):,}", "gradient_reads"),
        },
    )


def keras_gradients_markdown(summary: pd.DataFrame, fits: pd.DataFrame) -> str:
    """The tables of the ``keras_gradients`` part."""
    if summary.empty:
        return "No Keras backend ran."
    first = summary.iloc[0]
    warnings_seen = sorted(
        {w for w in summary["library_warnings"].dropna().astype(str) for w in w.split(" | ") if w}
    )
    restored = sorted(set(",".join(summary["optimizer_after_fit"].astype(str)).split(",")))
    backend_seconds = (
        fits.groupby("backend", sort=False)["backend_seconds"].first()
        if "backend_seconds" in fits
        else pd.Series(dtype=float)
    )
    lines = [
        '### Keras gradient mode (`scoring="taylor"`): training time with and without the tap',
        "",
        "The tap adds its per-step terms inside the compiled train step, where hook timing "
        "cannot see them, so its cost is measured as a *difference of paired runs*, twice: "
        "whole fits (what a user pays, but noisy on a shared machine) and the compiled step "
        "alone (precise).",
        "",
        "**Paired fits.** In each round a fresh model of the same seed is fitted once without "
        'any callback (`plain`), once with `scoring="viann"` (per-epoch snapshots) and once '
        'with `scoring="taylor"` (the gradient tap, `gradient_every=4`), in an order rotated '
        f"from round to round, for 1 + {int(first['timed_epochs'])} epochs on the same data "
        "(Keras's global state cleared and the garbage collected before each fit, the cyclic "
        "collector off during it). An epoch runs from one `on_epoch_end` to the next, so the "
        "tracker's `on_epoch_end` (with the drain) is counted; the first epoch (tracing and "
        "compiling) is left out and the median of the others is the fit's epoch time. Both "
        "clocks are kept: the process's CPU time (`process_time`, every thread; the main "
        "measure, because on a shared machine it does not count waiting for a core) and wall "
        "time. `taylor - plain` = median [interquartile range] over the rounds of "
        "`100 * (taylor - plain) / plain` within a round; `slower in` = rounds where taylor "
        "took more CPU time; `noise` = the same statistic for one round's plain fit against the "
        "next round's (the machine's run-to-run spread, what a difference has to beat). An "
        "interquartile range that contains 0 is within noise.",
        "",
        *data_lines(summary),
        "",
        markdown_table(fit_table(summary)),
        "",
        "**The compiled step alone.** The train step that `fit` compiles (`model.train_step`: "
        "jitted on JAX, a `tf.function` on TensorFlow, eager on the PyTorch backend), applied "
        "to one fixed batch in alternating blocks of about 0.25 s of plain and taylor steps "
        f"({int(first['step_blocks'])} blocks each, CPU time per step; the tap installed by "
        "the callback's own `on_train_begin`). `extra per step` = median [IQR] of the paired "
        "block differences; "
        "`fit step` = plain's CPU time per step inside `fit` (the data pipeline and Keras's "
        "per-step work included); `estimated` = (extra per step x steps per epoch + the taylor "
        "callback's `on_epoch_end`) / plain's epoch, the overhead the fits should show without "
        f"the noise. `verdict`: the {TAYLOR_GOAL_PCT:g} % goal judged on `estimated`; whether "
        "the paired fits could tell taylor from plain.",
        "",
        markdown_table(step_profile_table(summary)),
        "",
        "Hooks of the taylor callback, timed inside them (wall time, medians over the "
        "rounds): `on_train_begin` includes choosing the layer, wrapping the optimizer and "
        "rebuilding the train function (in brackets: the install and rebuild alone); "
        "`on_epoch_end` per epoch includes the drain of the tap's sums to the host (in "
        "brackets) and the callback's weight snapshot. Tracing is not in `on_train_begin`: it "
        "happens at the first step, so `first epoch` is the first epoch's extra wall time "
        "against plain's. `traces` = Python calls of `train_step` in one `fit()`: traces of "
        "the compiled step on TensorFlow and JAX (one more for a last, smaller batch; "
        "TensorFlow traces a plain model twice because Adam creates its variables in the first "
        "trace, while the tap builds them beforehand), one call per step on the eager PyTorch "
        "backend. `2nd fit` = a second `fit()` of the same model (one sample, wall time, "
        "noisy): plain Keras reuses its compiled step; the callback makes Keras rebuild it.",
        "",
        markdown_table(hook_table(summary)),
        "",
        f"After every fit the model's optimizer was `{', '.join(restored)}` again. "
        + (
            "The library logged or warned: " + "; ".join(warnings_seen) + "."
            if warnings_seen
            else "The library logged no warning."
        ),
    ]
    if not backend_seconds.empty:
        lines += [
            "",
            "Wall time per backend: "
            + ", ".join(f"{b} {s / 60:.1f} min" for b, s in backend_seconds.items())
            + ".",
        ]
    return "\n".join(lines)
