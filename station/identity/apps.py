from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "station.identity"
    label = "identity"
    verbose_name = "Enterprise identity: SAML SSO, verified domains, JIT provisioning"
