"""The on-commit kick of the outbox dispatch is best effort: the beat's sweep is the net."""

from decimal import Decimal

import pytest
from kombu.exceptions import OperationalError

from alerts.models import AlertTrigger
from alerts.services import usage_alert_create
from alerts.tasks import outbox_dispatch
from core.models import OutboxEvent


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_does_not_fail_an_ingest_that_committed(
    api, meter, customer, monkeypatch
):
    """The kick runs after the ingest transaction committed: a broker error there used to
    turn the accepted batch into a 500 (the client would retry a batch already stored)."""
    usage_alert_create(title="Big", meter=meter, customer=customer, threshold=Decimal(1))

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(outbox_dispatch, "delay", broker_down)
    response = api.post(
        "/api/v1/events",
        {"id": "evt_kick_1", "name": "api_call", "customer": customer.external_id},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1
    assert AlertTrigger.objects.filter(customer=customer).count() == 1
    # Left for the beat's sweep (alerts.outbox_dispatch every 30 s).
    assert (
        OutboxEvent.objects.filter(type="alert.triggered", dispatched_at__isnull=True).count() == 1
    )
