"""adclick_ops.steps.holdout: the held-out rows depend on each row's content only."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from adclick_ops.steps.holdout import BUCKETS, ChampionRows, champion_rows, held_out, row_buckets

from tests.support import PROJECT


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def dataset() -> pd.DataFrame:
    return pd.read_csv(PROJECT / "dags" / "data" / "advertising.csv", dtype=str, keep_default_na=False)


@pytest.mark.parametrize("seed", range(5))
def test_a_row_is_held_out_whatever_the_order_of_rows_and_columns(dataset, seed):
    rng = np.random.default_rng(seed)
    shuffled = dataset.iloc[rng.permutation(len(dataset))][list(rng.permutation(dataset.columns))]
    expected = dict(zip(map(tuple, dataset[sorted(dataset.columns)].to_numpy()), row_buckets(dataset), strict=True))
    found = row_buckets(shuffled)
    assert [expected[tuple(row)] for row in shuffled[sorted(dataset.columns)].to_numpy()] == found.tolist()


def test_numbers_are_one_value_however_they_are_written():
    a = pd.DataFrame({"x": ["1", "2.50", " 3"], "y": ["0", "1", "1"]})
    b = pd.DataFrame({"x": ["1.0", "2.5", "3e0"], "y": ["0.0", "1", "1.000"]})
    assert row_buckets(a).tolist() == row_buckets(b).tolist()
    assert row_buckets(a).tolist() != row_buckets(a.rename(columns={"x": "z"})).tolist()  # a column's name is part of the row


def test_identical_rows_fall_on_the_same_side(dataset):
    doubled = pd.concat([dataset, dataset], ignore_index=True)
    buckets = row_buckets(doubled)
    assert (buckets[: len(dataset)] == buckets[len(dataset) :]).all()


@pytest.mark.parametrize("small,large", [(0.05, 0.1), (0.1, 0.2), (0.2, 0.5), (0.3, 0.31)])
def test_a_smaller_share_holds_out_a_subset_of_a_larger_one(dataset, small, large):
    buckets = row_buckets(dataset)
    assert not (held_out(buckets, small) & ~held_out(buckets, large)).any()
    assert buckets.min() >= 0 and buckets.max() < BUCKETS
    # the share is close to what was asked for, on 1,000 rows
    assert abs(held_out(buckets, large).mean() - large) < 0.05


# --- which held-out rows a champion can be scored on -----------------------------------------------------

OURS = {"share": 0.2, "columns": ["Age", "Clicked", "Income"], "numeric": ["Age", "Clicked", "Income"]}


def card(holdout: dict | None, features=("Age",), target="Clicked") -> dict:
    return {"model": {"features": list(features), "target": target}, "dataset": {"holdout": holdout} if holdout is not None else {}}


def test_the_rows_below_the_smaller_share_are_those_neither_trained_on():
    assert champion_rows(3, card({"share": 0.1, "columns": OURS["columns"]}), OURS, "Clicked", "d.csv") == ChampionRows(0.1)
    assert champion_rows(3, card({"share": 0.5, "columns": OURS["columns"]}), OURS, "Clicked", "d.csv") == ChampionRows(0.2)


def test_a_champion_older_than_the_holdout_is_scored_with_a_note():
    found = champion_rows(3, card(None), OURS, "Clicked", "d.csv")
    assert found.share == 0.2 and found.problem is None
    assert found.note == "version 3 was trained before rows were held out; it may have trained on some of these rows"


@pytest.mark.parametrize(
    "champion,problem",
    [
        (
            card({"share": 0.2, "columns": ["Age", "Clicked", "Male"]}),
            "the dataset's columns changed since it was trained (gone: Male; added: Income), so the rows it never trained on are not known",
        ),
        (card({"share": 0.2, "columns": OURS["columns"]}, target="Sale"), "it predicts 'Sale', this run 'Clicked'"),
        (card(None, features=("Age", "City", "Sex")), "its feature column(s) 'City', 'Sex' are not numeric columns of d.csv"),
    ],
)
def test_a_champion_that_cannot_be_scored_on_these_rows_says_why(champion, problem):
    assert champion_rows(3, champion, OURS, "Clicked", "d.csv") == ChampionRows(problem=problem)
