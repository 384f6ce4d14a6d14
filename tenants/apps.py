from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        from django.core import checks

        from tenants import rls

        checks.register(rls.check_tenant_models_have_rls, checks.Tags.models)
