"""The scaling benchmark's harness: one short shape end to end, and its section writer."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from bench import scaling


def short_shape() -> scaling.Shape:
    return scaling.Shape(
        "tiny-flash",
        "2 jobs/s; 100 jobs/s for 20 s at 60 s; 3 min",
        7,
        lambda rng: scaling._rate_rows(rng, lambda t: 100.0 if 60 <= t < 80 else 2.0, 180),
        scaling.EXP2,
    )


def test_one_shape_runs_all_three_policies_on_the_same_jobs() -> None:
    row = scaling.run_shape(short_shape())
    assert row.ours.jobs == row.keda_tuned.jobs == row.keda_default.jobs > 2000
    assert row.ours.name.startswith("threshold")
    assert row.keda_tuned.name == "KEDA tuned (bench-tuned)"
    assert row.cost_ratio == row.ours.replica_seconds / row.keda_tuned.replica_seconds
    shape = row.shape
    again = scaling.run_shape(shape)
    assert again == row, "deterministic for the shape's seed"


def test_the_section_states_every_goal_and_explains_a_miss() -> None:
    row = scaling.run_shape(short_shape())
    cut = dataclasses.replace(row, ours=dataclasses.replace(row.ours, interrupted=3))
    text = scaling.render([cut], 1.0)
    assert "| tiny-flash | **ours** |" in text
    assert "p95 wait ≤ 60 s on every trace" in text
    assert "**3 interrupted**" in text
    assert "**Interrupted jobs: 3 on `tiny-flash`" in text
    if row.ours.interrupted == 0:
        assert "Interrupted jobs" not in scaling.render([row], 1.0)


def test_write_section_replaces_between_the_markers(tmp_path: Path) -> None:
    path = tmp_path / "B.md"
    path.write_text("# head\n\nbefore\n")
    scaling.write_section(path, "one")
    scaling.write_section(path, "two")
    text = path.read_text()
    assert text.count(scaling.BEGIN) == 1
    assert "two" in text
    assert "one" not in text
    assert text.startswith("# head\n\nbefore\n")


def test_shapes_are_reproducible_for_their_seed() -> None:
    for shape in scaling.SHAPES:
        assert shape.rows(random.Random(shape.seed)) == shape.rows(random.Random(shape.seed))
