from tests.quotas.fixtures import (
    annual,
    clock,
    office,
    office_subscription,
    send,
    tenant,
    tokens_250,
)

__all__ = ["annual", "clock", "office", "office_subscription", "send", "tenant", "tokens_250"]
