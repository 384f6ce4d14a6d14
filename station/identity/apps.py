from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "station.identity"
    label = "identity"
    verbose_name = "Enterprise identity: SAML and OIDC SSO, verified domains, JIT provisioning"

    def ready(self) -> None:
        from station.identity import oidc_secret
        from station.vault import services as vault

        vault.register_resealer(oidc_secret.reseal)
