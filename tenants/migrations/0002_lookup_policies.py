"""Narrow SELECT policies used by tenants.platform, and org listing for the owner role.

Each one opens a single row set to a lookup key the caller sets transaction-locally; with no
key set they match nothing. They are permissive policies added beside the isolation policy.
"""

from django.db import migrations

SETTING = "NULLIF(current_setting('{}', true), '')"

FORWARD = f"""
CREATE POLICY org_lookup_by_slug ON tenants_organization FOR SELECT
    USING (slug = {SETTING.format('app.org_slug')});
CREATE POLICY membership_visible_to_self ON tenants_membership FOR SELECT
    USING (user_id = {SETTING.format('app.user_id')}::uuid);
CREATE POLICY org_visible_to_member ON tenants_organization FOR SELECT
    USING (id IN (SELECT organization_id FROM tenants_membership
                  WHERE user_id = {SETTING.format('app.user_id')}::uuid));
CREATE POLICY apikey_lookup_by_key_id ON tenants_apikey FOR SELECT
    USING (key_id = {SETTING.format('app.api_key_id')});
CREATE POLICY org_listing_for_owner_role ON tenants_organization FOR SELECT
    TO CURRENT_USER USING (true);
"""

BACKWARD = """
DROP POLICY IF EXISTS org_lookup_by_slug ON tenants_organization;
DROP POLICY IF EXISTS membership_visible_to_self ON tenants_membership;
DROP POLICY IF EXISTS org_visible_to_member ON tenants_organization;
DROP POLICY IF EXISTS apikey_lookup_by_key_id ON tenants_apikey;
DROP POLICY IF EXISTS org_listing_for_owner_role ON tenants_organization;
"""


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
