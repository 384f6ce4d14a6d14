"""Sign-in URLs, mounted under accounts/ before allauth's own.

The SAML routes keep allauth's names and paths (its provider builds the SP URLs by reversing
them); `login/` and `acs/finish/` are Station's, adding the checks python3-saml leaves to us,
and shadow allauth's views of the same path.
"""

from allauth.socialaccount.providers.saml import views as allauth_saml
from django.urls import include, path, re_path

from station.identity import acs, oidc_views, views

urlpatterns = [
    re_path(
        r"^saml/(?P<organization_slug>[^/]+)/",
        include([
            path("acs/", allauth_saml.acs, name="saml_acs"),
            path("acs/finish/", acs.saml_finish, name="saml_finish_acs"),
            path("sls/", allauth_saml.sls, name="saml_sls"),
            path("metadata/", allauth_saml.metadata, name="saml_metadata"),
            path("login/", acs.saml_login, name="saml_login"),
        ]),
    ),
    # OIDC keeps allauth's openid_connect route names and paths (provider_id = the org slug)
    # and shadows its views, which verify no nonce and skip the ID token's signature.
    re_path(
        r"^oidc/(?P<provider_id>[^/]+)/",
        include([
            path("login/", oidc_views.oidc_login, name="openid_connect_login"),
            path("login/callback/", oidc_views.oidc_callback, name="openid_connect_callback"),
        ]),
    ),
    path("sso/", views.sso_by_email, name="identity_sso"),
    path("login/break-glass/", views.break_glass_login, name="identity_break_glass"),
]
