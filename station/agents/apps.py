from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "station.agents"
    label = "agents"
    verbose_name = "Agents and versions"
