"""The ``paas`` command: the click group of every command module, and the one place where
errors become messages and exit codes (``run``), for the local CLI and the SSH commands."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType

import click

from paas.cli import (
    account,
    apps,
    checks,
    config,
    domains,
    images,
    logs,
    ports,
    ps,
    releases,
    resource,
    stacks,
    storage,
)
from paas.cli import run as run_command
from paas.cli.base import Session
from paas.errors import PaasError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Deploy apps with git push; run, scale and route them.

    Inside an app's git checkout with a `paas` remote, commands act on that app;
    elsewhere name it first (paas ps:scale hello web=3) or with -a APP.
    """


def commands_of(module: ModuleType) -> list[click.Command]:
    """The click commands a command module defines."""
    return [value for value in vars(module).values() if isinstance(value, click.Command)]


for _module in (
    account, apps, checks, config, domains, images, logs, ports, ps, releases, resource,
    stacks, storage,
    run_command,
):
    for _command in commands_of(_module):
        cli.add_command(_command)


def run(argv: Sequence[str], session: Session | None = None, group: click.Group = cli) -> int:
    """Run one command line of ``group``; return its exit status. Errors are printed to
    stderr as ``error: MESSAGE`` with the exit code of their kind (``paas.errors``)."""
    try:
        status = group.main(
            args=list(argv), prog_name="paas", standalone_mode=False, obj=session
        )
    except PaasError as exc:
        click.echo(f"error: {exc.message}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return status if isinstance(status, int) else 0


def main(argv: list[str] | None = None) -> int:
    """``paas``: the console script."""
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
