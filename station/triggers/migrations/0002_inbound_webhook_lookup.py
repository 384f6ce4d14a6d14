"""The one cross-org read the public `POST /hooks/<id>` endpoint needs: an inbound webhook's
org, by its id, and nothing else.

Like tenants/0002 and 0005: a permissive SELECT policy that opens exactly the row whose id is
in the transaction-local `app.inbound_webhook_id` (matching nothing when it is unset), and a
SECURITY INVOKER function that sets it, reads the org, clears it and sets `app.org_id` for
the rest of the transaction.
"""

from django.db import migrations

FORWARD = """
CREATE POLICY inboundwebhook_lookup_by_id ON triggers_inboundwebhook FOR SELECT
    USING (id = NULLIF(current_setting('app.inbound_webhook_id', true), '')::uuid);
CREATE FUNCTION station_enter_org_of_inbound_webhook(p_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
DECLARE
    v_org uuid;
BEGIN
    PERFORM set_config('app.inbound_webhook_id', p_id::text, true);
    SELECT w.organization_id INTO v_org FROM triggers_inboundwebhook w WHERE w.id = p_id;
    PERFORM set_config('app.inbound_webhook_id', '', true);
    PERFORM set_config('app.org_id', COALESCE(v_org::text, ''), true);
    RETURN v_org;
END;
$$;
"""

BACKWARD = """
DROP FUNCTION IF EXISTS station_enter_org_of_inbound_webhook(uuid);
DROP POLICY IF EXISTS inboundwebhook_lookup_by_id ON triggers_inboundwebhook;
"""


class Migration(migrations.Migration):
    dependencies = [("triggers", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
