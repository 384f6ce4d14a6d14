"""REST endpoints for model provider connections (`/api/v1/providers`).

`api_key` is returned as stored: a `${secret:NAME}` reference, never a key. Agents name a
connection by `name` within their environment.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from station.api.pagination import StationCursorPagination
from station.api.viewsets import EnvironmentScopedViewSet, validated
from station.providers import services
from station.providers.models import ModelProvider
from tenants.models import Environment

API_KEY_HELP = ("A reference to a vault secret of the same environment, ${secret:NAME}, or "
                "blank. A pasted key is refused: store it as a secret first.")
BASE_URL_HELP = ("The API root (OpenAI-compatible: including /v1, e.g. "
                 "http://vllm.internal:8000/v1; Anthropic: https://api.anthropic.com). Blank "
                 "for the vendor's default. May use ${var:NAME}.")


class ProviderSerializer(serializers.ModelSerializer[ModelProvider]):
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True)
    api_key = serializers.CharField(read_only=True, help_text="As stored: a ${secret:NAME} "
                                                              "reference (never a key), or ''")
    scripted = serializers.SerializerMethodField(
        help_text="True for a scripted (demo/test) connection that calls no model")

    class Meta:
        model = ModelProvider
        fields = ["id", "name", "environment", "kind", "scripted", "base_url", "api_key",
                  "timeout_seconds", "max_retries", "created_at", "updated_at"]
        read_only_fields = fields

    def get_scripted(self, obj: ModelProvider) -> bool:
        return obj.kind == ModelProvider.SCRIPTED


class _ConfigSerializer(serializers.Serializer[Any]):
    base_url = serializers.CharField(max_length=2000, required=False, allow_blank=True,
                                     help_text=BASE_URL_HELP)
    api_key = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                    help_text=API_KEY_HELP)
    timeout_seconds = serializers.IntegerField(required=False,
                                               help_text="Per model call, 1-600 (default 60)")
    max_retries = serializers.IntegerField(
        required=False, help_text="Retries on 429/5xx/timeouts with backoff, 0-10 (default 2)")


class ProviderCreateSerializer(_ConfigSerializer):
    environment = serializers.SlugField(help_text="Environment slug")
    name = serializers.CharField(max_length=64, help_text="What agents call it, e.g. openai")
    kind = serializers.ChoiceField(choices=ModelProvider.KINDS)


class ProviderUpdateSerializer(_ConfigSerializer):
    kind = serializers.ChoiceField(choices=ModelProvider.KINDS, required=False)


class NamePagination(StationCursorPagination):
    ordering = ("name", "id")


@extend_schema_view(
    list=extend_schema(parameters=[OpenApiParameter(
        "environment", str, description="Only connections of the environment with this slug")],
        summary="List model provider connections"),
    retrieve=extend_schema(summary="A model provider connection (api_key as its reference)"),
    create=extend_schema(request=ProviderCreateSerializer, responses={201: ProviderSerializer},
                         summary="Add a model provider connection to an environment (409 if "
                                 "the name is taken)"),
    partial_update=extend_schema(request=ProviderUpdateSerializer,
                                 responses=ProviderSerializer,
                                 summary="Change a connection's settings (not its name)"),
    destroy=extend_schema(responses={204: None},
                          summary="Remove a connection (409 while agents use it)"),
)
class ProviderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       EnvironmentScopedViewSet):
    model = ModelProvider
    serializer_class = ProviderSerializer
    pagination_class = NamePagination
    http_method_names = ["get", "post", "patch", "delete"]
    permission_map = {
        "list": "agents.read", "retrieve": "agents.read", "create": "agents.write",
        "partial_update": "agents.write", "destroy": "agents.write",
    }

    environment_permissions = ("agents.read", "agents.write")

    def scoped_queryset(self) -> QuerySet[ModelProvider]:
        return self.in_environments(ModelProvider.objects.select_related("environment"))

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = validated(ProviderCreateSerializer, request.data)
            env = self.environment_from_slug(data.pop("environment"))
            provider = services.create_provider(actor=self.principal, environment=env,
                                                name=data.pop("name"), kind=data.pop("kind"),
                                                **data)
            return Response(ProviderSerializer(provider).data, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        provider = self.get_object()
        data = validated(ProviderUpdateSerializer, request.data)
        provider = services.update_provider(actor=self.principal, provider=provider, **data)
        return Response(ProviderSerializer(provider).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_provider(actor=self.principal, provider=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
