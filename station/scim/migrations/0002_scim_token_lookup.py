"""The one cross-org read a SCIM request needs: a bearer token's org, by the token's id.

Like tenants/0002+0005 and triggers/0002: a permissive SELECT policy opening exactly the
token row whose id is in the transaction-local `app.scim_token_id` (nothing when unset), and
a SECURITY INVOKER function that sets it, reads the org, clears it and sets `app.org_id` for
the rest of the transaction ('' for an unknown id).
"""

from django.db import migrations

FORWARD = """
CREATE POLICY scimtoken_lookup_by_token_id ON scim_scimtoken FOR SELECT
    USING (token_id = NULLIF(current_setting('app.scim_token_id', true), ''));
CREATE FUNCTION station_enter_org_of_scim_token(p_token_id text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
DECLARE
    v_org uuid;
BEGIN
    PERFORM set_config('app.scim_token_id', p_token_id, true);
    SELECT t.organization_id INTO v_org FROM scim_scimtoken t WHERE t.token_id = p_token_id;
    PERFORM set_config('app.scim_token_id', '', true);
    PERFORM set_config('app.org_id', COALESCE(v_org::text, ''), true);
    RETURN v_org;
END;
$$;
"""

BACKWARD = """
DROP FUNCTION IF EXISTS station_enter_org_of_scim_token(text);
DROP POLICY IF EXISTS scimtoken_lookup_by_token_id ON scim_scimtoken;
"""


class Migration(migrations.Migration):
    dependencies = [("scim", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
