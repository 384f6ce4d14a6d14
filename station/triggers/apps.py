from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "station.triggers"
    label = "triggers"
    verbose_name = "Run triggers: schedules and webhooks"

    def ready(self) -> None:
        from station.triggers import receivers, secrets

        receivers.connect()
        secrets.register_with_vault()
