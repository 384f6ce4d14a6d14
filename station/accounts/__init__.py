"""Accounts: MFA policy (on top of allauth.mfa), active sessions, login audit."""
