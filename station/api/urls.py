from django.urls import path
from rest_framework.routers import SimpleRouter

from audit.api import AuditEventViewSet
from tenants.api import (
    ApiKeyViewSet,
    EnvironmentViewSet,
    MemberViewSet,
    MeView,
    OrganizationView,
    RoleViewSet,
)

router = SimpleRouter(trailing_slash=False)
router.register("environments", EnvironmentViewSet, basename="environment")
router.register("members", MemberViewSet, basename="member")
router.register("roles", RoleViewSet, basename="role")
router.register("api-keys", ApiKeyViewSet, basename="apikey")
router.register("audit-events", AuditEventViewSet, basename="auditevent")

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("organization", OrganizationView.as_view(), name="organization"),
    *router.urls,
]
