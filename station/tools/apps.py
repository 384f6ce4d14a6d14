from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "station.tools"
    label = "tools"
    verbose_name = "MCP servers and tools"
