"""The `station` command: start everything, run production processes, operate the platform.

Commands stay thin: they parse arguments and call services, the supervisor or Django.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def _setup_django(role: str = "app") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "station.settings")
    os.environ["STATION_DB_ROLE"] = role
    import django

    django.setup()


def _die(message: str, code: int = 2) -> int:
    print(f"station: {message}", file=sys.stderr)
    return code


# --- processes ------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from station.supervisor import Supervisor

    return Supervisor(port=args.port, host=args.host, demo=not args.no_demo).run()


def _refuse_unsafe_role() -> int | None:
    """Web and worker processes never serve tenants through a role that bypasses RLS, nor
    with master keys that do not match the data (they would fail on every secret)."""
    _setup_django()
    from station.core.dbrole import unsafe_role_reason
    from station.vault.services import check_master_keys

    reason = unsafe_role_reason()
    if reason:
        return _die(f"refusing to start: {reason}.")
    problems = check_master_keys()
    if problems:
        return _die("refusing to start: " + "; ".join(problems) + ".")
    return None


def cmd_web(args: argparse.Namespace) -> int:
    if (refused := _refuse_unsafe_role()) is not None:
        return refused
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "station.wsgi:application",
        "--bind",
        f"{args.host}:{args.port}",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--worker-class",
        "gthread",
        "--access-logfile",
        "-",
        "--graceful-timeout",
        "20",
        "--no-control-socket",
    ]
    from station import datadir

    (datadir.data_dir() / "static").mkdir(parents=True, exist_ok=True)  # STATIC_ROOT
    os.execv(sys.executable, argv)


def cmd_worker(args: argparse.Namespace) -> int:
    os.environ["STATION_PROCESS"] = "worker"  # the only process kind that may reveal secrets
    if (refused := _refuse_unsafe_role()) is not None:
        return refused
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "station",
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        str(args.concurrency),
        "--hostname",
        f"worker-{os.getpid()}@%h",
    ]
    os.execv(sys.executable, argv)


def cmd_beat(args: argparse.Namespace) -> int:
    from station import datadir

    schedule = datadir.data_dir() / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "station",
        "beat",
        "--loglevel",
        "INFO",
        # django-celery-beat's tables hold the schedule (Station schedules are PeriodicTask
        # rows); the file only keeps beat's own state.
        "--scheduler",
        "station.triggers.beat:StationScheduler",
        "--schedule",
        str(schedule),
    ]
    os.execv(sys.executable, argv)


def cmd_migrate(args: argparse.Namespace) -> int:
    app_url, owner_url = os.environ.get("DATABASE_URL"), os.environ.get("DATABASE_OWNER_URL")
    if app_url and (not owner_url or _db_user(owner_url) == _db_user(app_url)):
        return _die("set DATABASE_OWNER_URL to a different role than DATABASE_URL: the app "
                    "role must own nothing, or it could switch row-level security off.")
    _setup_django(role="owner")
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=args.verbosity)
    return 0


def _db_user(url: str) -> str:
    import dj_database_url

    return str(dj_database_url.parse(url).get("USER") or "")


# --- database -------------------------------------------------------------------------------


def cmd_db_bootstrap(args: argparse.Namespace) -> int:
    from station import datadir, dbsetup, embedded

    if not os.environ.get("DATABASE_URL"):
        root = datadir.data_dir()
        embedded.start_postgres(root)
        embedded.bootstrap_database(root)
        print(f"Embedded PostgreSQL ready in {datadir.pg_dir(root)}")
        return 0
    _setup_django()
    try:
        plan = dbsetup.bootstrap_from_settings()
    except dbsetup.SameRoleError as exc:
        return _die(str(exc))
    if plan is None:
        return _die("set DATABASE_SUPERUSER_URL to create the roles and database.")
    print(f"Roles {plan.owner} (owner) and {plan.app} (app) and database {plan.database} "
          "are ready.")
    return 0


def cmd_db_start(args: argparse.Namespace) -> int:
    from station import datadir, embedded

    root = datadir.data_dir()
    started = embedded.start_postgres(root)
    print(("Started" if started else "Already running:") + f" embedded PostgreSQL in {root}")
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    from station import datadir, embedded

    embedded.stop_postgres(datadir.data_dir())
    print("Embedded PostgreSQL stopped.")
    return 0


# --- platform operations --------------------------------------------------------------------


def cmd_org_create(args: argparse.Namespace) -> int:
    _setup_django()
    from station.core.errors import StationError
    from tenants import services
    from tenants.authz import Principal

    try:
        created = services.create_organization(
            actor=Principal.system("cli"), slug=args.slug, name=args.name, owner_email=args.owner
        )
    except StationError as exc:
        return _die(exc.detail)
    print(
        f"Created organization {created.organization.slug} ({created.organization.pk}) "
        "with environments dev, staging, prod."
    )
    if created.owner_password:
        print(
            f"Owner: {created.owner.email}\nOne-time password (change it after login): "
            f"{created.owner_password}"
        )
    else:
        print(f"Owner: {created.owner.email} (existing account; their password is unchanged)")
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    _setup_django()
    from station.core.errors import StationError
    from tenants import platform, services
    from tenants.authz import Principal
    from tenants.context import org_scope
    from tenants.models import Environment, Organization

    found = platform.org_by_slug(args.org)
    if found is None:
        return _die(f"no organization {args.org!r}.", 1)
    try:
        with org_scope(found.id):
            env = None
            if args.env:
                env = Environment.objects.filter(slug=args.env).first()
                if env is None:
                    return _die(f"no environment {args.env!r} in {args.org}.", 1)
            created = services.create_api_key(
                actor=Principal.system("cli"),
                org=Organization.objects.get(pk=found.id),
                name=args.name,
                role=args.role,
                environment=env,
            )
    except StationError as exc:
        return _die(exc.detail)
    print(created.plaintext)
    print(
        f"(API key {created.api_key.display}, role {args.role}; shown once — store it now)",
        file=sys.stderr,
    )
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    _setup_django(role="owner")
    from audit.selectors import verify_current_org
    from tenants import platform
    from tenants.context import org_scope

    if args.org:
        found = platform.org_by_slug(args.org)
        if found is None:
            return _die(f"no organization {args.org!r}.", 1)
        targets = [(found.id, found.slug)]
    else:
        from tenants.models import Organization

        ids = platform.all_org_ids()
        targets = []
        for org_id in ids:
            with org_scope(org_id):
                targets.append((org_id, Organization.objects.get(pk=org_id).slug))
    failed = 0
    for org_id, slug in targets:
        with org_scope(org_id):
            result = verify_current_org()
        print(f"{slug}: {result.describe()}")
        failed += not result.ok
    if not targets:
        print("No organizations.")
    return 1 if failed else 0


def cmd_keys_check(args: argparse.Namespace) -> int:
    _setup_django()
    from station.vault.services import check_master_keys, ensure_canary

    problems = check_master_keys()
    if problems:
        for problem in problems:
            print(f"station: {problem}", file=sys.stderr)
        return 1
    ensure_canary()
    print("Master keys match the data they protect.")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Finish any pending re-wrap; with none pending, add a new master key (keys file) and
    re-wrap every org's data keys under it. Safe to interrupt and run again."""
    _setup_django(role="owner")
    from django.conf import settings

    from station.vault import keyring as keyring_module
    from station.vault.services import check_master_keys, master_key_in_use, rewrap_all
    from tenants import platform
    from tenants.authz import Principal

    # A wrong or missing key must stop us before a new key is written to the keys file.
    if problems := check_master_keys():
        return _die("not rotating: " + "; ".join(problems) + ".", 1)
    org_ids = platform.all_org_ids()
    ring = keyring_module.keyring()
    pending = sum(master_key_in_use(kid, org_ids) for kid in ring.kids()
                  if kid != ring.current_kid)
    if pending == 0 and not args.rewrap_only:
        path = settings.VAULT_MASTER_KEYS_FILE
        if path is None or settings.VAULT_MASTER_KEYS:
            return _die("master keys come from STATION_MASTER_KEYS: add the new key there, "
                        "make it current (STATION_MASTER_KEY_ID), restart, then run "
                        "`station keys rotate --rewrap-only`.")
        new_kid = f"k{len(ring.kids()) + 1}"
        while new_kid in ring.kids():
            new_kid += "x"
        keyring_module.add_key_to_file(path, new_kid)
        keyring_module.reset()
        print(f"Added master key {new_kid} to {path}; it is now current.")
    current = keyring_module.keyring().current_kid

    def progress(org_id: object, count: int) -> None:
        print(f"  org {org_id}: {count} data keys re-wrapped")

    total = rewrap_all(org_ids, actor=Principal.system("station keys rotate"), progress=progress)
    print(f"Done: {total} data keys re-wrapped under {current} across {len(org_ids)} orgs.")
    return 0


def cmd_keys_retire(args: argparse.Namespace) -> int:
    _setup_django(role="owner")
    from station.core.errors import StationError
    from station.vault.services import retire_master_key
    from tenants import platform

    try:
        retire_master_key(args.kid, platform.all_org_ids())
    except StationError as exc:
        return _die(exc.detail, 1)
    print(f"Master key {args.kid} retired: no data depends on it; remove it from the "
          "configuration.")
    return 0


def cmd_env_export(args: argparse.Namespace) -> int:
    _setup_django()
    from station.envcode import commands

    return commands.export(args.target, args.dir)


def cmd_env_apply(args: argparse.Namespace) -> int:
    _setup_django()
    from station.envcode import commands

    return commands.apply(args.dir, args.to, dry_run=args.dry_run, prune=args.prune)


def cmd_run(args: argparse.Namespace) -> int:
    _setup_django()
    from station.runs import commands

    return commands.run(args.target, args.input, follow=not args.no_follow,
                        timeout=args.timeout)


def cmd_demo(args: argparse.Namespace) -> int:
    _setup_django()
    from station.demo import ensure_demo

    login = ensure_demo()
    print(f"Demo login: {login.email} / {login.password}")
    return 0


def cmd_manage(args: argparse.Namespace) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "station.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["station manage", *args.rest])
    return 0


# --- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station", description=__doc__)
    parser.add_argument("--data-dir", help="data directory (default $STATION_DATA_DIR or ./var)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help: str,
        parent: argparse._SubParsersAction[argparse.ArgumentParser] | None = None,
    ) -> argparse.ArgumentParser:
        p = (parent or sub).add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    up = add(
        "up",
        cmd_up,
        "Start everything on this machine (embedded database and broker "
        "unless DATABASE_URL / CELERY_BROKER_URL are set)",
    )
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--no-demo", action="store_true", help="do not create the demo organization")
    up.add_argument("--data-dir", dest="data_dir_sub", help="data directory (default ./var)")

    web = add("web", cmd_web, "Run the web server (production)")
    web.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server process binds all
    web.add_argument("--port", type=int, default=8000)
    web.add_argument("--workers", type=int, default=2)
    web.add_argument("--threads", type=int, default=4)
    worker = add("worker", cmd_worker, "Run a Celery worker (production)")
    worker.add_argument("--concurrency", type=int, default=2)
    add("beat", cmd_beat, "Run the Celery beat scheduler (one per deployment)")
    mig = add("migrate", cmd_migrate, "Apply database migrations as the owner role")
    mig.add_argument("-v", "--verbosity", type=int, default=1)

    db = sub.add_parser("db", help="Database roles and the embedded server")
    dbsub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    add("bootstrap", cmd_db_bootstrap, "Create the owner and app roles and the database", dbsub)
    add("start", cmd_db_start, "Start the embedded PostgreSQL", dbsub)
    add("stop", cmd_db_stop, "Stop the embedded PostgreSQL", dbsub)

    org = sub.add_parser("org", help="Organizations (platform operator)")
    orgsub = org.add_subparsers(dest="org_command", required=True, metavar="COMMAND")
    oc = add("create", cmd_org_create, "Create an organization with dev/staging/prod", orgsub)
    oc.add_argument("slug")
    oc.add_argument("--name", required=True)
    oc.add_argument("--owner", required=True, help="owner's email")

    key = sub.add_parser("apikey", help="API keys (platform operator)")
    keysub = key.add_subparsers(dest="apikey_command", required=True, metavar="COMMAND")
    kc = add("create", cmd_apikey_create, "Create an API key; prints it once", keysub)
    kc.add_argument("--org", required=True)
    kc.add_argument("--name", required=True)
    kc.add_argument("--role", required=True)
    kc.add_argument("--env", help="bind the key to one environment")

    audit = sub.add_parser("audit", help="The audit log")
    auditsub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    av = add("verify", cmd_audit_verify, "Verify hash chains; names the first bad event", auditsub)
    av.add_argument("--org", help="only this organization (default: all)")

    keys = sub.add_parser("keys", help="Master keys of the secrets vault")
    keyssub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    add("check", cmd_keys_check, "Check the configured master keys against the data", keyssub)
    kr = add("rotate", cmd_keys_rotate, "Add a master key and re-wrap every data key "
             "(resumable)", keyssub)
    kr.add_argument("--rewrap-only", action="store_true",
                    help="only re-wrap under the current key; never add one")
    kt = add("retire", cmd_keys_retire, "Retire a master key no data depends on", keyssub)
    kt.add_argument("kid")

    envp = sub.add_parser("env", help="Environments as code: export, apply (docs/environments"
                          "-as-code.md)")
    envsub = envp.add_subparsers(dest="env_command", required=True, metavar="COMMAND")
    ee = add("export", cmd_env_export, "Write an environment to a bundle directory", envsub)
    ee.add_argument("target", metavar="ORG/ENV")
    ee.add_argument("dir", metavar="DIR")
    ea = add("apply", cmd_env_apply, "Make an environment match a bundle (one transaction)",
             envsub)
    ea.add_argument("dir", metavar="DIR")
    ea.add_argument("--to", required=True, metavar="ORG/ENV")
    ea.add_argument("--dry-run", action="store_true", help="show the changes; change nothing")
    ea.add_argument("--prune", action="store_true",
                    help="also remove what the bundle's files do not list")

    rp = add("run", cmd_run, "Start a run of an agent's latest published version and follow "
             "it to its end (exit 0 when it succeeds)")
    rp.add_argument("target", metavar="ORG/ENV/AGENT")
    rp.add_argument("--input", default="{}", metavar="JSON",
                    help="the run's input, checked against the agent's input schema")
    rp.add_argument("--no-follow", action="store_true",
                    help="print the run id and return once it is queued")
    rp.add_argument("--timeout", type=float, default=600.0,
                    help="stop following after this many seconds (exit 3; the run goes on)")

    add("demo", cmd_demo, "Create the demo organization and login if missing")
    manage = add("manage", cmd_manage, "Run a Django management command")
    manage.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data_dir = getattr(args, "data_dir_sub", None) or args.data_dir
    if data_dir:
        os.environ["STATION_DATA_DIR"] = str(Path(data_dir).resolve())
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
