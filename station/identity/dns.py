"""DNS TXT lookups behind a small interface, so domain verification is testable offline.

`resolver()` returns the process's resolver: dnspython by default; tests (and anyone needing a
different one) call `use_resolver()`.
"""

from __future__ import annotations

from typing import Protocol


class TxtResolver(Protocol):
    def txt_records(self, name: str) -> list[str]:
        """The TXT strings published at `name` (empty when none or when the name is unknown)."""
        ...


class DnsPythonResolver:
    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    def txt_records(self, name: str) -> list[str]:
        import dns.exception
        import dns.resolver

        try:
            answer = dns.resolver.resolve(name, "TXT", lifetime=self.timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers,
                dns.exception.Timeout):
            return []
        # A TXT record may be split in several <=255-byte strings: join them back.
        return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


class StaticResolver:
    """Answers from a dict; for tests and air-gapped setups."""

    def __init__(self, records: dict[str, list[str]] | None = None) -> None:
        self.records = records if records is not None else {}

    def txt_records(self, name: str) -> list[str]:
        return list(self.records.get(name.rstrip(".").lower(), []))


_override: TxtResolver | None = None


def resolver() -> TxtResolver:
    return _override if _override is not None else DnsPythonResolver()


def use_resolver(new: TxtResolver | None) -> None:
    """Replace the resolver for this process (None restores dnspython)."""
    global _override
    _override = new
