"""Console URLs. Every page under `o/<org_slug>/` is an `org_view` (tests enforce it)."""

from django.urls import include, path

from frontend.views import apikeys, audit, environments, home, members, roles

app_name = "console"

org_patterns = [
    path("", home.org_home, name="org-home"),
    path("environments/", environments.environment_list, name="environments"),
    path("environments/new/", environments.environment_create, name="environments-new"),
    path("environments/<uuid:env_id>/rename/", environments.environment_rename,
         name="environments-rename"),
    path("environments/<uuid:env_id>/delete/", environments.environment_delete,
         name="environments-delete"),
    path("members/", members.member_list, name="members"),
    path("members/invite/", members.member_invite, name="members-invite"),
    path("members/<uuid:membership_id>/role/", members.member_role, name="members-role"),
    path("members/<uuid:membership_id>/remove/", members.member_remove, name="members-remove"),
    path("roles/", roles.role_list, name="roles"),
    path("api-keys/", apikeys.apikey_list, name="apikeys"),
    path("api-keys/new/", apikeys.apikey_create, name="apikeys-new"),
    path("api-keys/<uuid:key_id>/revoke/", apikeys.apikey_revoke, name="apikeys-revoke"),
    path("audit/", audit.audit_log, name="audit"),
]

urlpatterns = [
    path("", home.home, name="home"),
    path("o/<slug:org_slug>/", include(org_patterns)),
]
