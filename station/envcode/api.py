"""REST endpoints for environment bundles and promotion, on one environment (the target).

The route permission (`permission_map`) is checked for the organization; the services then
check every kind's permission on the environment itself, so a member narrowed to viewer in
prod is refused there even when they may write elsewhere.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from station.api.viewsets import OrgScopedViewSet, validated
from station.core.errors import InvalidInput
from station.envcode import services
from tenants.models import Environment

# --- serializers ------------------------------------------------------------------------------


class BundleSerializer(serializers.Serializer[Any]):
    files = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        help_text="Bundle files, path → YAML text (station-environment.yaml, variables.yaml, "
                  "secrets.yaml, …)")


class BundleApplySerializer(BundleSerializer):
    prune = serializers.BooleanField(
        default=False, help_text="Also remove what the bundle's files do not list")


class PromotionSerializer(serializers.Serializer[Any]):
    # A declared field named like Field.source: DRF's metaclass takes it out of the class.
    source = serializers.SlugField(  # type: ignore[assignment]
        help_text="Slug of the environment to promote from")
    dry_run = serializers.BooleanField(default=False, help_text="Only compute the changes")
    kinds = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text="Kinds to promote (default: all)")


class BundleChangeSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField()
    name = serializers.CharField()
    action = serializers.ChoiceField(choices=["add", "change", "remove", "missing"])
    before = serializers.CharField(allow_null=True)
    after = serializers.CharField(allow_null=True)
    note = serializers.CharField()


class PlanEnvironmentSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    slug = serializers.CharField()


class BundlePlanSerializer(serializers.Serializer[Any]):
    environment = PlanEnvironmentSerializer()
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="Source environment, or the bundle's source")
    prune = serializers.BooleanField()
    applied = serializers.BooleanField()
    empty = serializers.BooleanField(help_text="True when there is nothing to change")
    summary = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()),
                                    help_text="kind → action → count")
    changes = BundleChangeSerializer(many=True)
    missing = BundleChangeSerializer(many=True,
                                     help_text="Notices: secrets to set by hand in the target")


class EnvironmentBundleViewSet(OrgScopedViewSet):
    model = Environment
    permission_map = {
        "bundle": "variables.read", "bundle_diff": "variables.read",
        "bundle_apply": "variables.write", "promotion": "variables.write",
    }

    def scoped_queryset(self) -> QuerySet[Environment]:
        envs = Environment.objects.select_related("organization")
        bound = self.principal.api_key.environment_id if self.principal.api_key else None
        return envs.filter(pk=bound) if bound else envs

    @extend_schema(responses=BundleSerializer, summary="Export the environment as a bundle",
                   description="Needs variables.read and secrets.read on the environment. "
                               "Secret names only, never values.")
    @action(detail=True, methods=["get"], url_path="bundle")
    def bundle(self, request: Request, pk: str) -> Response:
        files = services.export_bundle(actor=self.principal, environment=self.get_object())
        return Response({"files": files})

    @extend_schema(request=BundleApplySerializer, responses=BundlePlanSerializer,
                   summary="What applying a bundle would change (nothing is changed)")
    @action(detail=True, methods=["post"], url_path="bundle/diff")
    def bundle_diff(self, request: Request, pk: str) -> Response:
        env = self.get_object()
        data = validated(BundleApplySerializer, request.data)
        plan = services.apply_bundle(actor=self.principal, environment=env, files=data["files"],
                                     prune=data["prune"], dry_run=True)
        return Response(plan.as_dict())

    @extend_schema(request=BundleApplySerializer, responses=BundlePlanSerializer,
                   summary="Apply a bundle to the environment (all or nothing)",
                   description="Needs variables.write on the environment (and secrets.write "
                               "when prune removes secrets). Secrets listed but missing are "
                               "reported, never created.")
    @action(detail=True, methods=["post"], url_path="bundle/apply")
    def bundle_apply(self, request: Request, pk: str) -> Response:
        env = self.get_object()
        data = validated(BundleApplySerializer, request.data)
        plan = services.apply_bundle(actor=self.principal, environment=env, files=data["files"],
                                     prune=data["prune"])
        return Response(plan.as_dict())

    @extend_schema(request=PromotionSerializer, responses=BundlePlanSerializer,
                   summary="Promote names from another environment into this one")
    @action(detail=True, methods=["post"], url_path="promotion")
    def promotion(self, request: Request, pk: str) -> Response:
        target = self.get_object()
        data = validated(PromotionSerializer, request.data)
        source = self.get_queryset().filter(slug=data["source"]).first()
        if source is None:
            raise InvalidInput.field("source", f"No environment {data['source']!r} in this "
                                     "organization.")
        plan = services.promote(actor=self.principal, source=source, target=target,
                                kinds=data.get("kinds"), dry_run=data["dry_run"])
        return Response(plan.as_dict())
