from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "station.runs"
    label = "runs"
    verbose_name = "Agent runs"
