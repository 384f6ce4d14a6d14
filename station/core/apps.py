from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "station.core"
    label = "station_core"
    verbose_name = "Station core"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from station.core import grants
        from tenants import context

        connection_created.connect(context.install_org_guard, dispatch_uid="station-org-guard")
        post_migrate.connect(grants.grant_app_role, sender=self, dispatch_uid="station-grants")
