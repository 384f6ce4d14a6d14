from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "station.providers"
    label = "providers"
    verbose_name = "LLM providers"
