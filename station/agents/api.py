"""REST endpoints for agents, their published versions, and dotprompt import/export.

The working copy is edited with PATCH; `POST /agents/{id}/publish` freezes it into a new
immutable version (409 when nothing changed since the latest one). Runs use versions only.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from station.agents import dotprompt, selectors, services
from station.agents.models import Agent, AgentVersion
from station.agents.validation import LIMITS
from station.api.pagination import StationCursorPagination
from station.api.viewsets import EnvironmentScopedViewSet, validated
from station.core.errors import InvalidInput, NotFound
from tenants.models import Environment

# --- serializers ------------------------------------------------------------------------------


class AgentSerializer(serializers.ModelSerializer[Agent]):
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True)
    parameters = serializers.JSONField(read_only=True, help_text="Model settings (an object)")
    allowed_tools = serializers.ListField(child=serializers.CharField(), read_only=True,
                                          help_text="server/tool names; others are denied")
    input_schema = serializers.JSONField(read_only=True, help_text="JSON Schema of run input")
    latest_version = serializers.IntegerField(read_only=True,
                                              help_text="0 while never published")

    class Meta:
        model = Agent
        fields = ["id", "name", "environment", "description", "instructions", "provider",
                  "model", "parameters", "allowed_tools", "input_schema", "max_steps",
                  "max_tokens", "max_seconds", "latest_version", "created_at", "updated_at"]
        read_only_fields = fields


def _limit(name: str) -> serializers.IntegerField:
    low, high = LIMITS[name]
    return serializers.IntegerField(required=False, help_text=f"{low}–{high:,}")


class _DefinitionSerializer(serializers.Serializer[Any]):
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    instructions = serializers.CharField(required=False, allow_blank=True,
                                         trim_whitespace=False, help_text="The system prompt")
    provider = serializers.CharField(required=False, allow_blank=True,
                                     help_text="Name of a model provider in the environment")
    model = serializers.CharField(required=False, allow_blank=True,
                                  help_text="Model name on that provider")
    parameters = serializers.JSONField(required=False, help_text="Model settings (an object)")
    allowed_tools = serializers.JSONField(required=False,
                                          help_text="List of server/tool names")
    input_schema = serializers.JSONField(required=False, help_text="A JSON Schema")
    max_steps = _limit("max_steps")
    max_tokens = _limit("max_tokens")
    max_seconds = _limit("max_seconds")


class AgentCreateSerializer(_DefinitionSerializer):
    environment = serializers.SlugField(help_text="Environment slug")
    name = serializers.CharField(max_length=63)
    provider = serializers.CharField(help_text="Name of a model provider in the environment")
    model = serializers.CharField(help_text="Model name on that provider")


class AgentUpdateSerializer(_DefinitionSerializer):
    pass


class PublishSerializer(serializers.Serializer[Any]):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500,
                                 help_text="What changed, for the version list")


class ImportSerializer(serializers.Serializer[Any]):
    environment = serializers.SlugField(help_text="Environment slug")
    dotprompt = serializers.CharField(trim_whitespace=False,
                                      help_text="The .prompt file's text")
    name = serializers.CharField(required=False, max_length=63,
                                 help_text="The agent's name (default: the file's `name:`)")


class ImportResultSerializer(AgentSerializer):
    created = serializers.BooleanField(read_only=True,
                                       help_text="True when the import created the agent")

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "created"]
        read_only_fields = fields


class AgentVersionSerializer(serializers.ModelSerializer[AgentVersion]):
    agent = serializers.UUIDField(source="agent_id", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    definition = serializers.JSONField(read_only=True)

    class Meta:
        model = AgentVersion
        fields = ["id", "agent", "agent_name", "number", "definition", "content_hash", "note",
                  "published_at", "published_by_label"]
        read_only_fields = fields


# --- shared ---------------------------------------------------------------------------------


ENVIRONMENT_PARAM = OpenApiParameter(
    "environment", str, description="Only agents of the environment with this slug")
AGENT_PARAM = OpenApiParameter("agent", uuid.UUID, description="Only versions of this agent")
VERSION_PARAM = OpenApiParameter("version", int,
                                 description="Export this published version (default: the "
                                             "working copy)")


class NamePagination(StationCursorPagination):
    ordering = ("name", "id")


class VersionPagination(StationCursorPagination):
    ordering = ("-number", "id")


class PublishedPagination(StationCursorPagination):
    ordering = ("-published_at", "-id")


class _AgentsViewSet(EnvironmentScopedViewSet):
    environment_permissions = ("agents.read", "agents.write")


def _download(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- agents -------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[ENVIRONMENT_PARAM], summary="List agents"),
    retrieve=extend_schema(summary="An agent's working copy"),
    create=extend_schema(request=AgentCreateSerializer, responses={201: AgentSerializer},
                         summary="Create an agent in an environment (409 if the name is "
                                 "taken)"),
    partial_update=extend_schema(request=AgentUpdateSerializer, responses=AgentSerializer,
                                 summary="Edit an agent's working copy"),
    destroy=extend_schema(responses={204: None},
                          summary="Delete an agent with its versions (409 while it has "
                                  "active runs)"),
    publish=extend_schema(request=PublishSerializer, responses={201: AgentVersionSerializer},
                          summary="Publish the working copy as a new immutable version (409 "
                                  "when nothing changed since the latest)"),
    versions=extend_schema(responses=AgentVersionSerializer(many=True),
                           summary="The agent's published versions, newest first"),
    export_dotprompt=extend_schema(
        parameters=[VERSION_PARAM],
        responses={(200, "text/plain"): OpenApiResponse(OpenApiTypes.STR,
                                                        description="The .prompt file")},
        summary="Export the working copy, or a version, as a dotprompt file"),
    import_dotprompt=extend_schema(
        request=ImportSerializer,
        responses={201: ImportResultSerializer, 200: ImportResultSerializer},
        summary="Create (201) or update (200) an agent from a dotprompt file"),
)
class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _AgentsViewSet):
    model = Agent
    serializer_class = AgentSerializer
    pagination_class = NamePagination
    http_method_names = ["get", "post", "patch", "delete"]
    permission_map = {
        "list": "agents.read", "retrieve": "agents.read", "versions": "agents.read",
        "export_dotprompt": "agents.read", "create": "agents.write",
        "partial_update": "agents.write", "destroy": "agents.write", "publish": "agents.write",
        "import_dotprompt": "agents.write",
    }

    def scoped_queryset(self) -> QuerySet[Agent]:
        return self.in_environments(Agent.objects.select_related("environment"))

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = validated(AgentCreateSerializer, request.data)
            env = self.environment_from_slug(data.pop("environment"))
            agent = services.create_agent(actor=self.principal, environment=env,
                                          name=data.pop("name"), **data)
            return Response(AgentSerializer(agent).data, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        agent = self.get_object()
        data = validated(AgentUpdateSerializer, request.data)
        agent = services.update_agent(actor=self.principal, agent=agent, **data)
        return Response(AgentSerializer(agent).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_agent(actor=self.principal, agent=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str) -> Response:
        agent = self.get_object()
        data = validated(PublishSerializer, request.data)
        version = services.publish_agent(actor=self.principal, agent=agent,
                                         note=data.get("note", ""))
        return Response(AgentVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str) -> Response:
        agent = self.get_object()
        paginator = VersionPagination()
        qs = AgentVersion.objects.select_related("agent").filter(agent=agent)
        page = paginator.paginate_queryset(qs, request, view=self)
        assert page is not None
        return paginator.get_paginated_response(AgentVersionSerializer(page, many=True).data)

    @action(detail=True, methods=["get"], url_path="dotprompt")
    def export_dotprompt(self, request: Request, pk: str) -> HttpResponse:
        agent = self.get_object()
        raw = request.query_params.get("version")
        if raw is None:
            return _download(dotprompt.render(agent.name, agent.definition()),
                             f"{agent.name}.prompt")
        if not raw.isdigit():
            raise InvalidInput.field("version", f"{raw!r} is not a version number.")
        version = selectors.version_by_number(agent, int(raw))
        if version is None:
            raise NotFound(f"Agent {agent.name!r} has no version {raw}.")
        text = dotprompt.render(agent.name, version.definition, version=version.number,
                                digest=version.content_hash)
        return _download(text, f"{agent.name}.v{version.number}.prompt")

    @action(detail=False, methods=["post"], url_path="import")
    def import_dotprompt(self, request: Request) -> Response:
        def _import() -> Response:
            data = validated(ImportSerializer, request.data)
            env = self.environment_from_slug(data["environment"])
            agent, created = services.import_agent(actor=self.principal, environment=env,
                                                   text=data["dotprompt"],
                                                   name=data.get("name"))
            body = {**AgentSerializer(agent).data, "created": created}
            return Response(body, status=status.HTTP_201_CREATED if created
                            else status.HTTP_200_OK)

        return self.idempotent_create(request, _import)


# --- versions -----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[AGENT_PARAM],
                       summary="List published agent versions, newest first"),
    retrieve=extend_schema(summary="A published, immutable agent version"),
)
class AgentVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _AgentsViewSet):
    model = AgentVersion
    serializer_class = AgentVersionSerializer
    pagination_class = PublishedPagination
    http_method_names = ["get"]
    permission_map = {"list": "agents.read", "retrieve": "agents.read"}

    def scoped_queryset(self) -> QuerySet[AgentVersion]:
        qs = AgentVersion.objects.select_related("agent").filter(
            agent__environment__in=self.environments())
        if self.action == "list" and (agent_id := self.request.query_params.get("agent")):
            try:
                uuid.UUID(agent_id)
            except ValueError as exc:
                raise InvalidInput.field("agent", f"{agent_id!r} is not an agent id.") from exc
            qs = qs.filter(agent_id=agent_id)
        return qs
