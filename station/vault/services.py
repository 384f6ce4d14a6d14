"""Vault writes and the worker-side reveal. Values go in, never come back out through here
except via `reveal()`, which only worker processes may call and which is always audited."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from station.core.errors import Conflict, InvalidInput, NotFound, StationError
from station.vault import crypto
from station.vault.keyring import keyring
from station.vault.models import DataKey, KeyCanary, Secret, SecretVersion, Variable, name_validator
from tenants.authz import Principal, authorize
from tenants.context import org_scope, require_org_id
from tenants.models import Environment, Organization

MAX_VALUE_BYTES = 64 * 1024
_CANARY = b"station-master-key-canary"


class RevealNotAllowed(StationError):
    status = 403
    code = "reveal_not_allowed"
    title = "Secret values are not revealed here"


# --- master keys ----------------------------------------------------------------------------


def _canary_context(kid: str) -> bytes:
    return b"station-canary:" + kid.encode()


def ensure_canary() -> None:
    """Record a canary for the current master key (idempotent)."""
    ring = keyring()
    kid = ring.current_kid
    if KeyCanary.objects.filter(kid=kid).exists():
        return
    _, wrapped = ring.wrap(_CANARY, context=_canary_context(kid))
    try:
        with transaction.atomic():
            KeyCanary.objects.create(kid=kid, wrapped=wrapped)
    except IntegrityError:
        pass  # another process recorded it first


def check_master_keys() -> list[str]:
    """Problems with the configured master keys, judged against the recorded canaries."""
    try:
        ring = keyring()
    except ImproperlyConfigured as exc:
        return [str(exc)]
    problems = []
    for canary in KeyCanary.objects.filter(retired_at__isnull=True):
        if canary.kid not in ring.kids():
            problems.append(f"master key {canary.kid!r} protects data but is not configured")
            continue
        try:
            ring.unwrap(canary.kid, bytes(canary.wrapped), context=_canary_context(canary.kid))
        except InvalidTag:
            problems.append(
                f"the configured master key {canary.kid!r} is not the key the data was "
                "encrypted with (wrong value for that key id)")
    return problems


# --- data keys ------------------------------------------------------------------------------


def _unwrap(data_key: DataKey) -> bytes:
    return keyring().unwrap(data_key.kid, bytes(data_key.wrapped),
                            context=crypto.data_key_aad(data_key.organization_id,
                                                        data_key.version))


def _new_data_key(org_id: uuid.UUID, version: int) -> tuple[DataKey, bytes]:
    raw = crypto.new_data_key()
    ensure_canary()
    kid, wrapped = keyring().wrap(raw, context=crypto.data_key_aad(org_id, version))
    return DataKey.objects.create(version=version, kid=kid, wrapped=wrapped, active=True), raw


def _active_data_key() -> tuple[DataKey, bytes]:
    """The org's active data key (created on first use), unwrapped."""
    current = DataKey.objects.filter(active=True).first()
    if current is not None:
        return current, _unwrap(current)
    try:
        with transaction.atomic():
            return _new_data_key(require_org_id(), 1)
    except IntegrityError:
        current = DataKey.objects.get(active=True)  # a concurrent first write made it
        return current, _unwrap(current)


# --- secrets --------------------------------------------------------------------------------


def _validate_name(name: str) -> str:
    try:
        name_validator(name)
    except ValidationError as exc:
        raise InvalidInput.field("name", str(exc.messages[0])) from exc
    return name


def _validate_value(value: str) -> str:
    if not isinstance(value, str) or value == "":
        raise InvalidInput.field("value", "A secret needs a non-empty value.")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise InvalidInput.field("value", f"At most {MAX_VALUE_BYTES // 1024} KiB.")
    return value


@transaction.atomic
def set_secret(*, actor: Principal, environment: Environment, name: str, value: str) -> Secret:
    """Create a secret, or store a new version of its value (a rotation)."""
    authorize(actor, "secrets.write", environment.organization_id, environment)
    _validate_name(name)
    _validate_value(value)
    secret = Secret.objects.select_for_update().filter(environment=environment, name=name).first()
    created = secret is None
    if secret is None:
        secret = Secret.objects.create(environment=environment, name=name)
    version = secret.current_version + 1
    data_key, raw = _active_data_key()
    aad = crypto.value_aad(environment.organization_id, environment.pk, name, version)
    nonce, ciphertext = crypto.encrypt(raw, value, aad)
    fingerprint = crypto.fingerprint(raw, value)
    SecretVersion.objects.create(secret=secret, version=version, data_key=data_key, nonce=nonce,
                                 ciphertext=ciphertext, fingerprint=fingerprint,
                                 created_by_label=actor.label)
    secret.current_version = version
    secret.updated_at = timezone.now()
    secret.updated_by = actor.user
    secret.updated_by_label = actor.label
    secret.save(update_fields=["current_version", "updated_at", "updated_by", "updated_by_label"])
    kept = settings.VAULT_VERSIONS_KEPT
    SecretVersion.objects.filter(secret=secret, version__lte=version - kept).delete()
    audit.record("secret.created" if created else "secret.updated", actor=actor, target=secret,
                 environment_id=environment.pk,
                 changes={"name": name, "environment": environment.slug, "version": version,
                          "fingerprint": fingerprint})
    return secret


@transaction.atomic
def create_secret(*, actor: Principal, environment: Environment, name: str,
                  value: str) -> Secret:
    """Create a new secret; a name already used in the environment is a conflict (rotating
    a value is an explicit, separate act: `set_secret`)."""
    authorize(actor, "secrets.write", environment.organization_id, environment)
    _validate_name(name)
    if Secret.objects.filter(environment=environment, name=name).exists():
        raise Conflict(f"A secret {name!r} already exists in {environment.slug}; "
                       "set a new value on it instead.", errors={"name": ["Already exists."]})
    try:
        with transaction.atomic():
            return set_secret(actor=actor, environment=environment, name=name, value=value)
    except IntegrityError as exc:  # a concurrent create won the race
        raise Conflict(f"A secret {name!r} already exists in {environment.slug}.",
                       errors={"name": ["Already exists."]}) from exc


@transaction.atomic
def delete_secret(*, actor: Principal, secret: Secret) -> None:
    authorize(actor, "secrets.write", secret.organization_id, secret.environment)
    audit.record("secret.deleted", actor=actor, target=secret, environment_id=secret.environment_id,
                 changes={"name": secret.name, "environment": secret.environment.slug,
                          "versions": secret.current_version})
    secret.delete()


def reveal(*, environment: Environment, name: str, purpose: str, actor: Principal) -> str:
    """Decrypt a secret's current value for `purpose` (e.g. "run <id>"). Worker code only;
    every call is audited. Runs in (or opens) a transaction: the audit event goes with it."""
    if not settings.VAULT_REVEAL_ALLOWED:
        raise RevealNotAllowed("Secret values are resolved only in worker processes.")
    with transaction.atomic():
        secret = Secret.objects.select_for_update().filter(environment=environment,
                                                           name=name).first()
        if secret is None:
            raise NotFound(f"No secret {name!r} in environment {environment.slug}.")
        current = SecretVersion.objects.select_related("data_key").get(
            secret=secret, version=secret.current_version)
        aad = crypto.value_aad(secret.organization_id, environment.pk, name, current.version)
        value = crypto.decrypt(_unwrap(current.data_key), bytes(current.nonce),
                               bytes(current.ciphertext), aad)
        secret.last_revealed_at = timezone.now()
        secret.last_revealed_for = purpose[:255]
        secret.save(update_fields=["last_revealed_at", "last_revealed_for"])
        audit.record("secret.revealed", actor=actor, target=secret, environment_id=environment.pk,
                     changes={"name": name, "version": current.version, "purpose": purpose})
    return value


# --- references and redaction ----------------------------------------------------------------

REFERENCE = re.compile(r"\$\{(secret|var):([A-Za-z][A-Za-z0-9_]{0,63})\}")


@dataclass
class Resolved:
    text: str
    secret_values: list[str]


def resolve_references(text: str, *, environment: Environment, purpose: str,
                       actor: Principal) -> Resolved:
    """Replace ${secret:NAME} and ${var:NAME} in worker-side config; returns the revealed
    values too, so the caller can redact them from anything it records."""
    revealed: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "var":
            variable = Variable.objects.filter(environment=environment, name=name).first()
            if variable is None:
                raise NotFound(f"No variable {name!r} in environment {environment.slug}.")
            return variable.value
        value = reveal(environment=environment, name=name, purpose=purpose, actor=actor)
        revealed.append(value)
        return value

    return Resolved(REFERENCE.sub(substitute, text), revealed)


def redact(text: str, secret_values: list[str], mask: str = "[redacted]") -> str:
    for value in sorted(set(secret_values), key=len, reverse=True):
        if value:
            text = text.replace(value, mask)
    return text


# --- values other apps keep under the org's data key ------------------------------------------
# Webhook signing secrets must be recoverable (to verify and to sign), so they are sealed with
# the org's data key like secret values. Their app registers a re-sealer: data-key rotation
# re-encrypts them under the new key before the old one is destroyed (their rows reference the
# data key with PROTECT, so a missing re-sealer fails the rotation instead of losing them).

# (old raw keys by DataKey id, new DataKey, its raw key) -> how many values were re-encrypted
Resealer = Callable[[dict[uuid.UUID, bytes], DataKey, bytes], int]
_RESEALERS: list[Resealer] = []


def register_resealer(reseal: Resealer) -> None:
    if reseal not in _RESEALERS:
        _RESEALERS.append(reseal)


def seal(plaintext: str, aad: bytes) -> tuple[DataKey, bytes, bytes]:
    """Encrypt `plaintext` under the current org's active data key: (data key, nonce, ct)."""
    data_key, raw = _active_data_key()
    nonce, ciphertext = crypto.encrypt(raw, plaintext, aad)
    return data_key, nonce, ciphertext


def unseal(data_key: DataKey, nonce: bytes, ciphertext: bytes, aad: bytes) -> str:
    return crypto.decrypt(_unwrap(data_key), nonce, ciphertext, aad)


# --- rotation ---------------------------------------------------------------------------------


@transaction.atomic
def rotate_data_key(*, actor: Principal, org: Organization) -> int:
    """New data key for the org; every stored version re-encrypted under it; the old key
    destroyed. Returns how many values were re-encrypted."""
    authorize(actor, "secrets.write", org)
    old_keys = {dk.pk: (dk, _unwrap(dk)) for dk in DataKey.objects.select_for_update()}
    current = next((dk for dk, _ in old_keys.values() if dk.active), None)
    version = max((dk.version for dk, _ in old_keys.values()), default=0) + 1
    DataKey.objects.filter(active=True).update(active=False)
    new_key, raw = _new_data_key(org.pk, version)
    count = 0
    for sv in SecretVersion.objects.select_related("secret").select_for_update(of=("self",)):
        _, old_raw = old_keys[sv.data_key_id]
        aad = crypto.value_aad(org.pk, sv.secret.environment_id, sv.secret.name, sv.version)
        value = crypto.decrypt(old_raw, bytes(sv.nonce), bytes(sv.ciphertext), aad)
        sv.nonce, sv.ciphertext = crypto.encrypt(raw, value, aad)
        sv.data_key = new_key
        # Fingerprints are keyed by the data key: recompute them, or an unchanged value set
        # after the rotation would look like a different one.
        sv.fingerprint = crypto.fingerprint(raw, value)
        sv.save(update_fields=["nonce", "ciphertext", "data_key", "fingerprint"])
        count += 1
    raw_by_id = {pk: key for pk, (_, key) in old_keys.items()}
    for reseal in _RESEALERS:
        count += reseal(raw_by_id, new_key, raw)
    DataKey.objects.exclude(pk=new_key.pk).delete()
    audit.record("vault.data_key_rotated", actor=actor, target=new_key,
                 changes={"from_version": current.version if current else None,
                          "to_version": version, "values_reencrypted": count})
    return count


def rewrap_org(org_id: uuid.UUID, *, actor: Principal) -> int:
    """Re-wrap one org's data keys with the current master key (one transaction). Keys
    already under it are left alone, so a rerun after an interruption just continues."""
    ring = keyring()
    with org_scope(org_id):
        stale = list(DataKey.objects.select_for_update().exclude(kid=ring.current_kid))
        if not stale:
            return 0
        ensure_canary()
        moved = []
        for dk in stale:
            raw = _unwrap(dk)
            before = dk.kid
            dk.kid, dk.wrapped = ring.wrap(raw, context=crypto.data_key_aad(dk.organization_id,
                                                                             dk.version))
            dk.save(update_fields=["kid", "wrapped"])
            moved.append({"version": dk.version, "from": before})
        audit.record("vault.data_keys_rewrapped", actor=actor,
                     changes={"to": ring.current_kid, "keys": moved})
        return len(stale)


def rewrap_all(org_ids: list[uuid.UUID], *, actor: Principal,
               progress: Callable[[uuid.UUID, int], None] | None = None) -> int:
    total = 0
    for org_id in org_ids:
        count = rewrap_org(org_id, actor=actor)
        total += count
        if progress:
            progress(org_id, count)
    return total


def master_key_in_use(kid: str, org_ids: list[uuid.UUID]) -> int:
    used = 0
    for org_id in org_ids:
        with org_scope(org_id):
            used += DataKey.objects.filter(kid=kid).count()
    return used


def retire_master_key(kid: str, org_ids: list[uuid.UUID]) -> None:
    if kid == keyring().current_kid:
        raise Conflict(f"{kid!r} is the current master key; make another key current first.")
    if (used := master_key_in_use(kid, org_ids)) > 0:
        raise Conflict(f"{used} data keys are still wrapped by {kid!r}; run `station keys "
                       "rotate` to finish re-wrapping first.")
    KeyCanary.objects.filter(kid=kid).update(retired_at=timezone.now())


# --- variables --------------------------------------------------------------------------------


@transaction.atomic
def set_variable(*, actor: Principal, environment: Environment, name: str,
                 value: str) -> Variable:
    authorize(actor, "variables.write", environment.organization_id, environment)
    _validate_name(name)
    if len(value) > MAX_VALUE_BYTES:
        raise InvalidInput.field("value", f"At most {MAX_VALUE_BYTES // 1024} KiB.")
    variable = Variable.objects.select_for_update().filter(environment=environment,
                                                           name=name).first()
    before = variable.value if variable else None
    if variable is None:
        variable = Variable(organization_id=environment.organization_id, environment=environment,
                            name=name)
    elif before == value:
        return variable
    variable.value = value
    variable.updated_at = timezone.now()
    variable.updated_by_label = actor.label
    variable.save()
    audit.record("variable.set", actor=actor, target=variable, environment_id=environment.pk,
                 changes={"name": name, "environment": environment.slug,
                          "value": audit.change(before, value)})
    return variable


@transaction.atomic
def delete_variable(*, actor: Principal, variable: Variable) -> None:
    authorize(actor, "variables.write", variable.organization_id, variable.environment)
    audit.record("variable.deleted", actor=actor, target=variable,
                 environment_id=variable.environment_id,
                 changes={"name": variable.name, "value": variable.value})
    variable.delete()
