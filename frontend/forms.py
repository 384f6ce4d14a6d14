"""Console forms: input shape only. Business rules stay in the services, whose errors
`add_service_error` puts back on the form, next to the field they concern."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from audit.registry import ACTIONS
from station.core.errors import StationError
from tenants.models import Environment, slug_validator
from tenants.permissions import ROLE_DESCRIPTIONS, ROLES

ROLE_CHOICES = [(role, f"{role} — {ROLE_DESCRIPTIONS.get(role, '')}") for role in ROLES]
SHORT_ROLE_CHOICES = [(role, role) for role in ROLES]


def add_service_error(form: forms.Form, exc: StationError) -> None:
    """Show a service's refusal on the form: per field when it names one, else on top."""
    if not exc.errors:
        form.add_error(None, exc.detail)
        return
    for field, messages in exc.errors.items():
        for message in messages:
            form.add_error(field if field in form.fields else None, message)


class EnvironmentScopedForm(forms.Form):
    """A form whose `environment` field chooses among the environments given to it (those the
    principal may write in); `cleaned_data["environment"]` is the Environment itself."""

    environment = forms.ChoiceField()

    def __init__(self, *args: Any, environments: list[Environment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.environments = {env.slug: env for env in environments}
        env_field = self.fields["environment"]
        assert isinstance(env_field, forms.ChoiceField)
        env_field.choices = [(env.slug, f"{env.name} ({env.slug})") for env in environments]

    def clean_environment(self) -> Environment:
        return self.environments[self.cleaned_data["environment"]]


class EnvironmentCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Shown in the console, e.g. “QA”.")
    slug = forms.CharField(
        max_length=50,
        validators=[slug_validator],
        help_text="Used in URLs and the API: lowercase letters, digits and hyphens.",
    )


class EnvironmentRenameForm(forms.Form):
    name = forms.CharField(max_length=200)


class InviteMemberForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="developer")


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=SHORT_ROLE_CHOICES)


EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "Never")]


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="What uses this key, e.g. “CI pipeline”.")
    role = forms.ChoiceField(
        choices=ROLE_CHOICES,
        initial="developer",
        help_text="The key gets this role's permissions, never more than your own.",
    )
    environment = forms.ChoiceField(
        required=False, help_text="Bind the key to one environment, or leave it org-wide."
    )
    expires_in = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90", required=False,
                                   label="Expires after")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Runs inside the org scope: the tenant manager lists this org's environments only.
        self.environments = {str(env.pk): env for env in Environment.objects.all()}
        env_field = self.fields["environment"]
        assert isinstance(env_field, forms.ChoiceField)
        env_field.choices = [("", "All environments")] + [
            (pk, f"{env.name} ({env.slug})") for pk, env in self.environments.items()
        ]

    def clean_environment(self) -> Environment | None:
        value = self.cleaned_data.get("environment") or ""
        return self.environments.get(value)

    def expires_at(self) -> Any:
        days = self.cleaned_data.get("expires_in")
        return timezone.now() + timedelta(days=int(days)) if days else None


def _action_choices() -> list[tuple[str, str]]:
    groups = sorted({action.split(".")[0] for action in ACTIONS})
    return (
        [("", "Any action")]
        + [(f"{group}.", f"{group}.* (all)") for group in groups]
        + [(action, action) for action in ACTIONS]
    )


class AuditFilterForm(forms.Form):
    DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]

    actor = forms.CharField(required=False, max_length=255,
                            widget=forms.TextInput(attrs={"placeholder": "Email, key or id"}))
    action = forms.ChoiceField(required=False, choices=_action_choices)
    since = forms.DateTimeField(
        required=False, input_formats=DATETIME_FORMATS, label="From (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = forms.DateTimeField(
        required=False, input_formats=DATETIME_FORMATS, label="Until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "Must be later than “From”.")
        return data
