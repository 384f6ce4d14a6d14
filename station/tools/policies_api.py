"""REST endpoints for environment-wide tool policies (deny, require approval)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from station.tools import policies
from station.tools.api import NamePagination, _ToolsViewSet
from station.tools.models import ToolPolicy
from tenants.models import Environment


class ToolPolicySerializer(serializers.ModelSerializer[ToolPolicy]):
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True)

    class Meta:
        model = ToolPolicy
        fields = ["id", "environment", "tool", "effect", "note", "created_at"]
        read_only_fields = fields


class ToolPolicySetSerializer(serializers.Serializer[Any]):
    environment = serializers.SlugField(help_text="Environment slug")
    tool = serializers.CharField(max_length=300,
                                 help_text="server/tool, or server/* for every tool of it")
    effect = serializers.ChoiceField(choices=ToolPolicy.EFFECTS)
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


class ToolPolicyUpdateSerializer(serializers.Serializer[Any]):
    effect = serializers.ChoiceField(choices=ToolPolicy.EFFECTS, required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


class ToolPatternPagination(NamePagination):
    ordering = ("tool", "id")


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter(
        "environment", str, description="Only policies of the environment with this slug")],
        summary="List tool policies"),
    retrieve=extend_schema(summary="A tool policy"),
    create=extend_schema(request=ToolPolicySetSerializer,
                         responses={201: ToolPolicySerializer, 200: ToolPolicySerializer},
                         summary="Set the policy for a tool pattern in an environment (201 "
                                 "created, 200 when an existing one was changed)"),
    partial_update=extend_schema(request=ToolPolicyUpdateSerializer,
                                 responses=ToolPolicySerializer,
                                 summary="Change a policy's effect or note"),
    destroy=extend_schema(responses={204: None}, summary="Remove a tool policy"),
)
class ToolPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _ToolsViewSet):
    model = ToolPolicy
    serializer_class = ToolPolicySerializer
    pagination_class = ToolPatternPagination
    http_method_names = ["get", "post", "patch", "delete"]
    permission_map = {"list": "tools.read", "retrieve": "tools.read", "create": "tools.manage",
                      "partial_update": "tools.manage", "destroy": "tools.manage"}

    def scoped_queryset(self) -> QuerySet[ToolPolicy]:
        return self.in_environments(ToolPolicy.objects.select_related("environment"))

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            serializer = ToolPolicySetSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            env = self.environment_from_slug(data["environment"])
            existed = ToolPolicy.objects.filter(environment=env, tool=data["tool"]).exists()
            policy = policies.set_policy(actor=self.principal, environment=env,
                                         tool=data["tool"], effect=data["effect"],
                                         note=data.get("note", ""))
            return Response(ToolPolicySerializer(policy).data,
                            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        policy = self.get_object()
        serializer = ToolPolicyUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        policy = policies.set_policy(actor=self.principal, environment=policy.environment,
                                     tool=policy.tool, effect=data.get("effect", policy.effect),
                                     note=data.get("note", policy.note))
        return Response(ToolPolicySerializer(policy).data)

    def destroy(self, request: Request, pk: str) -> Response:
        policies.delete_policy(actor=self.principal, policy=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
