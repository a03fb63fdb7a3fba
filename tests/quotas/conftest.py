from tests.quotas.fixtures import annual, clock, office, office_subscription, send, tenant

__all__ = ["annual", "clock", "office", "office_subscription", "send", "tenant"]
