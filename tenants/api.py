"""REST endpoints: current principal, organization, environments, members, roles, API keys."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from station.accounts import services as account_services
from station.api.permissions import HasOrgPermission
from station.api.viewsets import OrgScopedViewSet
from station.core.errors import InvalidInput, NotFound
from tenants import roles, services
from tenants.authz import Principal, effective_permissions
from tenants.models import ApiKey, Environment, Membership, Organization
from tenants.permissions import PERMISSIONS

# --- serializers ------------------------------------------------------------------------------


class OrganizationSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(read_only=True)
    slug = serializers.CharField(read_only=True)
    name = serializers.CharField(max_length=200, required=False)
    require_mfa = serializers.BooleanField(
        required=False,
        help_text="Members must use two-factor authentication to open this organization "
                  "(the console's Security page; docs/mfa-and-sessions.md).")
    created_at = serializers.DateTimeField(read_only=True)


class EnvironmentSerializer(serializers.ModelSerializer[Environment]):
    class Meta:
        model = Environment
        fields = ["id", "slug", "name", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs: dict[str, Any] = {"slug": {"validators": []}}


class EnvironmentUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)


class MemberSerializer(serializers.ModelSerializer[Membership]):
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)
    environment_roles = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "environment_roles", "created_at"]
        read_only_fields = fields

    def get_environment_roles(self, obj: Membership) -> dict[str, str]:
        return {er.environment.slug: er.role for er in obj.environment_roles.all()}


_ROLE_HELP = "A built-in role or one of the organization's custom roles (GET /api/v1/roles)"


class InviteSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField()
    role = serializers.CharField(max_length=64, help_text=_ROLE_HELP)


class RoleChangeSerializer(serializers.Serializer[Any]):
    role = serializers.CharField(max_length=64, help_text=_ROLE_HELP)


class EnvironmentRoleSerializer(serializers.Serializer[Any]):
    environment = serializers.SlugField(help_text="Environment slug")
    role = serializers.CharField(max_length=64, allow_null=True,
                                 help_text="Role in that environment; null removes it. "
                                           + _ROLE_HELP)


class RoleSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    description = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())
    built_in = serializers.BooleanField(help_text="Built-in roles are read-only")
    created_at = serializers.DateTimeField(allow_null=True, help_text="null for built-in roles")
    updated_at = serializers.DateTimeField(allow_null=True, help_text="null for built-in roles")


class RoleCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=50, help_text="Lowercase letters, digits and "
                                 "hyphens; not a built-in role's name. Cannot be changed later.")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    permissions = serializers.ListField(child=serializers.CharField(), allow_empty=True,
                                        help_text="Permission names (GET /api/v1/roles/"
                                                  "permissions)")


class RoleUpdateSerializer(serializers.Serializer[Any]):
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    permissions = serializers.ListField(child=serializers.CharField(), required=False,
                                        allow_empty=True,
                                        help_text="The complete new set (replaces the old one)")


class ApiKeySerializer(serializers.ModelSerializer[ApiKey]):
    prefix = serializers.CharField(source="display", read_only=True)
    environment: serializers.SlugRelatedField[Environment] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    role = serializers.SerializerMethodField(
        help_text="The role the key was created with (null for a key made from scopes)")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "role", "environment", "created_by",
                  "created_at", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_role(self, obj: ApiKey) -> str | None:
        return obj.role or None


class ApiKeyCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    scopes = serializers.ListField(child=serializers.CharField(), required=False,
                                   help_text="Permission strings; or give `role` instead")
    role = serializers.CharField(max_length=64, required=False,
                                 help_text=_ROLE_HELP + ". A custom role's key holds that role's "
                                 "permissions as they are at each request.")
    environment = serializers.SlugField(required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True,
                                help_text="The secret. Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class PrincipalSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField()
    api_key = ApiKeySerializer()
    organization = OrganizationSerializer()
    permissions = serializers.ListField(child=serializers.CharField())


def _environment_by_slug(slug: str | None) -> Environment | None:
    if not slug:
        return None
    env = Environment.objects.filter(slug=slug).first()
    if env is None:
        from station.core.errors import InvalidInput

        raise InvalidInput.field("environment", f"No environment {slug!r} in this organization.")
    return env


def _validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _principal(request: Request) -> Principal:
    assert isinstance(request.auth, Principal)  # HasOrgPermission let only principals in
    return request.auth


def _org(request: Request) -> Organization:
    key = _principal(request).api_key
    assert key is not None
    return key.organization


# --- views --------------------------------------------------------------------------------------


class MeView(APIView):
    permission_classes = [HasOrgPermission]
    permission_map = {"get": "org.read"}

    @extend_schema(responses=PrincipalSerializer, summary="The calling principal")
    def get(self, request: Request) -> Response:
        principal = _principal(request)
        key = principal.api_key
        assert key is not None
        return Response({
            "kind": principal.kind,
            "api_key": ApiKeySerializer(key).data,
            "organization": OrganizationSerializer(key.organization).data,
            "permissions": sorted(effective_permissions(principal, key.organization_id)),
        })


class OrganizationView(APIView):
    permission_classes = [HasOrgPermission]
    permission_map = {"get": "org.read", "patch": "org.manage"}

    @extend_schema(responses=OrganizationSerializer, summary="The key's organization")
    def get(self, request: Request) -> Response:
        return Response(OrganizationSerializer(_org(request)).data)

    @extend_schema(request=OrganizationSerializer, responses=OrganizationSerializer,
                   summary="Rename the organization, or require MFA of its members")
    def patch(self, request: Request) -> Response:
        data = _validated(OrganizationSerializer, request.data)
        if not data:
            raise InvalidInput("Give at least one of: name, require_mfa.",
                               errors={"name": ["Give name or require_mfa."]})
        # The request's transaction (ATOMIC_REQUESTS) holds both changes: all or nothing.
        org = _org(request)
        if "name" in data:
            org = services.update_organization(
                actor=_principal(request), org=org, name=data["name"]
            )
        if "require_mfa" in data:
            # The console's Security page calls the same service (same audit event).
            org = account_services.set_require_mfa(
                actor=_principal(request), org=org, required=data["require_mfa"]
            )
        return Response(OrganizationSerializer(org).data)


@extend_schema_view(
    create=extend_schema(request=EnvironmentSerializer, responses={201: EnvironmentSerializer}),
    partial_update=extend_schema(request=EnvironmentUpdateSerializer,
                                 responses=EnvironmentSerializer),
)
class EnvironmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet
):
    model = Environment
    serializer_class = EnvironmentSerializer
    http_method_names = ["get", "post", "patch", "delete"]
    permission_map = {
        "list": "environments.read", "retrieve": "environments.read",
        "create": "environments.write", "partial_update": "environments.write",
        "destroy": "environments.delete",
    }

    def scoped_queryset(self) -> QuerySet[Environment]:
        envs = Environment.objects.all()
        bound = self.principal.api_key.environment_id if self.principal.api_key else None
        return envs.filter(pk=bound) if bound else envs

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = _validated(EnvironmentSerializer, request.data)
            env = services.create_environment(actor=self.principal, org=self.org, **data)
            return Response(EnvironmentSerializer(env).data, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        env = self.get_object()
        data = _validated(EnvironmentUpdateSerializer, request.data)
        env = services.update_environment(actor=self.principal, environment=env, name=data["name"])
        return Response(EnvironmentSerializer(env).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_environment(actor=self.principal, environment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    create=extend_schema(request=InviteSerializer, responses={201: MemberSerializer},
                         summary="Invite a person with a role"),
    partial_update=extend_schema(request=RoleChangeSerializer, responses=MemberSerializer,
                                 summary="Change a member's role"),
    environment_role=extend_schema(request=EnvironmentRoleSerializer, responses=MemberSerializer,
                                   summary="Narrow a member's role in one environment"),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = Membership
    serializer_class = MemberSerializer
    http_method_names = ["get", "post", "patch", "delete"]
    permission_map = {
        "list": "members.read", "retrieve": "members.read", "create": "members.manage",
        "partial_update": "members.manage", "destroy": "members.manage",
        "environment_role": "members.manage",
    }

    def scoped_queryset(self) -> QuerySet[Membership]:
        return Membership.objects.select_related("user").prefetch_related(
            "environment_roles__environment"
        )

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = _validated(InviteSerializer, request.data)
            member = services.invite_member(actor=self.principal, org=self.org, **data)
            return Response(MemberSerializer(member).data, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        member = self.get_object()
        data = _validated(RoleChangeSerializer, request.data)
        member = services.change_member_role(actor=self.principal, membership=member, **data)
        return Response(MemberSerializer(member).data)

    @extend_schema(responses={204: None}, summary="Remove a member")
    def destroy(self, request: Request, pk: str) -> Response:
        services.remove_member(actor=self.principal, membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"], url_path="environment-role")
    def environment_role(self, request: Request, pk: str) -> Response:
        member = self.get_object()
        data = _validated(EnvironmentRoleSerializer, request.data)
        env = _environment_by_slug(data["environment"])
        assert env is not None
        services.set_environment_role(actor=self.principal, membership=member,
                                      environment=env, role=data["role"])
        return Response(MemberSerializer(self.get_object()).data)


@extend_schema_view(
    list=extend_schema(responses=RoleSerializer(many=True),
                       summary="Built-in and custom roles with their permissions"),
    retrieve=extend_schema(responses=RoleSerializer, summary="One role, by name"),
    create=extend_schema(request=RoleCreateSerializer, responses={201: RoleSerializer},
                         summary="Create a custom role"),
    partial_update=extend_schema(
        request=RoleUpdateSerializer, responses=RoleSerializer,
        summary="Change a custom role (holders get the new permissions on their next request; "
                "built-in roles are read-only: 409)"),
    destroy=extend_schema(responses={204: None},
                          summary="Delete a custom role (409 while anyone or any key holds it)"),
)
class RoleViewSet(OrgScopedViewSet):
    """Roles by name: built-in (read-only) and the organization's custom roles."""

    serializer_class = RoleSerializer
    http_method_names = ["get", "post", "patch", "delete"]
    permission_map = {
        "list": "roles.read", "retrieve": "roles.read", "permissions": "roles.read",
        "create": "roles.manage", "partial_update": "roles.manage", "destroy": "roles.manage",
    }
    pagination_class = None
    lookup_value_regex = "[a-z0-9_-]+"

    @staticmethod
    def _body(role: roles.RoleInfo) -> dict[str, Any]:
        return {"name": role.name, "description": role.description,
                "permissions": sorted(role.permissions), "built_in": role.built_in,
                "created_at": role.created_at, "updated_at": role.updated_at}

    def _named(self, name: str) -> dict[str, Any]:
        role = roles.get_role(self.org, name)
        if role is None:
            raise NotFound("No such role in this organization.")
        return self._body(role)

    def list(self, request: Request) -> Response:
        return Response([self._body(r) for r in roles.list_roles(self.org)])

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self._named(pk))

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = _validated(RoleCreateSerializer, request.data)
            role = services.create_custom_role(actor=self.principal, org=self.org, **data)
            return Response(self._named(role.name), status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        data = _validated(RoleUpdateSerializer, request.data)
        role = services.update_custom_role(actor=self.principal, org=self.org, name=pk, **data)
        return Response(self._named(role.name))

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_custom_role(actor=self.principal, org=self.org, name=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: OpenApiResponse(description="permission → description")},
                   summary="The permission registry (what a custom role may hold)")
    @action(detail=False, methods=["get"])
    def permissions(self, request: Request) -> Response:
        return Response(dict(PERMISSIONS))




@extend_schema_view(
    create=extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer},
                         summary="Create an API key (the secret is shown once)"),
    revoke=extend_schema(request=None, responses=ApiKeySerializer, summary="Revoke an API key"),
)
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = ApiKey
    serializer_class = ApiKeySerializer
    idempotency_redact = ("key",)
    permission_map = {
        "list": "apikeys.read", "retrieve": "apikeys.read", "create": "apikeys.manage",
        "revoke": "apikeys.manage",
    }

    def scoped_queryset(self) -> QuerySet[ApiKey]:
        return ApiKey.objects.select_related("environment", "created_by")

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = _validated(ApiKeyCreateSerializer, request.data)
            created = services.create_api_key(
                actor=self.principal, org=self.org, name=data["name"],
                scopes=data.get("scopes"), role=data.get("role"),
                environment=_environment_by_slug(data.get("environment")),
                expires_at=data.get("expires_at"),
            )
            body = ApiKeyCreatedSerializer(created.api_key).data
            body["key"] = created.plaintext
            return Response(body, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        key = services.revoke_api_key(actor=self.principal, api_key=self.get_object())
        return Response(ApiKeySerializer(key).data)
