"""Metrics against small hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from instrlab.training.metrics import binarize, macro_f1, multilabel_report, tune_thresholds

NAMES = ["a", "b", "c"]
Y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=np.uint8)
P = np.array(
    [[0.9, 0.2, 0.1], [0.6, 0.4, 0.7], [0.3, 0.8, 0.9], [0.2, 0.1, 0.55]], dtype=np.float32
)


def test_binarize_is_inclusive_and_per_class() -> None:
    assert binarize(P, 0.6)[1].tolist() == [1, 0, 1]
    assert binarize(P, np.array([0.95, 0.3, 0.95])).tolist() == [[0, 0, 0], [0, 1, 0],
                                                                  [0, 1, 0], [0, 0, 0]]


def test_min_labels_fills_only_rows_short_of_labels() -> None:
    # at 0.95 no row has a label: each takes its most probable class
    assert binarize(P, 0.95, min_labels=1).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1],
                                                         [0, 0, 1]]
    # at 0.6 only the last row is empty; the others keep what their thresholds gave
    assert binarize(P, 0.6, min_labels=1).tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 1],
                                                        [0, 0, 1]]
    # two labels per row at least; rows that already hold two stay as they are
    assert binarize(P, 0.6, min_labels=2).tolist() == [[1, 1, 0], [1, 0, 1], [0, 1, 1],
                                                        [1, 0, 1]]
    assert binarize(P, 0.95, min_labels=0).sum() == 0
    r = multilabel_report(Y, P, 0.95, NAMES, min_labels=1)
    assert r["f1/a"] == pytest.approx(2 / 3) and r["f1/c"] == pytest.approx(0.8)


def test_report_matches_hand_computation() -> None:
    r = multilabel_report(Y, P, 0.5, NAMES)
    # predictions at 0.5: a -> clips 0,1 (tp 2); b -> clip 2 (tp 1, fn 1); c -> 1,2,3 (tp 2, fp 1)
    assert r["f1/a"] == pytest.approx(1.0)
    assert r["precision/b"] == pytest.approx(1.0) and r["recall/b"] == pytest.approx(0.5)
    assert r["f1/b"] == pytest.approx(2 / 3)
    assert r["precision/c"] == pytest.approx(2 / 3) and r["recall/c"] == pytest.approx(1.0)
    assert r["f1/c"] == pytest.approx(0.8)
    assert r["macro_f1"] == pytest.approx((1 + 2 / 3 + 0.8) / 3)
    # micro: tp 5, fp 1, fn 1 -> 10 / 12
    assert r["micro_f1"] == pytest.approx(10 / 12)
    # AP: a = 1, b: ranks 0.8(+), 0.4(+) above negatives -> 1, c: 0.9+, 0.7-, 0.55+ -> (1 + 2/3)/2
    assert r["mAP"] == pytest.approx((1 + 1 + (1 + 2 / 3) / 2) / 3)
    # clips with one instrument: 0 and 3 -> a and c right, b absent (F1 0 by zero_division)
    assert r["f1_by_count/1"] == pytest.approx(2 / 3)
    assert "f1_by_count/2" in r and "f1_by_count/3" not in r
    # 6 labels predicted (a: 2, b: 1, c: 3) and 6 true over 4 clips
    assert r["labels_per_clip"] == pytest.approx(6 / 4)
    assert r["true_labels_per_clip"] == pytest.approx(6 / 4)
    assert multilabel_report(Y, P, 0.05, NAMES)["labels_per_clip"] == pytest.approx(3.0)
    assert multilabel_report(Y, P, 0.95, NAMES, min_labels=1)["labels_per_clip"] == 1.0


def test_report_ranks_like_sklearn() -> None:
    from sklearn.metrics import average_precision_score, label_ranking_average_precision_score

    r = multilabel_report(Y, P, 0.5, NAMES)
    # clip 1 ranks c (.7) over a (.6) over b (.4): a 1/2, b 2/3; the other clips rank right
    assert r["lrap"] == pytest.approx((1 + (1 / 2 + 2 / 3) / 2 + 1 + 1) / 4)
    assert r["lrap"] == pytest.approx(label_ranking_average_precision_score(Y, P))
    assert [r[f"ap/{n}"] for n in NAMES] == pytest.approx([1, 1, 5 / 6])
    for i, n in enumerate(NAMES):
        assert r[f"ap/{n}"] == pytest.approx(average_precision_score(Y[:, i], P[:, i]))
    assert r["mAP"] == pytest.approx(np.mean([r[f"ap/{n}"] for n in NAMES]))


def test_class_without_positives_has_no_ap_and_is_left_out_of_map() -> None:
    from sklearn.metrics import label_ranking_average_precision_score

    y = Y.copy()
    y[:, 1] = 0
    y[2, 2] = 1  # every clip keeps a label
    r = multilabel_report(y, P, 0.5, NAMES)
    assert "ap/b" not in r and {"ap/a", "ap/c"} <= set(r)
    assert r["mAP"] == pytest.approx((r["ap/a"] + r["ap/c"]) / 2)
    assert r["lrap"] == pytest.approx(label_ranking_average_precision_score(y, P))


def test_report_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shapes"):
        multilabel_report(Y, P[:, :2], 0.5, NAMES)


def test_macro_f1_zero_division_is_zero() -> None:
    y = np.array([[1, 0], [1, 0]])
    assert macro_f1(y, y) == pytest.approx(0.5)


def test_tune_thresholds_finds_the_separating_threshold() -> None:
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    p = np.array([[0.3, 0.1], [0.25, 0.2], [0.2, 0.9], [0.1, 0.6]])
    t = tune_thresholds(y, p, grid=[0.1, 0.15, 0.22, 0.28, 0.5, 0.7, 0.95])
    assert t.tolist() == [0.22, 0.7]  # the only grid points that separate each class
    assert macro_f1(y, binarize(p, t)) == pytest.approx(1.0)


def test_tune_thresholds_keeps_half_without_positives() -> None:
    y = np.zeros((3, 1), dtype=np.uint8)
    assert tune_thresholds(y, np.array([[0.1], [0.7], [0.9]])).tolist() == [0.5]
