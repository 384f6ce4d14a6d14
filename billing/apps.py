from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Plans, quotas, usage metering and Stripe (arrives with the billing issue)."""

    name = "billing"
    verbose_name = "Billing"
