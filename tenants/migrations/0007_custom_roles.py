"""Custom roles (per-org permission sets) and the role an API key was created with.

API-key authentication stays one round trip: `station_enter_org_of_api_key` now also returns,
for the creator's org role, the creator's role in the key's environment and the key's own
role, the permissions of the org's custom role of that name (NULL for a built-in role name,
whose permissions are in code). One unique-index probe each, read under RLS with the org set.
"""

import django.core.validators
import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
import tenants.rls
import uuid
from django.db import migrations, models

FORWARD = """
DROP FUNCTION IF EXISTS station_enter_org_of_api_key(text);
CREATE FUNCTION station_enter_org_of_api_key(p_key_id text)
RETURNS TABLE(api_key tenants_apikey, creator_role varchar, creator_env_role varchar,
              creator_role_permissions jsonb, creator_env_role_permissions jsonb,
              key_role_permissions jsonb)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
DECLARE
    v_org uuid;
BEGIN
    PERFORM set_config('app.api_key_id', p_key_id, true);
    SELECT k.organization_id INTO v_org FROM tenants_apikey k WHERE k.key_id = p_key_id;
    PERFORM set_config('app.api_key_id', '', true);
    PERFORM set_config('app.org_id', COALESCE(v_org::text, ''), true);
    IF v_org IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT k, m.role, er.role, cm.permissions, ce.permissions, ck.permissions
        FROM tenants_apikey k
        LEFT JOIN tenants_user u ON u.id = k.created_by_id AND u.is_active
        LEFT JOIN tenants_membership m
               ON m.organization_id = k.organization_id AND m.user_id = u.id
        LEFT JOIN tenants_environmentrole er
               ON er.membership_id = m.id AND er.environment_id = k.environment_id
        LEFT JOIN tenants_customrole cm
               ON cm.organization_id = k.organization_id AND cm.name = m.role
        LEFT JOIN tenants_customrole ce
               ON ce.organization_id = k.organization_id AND ce.name = er.role
        LEFT JOIN tenants_customrole ck
               ON ck.organization_id = k.organization_id AND ck.name = k.role
        WHERE k.key_id = p_key_id AND k.organization_id = v_org;
END;
$$;
"""

# 0005's function, for the table without the `role` column.
BACKWARD = """
DROP FUNCTION IF EXISTS station_enter_org_of_api_key(text);
CREATE FUNCTION station_enter_org_of_api_key(p_key_id text)
RETURNS TABLE(api_key tenants_apikey, creator_role varchar, creator_env_role varchar)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
DECLARE
    v_org uuid;
BEGIN
    PERFORM set_config('app.api_key_id', p_key_id, true);
    SELECT k.organization_id INTO v_org FROM tenants_apikey k WHERE k.key_id = p_key_id;
    PERFORM set_config('app.api_key_id', '', true);
    PERFORM set_config('app.org_id', COALESCE(v_org::text, ''), true);
    IF v_org IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT k, m.role, er.role
        FROM tenants_apikey k
        LEFT JOIN tenants_user u ON u.id = k.created_by_id AND u.is_active
        LEFT JOIN tenants_membership m
               ON m.organization_id = k.organization_id AND m.user_id = u.id
        LEFT JOIN tenants_environmentrole er
               ON er.membership_id = m.id AND er.environment_id = k.environment_id
        WHERE k.key_id = p_key_id AND k.organization_id = v_org;
END;
$$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0006_organization_require_mfa'),
    ]

    operations = [
        migrations.AddField(
            model_name='apikey',
            name='role',
            field=models.CharField(blank=True, db_default='', default='', max_length=64),
        ),
        migrations.CreateModel(
            name='CustomRole',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=50, validators=[django.core.validators.RegexValidator('^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$', 'Use 1–50 lowercase letters, digits and hyphens, starting and ending with a letter or digit.')])),
                ('description', models.CharField(blank=True, max_length=500)),
                ('permissions', models.JSONField(default=list)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tenants.organization')),
            ],
            options={
                'ordering': ['name'],
                'abstract': False,
                'base_manager_name': 'all_orgs',
                'constraints': [tenants.rls.RowLevelSecurity(field='organization_id', name='org_isolation_tenants_customrole'), models.UniqueConstraint(fields=('organization', 'name'), name='uniq_custom_role_name_per_org')],
            },
            managers=[
                ('objects', django.db.models.manager.Manager()),
                ('all_orgs', django.db.models.manager.Manager()),
            ],
        ),
        # After the column exists (the function returns the table's row type); reversed first.
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
