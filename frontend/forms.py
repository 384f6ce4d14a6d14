"""Console forms: input shape only. Business rules stay in the services, whose errors
`add_service_error` puts back on the form, next to the field they concern."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from audit.registry import ACTIONS
from station.core.errors import StationError
from tenants import context, roles
from tenants.models import Environment, slug_validator
from tenants.permissions import PERMISSIONS, ROLE_DESCRIPTIONS, ROLES

# Built-in roles only; forms of an org page use `org_role_choices()`, which adds the org's
# custom roles.
ROLE_CHOICES = [(role, f"{role} — {ROLE_DESCRIPTIONS.get(role, '')}") for role in ROLES]
SHORT_ROLE_CHOICES = [(role, role) for role in ROLES]


def org_role_choices(*, long: bool = False) -> list[tuple[str, str]]:
    """Built-in and custom roles of the org in context (console org views set it)."""
    return roles.role_choices(context.require_org_id(), long=long)


class _OrgRoleChoices(forms.Form):
    """A form whose `role` select offers the current org's built-in and custom roles."""

    long_role_labels = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role_field = self.fields["role"]
        assert isinstance(role_field, forms.ChoiceField)
        role_field.choices = org_role_choices(long=self.long_role_labels)


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


class InviteMemberForm(_OrgRoleChoices):
    long_role_labels = True
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial="developer")


class MemberRoleForm(_OrgRoleChoices):
    role = forms.ChoiceField(choices=SHORT_ROLE_CHOICES)


class EnvironmentRoleForm(forms.Form):
    """A member's role in one environment: a narrower role, or none (the org role applies)."""

    role = forms.ChoiceField(
        required=False, label="Role in this environment",
        help_text="Only permissions both this role and the organization role grant apply here.")

    def __init__(self, *args: Any, role_choices: list[tuple[str, str]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        role_field = self.fields["role"]
        assert isinstance(role_field, forms.ChoiceField)
        # A member's page shows one form per environment: the choices are read once for all.
        role_field.choices = [("", "no narrowing (the organization role applies)"),
                              *(org_role_choices() if role_choices is None else role_choices)]

    def clean_role(self) -> str | None:
        return self.cleaned_data["role"] or None  # "" removes the narrowing


def _permission_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """Registry permissions grouped by area ("agents", "runs", …), in declaration order."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name, description in PERMISSIONS.items():
        groups.setdefault(name.split(".")[0], []).append((name, f"{name} — {description}"))
    return list(groups.items())


class CustomRoleForm(forms.Form):
    """Create (with a name) or edit (name fixed) a custom role. Permissions are checkboxes,
    one field per area so the page can group them; the service validates the set."""

    name = forms.CharField(max_length=50, validators=[slug_validator],
                           help_text="Lowercase letters, digits and hyphens, e.g. "
                                     "“deployer”. Cannot be changed later.")
    description = forms.CharField(max_length=500, required=False)

    def __init__(self, *args: Any, editing: bool = False,
                 initial_permissions: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["name"]
        self.areas = []
        for area, choices in _permission_groups():
            field_name = f"perm_{area}"
            self.fields[field_name] = forms.MultipleChoiceField(
                label=area, required=False, choices=choices,
                widget=forms.CheckboxSelectMultiple,
                initial=[p for p, _ in choices if p in initial_permissions])
            self.areas.append(field_name)

    def permissions(self) -> list[str]:
        return sorted(p for f in self.areas for p in self.cleaned_data.get(f, []))

    def area_fields(self) -> list[forms.BoundField]:
        return [self[f] for f in self.areas]


EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "Never")]


class ApiKeyCreateForm(_OrgRoleChoices):
    long_role_labels = True

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
