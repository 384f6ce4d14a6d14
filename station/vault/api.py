"""REST endpoints for the vault: write-only secrets, variables, data-key rotation.

No response here ever carries a secret's value or ciphertext: serializers name their fields
explicitly, and the value travels only inward, to the services.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from station.api.pagination import StationCursorPagination
from station.api.permissions import HasOrgPermission
from station.api.viewsets import EnvironmentScopedViewSet, validated
from station.core.errors import AccessDenied
from station.vault import selectors, services
from station.vault.models import Secret, SecretVersion, Variable
from tenants.authz import Principal
from tenants.models import Environment

# --- serializers ------------------------------------------------------------------------------


class SecretVersionSerializer(serializers.ModelSerializer[SecretVersion]):
    class Meta:
        model = SecretVersion
        fields = ["version", "fingerprint", "created_at", "created_by_label"]
        read_only_fields = fields


class SecretSerializer(serializers.ModelSerializer[Secret]):
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True)
    fingerprint = serializers.CharField(
        read_only=True, allow_null=True,
        help_text="Keyed fingerprint of the current value: tells versions apart, reveals "
                  "nothing about the value")

    class Meta:
        model = Secret
        fields = ["id", "name", "environment", "current_version", "fingerprint", "created_at",
                  "updated_at", "updated_by_label", "last_revealed_at", "last_revealed_for"]
        read_only_fields = fields


class SecretDetailSerializer(SecretSerializer):
    versions = SecretVersionSerializer(many=True, read_only=True,
                                       help_text="Kept versions, newest first")

    class Meta(SecretSerializer.Meta):
        fields = [*SecretSerializer.Meta.fields, "versions"]
        read_only_fields = fields


class SecretCreateSerializer(serializers.Serializer[Any]):
    environment = serializers.SlugField(help_text="Environment slug")
    name = serializers.CharField(max_length=200, help_text="e.g. GITHUB_TOKEN")
    value = serializers.CharField(write_only=True, trim_whitespace=False,
                                  style={"input_type": "password"},
                                  help_text="The value; never returned by any endpoint")


class SecretValueSerializer(serializers.Serializer[Any]):
    value = serializers.CharField(write_only=True, trim_whitespace=False,
                                  style={"input_type": "password"},
                                  help_text="The new value; stored as a new version")


class VariableSerializer(serializers.ModelSerializer[Variable]):
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True)

    class Meta:
        model = Variable
        fields = ["id", "name", "environment", "value", "updated_at", "updated_by_label"]
        read_only_fields = fields


class VariableSetSerializer(serializers.Serializer[Any]):
    environment = serializers.SlugField(help_text="Environment slug")
    name = serializers.CharField(max_length=200, help_text="e.g. API_BASE_URL")
    value = serializers.CharField(allow_blank=True, trim_whitespace=False)


class VariableValueSerializer(serializers.Serializer[Any]):
    value = serializers.CharField(allow_blank=True, trim_whitespace=False)


class RotationSerializer(serializers.Serializer[Any]):
    values_reencrypted = serializers.IntegerField()


# --- shared by secrets and variables ----------------------------------------------------------


ENVIRONMENT_PARAM = OpenApiParameter(
    "environment", str, description="Only rows of the environment with this slug")


class NamePagination(StationCursorPagination):
    ordering = ("name", "id")


class _EnvironmentRowsViewSet(mixins.ListModelMixin, EnvironmentScopedViewSet):
    """Shared by secrets and variables: rows of the environments where the principal holds
    the area's read or write permission."""

    pagination_class = NamePagination


# --- secrets ------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[ENVIRONMENT_PARAM], summary="List secrets (never values)"),
    retrieve=extend_schema(responses=SecretDetailSerializer,
                           summary="A secret's metadata and kept versions (never values)"),
    create=extend_schema(request=SecretCreateSerializer, responses={201: SecretSerializer},
                         summary="Create a secret (409 if the name is taken)"),
    value=extend_schema(request=SecretValueSerializer, responses=SecretSerializer,
                        summary="Set a new value (a new version)"),
    destroy=extend_schema(responses={204: None},
                          summary="Delete a secret and all its versions"),
)
class SecretViewSet(mixins.RetrieveModelMixin, _EnvironmentRowsViewSet):
    model = Secret
    environment_permissions = ("secrets.read", "secrets.write")
    serializer_class = SecretSerializer
    http_method_names = ["get", "post", "put", "delete"]
    permission_map = {
        "list": "secrets.read", "retrieve": "secrets.read", "create": "secrets.write",
        "value": "secrets.write", "destroy": "secrets.write",
    }

    def scoped_queryset(self) -> QuerySet[Secret]:
        return self.in_environments(selectors.secrets_with_fingerprints())

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        return SecretDetailSerializer if self.action == "retrieve" else SecretSerializer

    def _body(self, secret: Secret) -> dict[str, Any]:
        # Re-read through the scoped queryset: the annotation carries the new fingerprint.
        return dict(SecretSerializer(self.scoped_queryset().get(pk=secret.pk)).data)

    def create(self, request: Request) -> Response:
        # No Idempotency-Key replay here: its record would hold a hash of the request body,
        # and a secret's value must not be stored anywhere outside the vault, hashed or not.
        data = validated(SecretCreateSerializer, request.data)
        env = self.environment_from_slug(data["environment"])
        secret = services.create_secret(actor=self.principal, environment=env,
                                        name=data["name"], value=data["value"])
        return Response(self._body(secret), status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["put"])
    def value(self, request: Request, pk: str) -> Response:
        secret = self.get_object()
        data = validated(SecretValueSerializer, request.data)
        secret = services.set_secret(actor=self.principal, environment=secret.environment,
                                     name=secret.name, value=data["value"])
        return Response(self._body(secret))

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_secret(actor=self.principal, secret=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- variables ----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[ENVIRONMENT_PARAM], summary="List environment variables"),
    create=extend_schema(request=VariableSetSerializer,
                         responses={200: VariableSerializer, 201: VariableSerializer},
                         summary="Set a variable (201 when created, 200 when updated)"),
    partial_update=extend_schema(request=VariableValueSerializer, responses=VariableSerializer,
                                 summary="Change a variable's value"),
    destroy=extend_schema(responses={204: None}, summary="Delete a variable"),
)
class VariableViewSet(mixins.RetrieveModelMixin, _EnvironmentRowsViewSet):
    model = Variable
    environment_permissions = ("variables.read", "variables.write")
    serializer_class = VariableSerializer
    http_method_names = ["get", "post", "patch", "delete"]
    permission_map = {
        "list": "variables.read", "retrieve": "variables.read", "create": "variables.write",
        "partial_update": "variables.write", "destroy": "variables.write",
    }

    def scoped_queryset(self) -> QuerySet[Variable]:
        return self.in_environments(Variable.objects.select_related("environment"))

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = validated(VariableSetSerializer, request.data)
            env = self.environment_from_slug(data["environment"])
            existed = Variable.objects.filter(environment=env, name=data["name"]).exists()
            variable = services.set_variable(actor=self.principal, environment=env,
                                             name=data["name"], value=data["value"])
            return Response(VariableSerializer(variable).data,
                            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        variable = self.get_object()
        data = validated(VariableValueSerializer, request.data)
        variable = services.set_variable(actor=self.principal, environment=variable.environment,
                                         name=variable.name, value=data["value"])
        return Response(VariableSerializer(variable).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_variable(actor=self.principal, variable=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- rotation -----------------------------------------------------------------------------------


class DataKeyRotationView(APIView):
    permission_classes = [HasOrgPermission]
    permission_map = {"post": "secrets.write"}

    @extend_schema(request=None, responses=RotationSerializer,
                   summary="Replace the organization's data key and re-encrypt every value")
    def post(self, request: Request) -> Response:
        principal = request.auth
        assert isinstance(principal, Principal) and principal.api_key is not None
        if principal.api_key.environment_id is not None:
            # The data key protects every environment: not one environment's key to turn.
            raise AccessDenied("secrets.write", "An environment-bound key cannot rotate the "
                                                "organization's data key.")
        count = services.rotate_data_key(actor=principal, org=principal.api_key.organization)
        return Response({"values_reencrypted": count})
