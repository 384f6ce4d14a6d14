"""REST endpoints for MCP servers and their pinned tools.

Server settings are returned as stored: `${secret:…}` and `${var:…}` references, never the
values they resolve to (resolution happens only in the worker). Discovery and health checks
are queued (202): the worker talks to the server and records what it found.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from station.api.pagination import StationCursorPagination
from station.api.viewsets import EnvironmentScopedViewSet, validated
from station.core.errors import InvalidInput
from station.tools import services, tasks
from station.tools.models import McpServer, Tool
from tenants.models import Environment

# --- serializers ------------------------------------------------------------------------------


class McpServerSerializer(serializers.ModelSerializer[McpServer]):
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True)
    env = serializers.DictField(child=serializers.CharField(), read_only=True,
                                help_text="As stored: ${secret:NAME} / ${var:NAME} references, "
                                          "never resolved values")
    headers = serializers.DictField(child=serializers.CharField(), read_only=True,
                                    help_text="As stored (references, never resolved values)")
    args = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = McpServer
        fields = ["id", "name", "environment", "description", "transport", "command", "args",
                  "env", "url", "headers", "enabled", "reuse_sessions", "created_at",
                  "updated_at", "last_discovered_at", "last_checked_at", "last_ok_at",
                  "last_error", "last_latency_ms"]
        read_only_fields = fields


class _ServerConfigSerializer(serializers.Serializer[Any]):
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    transport = serializers.ChoiceField(choices=McpServer.TRANSPORTS,
                                        required=False)
    command = serializers.CharField(max_length=500, required=False, allow_blank=True,
                                    help_text="stdio: the executable, e.g. uvx")
    args = serializers.ListField(child=serializers.CharField(allow_blank=True, max_length=2000),
                                 required=False, help_text="stdio: its arguments")
    env = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=4000),
                                required=False,
                                help_text="stdio: environment for the process; reference "
                                          "secrets as ${secret:NAME}, never inline them")
    url = serializers.CharField(max_length=2000, required=False, allow_blank=True,
                                help_text="http: the streamable HTTP endpoint")
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=4000), required=False,
        help_text="http: request headers, e.g. Authorization: Bearer ${secret:API_TOKEN}")
    enabled = serializers.BooleanField(required=False)
    reuse_sessions = serializers.BooleanField(
        required=False, help_text="Only for stateless servers: a warm session may serve "
                                  "several runs of this server (default false: a fresh "
                                  "session per run)")


class McpServerCreateSerializer(_ServerConfigSerializer):
    environment = serializers.SlugField(help_text="Environment slug")
    name = serializers.CharField(max_length=64)
    transport = serializers.ChoiceField(choices=McpServer.TRANSPORTS)


class McpServerUpdateSerializer(_ServerConfigSerializer):
    pass


class ToolSerializer(serializers.ModelSerializer[Tool]):
    server = serializers.UUIDField(source="server_id", read_only=True)
    server_name = serializers.CharField(source="server.name", read_only=True)
    environment = serializers.CharField(source="server.environment.slug", read_only=True)
    callable = serializers.BooleanField(
        read_only=True, help_text="Approved, and the discovered definition is the approved one")

    class Meta:
        model = Tool
        fields = ["id", "name", "server", "server_name", "environment", "status", "callable",
                  "description", "content_hash", "approved_hash", "approved_at",
                  "approved_by_label", "first_seen_at", "last_seen_at"]
        read_only_fields = fields


class ToolDetailSerializer(ToolSerializer):
    class Meta(ToolSerializer.Meta):
        fields = [*ToolSerializer.Meta.fields, "input_schema", "output_schema", "annotations",
                  "approved_content"]
        read_only_fields = fields


class QueuedSerializer(serializers.Serializer[Any]):
    status = serializers.CharField(help_text="Always 'queued'")
    server = serializers.UUIDField()


# --- shared --------------------------------------------------------------------------------------


ENVIRONMENT_PARAM = OpenApiParameter(
    "environment", str, description="Only servers of the environment with this slug")
SERVER_PARAM = OpenApiParameter("server", uuid.UUID, description="Only tools of this server")
STATUS_PARAM = OpenApiParameter("status", str, enum=[s for s, _ in Tool.STATUSES],
                                description="Only tools in this status")


class NamePagination(StationCursorPagination):
    ordering = ("name", "id")


class _ToolsViewSet(EnvironmentScopedViewSet):
    pagination_class = NamePagination
    environment_permissions = ("tools.read", "tools.manage")


# --- MCP servers -------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[ENVIRONMENT_PARAM], summary="List MCP servers"),
    retrieve=extend_schema(summary="An MCP server: settings (references, never values) and "
                                   "health"),
    create=extend_schema(request=McpServerCreateSerializer, responses={201: McpServerSerializer},
                         summary="Add an MCP server to an environment (409 if the name is "
                                 "taken)"),
    partial_update=extend_schema(request=McpServerUpdateSerializer,
                                 responses=McpServerSerializer,
                                 summary="Change an MCP server's settings"),
    destroy=extend_schema(responses={204: None},
                          summary="Remove an MCP server and its tools"),
    discover=extend_schema(request=None, responses={202: QueuedSerializer},
                           summary="Queue a discovery: list the server's tools and pin them"),
    health_check=extend_schema(request=None, responses={202: QueuedSerializer},
                               summary="Queue a health check (connect, list tools, time it)"),
)
class McpServerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _ToolsViewSet):
    model = McpServer
    serializer_class = McpServerSerializer
    http_method_names = ["get", "post", "patch", "delete"]
    permission_map = {
        "list": "tools.read", "retrieve": "tools.read", "create": "tools.manage",
        "partial_update": "tools.manage", "destroy": "tools.manage",
        "discover": "tools.manage", "health_check": "tools.manage",
    }

    def scoped_queryset(self) -> QuerySet[McpServer]:
        return self.in_environments(McpServer.objects.select_related("environment"))

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = validated(McpServerCreateSerializer, request.data)
            env = self.environment_from_slug(data.pop("environment"))
            server = services.create_mcp_server(actor=self.principal, environment=env,
                                                name=data.pop("name"), **data)
            return Response(McpServerSerializer(server).data, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        server = self.get_object()
        data = validated(McpServerUpdateSerializer, request.data)
        server = services.update_mcp_server(actor=self.principal, server=server, **data)
        return Response(McpServerSerializer(server).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_mcp_server(actor=self.principal, server=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def discover(self, request: Request, pk: str) -> Response:
        server = self.get_object()
        tasks.request_discovery(actor=self.principal, server=server)
        return Response({"status": "queued", "server": str(server.pk)},
                        status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"], url_path="health-check")
    def health_check(self, request: Request, pk: str) -> Response:
        server = self.get_object()
        tasks.request_health_check(actor=self.principal, server=server)
        return Response({"status": "queued", "server": str(server.pk)},
                        status=status.HTTP_202_ACCEPTED)


# --- tools ---------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[SERVER_PARAM, STATUS_PARAM],
                       summary="List discovered tools"),
    retrieve=extend_schema(responses=ToolDetailSerializer,
                           summary="A tool: its current definition, the approved one, status "
                                   "and hashes"),
    approve=extend_schema(request=None, responses=ToolDetailSerializer,
                          summary="Approve the tool's current definition (after review)"),
)
class ToolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _ToolsViewSet):
    model = Tool
    serializer_class = ToolSerializer
    http_method_names = ["get", "post"]
    permission_map = {"list": "tools.read", "retrieve": "tools.read", "approve": "tools.manage"}

    def scoped_queryset(self) -> QuerySet[Tool]:
        qs = Tool.objects.select_related("server", "server__environment").filter(
            server__environment__in=self.environments())
        if self.action != "list":
            return qs
        params = self.request.query_params
        if server_id := params.get("server"):
            try:
                uuid.UUID(server_id)
            except ValueError as exc:
                raise InvalidInput.field("server", f"{server_id!r} is not a server id.") from exc
            if not McpServer.objects.filter(pk=server_id,
                                            environment__in=self.environments()).exists():
                raise InvalidInput.field("server", "No such MCP server in this organization.")
            qs = qs.filter(server_id=server_id)
        if tool_status := params.get("status"):
            if tool_status not in {s for s, _ in Tool.STATUSES}:
                raise InvalidInput.field("status", "Choose one of: " + ", ".join(
                    s for s, _ in Tool.STATUSES) + ".")
            qs = qs.filter(status=tool_status)
        return qs

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        return ToolDetailSerializer if self.action == "retrieve" else ToolSerializer

    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        tool = services.approve_tool(actor=self.principal, tool=self.get_object())
        return Response(ToolDetailSerializer(tool).data)
