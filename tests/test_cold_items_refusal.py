"""Under cold items (every item to find has no training interaction), a model that ranks by
interactions alone is refused with a one-line "(needs item content ...)"; content models and
random are not; a task with some warm truth items refuses nobody."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from datasets.item_data import make_feature_set
from protocols.contract import TaskProfile, TrainingData, UnsupportedProtocolError, check_requirements
from protocols.registry import make_model

TRAIN = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 0]], dtype=np.float32))  # item 3 is cold
FEATURES = {"efficientnet-lite0@000000000000": make_feature_set("efficientnet-lite0@000000000000",
                                                               np.eye(4, dtype=np.float32)),
            "genres": make_feature_set("genres", sp.csr_matrix(np.eye(4, dtype=np.float32)))}
DATA = TrainingData(TRAIN, item_features=FEATURES)


def profile(truth_items):
    truth = sp.csr_matrix((np.ones(len(truth_items)), (np.arange(len(truth_items)), truth_items)), shape=(3, 4))
    return TaskProfile.of(DATA, np.arange(3), "the test part", truth=truth)


@pytest.mark.parametrize("name", ["pop", "itemknn-cosine", "ease", "p3alpha", "bprmf"])
def test_interaction_only_models_are_refused_when_every_truth_item_is_cold(name):
    with pytest.raises(UnsupportedProtocolError, match=r"every item the test part asks for has none "
                                                       r"\(needs item content to rank cold items\)"):
        check_requirements(make_model(name), profile([3, 3, 3]))
    check_requirements(make_model(name), profile([3, 0, 3]))  # one warm truth item: allowed


@pytest.mark.parametrize("name", ["random", "itemknn-cbf", "itemknn-cfcbf", "visrank", "vbpr", "curatornet"])
def test_content_models_and_random_rank_cold_items(name):
    check_requirements(make_model(name), profile([3, 3, 3]))
