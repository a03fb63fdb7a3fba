from tests.quotas.fixtures import clock, office, office_subscription, send, tenant

__all__ = ["clock", "office", "office_subscription", "send", "tenant"]
