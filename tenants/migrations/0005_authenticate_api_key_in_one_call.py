"""API-key authentication in one round trip, with plans cached by PL/pgSQL.

Replaces 0003's function: besides finding the key's org and scoping the transaction to it
(`app.org_id`, transaction-local), it returns the key row and its creator's current org role
and environment role, all read under RLS with the org set. An unknown key id returns no row
and leaves `app.org_id` empty.
"""

from django.db import migrations

FORWARD = """
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

BACKWARD = """
DROP FUNCTION IF EXISTS station_enter_org_of_api_key(text);
CREATE FUNCTION station_enter_org_of_api_key(p_key_id text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
DECLARE
    v_org uuid;
BEGIN
    PERFORM set_config('app.api_key_id', p_key_id, true);
    SELECT organization_id INTO v_org FROM tenants_apikey WHERE key_id = p_key_id;
    PERFORM set_config('app.api_key_id', '', true);
    PERFORM set_config('app.org_id', COALESCE(v_org::text, ''), true);
    RETURN v_org;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_apikey_creator_kind_parent")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
