from django.urls import path
from rest_framework.routers import SimpleRouter

from audit.api import AuditEventViewSet
from station.agents.api import AgentVersionViewSet, AgentViewSet
from station.envcode.api import EnvironmentBundleViewSet
from station.identity.api import (
    GroupMappingViewSet,
    OidcConfigView,
    SamlConfigView,
    VerifiedDomainViewSet,
)
from station.providers.api import ProviderViewSet
from station.runs.api import RunViewSet, ToolApprovalViewSet
from station.scim.api import ScimTokenViewSet
from station.tools.api import McpServerViewSet, ToolViewSet
from station.tools.policies_api import ToolPolicyViewSet
from station.triggers.api import (
    InboundWebhookViewSet,
    OutboundWebhookViewSet,
    ScheduleViewSet,
    WebhookDeliveryViewSet,
)
from station.vault.api import DataKeyRotationView, SecretViewSet, VariableViewSet
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
router.register("environments", EnvironmentBundleViewSet, basename="environment-bundle")
router.register("members", MemberViewSet, basename="member")
router.register("roles", RoleViewSet, basename="role")
router.register("api-keys", ApiKeyViewSet, basename="apikey")
router.register("audit-events", AuditEventViewSet, basename="auditevent")
router.register("secrets", SecretViewSet, basename="secret")
router.register("variables", VariableViewSet, basename="variable")
router.register("mcp-servers", McpServerViewSet, basename="mcpserver")
router.register("tools", ToolViewSet, basename="tool")
router.register("runs", RunViewSet, basename="run")
router.register("tool-approvals", ToolApprovalViewSet, basename="toolapproval")
router.register("providers", ProviderViewSet, basename="provider")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("inbound-webhooks", InboundWebhookViewSet, basename="inboundwebhook")
router.register("outbound-webhooks", OutboundWebhookViewSet, basename="outboundwebhook")
router.register("webhook-deliveries", WebhookDeliveryViewSet, basename="webhookdelivery")
router.register("tool-policies", ToolPolicyViewSet, basename="toolpolicy")
router.register("agents", AgentViewSet, basename="agent")
router.register("agent-versions", AgentVersionViewSet, basename="agentversion")
router.register("sso/domains", VerifiedDomainViewSet, basename="verifieddomain")
router.register("sso/group-mappings", GroupMappingViewSet, basename="groupmapping")
router.register("scim-tokens", ScimTokenViewSet, basename="scimtoken")

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("organization", OrganizationView.as_view(), name="organization"),
    path("vault/rotate-data-key", DataKeyRotationView.as_view(), name="vault-rotate-data-key"),
    path("sso/saml", SamlConfigView.as_view(), name="sso-saml"),
    path("sso/oidc", OidcConfigView.as_view(), name="sso-oidc"),
    *router.urls,
]
