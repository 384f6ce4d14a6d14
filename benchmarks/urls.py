"""Station's URLs plus the bare baseline view (benchmark process only)."""

from django.urls import path

from benchmarks.views import bare_environment_list
from station.urls import handler404, handler500
from station.urls import urlpatterns as station_urlpatterns

BARE_PATH = "/bench/bare/environments"

urlpatterns = [
    path(BARE_PATH.lstrip("/"), bare_environment_list, name="bench-bare-environments"),
    *station_urlpatterns,
]

__all__ = ["BARE_PATH", "handler404", "handler500", "urlpatterns"]
