"""Signals other apps hook into (outbound webhooks, metering) without the run engine knowing
them. Sent after the transaction that made the change commits."""

from __future__ import annotations

from django.dispatch import Signal

# kwargs: org_id (str), run_id (str), status (str)
run_finished = Signal()
