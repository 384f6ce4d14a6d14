"""REST API of enterprise identity: the org's SAML IdP, verified domains, group mappings.

Everything here is organization administration: `org.manage`, reads included (the IdP
configuration and domain challenge tokens are an admin's business).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from station.api.permissions import HasOrgPermission
from station.api.viewsets import OrgScopedViewSet
from station.identity import saml, services
from station.identity.models import (
    GroupRoleMapping,
    OidcConnection,
    SamlConnection,
    VerifiedDomain,
)
from tenants.authz import Principal
from tenants.models import Organization

MANAGE = "org.manage"


def _validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# --- SAML connection ------------------------------------------------------------------------


class SpValuesSerializer(serializers.Serializer[Any]):
    entity_id = serializers.CharField(help_text="SP entity id (Audience) to give the IdP")
    acs_url = serializers.CharField(help_text="Assertion Consumer Service URL (HTTP-POST)")
    metadata_url = serializers.CharField(help_text="SP metadata, for IdPs that import it")
    login_url = serializers.CharField(help_text="Starts an SP-initiated login")


class SamlConfigSerializer(serializers.Serializer[Any]):
    configured = serializers.BooleanField()
    sp = SpValuesSerializer()
    idp_entity_id = serializers.CharField(required=False)
    idp_sso_url = serializers.CharField(required=False)
    idp_x509cert = serializers.CharField(required=False)
    metadata_url = serializers.CharField(
        required=False, help_text="Where the IdP metadata was read from (blank: given by hand)")
    metadata_fetched_at = serializers.DateTimeField(required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False)
    allow_idp_initiated = serializers.BooleanField(required=False)
    enforce_sso = serializers.BooleanField(required=False)
    group_attribute = serializers.CharField(required=False)
    default_role = serializers.CharField(required=False)
    updated_at = serializers.DateTimeField(required=False)


class SamlConfigInputSerializer(serializers.Serializer[Any]):
    metadata_url = serializers.CharField(
        required=False, allow_blank=True, max_length=2000,
        help_text="https:// URL of the IdP metadata, read once now (never at sign-in); or "
                  "metadata_xml, or the three values by hand")
    refresh_metadata = serializers.BooleanField(
        required=False, help_text="Read the metadata again now from the stored metadata_url")
    metadata_xml = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                         help_text="IdP metadata XML; or the next three")
    entity_id = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    sso_url = serializers.CharField(required=False, allow_blank=True, max_length=2000,
                                    help_text="https:// HTTP-Redirect SSO endpoint")
    x509cert = serializers.CharField(required=False, allow_blank=True,
                                     help_text="The IdP's signing certificate (PEM)")
    enabled = serializers.BooleanField(required=False)
    allow_idp_initiated = serializers.BooleanField(
        required=False, help_text="Accept responses Station did not ask for (off by default)")
    enforce_sso = serializers.BooleanField(
        required=False, help_text="Refuse password login for members (owners: break-glass)")
    group_attribute = serializers.CharField(required=False, allow_blank=True, max_length=500)
    default_role = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                         help_text="Role when no group maps; blank refuses")


def saml_config_body(org: Organization, connection: SamlConnection | None) -> dict[str, Any]:
    body: dict[str, Any] = {"configured": connection is not None,
                            "sp": vars(saml.sp_values(org.slug))}
    if connection is not None:
        body.update({name: getattr(connection, name) for name in (
            "idp_entity_id", "idp_sso_url", "idp_x509cert", "metadata_url",
            "metadata_fetched_at", "enabled", "allow_idp_initiated", "enforce_sso",
            "group_attribute", "default_role", "updated_at")})
    return body


class SamlConfigView(APIView):
    permission_classes = [HasOrgPermission]
    permission_map = {"get": MANAGE, "put": MANAGE, "delete": MANAGE}

    def _principal(self) -> Principal:
        assert isinstance(self.request.auth, Principal)
        return self.request.auth

    def _org(self) -> Organization:
        key = self._principal().api_key
        assert key is not None
        return key.organization

    @extend_schema(responses=SamlConfigSerializer, summary="The org's SAML IdP and SP values")
    def get(self, request: Request) -> Response:
        org = self._org()
        return Response(saml_config_body(org, SamlConnection.objects.first()))

    @extend_schema(request=SamlConfigInputSerializer, responses=SamlConfigSerializer,
                   summary="Set or change the org's SAML IdP")
    def put(self, request: Request) -> Response:
        data = _validated(SamlConfigInputSerializer, request.data)
        org = self._org()
        connection = services.configure_saml(actor=self._principal(), org=org, **data)
        return Response(saml_config_body(org, connection))

    @extend_schema(responses={204: None}, summary="Remove the org's SAML IdP")
    def delete(self, request: Request) -> Response:
        services.remove_saml(actor=self._principal(), org=self._org())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- verified domains --------------------------------------------------------------------------


class VerifiedDomainSerializer(serializers.ModelSerializer[VerifiedDomain]):
    verified = serializers.SerializerMethodField()
    txt_record = serializers.SerializerMethodField(
        help_text="Publish this TXT record at the domain, then call verify")

    class Meta:
        model = VerifiedDomain
        fields = ["id", "domain", "verified", "verified_at", "txt_record", "created_at"]
        read_only_fields = fields

    def get_verified(self, obj: VerifiedDomain) -> bool:
        return obj.verified_at is not None

    def get_txt_record(self, obj: VerifiedDomain) -> str:
        return obj.txt_value


class DomainCreateSerializer(serializers.Serializer[Any]):
    domain = serializers.CharField(max_length=253)


@extend_schema_view(
    create=extend_schema(request=DomainCreateSerializer,
                         responses={201: VerifiedDomainSerializer}),
    verify=extend_schema(request=None, responses=VerifiedDomainSerializer),
)
class VerifiedDomainViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                            OrgScopedViewSet):
    model = VerifiedDomain
    serializer_class = VerifiedDomainSerializer
    http_method_names = ["get", "post", "delete"]
    permission_map = {"list": MANAGE, "retrieve": MANAGE, "create": MANAGE,
                      "destroy": MANAGE, "verify": MANAGE}

    def scoped_queryset(self) -> QuerySet[VerifiedDomain]:
        return VerifiedDomain.objects.all()

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = _validated(DomainCreateSerializer, request.data)
            row = services.add_domain(actor=self.principal, org=self.org, domain=data["domain"])
            return Response(VerifiedDomainSerializer(row).data, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def destroy(self, request: Request, pk: str) -> Response:
        services.remove_domain(actor=self.principal, domain=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def verify(self, request: Request, pk: str) -> Response:
        row = services.verify_domain(actor=self.principal, domain=self.get_object())
        return Response(VerifiedDomainSerializer(row).data)


# --- group mappings ----------------------------------------------------------------------------


class GroupMappingSerializer(serializers.ModelSerializer[GroupRoleMapping]):
    class Meta:
        model = GroupRoleMapping
        fields = ["id", "group", "role", "created_at"]
        read_only_fields = ["id", "created_at"]


class GroupMappingInputSerializer(serializers.Serializer[Any]):
    group = serializers.CharField(max_length=500, help_text="As the IdP sends it")
    role = serializers.CharField(max_length=64, help_text="A built-in role other than owner")


@extend_schema_view(
    create=extend_schema(request=GroupMappingInputSerializer,
                         responses={201: GroupMappingSerializer},
                         summary="Map an IdP group to a role (replaces the group's mapping)"),
)
class GroupMappingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = GroupRoleMapping
    serializer_class = GroupMappingSerializer
    http_method_names = ["get", "post", "delete"]
    permission_map = {"list": MANAGE, "retrieve": MANAGE, "create": MANAGE,
                      "destroy": MANAGE}

    def scoped_queryset(self) -> QuerySet[GroupRoleMapping]:
        return GroupRoleMapping.objects.all()

    def create(self, request: Request) -> Response:
        data = _validated(GroupMappingInputSerializer, request.data)
        mapping = services.set_group_mapping(actor=self.principal, org=self.org, **data)
        return Response(GroupMappingSerializer(mapping).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_group_mapping(actor=self.principal, mapping=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- OIDC connection ----------------------------------------------------------------------------


class OidcConfigSerializer(serializers.Serializer[Any]):
    configured = serializers.BooleanField()
    redirect_uri = serializers.CharField(help_text="Register this redirect URI at the IdP")
    login_url = serializers.CharField(help_text="Starts a login through the org's OIDC IdP")
    issuer = serializers.CharField(required=False)
    client_id = serializers.CharField(required=False)
    client_secret_set = serializers.BooleanField(
        required=False, help_text="The secret itself is write-only")
    authorization_endpoint = serializers.CharField(required=False)
    token_endpoint = serializers.CharField(required=False)
    jwks_uri = serializers.CharField(required=False)
    scopes = serializers.CharField(required=False)
    groups_claim = serializers.CharField(required=False)
    default_role = serializers.CharField(required=False)
    enabled = serializers.BooleanField(required=False)
    enforce_sso = serializers.BooleanField(required=False)
    updated_at = serializers.DateTimeField(required=False)


class OidcConfigInputSerializer(serializers.Serializer[Any]):
    issuer = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    client_id = serializers.CharField(required=False, allow_blank=True, max_length=500)
    client_secret = serializers.CharField(
        required=False, allow_blank=True, max_length=1000, trim_whitespace=False,
        write_only=True, help_text="Write-only; blank keeps the stored secret")
    discover = serializers.BooleanField(
        required=False, help_text="Read the endpoints from the issuer's discovery document now")
    authorization_endpoint = serializers.CharField(required=False, allow_blank=True)
    token_endpoint = serializers.CharField(required=False, allow_blank=True)
    jwks_uri = serializers.CharField(required=False, allow_blank=True)
    scopes = serializers.CharField(required=False, allow_blank=True, max_length=500)
    groups_claim = serializers.CharField(required=False, allow_blank=True, max_length=200)
    default_role = serializers.CharField(required=False, allow_blank=True, max_length=64)
    enabled = serializers.BooleanField(required=False)
    enforce_sso = serializers.BooleanField(required=False)


def oidc_config_body(org: Organization, connection: OidcConnection | None) -> dict[str, Any]:
    from django.conf import settings
    from django.urls import reverse

    from station.identity.oidc_views import redirect_uri

    login = reverse("openid_connect_login", kwargs={"provider_id": org.slug})
    body: dict[str, Any] = {"configured": connection is not None,
                            "redirect_uri": redirect_uri(org.slug),
                            "login_url": f"{settings.PUBLIC_URL.rstrip('/')}{login}"}
    if connection is not None:
        body.update({name: getattr(connection, name) for name in (
            "issuer", "client_id", "authorization_endpoint", "token_endpoint", "jwks_uri",
            "scopes", "groups_claim", "default_role", "enabled", "enforce_sso", "updated_at")})
        body["client_secret_set"] = connection.has_secret
    return body


class OidcConfigView(SamlConfigView):
    @extend_schema(responses=OidcConfigSerializer,
                   summary="The org's OpenID Connect provider and its redirect URI")
    def get(self, request: Request) -> Response:
        return Response(oidc_config_body(self._org(), OidcConnection.objects.first()))

    @extend_schema(request=OidcConfigInputSerializer, responses=OidcConfigSerializer,
                   summary="Set or change the org's OpenID Connect provider")
    def put(self, request: Request) -> Response:
        data = _validated(OidcConfigInputSerializer, request.data)
        org = self._org()
        connection = services.configure_oidc(actor=self._principal(), org=org, **data)
        return Response(oidc_config_body(org, connection))

    @extend_schema(responses={204: None}, summary="Remove the org's OpenID Connect provider")
    def delete(self, request: Request) -> Response:
        services.remove_oidc(actor=self._principal(), org=self._org())
        return Response(status=status.HTTP_204_NO_CONTENT)
