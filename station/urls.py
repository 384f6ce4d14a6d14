from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from station.api import errors as api_errors
from station.core import health
from station.triggers.views import receive_hook

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include("station.api.urls")),
    path("hooks/<str:webhook_id>", receive_hook, name="inbound-webhook"),
    # SCIM 2.0 provisioning: bearer-token per org, outside the REST API (its own wire format).
    path("scim/v2/", include("station.scim.urls")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="api-schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(
            url_name="api-schema", authentication_classes=[], permission_classes=[]
        ),
        name="api-docs",
    ),
    # Before allauth's: Station's SAML login/finish (replay, InResponseTo) shadow allauth's.
    path("accounts/", include("station.identity.urls")),
    path("accounts/", include("allauth.urls")),
    path("", include("frontend.urls")),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return api_errors.api_not_found(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception, template_name="console/404.html")


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return api_errors.api_server_error(request)
    from django.views.defaults import server_error

    return server_error(request)
