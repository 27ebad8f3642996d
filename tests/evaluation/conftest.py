"""Real tables that ship inside scikit-learn (no download): one per task, split in halves."""

from __future__ import annotations

import pytest

TARGET = "target"


def _halves(frame):
    """Even rows to train, odd rows to test: every class of these tables lands in both."""
    return frame.iloc[::2].reset_index(drop=True), frame.iloc[1::2].reset_index(drop=True)


@pytest.fixture(scope="session")
def iris():
    """150 rows, 3 classes as strings (``setosa``, ``versicolor``, ``virginica``)."""
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame
    frame[TARGET] = frame[TARGET].map(dict(enumerate(data.target_names))).astype(object)
    return _halves(frame)


@pytest.fixture(scope="session")
def digits():
    """1797 rows, 64 pixel columns, 10 integer classes 0-9."""
    from sklearn.datasets import load_digits

    return _halves(load_digits(as_frame=True).frame)


@pytest.fixture(scope="session")
def breast_cancer():
    """569 rows, binary string classes ``malignant``/``benign``."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame
    frame[TARGET] = frame[TARGET].map(dict(enumerate(data.target_names))).astype(object)
    return _halves(frame)


@pytest.fixture(scope="session")
def diabetes():
    """442 rows, a numeric target (disease progression after one year)."""
    from sklearn.datasets import load_diabetes

    return _halves(load_diabetes(as_frame=True).frame)
