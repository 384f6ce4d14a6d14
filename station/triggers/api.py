"""REST endpoints for schedules, inbound and outbound webhooks, and the delivery log.

Signing secrets appear only in the responses that create or rotate them (`secret`), never
in reads, and never in a stored idempotent replay.
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

from station.agents.models import Agent
from station.api.viewsets import EnvironmentScopedViewSet, validated
from station.core.errors import InvalidInput
from station.triggers import cron, services
from station.triggers.models import (
    EVENT_NAMES,
    DeliveryAttempt,
    InboundWebhook,
    OutboundWebhook,
    Schedule,
    WebhookDelivery,
)

# --- serializers -----------------------------------------------------------------------------


class ScheduleSerializer(serializers.ModelSerializer[Schedule]):
    environment = serializers.CharField(source="environment.slug", read_only=True)
    agent = serializers.UUIDField(source="agent_id", read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    description = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = ["id", "name", "environment", "agent", "agent_name", "cron", "timezone",
                  "description", "input", "enabled", "last_run_at", "last_run_id",
                  "last_error", "next_run_at", "created_at", "updated_at"]
        read_only_fields = fields

    def get_description(self, obj: Schedule) -> str:
        return cron.describe(obj.cron)


class _ScheduleFields(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    cron = serializers.CharField(max_length=120, required=False,
                                 help_text="minute hour day-of-month month day-of-week")
    timezone = serializers.CharField(max_length=64, required=False,
                                     help_text="IANA name, e.g. Europe/Paris (default UTC)")
    input = serializers.JSONField(required=False, help_text="The run input (a JSON object)")
    enabled = serializers.BooleanField(required=False)


class ScheduleCreateSerializer(_ScheduleFields):
    agent = serializers.UUIDField(help_text="The agent to run")
    cron = serializers.CharField(max_length=120)


class _WebhookBase(serializers.ModelSerializer[Any]):
    environment = serializers.CharField(source="environment.slug", read_only=True)
    agent = serializers.UUIDField(source="agent_id", read_only=True, allow_null=True)
    agent_name = serializers.SerializerMethodField()

    def get_agent_name(self, obj: Any) -> str | None:
        return obj.agent.name if obj.agent_id else None


class InboundWebhookSerializer(_WebhookBase):
    url_path = serializers.SerializerMethodField(help_text="POST signed events here")

    class Meta:
        model = InboundWebhook
        fields = ["id", "name", "environment", "agent", "agent_name", "url_path", "enabled",
                  "secret_last_four", "secret_rotated_at", "last_used_at", "created_at",
                  "updated_at"]
        read_only_fields = fields

    def get_url_path(self, obj: InboundWebhook) -> str:
        return f"/hooks/{obj.pk}"


class OutboundWebhookSerializer(_WebhookBase):
    class Meta:
        model = OutboundWebhook
        fields = ["id", "name", "environment", "agent", "agent_name", "url", "events",
                  "enabled", "secret_last_four", "secret_rotated_at", "created_at",
                  "updated_at"]
        read_only_fields = fields


class InboundWebhookCreatedSerializer(InboundWebhookSerializer):
    secret = serializers.CharField(help_text="The signing secret: shown this once only")

    class Meta(InboundWebhookSerializer.Meta):
        fields = [*InboundWebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class OutboundWebhookCreatedSerializer(OutboundWebhookSerializer):
    secret = serializers.CharField(help_text="The signing secret: shown this once only")

    class Meta(OutboundWebhookSerializer.Meta):
        fields = [*OutboundWebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class InboundWebhookCreateSerializer(serializers.Serializer[Any]):
    agent = serializers.UUIDField()
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class InboundWebhookUpdateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class OutboundWebhookUpdateSerializer(InboundWebhookUpdateSerializer):
    url = serializers.CharField(max_length=2000, required=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_NAMES),
                                   required=False, allow_empty=False)


class OutboundWebhookCreateSerializer(OutboundWebhookUpdateSerializer):
    environment = serializers.SlugField(required=False,
                                        help_text="Environment slug (all its agents); or "
                                                  "give `agent` for one agent")
    agent = serializers.UUIDField(required=False, allow_null=True)
    url = serializers.CharField(max_length=2000)


class WebhookSecretSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    secret = serializers.CharField(help_text="The new signing secret: shown this once only")
    secret_last_four = serializers.CharField()


class DeliveryAttemptSerializer(serializers.ModelSerializer[DeliveryAttempt]):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "at", "response_code", "response_body", "error", "duration_ms"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    webhook = serializers.UUIDField(source="webhook_id", read_only=True)
    run = serializers.UUIDField(source="run_id", read_only=True, allow_null=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook", "run", "event", "status", "attempts", "response_code",
                  "response_body", "error", "created_at", "last_attempt_at",
                  "next_attempt_at", "delivered_at"]
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    attempt_log = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "payload", "attempt_log"]
        read_only_fields = fields


# --- shared ------------------------------------------------------------------------------------

AGENT_PARAM = OpenApiParameter("agent", uuid.UUID, description="Only this agent's")
ENVIRONMENT_PARAM = OpenApiParameter("environment", str,
                                     description="Only the environment with this slug")
_READ_WRITE = {"list": "agents.read", "retrieve": "agents.read", "create": "agents.write",
               "partial_update": "agents.write", "destroy": "agents.write"}


class _TriggerViewSet(EnvironmentScopedViewSet):
    http_method_names = ["get", "post", "patch", "delete"]

    environment_permissions = ("agents.read", "agents.write")

    def agent_from_id(self, agent_id: Any) -> Agent:
        agent = (Agent.objects.select_related("environment")
                 .filter(pk=agent_id, environment__in=self.environments()).first())
        if agent is None:
            raise InvalidInput.field("agent", "No such agent in this organization.")
        return agent

    def filtered(self, qs: QuerySet[Any]) -> QuerySet[Any]:
        qs = qs.filter(environment__in=self.environments())
        if self.action != "list":
            return qs
        params = self.request.query_params
        if slug := params.get("environment"):
            qs = qs.filter(environment=self.environment_from_slug(slug))
        if agent_id := params.get("agent"):
            try:
                uuid.UUID(agent_id)
            except ValueError as exc:
                raise InvalidInput.field("agent", f"{agent_id!r} is not an agent id.") from exc
            qs = qs.filter(agent_id=agent_id)
        return qs


# --- schedules ----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[AGENT_PARAM, ENVIRONMENT_PARAM], summary="List schedules"),
    retrieve=extend_schema(summary="A schedule, with its next and last run"),
    create=extend_schema(request=ScheduleCreateSerializer, responses={201: ScheduleSerializer},
                         summary="Run an agent on a cron schedule in a time zone"),
    partial_update=extend_schema(request=_ScheduleFields, responses=ScheduleSerializer,
                                 summary="Change a schedule (cron, time zone, input, enabled)"),
    destroy=extend_schema(responses={204: None}, summary="Remove a schedule"),
)
class ScheduleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _TriggerViewSet):
    model = Schedule
    serializer_class = ScheduleSerializer
    permission_map = _READ_WRITE

    def scoped_queryset(self) -> QuerySet[Schedule]:
        return self.filtered(Schedule.objects.select_related("agent", "environment"))

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = validated(ScheduleCreateSerializer, request.data)
            schedule = services.create_schedule(
                actor=self.principal, agent=self.agent_from_id(data["agent"]),
                cron_expression=data["cron"], timezone_name=data.get("timezone", "UTC"),
                input=data.get("input"), name=data.get("name", ""),
                enabled=data.get("enabled", True))
            return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        schedule = self.get_object()
        data = validated(_ScheduleFields, request.data)
        schedule = services.update_schedule(actor=self.principal, schedule=schedule, **data)
        return Response(ScheduleSerializer(schedule).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_schedule(actor=self.principal, schedule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- inbound webhooks -------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[AGENT_PARAM, ENVIRONMENT_PARAM],
                       summary="List inbound webhooks"),
    retrieve=extend_schema(summary="An inbound webhook (never its secret)"),
    create=extend_schema(request=InboundWebhookCreateSerializer,
                         responses={201: InboundWebhookCreatedSerializer},
                         summary="Create an inbound webhook; the signing secret is in this "
                                 "response only"),
    partial_update=extend_schema(request=InboundWebhookUpdateSerializer,
                                 responses=InboundWebhookSerializer,
                                 summary="Rename, enable or disable an inbound webhook"),
    destroy=extend_schema(responses={204: None}, summary="Remove an inbound webhook"),
    rotate_secret=extend_schema(request=None, responses=WebhookSecretSerializer,
                                summary="Replace the signing secret; the new one is in this "
                                        "response only"),
)
class InboundWebhookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                            _TriggerViewSet):
    model = InboundWebhook
    serializer_class = InboundWebhookSerializer
    permission_map = {**_READ_WRITE, "rotate_secret": "agents.write"}
    idempotency_redact = ("secret",)

    def scoped_queryset(self) -> QuerySet[InboundWebhook]:
        return self.filtered(InboundWebhook.objects.select_related("agent", "environment"))

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = validated(InboundWebhookCreateSerializer, request.data)
            hook, secret = services.create_inbound_webhook(
                actor=self.principal, agent=self.agent_from_id(data["agent"]),
                name=data.get("name", ""), enabled=data.get("enabled", True))
            body = {**InboundWebhookSerializer(hook).data, "secret": secret}
            return Response(body, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        hook = self.get_object()
        data = validated(InboundWebhookUpdateSerializer, request.data)
        hook = services.update_inbound_webhook(actor=self.principal, webhook=hook, **data)
        return Response(InboundWebhookSerializer(hook).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_webhook(actor=self.principal, webhook=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        hook = self.get_object()
        secret = services.rotate_webhook_secret(actor=self.principal, webhook=hook)
        return Response({"id": str(hook.pk), "secret": secret,
                         "secret_last_four": hook.secret_last_four})


# --- outbound webhooks -------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[AGENT_PARAM, ENVIRONMENT_PARAM],
                       summary="List outbound webhooks"),
    retrieve=extend_schema(summary="An outbound webhook (never its secret)"),
    create=extend_schema(request=OutboundWebhookCreateSerializer,
                         responses={201: OutboundWebhookCreatedSerializer},
                         summary="Send signed run events to a URL; the signing secret is in "
                                 "this response only"),
    partial_update=extend_schema(request=OutboundWebhookUpdateSerializer,
                                 responses=OutboundWebhookSerializer,
                                 summary="Change an outbound webhook's URL, events or state"),
    destroy=extend_schema(responses={204: None},
                          summary="Remove an outbound webhook and its delivery log"),
    rotate_secret=extend_schema(request=None, responses=WebhookSecretSerializer,
                                summary="Replace the signing secret; the new one is in this "
                                        "response only"),
)
class OutboundWebhookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                             _TriggerViewSet):
    model = OutboundWebhook
    serializer_class = OutboundWebhookSerializer
    permission_map = {**_READ_WRITE, "rotate_secret": "agents.write"}
    idempotency_redact = ("secret",)

    def scoped_queryset(self) -> QuerySet[OutboundWebhook]:
        return self.filtered(OutboundWebhook.objects.select_related("agent", "environment"))

    def create(self, request: Request) -> Response:
        def _create() -> Response:
            data = validated(OutboundWebhookCreateSerializer, request.data)
            agent = self.agent_from_id(data["agent"]) if data.get("agent") else None
            if agent is not None:
                environment = agent.environment
                if data.get("environment") and data["environment"] != environment.slug:
                    raise InvalidInput.field("environment", "The agent lives in another "
                                                            "environment.")
            elif data.get("environment"):
                environment = self.environment_from_slug(data["environment"])
            else:
                raise InvalidInput.field("environment", "Give an environment (every agent "
                                                        "there) or an agent.")
            hook, secret = services.create_outbound_webhook(
                actor=self.principal, environment=environment, agent=agent, url=data["url"],
                events=data.get("events"), name=data.get("name", ""),
                enabled=data.get("enabled", True))
            body = {**OutboundWebhookSerializer(hook).data, "secret": secret}
            return Response(body, status=status.HTTP_201_CREATED)

        return self.idempotent_create(request, _create)

    def partial_update(self, request: Request, pk: str) -> Response:
        hook = self.get_object()
        data = validated(OutboundWebhookUpdateSerializer, request.data)
        hook = services.update_outbound_webhook(actor=self.principal, webhook=hook, **data)
        return Response(OutboundWebhookSerializer(hook).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_webhook(actor=self.principal, webhook=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str) -> Response:
        hook = self.get_object()
        secret = services.rotate_webhook_secret(actor=self.principal, webhook=hook)
        return Response({"id": str(hook.pk), "secret": secret,
                         "secret_last_four": hook.secret_last_four})


# --- delivery log --------------------------------------------------------------------------------

WEBHOOK_PARAM = OpenApiParameter("webhook", uuid.UUID, description="Only this webhook's")
RUN_PARAM = OpenApiParameter("run", uuid.UUID, description="Only this run's")


@extend_schema_view(
    list=extend_schema(parameters=[WEBHOOK_PARAM, RUN_PARAM],
                       summary="Outbound webhook deliveries, newest first"),
    retrieve=extend_schema(responses=WebhookDeliveryDetailSerializer,
                           summary="A delivery: the payload sent and every attempt"),
)
class WebhookDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                             _TriggerViewSet):
    model = WebhookDelivery
    serializer_class = WebhookDeliverySerializer
    http_method_names = ["get"]
    permission_map = {"list": "agents.read", "retrieve": "agents.read"}

    def scoped_queryset(self) -> QuerySet[WebhookDelivery]:
        qs = WebhookDelivery.objects.filter(webhook__environment__in=self.environments())
        if self.action == "retrieve":
            return qs.prefetch_related("attempt_log")
        params = self.request.query_params
        for name, field in (("webhook", "webhook_id"), ("run", "run_id")):
            if value := params.get(name):
                try:
                    uuid.UUID(value)
                except ValueError as exc:
                    raise InvalidInput.field(name, f"{value!r} is not an id.") from exc
                qs = qs.filter(**{field: value})
        return qs

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        return (WebhookDeliveryDetailSerializer if self.action == "retrieve"
                else WebhookDeliverySerializer)
