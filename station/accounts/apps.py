from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "station.accounts"
    label = "station_accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from station.accounts import signals

        signals.connect()
