"""``osago-admin``: operator commands (the aggregator API owns the schema).

osago-admin migrate                          create the database if missing, apply migrations,
                                             rebuild job queues an older release made (jobs kept)
osago-admin create-partner --name N --rps R  create a partner; its API key is the last line printed
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import uuid
from pathlib import Path

from aerich import Command
from tortoise import Tortoise

import migrations
from shared.intake.api_keys import hash_api_key, new_api_key
from shared.models import Partner
from shared.platform.db import create_database_if_missing, tortoise_config
from shared.platform.settings import Settings, settings_or_exit
from shared.quoting.insurers import CATALOGUE
from shared.quoting.queue_upgrade import upgrade_job_queues
from shared.quoting.topology import job_queue_name

MIGRATIONS_DIR = Path(migrations.__file__).parent


async def migrate(settings: Settings) -> list[str]:
    # aerich's Command is a TortoiseContext that leaves itself in a context variable; an
    # empty context keeps that from leaking into (or in from) the caller's Tortoise state.
    return await asyncio.create_task(_migrate(settings), context=contextvars.Context())


async def _migrate(settings: Settings) -> list[str]:
    created = await create_database_if_missing(settings.database_url)
    if created:
        print(f"created database {settings.database_url.rsplit('/', 1)[-1]}")
    command = Command(
        tortoise_config=tortoise_config(settings.database_url), app="models", location=str(MIGRATIONS_DIR)
    )
    try:
        await command.init()
        applied = await command.upgrade(run_in_transaction=True)
    finally:
        await command.aclose()
    print(f"migrations applied: {', '.join(applied) if applied else 'none (schema is current)'}")
    rebuilt = await upgrade_job_queues(
        settings.amqp_url,
        [insurer.code for insurer in CATALOGUE],
        quorum_group_size=settings.amqp_quorum_group_size,
    )
    for code, moved in rebuilt.items():
        print(f"job queue {job_queue_name(code)} rebuilt for this release; {moved} jobs kept")
    return applied


async def insert_partner(name: str, requests_per_second: float) -> tuple[Partner, str]:
    """A new partner and its API key (the key is not stored, only its hash)."""
    api_key = new_api_key()
    partner = await Partner.create(
        id=uuid.uuid4(), name=name, api_key_hash=hash_api_key(api_key), requests_per_second=requests_per_second
    )
    return partner, api_key


async def create_partner(settings: Settings, name: str, rps: float) -> str:
    await Tortoise.init(config=tortoise_config(settings.database_url))
    try:
        partner, api_key = await insert_partner(name, rps)
    finally:
        await Tortoise.close_connections()
    print(f"partner {partner.id} ({name}), quota {rps:g} requests/s; the API key is shown once:")
    print(api_key)
    return api_key


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="osago-admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create the database if missing and apply migrations")
    partner = commands.add_parser("create-partner", help="create a partner and print its API key once")
    partner.add_argument("--name", required=True)
    partner.add_argument("--rps", type=float, required=True, help="quota in requests per second")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    if args.command == "migrate":
        asyncio.run(migrate(settings))
    elif args.command == "create-partner":
        if not 0 < args.rps <= 10_000:
            parser.error("--rps must be between 0 and 10000")
        if not args.name.strip() or len(args.name) > 100:
            parser.error("--name must be 1 to 100 characters")
        asyncio.run(create_partner(settings, args.name.strip(), args.rps))


if __name__ == "__main__":
    main()
