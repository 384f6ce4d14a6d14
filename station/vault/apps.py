from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "station.vault"
    label = "vault"
    verbose_name = "Secrets vault"
