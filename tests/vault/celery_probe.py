"""A Celery app on kombu's in-memory transport with one org task that reveals a secret in the
worker and returns only a hash of it, so tests can read the serialized messages and results."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from celery import Celery
from django.db import transaction

from station.tasks import OrgTask

QUEUE = "vault-probe"

probe_app = Celery("vault-probe", broker="memory://", backend="cache+memory://",
                   set_as_current=False)
probe_app.conf.update(task_default_queue=QUEUE, worker_hijack_root_logger=False,
                      task_serializer="json", result_serializer="json",
                      task_always_eager=False, result_extended=True)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@probe_app.task(base=OrgTask, name="tests.vault.reveal_digest")
def reveal_digest(*, org_id: str, environment_id: str, name: str) -> dict[str, Any]:
    from station.vault import services
    from tenants.authz import Principal
    from tenants.models import Environment

    with transaction.atomic():
        env = Environment.objects.get(pk=uuid.UUID(environment_id))
        value = services.reveal(environment=env, name=name, purpose=f"probe {name}",
                                actor=Principal.system("vault probe worker"))
    return {"name": name, "sha256": digest(value)}


def queued_messages() -> list[dict[str, Any]]:
    """The raw messages waiting in the in-memory broker's queue (not consumed)."""
    from kombu.transport.memory import Channel

    pending = Channel.queues.get(QUEUE)
    return [] if pending is None else list(pending.queue)
