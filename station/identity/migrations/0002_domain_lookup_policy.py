"""The one cross-org read identity needs before any org is known: which org verified an email
domain (login routing, and refusing a domain another org already verified).

Like tenants/0002: a permissive SELECT policy that opens only verified rows whose domain is
the transaction-local `app.email_domain` (matching nothing when it is unset). Used by
`tenants.platform.org_of_verified_domain`, which sets and clears the key.
"""

from django.db import migrations

FORWARD = """
CREATE POLICY verifieddomain_lookup_by_domain ON identity_verifieddomain FOR SELECT
    USING (verified_at IS NOT NULL
           AND domain = NULLIF(current_setting('app.email_domain', true), ''));
"""

BACKWARD = "DROP POLICY IF EXISTS verifieddomain_lookup_by_domain ON identity_verifieddomain;"


class Migration(migrations.Migration):
    dependencies = [("identity", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
