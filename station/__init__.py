"""Station: a multi-tenant control plane for AI agents that use MCP tools."""

from station.celery import app as celery_app

__all__ = ["celery_app"]
