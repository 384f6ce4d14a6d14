"""REST endpoints for the org's SCIM bearer tokens (the console's SCIM page, as an API).

Tokens are created and revoked through station.scim.tokens, like the console, so the same
checks (`org.manage`) and audit events (`scim.token_created`, `scim.token_revoked`) apply. The
plaintext is in the create response only: never stored, never kept by the idempotency layer.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from station.api.viewsets import OrgScopedViewSet, validated
from station.scim import tokens
from station.scim.models import ScimToken


class ScimTokenSerializer(serializers.ModelSerializer[ScimToken]):
    prefix = serializers.CharField(source="display", read_only=True,
                                   help_text="The token's id and last four characters")
    created_by = serializers.EmailField(source="created_by.email", read_only=True, default=None)
    created_by_key = serializers.CharField(
        source="created_by_key.display", read_only=True, default=None,
        help_text="The API key that made this token, if one did: the token is refused once "
                  "that key is revoked or expired.")

    class Meta:
        model = ScimToken
        fields = ["id", "name", "prefix", "created_by", "created_by_key", "created_at",
                  "revoked_at", "last_used_at"]
        read_only_fields = fields


class ScimTokenCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, help_text="e.g. the IdP it is for")


class ScimTokenCreatedSerializer(ScimTokenSerializer):
    token = serializers.CharField(
        read_only=True, help_text="The bearer token for the IdP's SCIM client. Shown only in "
                                  "this response.")

    class Meta(ScimTokenSerializer.Meta):
        fields = [*ScimTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(summary="The organization's SCIM tokens (revoked ones included)"),
    retrieve=extend_schema(summary="A SCIM token"),
    create=extend_schema(request=ScimTokenCreateSerializer,
                         responses={201: ScimTokenCreatedSerializer},
                         summary="Create a SCIM token (the secret is shown once)"),
    revoke=extend_schema(request=None, responses=ScimTokenSerializer,
                         summary="Revoke a SCIM token (the IdP's requests are refused from now)"),
)
class ScimTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    model = ScimToken
    serializer_class = ScimTokenSerializer
    idempotency_redact = ("token",)
    # A SCIM token provisions people and sets roles: org administration, like the console page.
    permission_map = {"list": "org.manage", "retrieve": "org.manage", "create": "org.manage",
                      "revoke": "org.manage"}

    def scoped_queryset(self) -> QuerySet[ScimToken]:
        return ScimToken.objects.select_related("created_by", "created_by_key")

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = validated(ScimTokenCreateSerializer, request.data)
            created = tokens.create_scim_token(actor=self.principal, org=self.org,
                                               name=data["name"])
            body = ScimTokenCreatedSerializer(created.token).data
            body["token"] = created.plaintext
            return Response(body, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        token = tokens.revoke_scim_token(actor=self.principal, token=self.get_object())
        return Response(ScimTokenSerializer(token).data)
