from datetime import UTC, datetime

import pytest

from metering.hooks import listeners
from tests.billing.factories import CustomerFactory

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _own_listeners():
    """Metering tests see only the usage/rebuild listeners they register themselves."""
    with listeners(replace=True):
        yield


@pytest.fixture
def customer(db):
    return CustomerFactory(external_id="cus_ext_1")
