"""Console URLs. Every page under `o/<org_slug>/` is an `org_view` (tests enforce it)."""

from django.urls import include, path

from frontend.views import (
    apikeys,
    audit,
    environments,
    home,
    mcp,
    members,
    promote,
    providers,
    roles,
    secrets,
    variables,
)

app_name = "console"

org_patterns = [
    path("", home.org_home, name="org-home"),
    path("environments/", environments.environment_list, name="environments"),
    path("environments/new/", environments.environment_create, name="environments-new"),
    path("environments/<uuid:env_id>/rename/", environments.environment_rename,
         name="environments-rename"),
    path("environments/<uuid:env_id>/delete/", environments.environment_delete,
         name="environments-delete"),
    path("promote/", promote.promote, name="promote"),
    path("members/", members.member_list, name="members"),
    path("members/invite/", members.member_invite, name="members-invite"),
    path("members/<uuid:membership_id>/role/", members.member_role, name="members-role"),
    path("members/<uuid:membership_id>/remove/", members.member_remove, name="members-remove"),
    path("roles/", roles.role_list, name="roles"),
    path("api-keys/", apikeys.apikey_list, name="apikeys"),
    path("api-keys/new/", apikeys.apikey_create, name="apikeys-new"),
    path("api-keys/<uuid:key_id>/revoke/", apikeys.apikey_revoke, name="apikeys-revoke"),
    path("audit/", audit.audit_log, name="audit"),
    path("secrets/", secrets.secret_list, name="secrets"),
    path("secrets/new/", secrets.secret_create, name="secrets-new"),
    path("secrets/data-key/", secrets.data_key_rotate, name="secrets-data-key"),
    path("secrets/<uuid:secret_id>/", secrets.secret_detail, name="secrets-detail"),
    path("secrets/<uuid:secret_id>/rotate/", secrets.secret_rotate, name="secrets-rotate"),
    path("secrets/<uuid:secret_id>/delete/", secrets.secret_delete, name="secrets-delete"),
    path("variables/", variables.variable_list, name="variables"),
    path("variables/new/", variables.variable_create, name="variables-new"),
    path("variables/<uuid:variable_id>/edit/", variables.variable_edit, name="variables-edit"),
    path("variables/<uuid:variable_id>/delete/", variables.variable_delete,
         name="variables-delete"),
    path("mcp/", mcp.server_list, name="mcp"),
    path("mcp/new/", mcp.server_create, name="mcp-new"),
    path("mcp/<uuid:server_id>/", mcp.server_detail, name="mcp-detail"),
    path("mcp/<uuid:server_id>/edit/", mcp.server_edit, name="mcp-edit"),
    path("mcp/<uuid:server_id>/delete/", mcp.server_delete, name="mcp-delete"),
    path("mcp/<uuid:server_id>/discover/", mcp.server_discover, name="mcp-discover"),
    path("mcp/tools/<uuid:tool_id>/", mcp.tool_review, name="mcp-tool"),
    path("mcp/tools/<uuid:tool_id>/approve/", mcp.tool_approve, name="mcp-tool-approve"),
    path("providers/", providers.provider_list, name="providers"),
    path("providers/new/", providers.provider_create, name="providers-new"),
    path("providers/<uuid:provider_id>/edit/", providers.provider_edit, name="providers-edit"),
    path("providers/<uuid:provider_id>/delete/", providers.provider_delete,
         name="providers-delete"),
]

urlpatterns = [
    path("", home.home, name="home"),
    path("o/<slug:org_slug>/", include(org_patterns)),
]
