"""The access check in the Python API, on published Delta tables: a refused principal gets nothing
(no frame, nothing written), a granted one gets exactly the rows everyone else gets.

Reuses the training-set tests' small published world (three groups, tens of rows).
"""

from __future__ import annotations

import random

import pytest

from featurebank.errors import AccessDenied
from test_training import DAYS, _make_world, _spine

FRAUD_DS = "arn:aws:iam::111122223333:role/fraud-ds"
MARKETING = "arn:aws:iam::444455556666:role/marketing-analytics"
GOVERNANCE = f"""
governance:
  tags: {{domain: [cards, fraud, customer], pii: [true, false]}}
  consumers:
    - {{principal: "{FRAUD_DS}", tag_expression: {{domain: [cards, fraud, customer], pii: [false]}}}}
    - {{principal: "{FRAUD_DS}", tag_expression: {{domain: [customer], pii: [true]}}}}
    - {{principal: "{MARKETING}", tag_expression: {{domain: [cards, customer], pii: [false]}}}}
"""
FEATURES = ["customer_profile:segment", "customer_profile:income_band", "customer_card_spend:spend_sum_7d"]


@pytest.fixture()
def governed_world(spark, example_project):
    conf = example_project / "conf" / "local.yaml"
    conf.write_text(conf.read_text() + GOVERNANCE)
    return _make_world(spark, example_project)


def test_api_refuses_a_pii_feature_without_the_grant_and_serves_the_granted_principal_the_same_rows(governed_world, tmp_path):
    from featurebank.training.api import FeatureStore

    store = FeatureStore(governed_world.project, spark=governed_world.spark)
    _, spine = _spine(random.Random(5), governed_world, DAYS[:8], n=20)
    out = tmp_path / "refused"
    with pytest.raises(AccessDenied, match=r"may not read customer_profile\.income_band \(domain=customer, pii=true\): "
                                           r"its grant allows pii in \[false\]"):
        store.write_training_set(features=FEATURES, spine=spine, out=out, principal=MARKETING)
    assert not out.exists()

    unchecked = store.training_set(features=FEATURES, spine=spine)
    granted = store.training_set(features=FEATURES, spine=spine, principal=FRAUD_DS)
    assert granted.columns == unchecked.columns
    assert sorted(map(tuple, granted.collect()), key=repr) == sorted(map(tuple, unchecked.collect()), key=repr)
    assert granted.count() == len(spine)

    allowed = ["customer_profile:segment", "customer_card_spend:spend_sum_7d"]
    assert store.training_set(features=allowed, spine=spine, principal=MARKETING).count() == len(spine)
