"""`triggerfish deploy [APP_DIR]`: pack an app directory, upload it as a content-addressed bundle, deploy it.

    HEAD /-/api/v1/apps/{app}/bundles/{sha256}    the server has it already? (200, else 404)
    PUT  /-/api/v1/apps/{app}/bundles/{sha256}    the tar.gz, when it has not
    POST /-/api/v1/apps/{app}/deploys             {"bundle": sha256, "stage": null}

The server installs requirements.txt, imports the app and only then moves
`live` to the new version; the answer lists the phases it went through and
which functions changed. A failed deploy (422 `DeployFailed`) names its
phase and carries pip's output or the import traceback, which are printed.

The app is `app.py` in APP_DIR, or the file `app = "..."` names in its
triggerfish.toml. Its name on the server, first found wins: `--app`, then
`name = "..."` in triggerfish.toml, then the name given to `App("...")` in
the app file (read from the source, never imported: the CLI need not have
the app's requirements), then the directory's name. `$TRIGGERFISH_APP` is
not used: deploying one project under another app's name would replace it.

Exit codes: 0 deployed; 1 the server refused or the deploy failed; 2 bad
local input (no app, a bad triggerfish.toml, a file the bundle cannot hold,
a requirements.txt line the server would refuse);
3 the server is unreachable; 4 not authorised.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click

from triggerfish.cli.client import EXIT_REFUSED, Client, CliError, input_error, server_options
from triggerfish.cli.output import Output, json_option
from triggerfish.cli.project import Project, find_project

#: Seconds allowed for the upload, and for the server to install and import (pip can be slow).
UPLOAD_TIMEOUT = 600.0
DEPLOY_TIMEOUT = 1800.0


@click.command()
@click.argument(
    "app_dir", default=".", type=click.Path(file_okay=False, path_type=Path), metavar="[APP_DIR]", required=False
)
@click.option("--app", "app_name", default=None, help="The app's name on the server (else see below).")
@click.option("--stage", default=None, help="The triggerfish.toml stage to deploy with ([stages.NAME]).")
@server_options(app=False)
@json_option
def deploy(
    app_dir: Path, app_name: str | None, stage: str | None, server: str | None, key: str | None, as_json: bool
) -> None:
    """Deploy the app in APP_DIR (default: the current directory) to a `triggerfish serve` server.

    Packs the directory (leaving out what .triggerfishignore names, and
    .git/, __pycache__/, virtual environments, .triggerfish/), uploads it
    unless the server has the same bundle, and deploys it: the server
    installs requirements.txt, imports the app and moves `live` to the new
    version only if all of that worked. Prints each phase and which
    functions changed; --json prints the server's answer.

    The app's name: --app, else `name` in triggerfish.toml, else the name in
    `App("...")` in the app file, else the directory's name.

    \b
    Examples:
      triggerfish deploy
      triggerfish deploy examples/shop --server http://10.0.0.5:8080
      triggerfish deploy --stage prod --json
    """
    from triggerfish.cli.progress import Bar, chunks, with_progress
    from triggerfish.deploy.bundle import pack
    from triggerfish.errors import BundleError

    out = Output(as_json)
    project = find_project(app_dir, app_name, stage)
    check_requirements_file(project.directory)
    try:
        bundle = pack(project.directory)
    except BundleError as exc:
        raise input_error(str(exc)) from None
    sha = bundle.sha256
    _progress(
        out, "pack", f"{len(bundle.files)} files, {_size(bundle.source_bytes)} -> {_size(bundle.size)} ({sha[:12]})"
    )
    with Client(server, key) as client:
        path = client.app_api(f"/bundles/{sha}", project.name)
        uploaded = not _has_bundle(client, path)
        if uploaded:
            # In a pipe the phase lines below say how it went: the bars are for a terminal.
            with Bar(out, f"uploading {_size(bundle.size)}", "bytes", plain=False) as bar:
                client.request(
                    "PUT",
                    path,
                    content=chunks(bundle.data, bar),
                    headers={"content-type": "application/gzip", "content-length": str(bundle.size)},
                    timeout=UPLOAD_TIMEOUT,
                )
            _progress(out, "upload", f"{_size(bundle.size)} sent")
        else:
            _progress(out, "upload", "skipped: the server has this bundle already")
        try:
            answer = with_progress(
                out,
                client,
                "deploying",
                lambda headers: client.request(
                    "POST",
                    client.app_api("/deploys", project.name),
                    json={"bundle": sha, "stage": stage},
                    headers=headers,
                    timeout=DEPLOY_TIMEOUT,
                ),
                progress_path=client.app_api("/progress/{id}", project.name),
                unit="steps",
                plain=False,
            )
        except CliError as exc:
            if exc.code != "DeployFailed":
                raise
            _failed(out, project, exc)
    document = {
        "app": project.name,
        "bundle": {"sha256": sha, "size": bundle.size, "files": len(bundle.files), "uploaded": uploaded},
        **(answer if isinstance(answer, Mapping) else {"answer": answer}),
    }
    if out.json(document):
        return
    _show(out, project, stage, document)


def check_requirements_file(directory: Path) -> None:
    """Refuse, as the server would (exit 2), a requirements.txt with lines that are not package requirements."""
    from triggerfish.deploy.requirements import REQUIREMENTS_FILE, check_requirements
    from triggerfish.errors import RequirementsError

    path = directory / REQUIREMENTS_FILE
    if not path.is_file():
        return
    try:
        check_requirements(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise input_error(f"{path}: cannot be read as UTF-8 text: {exc}") from None
    except RequirementsError as exc:
        raise input_error(str(exc)) from None


def _has_bundle(client: Client, path: str) -> bool:
    try:
        client.send("HEAD", path, timeout=UPLOAD_TIMEOUT)
    except CliError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _progress(out: Output, phase: str, text: str) -> None:
    if out.as_json:
        return
    if out.terminal:
        from rich.text import Text

        out.console.print(Text.assemble((f"{phase:>8} ", "bold cyan"), text))
    else:
        out.write(f"{phase}: {text}")


def _show(out: Output, project: Project, stage: str | None, document: Mapping[str, Any]) -> None:
    for phase in document.get("phases") or []:
        if not isinstance(phase, Mapping):
            continue
        seconds = phase.get("seconds")
        said = f"{seconds:.2f} s" if isinstance(seconds, int | float) else "done"
        if phase.get("cached"):
            said += " (cached)"
        else:
            # pip's last line ("Successfully installed ...") says what the install did; all of it is in --json.
            last = next((line for line in reversed(str(phase.get("output") or "").splitlines()) if line.strip()), "")
            if last and phase.get("name") == "install":
                said += f": {last.strip()}"
        _progress(out, str(phase.get("name", "?")), said)
    where = f" (stage {stage})" if stage else ""
    out.line(f"deployed {project.name} version {document.get('version')}{where}: live now", style="bold green")
    functions = document.get("functions") or {}
    styles = {"added": "green", "changed": "yellow", "removed": "red", "unchanged": "dim"}
    for kind, style in styles.items():
        names = functions.get(kind) if isinstance(functions, Mapping) else None
        if names:
            out.line(f"  {kind}: {', '.join(str(n) for n in names)}", style=style)


def _failed(out: Output, project: Project, exc: CliError) -> NoReturn:
    error = dict(exc.error)
    if out.json({"app": project.name, "error": error}):
        raise SystemExit(EXIT_REFUSED)
    phase = error.get("phase") or "deploy"
    click.echo(
        f"{click.style('error:', fg='red', bold=True)} the deploy of {project.name} failed at {phase}:"
        f" {error.get('message', exc.message)}",
        err=True,
    )
    details = str(error.get("details") or "").rstrip()
    if details:
        click.echo(details, err=True)
    click.echo(f"nothing changed: {project.name}'s live version is the one it was", err=True)
    raise SystemExit(EXIT_REFUSED)


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} kB"
    return f"{size} B"
