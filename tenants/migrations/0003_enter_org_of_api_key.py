"""One round trip for API-key authentication: find the key's org and scope the transaction.

The function runs with the caller's rights (the app role): it uses the narrow
`apikey_lookup_by_key_id` policy through a transaction-local `app.api_key_id`, clears it, and
sets `app.org_id` to the key's org for the rest of the transaction ('' when unknown).
"""

from django.db import migrations

FORWARD = """
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

BACKWARD = "DROP FUNCTION IF EXISTS station_enter_org_of_api_key(text);"


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_lookup_policies")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
