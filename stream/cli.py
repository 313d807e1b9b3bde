"""The ``ctgwatch`` command.

Operator-facing errors (a taken port, a missing binary, an unreachable
broker) are :class:`SetupError` and print as one line with the fix; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from stream.core.errors import SetupError
from stream.core.settings import Settings, load_settings

app = typer.Typer(
    name="ctgwatch",
    help="Real-time CTG and maternal vital-sign monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



class WardMix(StrEnum):
    """Which scenarios a simulated ward draws from (stream.sources.ward.MIXES)."""

    standard = "standard"
    normal = "normal"


class Role(StrEnum):
    """Nurse-station roles (stream.station.users.ROLES)."""

    nurse = "nurse"
    obstetrician = "obstetrician"
    admin = "admin"


class TrainingSource(StrEnum):
    """Where training recordings come from (models.training.versions)."""

    auto = "auto"
    ctu_uhb = "ctu-uhb"
    simulator = "simulator"


class RecordHalf(StrEnum):
    """Which CTU-UHB records an evaluation scores (stream.evaluation.burden)."""

    all = "all"
    tuning = "tuning"
    held_out = "held_out"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


StateDir = Annotated[Path | None, typer.Option("--state-dir", help="Pid files, logs, runtime files.")]


def _settings(state_dir: Path | None) -> Settings:
    try:
        return load_settings(state_dir=state_dir)
    except ValidationError as exc:  # a bad environment value
        first = exc.errors()[0]
        name = "CTGWATCH_" + "_".join(str(p) for p in first["loc"]).upper()
        raise SetupError(
            f"invalid setting {name}={first.get('input')!r}: {first['msg']}",
            f"set {name} to a valid value or unset it",
        ) from exc


def _print_status(settings: Settings) -> bool:
    from infra.launcher.stack import status

    rows = status(settings)
    typer.echo(f"{'service':<10}{'mode':<10}{'pid':<9}{'health':<10}{'address':<28}version / reason")
    for r in rows:
        typer.echo(
            f"{r.name:<10}{r.mode:<10}{(str(r.pid) if r.pid else '-'):<9}"
            f"{('healthy' if r.healthy else 'DOWN'):<10}{r.address:<28}{r.version}"
        )
    from infra.launcher.ward import ward_status

    healthy = all(r.healthy for r in rows)
    for name, pid in ward_status(settings):
        typer.echo(f"{name:<10}{'process':<10}{(str(pid) if pid else '-'):<9}{('running' if pid else 'STOPPED'):<10}"
                   f"{'':<28}log {settings.log_dir / (name + '.log')}")
        healthy = healthy and pid is not None
    from infra.launcher.supervisor import restart_report

    for line in restart_report(settings):
        typer.echo(line)
    # The lag and the worker's heartbeat are always printed: an operator needs them most when something is down.
    if any(r.name == "broker" and r.healthy for r in rows):
        _print_lag(settings)
    else:
        typer.echo(f"lag       worker group {settings.worker_app_id!r}: unknown (broker down)")
    if any(r.name == "redis" and r.healthy for r in rows):
        from infra.launcher.ward import worker_started_at

        _print_heartbeat(settings, worker_started_at(settings))
    else:
        typer.echo("heartbeat unknown (redis down): the station cannot show alarms")
    return healthy


def _print_heartbeat(settings: Settings, worker_started: float | None = None) -> None:
    """The worker's last report; one older than the running worker process came from an earlier run."""
    import asyncio
    import time

    from redis.asyncio import Redis

    from stream.state.heartbeat import age_s

    async def read() -> float | None:
        redis = Redis.from_url(settings.redis_dsn)
        try:
            return await age_s(redis)
        finally:
            await redis.aclose()

    typer.echo(heartbeat_line(asyncio.run(read()), worker_started, time.time(), settings.dashboard_worker_stale_s))


def heartbeat_line(age: float | None, worker_started: float | None, now: float, stale_s: float) -> str:
    """What `status` says of the worker's heartbeat: never a report older than the running worker as its own."""
    if age is None:
        return "heartbeat no worker has reported"
    if worker_started is not None and now - age < worker_started:
        return (f"heartbeat the worker started {now - worker_started:.0f} s ago has not reported yet "
                f"(the last report, {age:.0f} s ago, came from an earlier run)")
    if age > stale_s:
        return f"heartbeat STALE: the worker last reported {age:.0f} s ago; no alarm is being raised"
    return f"heartbeat worker reported {age:.0f} s ago"


def _print_lag(settings: Settings) -> bool:
    import asyncio

    from stream.core.kafka import group_lag

    try:
        lag = asyncio.run(group_lag(settings))
    except Exception as exc:  # status must report, not crash
        typer.echo(f"lag       worker group {settings.worker_app_id!r}: unknown ({type(exc).__name__}: {exc})")
        return True
    if lag is None:
        typer.echo(f"lag       worker group {settings.worker_app_id!r}: no committed offsets yet")
    else:
        parts = ", ".join(f"{topic} {n}" for topic, n in lag.items())
        typer.echo(f"lag       worker group {settings.worker_app_id!r}: {parts} record(s) behind")
    return True


@app.command()
def up(
    state_dir: StateDir = None,
    ward: Annotated[bool, typer.Option(help="Also run the worker, the simulated ward and (with data) the replayer.")] = False,
    fresh: Annotated[bool, typer.Option(help="With --ward: clear the previous run's alerts and traces first (users kept).")] = False,
) -> None:
    """Start the embedded broker, Redis and Triton (or check the external ones)."""
    from infra.launcher.stack import down as stack_down
    from infra.launcher.stack import status as stack_status
    from infra.launcher.stack import up as stack_up

    settings = _settings(state_dir)
    running_before = {r.name for r in stack_status(settings) if r.pid}
    if ward:  # a taken dashboard port is found before anything starts
        from infra.launcher.ward import check_ward_ports

        check_ward_ports(settings)
    stack_up(settings, echo=typer.echo)
    if ward:
        from infra.launcher.ward import start_ward, ward_status

        try:
            if fresh and not any(pid for _, pid in ward_status(settings)):
                typer.echo(f"ward      fresh     cleared {_clear_ward(settings)} key(s) of the previous run (users kept)")
            elif fresh:
                typer.echo("ward      resumed   the ward is already running; 'make down' first for a fresh one")
            start_ward(settings, echo=typer.echo)
        except BaseException:
            # a ward that cannot start leaves nothing this call started behind (start_ward stops its own)
            started = [r.name for r in stack_status(settings) if r.pid and r.name not in running_before]
            if started:
                stack_down(settings, echo=typer.echo, only=started)
            raise
    typer.echo("")
    if not _print_status(settings):
        raise typer.Exit(1)


def _clear_ward(settings: Settings) -> int:
    import asyncio

    from redis.asyncio import Redis

    from stream.state.ward_reset import clear_clinical_state

    async def clear() -> int:
        redis = Redis.from_url(settings.redis_dsn)
        try:
            return await clear_clinical_state(redis)
        finally:
            await redis.aclose()

    return asyncio.run(clear())


@app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop the embedded services; no process is left behind."""
    from infra.launcher.stack import down as stack_down
    from infra.launcher.ward import stop_ward

    settings = _settings(state_dir)
    stop_ward(settings, echo=typer.echo)
    stack_down(settings, echo=typer.echo)


@app.command()
def status(state_dir: StateDir = None) -> None:
    """Health and version of each service; exit status 1 if any is down."""
    if not _print_status(_settings(state_dir)):
        raise typer.Exit(1)


@app.command()
def alerts(
    bed: Annotated[str | None, typer.Option(help="Only this bed.")] = None,
    state_dir: StateDir = None,
) -> None:
    """The ward's open alarms, highest priority first, then the notices (information, no acknowledgement)."""
    import asyncio
    import time as _time

    from redis.asyncio import Redis

    from stream.state.alerts import AlertRecord, AlertStore
    from stream.state.patient_status import PatientStatus, PatientStatusStore

    settings = _settings(state_dir)

    async def fetch() -> tuple[list[AlertRecord], list[PatientStatus]]:
        redis = Redis.from_url(settings.redis_dsn)
        try:
            alarms = await AlertStore(redis, settings.alert_handling()).open_alerts(bed_id=bed)
            store = PatientStatusStore(redis)
            statuses = [await store.read(p) for p in await store.ward_patients(settings.ward_id)]
            return alarms, [s for s in statuses if bed is None or s.bed_id == bed]
        finally:
            await redis.aclose()

    alarms, statuses = asyncio.run(fetch())
    rows = sorted(alarms, key=lambda a: (-a.severity, a.bed_id, a.raised_at))
    now = _time.time()
    from stream.alarms.policy import Priority

    table = [[a.bed_id, a.patient_id, str(Priority.of_severity_name(a.severity_name)), a.status,
              f"{(now - a.raised_at) / 60:.0f}m", a.kind, a.sentence] for a in rows]
    for line in text_table(["bed", "patient", "priority", "status", "age", "alarm", "evidence"], table):
        typer.echo(line)
    typer.echo(f"{len(rows)} open alarm(s) in ward {settings.ward_id}")
    notices = [[s.bed_id, s.patient_id, n.kind + (" (watching)" if n.qualifying else ""), n.sentence]
               for s in sorted(statuses, key=lambda s: s.bed_id) for n in s.notices]
    if notices:
        typer.echo("")
        for line in text_table(["bed", "patient", "notice", "what"], notices):
            typer.echo(line)
    typer.echo(f"{len(notices)} notice(s): information only, no acknowledgement")


def text_table(headers: list[str], rows: list[list[str]], gap: int = 2) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart (the last one left unpadded)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    return ["".join(f"{str(cell):<{w + gap}}" for cell, w in zip(r, widths)) + str(r[-1]) for r in [headers, *rows]]


@app.command()
def topics(state_dir: StateDir = None) -> None:
    """Create the topics of infra/topics.yaml on the configured broker (idempotent)."""
    from infra.launcher.services import Broker
    from infra.launcher.stack import wait_ready

    broker = Broker(_settings(state_dir))
    wait_ready(broker, None, 30.0)
    typer.echo(broker.after_ready())


@app.command()
def worker(
    state_dir: StateDir = None,
    loglevel: Annotated[LogLevel, typer.Option(help="How much the worker logs.")] = LogLevel.info,
) -> None:
    """Run a stream worker (Faust); start more of them to share the partitions."""
    from stream.worker.app import run_worker

    run_worker(_settings(state_dir), loglevel=loglevel.value)


@app.command(hidden=True)
def supervise(state_dir: StateDir = None) -> None:
    """Keep the ward's worker, station and gateway running (started by ``up --ward``; stopped by ``down``)."""
    from infra.launcher.supervisor import run_supervisor

    run_supervisor(_settings(state_dir))


@app.command()
def simulate(
    beds: Annotated[int, typer.Option(min=1, max=500, help="Number of beds (one patient each).")] = 8,
    speed: Annotated[float, typer.Option(min=0.1, max=10_000, help="1 = real time; 60 = one hour per minute.")] = 1.0,
    duration: Annotated[float, typer.Option(min=60, help="Seconds of recording per bed (at least 60).")] = 3600.0,
    seed: Annotated[int, typer.Option(help="Same seed, same ward.")] = 0,
    mix: Annotated[WardMix, typer.Option(help="standard: every scenario; normal: normal beds only.")] = WardMix.standard,
    first_bed: Annotated[int, typer.Option(min=1, help="Number of the first bed (bed-01 by default).")] = 1,
    follow: Annotated[bool, typer.Option(help="Keep going live (speed 1) after the first recording.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Publish a simulated ward of bedside monitors (CTG + maternal vitals) with ground truth."""
    import asyncio

    from stream.core.kafka import producer_outbox
    from stream.sources.ward import assign_beds, run_ward

    settings = _settings(state_dir)
    ward = assign_beds(beds, seed=seed, mix=mix.value, duration_s=duration, first_bed=first_bed)
    _refuse_held_beds(settings, {b.bed_id: b.patient_id for b in ward})
    for bed in ward:
        typer.echo(f"{bed.bed_id}  {bed.patient_id}  ctg={bed.ctg.name}  vitals={bed.vitals.name}")

    async def go() -> None:
        outbox = producer_outbox(settings, "simulator", max_records=settings.source_outbox_records)
        await outbox.start(require_broker=True)
        try:
            report = await run_ward(
                outbox, settings.topic_names(), ward, speed=speed, packet_s=settings.packet_s, follow=follow
            )
        finally:
            await outbox.stop()
        typer.echo(f"published {report.sent} records in {report.wall_s:.1f} s: {report.by_topic}")

    asyncio.run(go())


def _refuse_held_beds(settings: Settings, wanted: dict[str, str]) -> None:
    """A source may not publish for a bed a live patient of another source holds: two patients on one bed
    would show as one bed with two traces, and alarms under the wrong name. One line says which bed is
    held and which beds are free."""
    import asyncio
    import re

    from redis.asyncio import Redis

    from stream.state.patient_status import PatientStatusStore

    async def held() -> dict[str, str]:
        redis = Redis.from_url(settings.redis_dsn)
        try:
            return await PatientStatusStore(redis).occupied_beds(settings.ward_id, within_s=BED_HELD_S)
        finally:
            await redis.aclose()

    occupied = asyncio.run(held())
    clashes = {bed: pid for bed, pid in occupied.items() if bed in wanted and wanted[bed] != pid}
    if clashes:
        numbers = [int(m.group(1)) for b in occupied if (m := re.fullmatch(r"bed-(\d+)", b))]
        bed, pid = sorted(clashes.items())[0]
        raise SetupError(f"{bed} is held by live patient {pid} from another source ({len(clashes)} bed(s) clash)",
                         f"publish to free beds, e.g. --first-bed {max(numbers, default=0) + 1}")


#: A bed counts as held while its patient's last packet is this recent (seconds).
BED_HELD_S = 120.0


@app.command("replay")
def replay_cmd(
    directory: Annotated[Path | None, typer.Argument(help="WFDB directory (CTU-UHB layout); default CTGWATCH_CTU_UHB_DIR.")] = None,
    records: Annotated[str | None, typer.Option(help="Comma-separated record names (default: all).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many records (one bed each).")] = 8,
    speed: Annotated[float, typer.Option(min=0.1, max=10_000, help="1 = real time.")] = 1.0,
    physionet: Annotated[bool, typer.Option(help="Fetch the records from PhysioNet (needs internet).")] = False,
    first_bed: Annotated[int, typer.Option(min=1, help="Number of the first bed (bed-01 by default).")] = 1,
    state_dir: StateDir = None,
) -> None:
    """Replay real CTG recordings (WFDB, 4 Hz FHR + UC) into the topics."""
    import asyncio

    from stream.core.kafka import producer_outbox
    from stream.sources.recordings import list_records, read_recording
    from stream.sources.replay import replay
    from stream.sources.ward import bed_label

    settings = _settings(state_dir)
    folder = directory or settings.ctu_uhb_dir
    if records:
        names = [r.strip() for r in records.split(",") if r.strip()]
    elif physionet:
        raise typer.BadParameter("name the records to fetch with --records", param_hint="--records")
    else:
        names = list_records(folder)
    recordings = [read_recording(n, folder, physionet=physionet) for n in names[:limit]]
    _refuse_held_beds(settings, {bed_label(first_bed + i): f"ctu-{r.record_id}" for i, r in enumerate(recordings)})
    for i, r in enumerate(recordings):
        typer.echo(f"{bed_label(first_bed + i)}  ctu-{r.record_id}  {r.duration_s / 60:.0f} min  pH={r.outcome.get('pH', '?')}")

    async def go() -> None:
        outbox = producer_outbox(settings, "replay", max_records=settings.source_outbox_records)
        await outbox.start(require_broker=True)
        try:
            report = await replay(outbox, settings.topic_names(), recordings, speed=speed, packet_s=settings.packet_s,
                                  first_bed=first_bed)
        finally:
            await outbox.stop()
        typer.echo(f"published {report.sent} packets in {report.wall_s:.1f} s")

    asyncio.run(go())


@app.command()
def dashboard(
    host: Annotated[str | None, typer.Option(help="Bind address (default CTGWATCH_HOST).")] = None,
    state_dir: StateDir = None,
) -> None:
    """Run the nurse-station dashboard (web) until interrupted."""
    import uvicorn

    from stream.core.ports import require_free_ports
    from stream.station.app import create_dashboard

    settings = _settings(state_dir)
    bind = host or settings.host
    require_free_ports("dashboard", bind, {"dashboard_port": settings.dashboard_port})
    typer.echo(f"dashboard ready: http://{bind}:{settings.dashboard_port}/")
    uvicorn.run(create_dashboard(settings), host=bind, port=settings.dashboard_port, log_level="warning",
                **settings.proxy_options)


users_app = typer.Typer(help="Dashboard users (nurse, obstetrician, admin).", no_args_is_help=True)
app.add_typer(users_app, name="users")


def _user_admin(state_dir: Path | None, operation, what: str, fix: str):
    """Run one user-administration step against Redis (store and sessions), audited; UserError -> one line."""
    import asyncio
    import json as _json
    import time as _time

    from redis.asyncio import Redis

    from stream.station.sessions import ADMIN_AUDIT, SessionStore
    from stream.station.users import UserError, UserStore

    settings = _settings(state_dir)

    async def run():
        redis = Redis.from_url(settings.redis_dsn)
        try:
            sessions = SessionStore(redis, idle_s=settings.dashboard_session_idle_s,
                                    max_age_s=settings.dashboard_session_max_age_s)
            result = await operation(UserStore(redis), sessions)
            if what:
                await redis.xadd(ADMIN_AUDIT, {"event": what, "actor": "ctgwatch-cli", "at": _time.time(),
                                               "detail": _json.dumps({"result": str(result)})})
            return result
        finally:
            await redis.aclose()

    try:
        return asyncio.run(run())
    except UserError as exc:
        raise SetupError(str(exc), fix) from exc


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


PasswordStdin = Annotated[bool, typer.Option(help="Read the password from standard input.")]


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[Role, typer.Option(help="nurse and obstetrician act on alerts; admin also manages users.")] = Role.nurse,
    password_stdin: PasswordStdin = False,
    state_dir: StateDir = None,
) -> None:
    """Create a user (never overwrites one); the password is asked for (or read from stdin) and stored hashed."""
    password = _read_password(password_stdin)
    _user_admin(state_dir, lambda users, _s: users.add(name, password, role.value), f"user_added:{name}:{role.value}",
                "choose another name, role or password ('ctgwatch users passwd NAME' changes a password)")
    typer.echo(f"user {name} ({role.value}) saved")


@users_app.command("passwd")
def users_passwd(name: str, password_stdin: PasswordStdin = False, state_dir: StateDir = None) -> None:
    """Change a user's password; their open sessions end."""
    password = _read_password(password_stdin)

    async def change(users, sessions):
        await users.set_password(name, password)
        return await sessions.end_all(name)

    ended = _user_admin(state_dir, change, f"password_changed:{name}", "name an existing user; 10 characters at least")
    typer.echo(f"password of {name} changed; {ended} session(s) ended")


@users_app.command("disable")
def users_disable(name: str, enable: Annotated[bool, typer.Option(help="Enable the user again instead.")] = False,
                  state_dir: StateDir = None) -> None:
    """Disable a user (their sessions end at once), or enable them again."""
    async def change(users, sessions):
        await users.set_disabled(name, not enable)
        return 0 if enable else await sessions.end_all(name)

    ended = _user_admin(state_dir, change, f"user_{'enabled' if enable else 'disabled'}:{name}", "name an existing user")
    typer.echo(f"user {name} {'enabled' if enable else 'disabled'}" + ("" if enable else f"; {ended} session(s) ended"))


@users_app.command("remove")
def users_remove(name: str, state_dir: StateDir = None) -> None:
    """Remove a user; their sessions end at once."""
    async def change(users, sessions):
        await users.remove(name)
        return await sessions.end_all(name)

    ended = _user_admin(state_dir, change, f"user_removed:{name}", "name an existing user")
    typer.echo(f"user {name} removed; {ended} session(s) ended")


@users_app.command("list")
def users_list(state_dir: StateDir = None) -> None:
    """Every user with their role and whether they are disabled."""
    async def listing(users, _sessions):
        return await users.list()

    rows = _user_admin(state_dir, listing, "", "")
    for line in text_table(["user", "role", "state"], [[n, r, "disabled" if d else "enabled"] for n, r, d in rows]):
        typer.echo(line)


deadletter_app = typer.Typer(help="The dead-letter topic: what was refused, and sending it again after a fix.")
app.add_typer(deadletter_app, name="deadletter")


@deadletter_app.command("list")
def deadletter_list(state_dir: StateDir = None) -> None:
    """Dead letters on the topic now, counted by code (and how many hold a whole record)."""
    import asyncio

    from stream.sources.deadletters import read_dead_letters

    letters = asyncio.run(read_dead_letters(_settings(state_dir)))
    counts: dict[str, list[int]] = {}
    for _position, letter in letters:
        row = counts.setdefault(letter.code.value, [0, 0])
        row[0] += 1
        row[1] += int(not letter.raw_truncated)
    rows = [[code, str(n), str(whole)] for code, (n, whole) in sorted(counts.items())]
    for line in text_table(["code", "letters", "input kept whole"], rows):
        typer.echo(line)
    typer.echo(f"{len(letters)} dead letter(s)")


@deadletter_app.command("replay")
def deadletter_replay(
    code: Annotated[list[str], typer.Option(help="Reject code(s) to send again, e.g. internal (repeat the option).")],
    dry_run: Annotated[bool, typer.Option(help="Say what would be sent; send nothing.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Send the dead letters of the chosen codes through the pipeline again (stored at their place in time)."""
    import asyncio

    from stream.core.kafka import producer_outbox
    from stream.core.schemas import RejectCode
    from stream.sources.deadletters import plan_replay, read_dead_letters, replay

    try:
        codes = {RejectCode(c) for c in code}
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; codes: {', '.join(c.value for c in RejectCode)}", param_hint="--code") from None
    settings = _settings(state_dir)
    plan = plan_replay(asyncio.run(read_dead_letters(settings)), codes, settings)
    for reason, n in sorted(plan.left.items()):
        typer.echo(f"left: {n} ({reason})")
    if dry_run:
        typer.echo(f"would send {len(plan.send)} record(s) again")
        return

    async def go() -> int:
        outbox = producer_outbox(settings, "deadletter-replay", max_records=settings.source_outbox_records)
        await outbox.start(require_broker=True)
        try:
            return await replay(outbox, plan)
        finally:
            await outbox.stop()

    typer.echo(f"sent {asyncio.run(go())} record(s) again; the worker stores them at their place in time "
               "(a record still wrong is dead-lettered again with its reason)")


gateway_app = typer.Typer(help="IoMT gateway: HTTP JSON ingest and HL7 v2 MLLP listener.", invoke_without_command=True)
app.add_typer(gateway_app, name="gateway")


@gateway_app.callback()
def gateway(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default CTGWATCH_GATEWAY_HOST).")] = None,
    state_dir: StateDir = None,
) -> None:
    """Run the gateway (HTTP ingest + MLLP) until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    from stream.gateway.server import run_gateway

    settings = _settings(state_dir)
    if host:
        settings = settings.model_copy(update={"gateway_host": host})
    run_gateway(settings)


@gateway_app.command("add-device")
def gateway_add_device(device_id: str, state_dir: StateDir = None) -> None:
    """Register a device (or give it a new token); prints the token once."""
    from stream.gateway.devices import DeviceRegistry

    settings = _settings(state_dir)
    token = DeviceRegistry(settings.tokens_file).add(device_id)
    typer.echo(token)
    typer.echo(f"registered {device_id} in {settings.tokens_file}; give the token to the device, it is not stored",
               err=True)


@gateway_app.command("remove-device")
def gateway_remove_device(device_id: str, state_dir: StateDir = None) -> None:
    """Revoke a device's token."""
    from stream.gateway.devices import DeviceRegistry

    if not DeviceRegistry(_settings(state_dir).tokens_file).remove(device_id):
        raise SetupError(f"device {device_id!r} is not registered", "list devices with 'ctgwatch gateway devices'")


@gateway_app.command("devices")
def gateway_devices(state_dir: StateDir = None) -> None:
    """List registered devices."""
    from stream.gateway.devices import DeviceRegistry

    for device in DeviceRegistry(_settings(state_dir).tokens_file).devices():
        typer.echo(device)


@app.command()
def train(
    source: Annotated[TrainingSource, typer.Option(help="auto: CTU-UHB when present, else the simulator.")] = TrainingSource.auto,
    epochs: Annotated[int, typer.Option(min=1, help="Autoencoder epochs.")] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    target_false_alarms: Annotated[float, typer.Option(help="Alarms per monitored hour on held-out normal records.")] = 0.5,
    models: Annotated[str, typer.Option(help="Comma-separated: autoencoder, lstm (acidaemia risk), false_signal.")] = (
        "autoencoder,lstm,false_signal"),
    tiny: Annotated[bool, typer.Option(help="A minutes-long run on a few records (CI: keeps the code path tested).")] = False,
    false_signal_config: Annotated[Path | None, typer.Option(
        help="JSON of false-signal settings (models/training/false_signal.py FalseSignalConfig), e.g. "
             "bench/false_signal_sweep/v4.json: members, network, device, or weights trained on a GPU.")] = None,
    install: Annotated[bool, typer.Option(help="Also write the Triton model repository (infra/triton/model_repository).")] = False,
    state_dir: StateDir = None,
) -> None:
    """Train, calibrate, evaluate and export the models served on Triton (model card per version)."""
    from models.training.versions import TrainConfig
    from models.training.versions import train as run_training

    settings = _settings(state_dir)
    chosen = [m.strip() for m in models.split(",") if m.strip()]
    unknown = set(chosen) - {"autoencoder", "lstm", "false_signal"}
    if unknown:
        raise SetupError(f"unknown model(s) {sorted(unknown)}", "choose from autoencoder, lstm, false_signal")
    cfg = TrainConfig(source=source.value, epochs=epochs, seed=seed, target_false_alarms_per_hour=target_false_alarms,
                      models=chosen)
    if tiny:
        cfg.ctu_limit, cfg.fhrma_limit, cfg.max_train_windows = 24, 12, 200
        cfg.sim_eval_seeds, cfg.sim_duration_s = [10], 1200.0
        cfg.acidaemia = {"epochs": 2, "repeats": 1, "folds": 2, "shifts_s": [0]}
        cfg.false_signal = {"epochs": 1, "crops_per_epoch": 64}
    if false_signal_config is not None:
        cfg.false_signal = {**cfg.false_signal, **_false_signal_overrides(false_signal_config)}
    out = run_training(cfg, settings.models_dir, settings.ctu_uhb_dir, log=typer.echo, fhrma_dir=settings.fhrma_dir)
    typer.echo(f"models written to {out} (model card: {out / 'MODEL_CARD.md'})")
    if install:
        from models.serving.repository import install_version

        version = install_version(out, settings.triton_model_repository)
        typer.echo(f"installed as version {version} in {settings.triton_model_repository}")


def _false_signal_overrides(path: Path) -> dict:
    """FalseSignalConfig fields from a JSON file, refused with the reason when unreadable or unknown."""
    from dataclasses import fields

    from models.training.false_signal import FalseSignalConfig

    try:
        overrides = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read {path}: {exc}", "give a JSON object of FalseSignalConfig fields") from exc
    known = {f.name for f in fields(FalseSignalConfig)}
    if not isinstance(overrides, dict) or set(overrides) - known:
        unknown = sorted(set(overrides) - known) if isinstance(overrides, dict) else "not an object"
        raise SetupError(f"{path}: unknown false-signal settings {unknown}", f"known: {', '.join(sorted(known))}")
    return overrides


evaluate_app = typer.Typer(help="Score detectors and models against ground truth.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")


@evaluate_app.command("detectors")
def evaluate_detectors(
    seeds: Annotated[str, typer.Option(help="Comma-separated simulator seeds (default: held out).")] = "30,31,32,33,34",
    output: Annotated[Path | None, typer.Option(help="Markdown file to write the report to.")] = None,
) -> None:
    """Per-event precision/recall/F1 of every detector on the simulator's scenarios."""
    from stream.evaluation.simulated import evaluate_on_simulator, markdown_report, required_met

    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    total, confusion, records = evaluate_on_simulator(seed_list)
    command = f"ctgwatch evaluate detectors --seeds {','.join(map(str, seed_list))}"
    report = markdown_report(total, confusion, records, command)
    typer.echo(report)
    if output:
        from stream.evaluation.reporting import write_section

        title, _, body = report.partition("\n")
        write_section(output, title.removeprefix("## ").strip(), body, "ctgwatch evaluation")
        typer.echo(f"written to {output}")
    if not required_met(total):
        raise typer.Exit(1)


@evaluate_app.command("quality")
def evaluate_quality(
    directory: Annotated[Path | None, typer.Argument(help="FHRMA false-signal set; default CTGWATCH_FHRMA_DIR.")] = None,
    output: Annotated[Path | None, typer.Option(help="Markdown file to write the section to.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=(
        "Print, per subset, the figures of the judge the stream uses (the deployed false-signal model, "
        "read out live; the rules where none is deployed) as JSON."))] = False,
) -> None:
    """Score the signal-quality judgement (false-signal model / rules) against the FHRMA expert marks."""
    from stream.evaluation.quality import evaluate_fhrma, fhrma_markdown, stream_judge_quality

    settings = _settings(None)
    folder = directory or settings.fhrma_dir
    if not (folder / "annotations.json").is_file():
        raise SetupError(f"no FHRMA annotations.json in {folder}", "pass the fhrma-fs directory or set CTGWATCH_FHRMA_DIR")
    if as_json:
        typer.echo(json.dumps(stream_judge_quality(folder, settings.triton_model_repository), indent=2))
        return
    results, used = evaluate_fhrma(folder)
    body = fhrma_markdown(results, used, "ctgwatch evaluate quality")
    _report(body, "Signal quality against the FHRMA expert false-signal marks", output)


@evaluate_app.command("burden")
def evaluate_burden_cmd(
    directory: Annotated[Path | None, typer.Argument(help="CTU-UHB directory; default CTGWATCH_CTU_UHB_DIR.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N records.")] = None,
    output: Annotated[Path | None, typer.Option(help="Markdown file to write the section to.")] = None,
    step: Annotated[float, typer.Option(min=15, help="Seconds between FIGO analyses (the stream: 15).")] = 60.0,
    sweep: Annotated[bool, typer.Option(help="Also the trade-off table of other qualification times.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the headline figures as one JSON object.")] = False,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    half: Annotated[RecordHalf, typer.Option(help="tuning: even positions (the policy was chosen there); held-out: odd.")] = (
        RecordHalf.all),
    risk: Annotated[bool, typer.Option(help=(
        "Replay the compromise-risk alarm too: out-of-fold risks for the records `evaluate risk` cross-fitted, "
        "the served models for any other."))] = True,
) -> None:
    """Alarms and notices per monitored hour the stream's alarm policy gives on CTU-UHB records, by outcome."""
    from stream.evaluation.burden import alert_burden, burden_json, burden_markdown, candidate_policies

    settings = _settings(None)
    folder = directory or settings.ctu_uhb_dir
    if not folder.is_dir():
        raise SetupError(f"no CTU-UHB directory at {folder}", "pass the ctu-uhb directory or set CTGWATCH_CTU_UHB_DIR")
    policy = settings.alarm_rules()
    risk_source = None
    if risk and settings.compromise_model is not None and settings.compromise_model.is_file():
        from models.serving.compromise import Stacker
        from stream.evaluation.burden import RiskSource
        from stream.evaluation.risk_replay import load_oof

        risk_source = RiskSource(Stacker.load(settings.compromise_model), load_oof(settings.models_dir),
                                 settings.triton_model_repository)
    result = alert_burden(folder, limit, policies=candidate_policies(policy, sweep=sweep), step_s=step,
                          processes=processes, half=None if half is RecordHalf.all else half.value, risk=risk_source)
    if as_json:
        typer.echo(burden_json(result, policy))
        return
    command = "ctgwatch evaluate burden" + (f" --limit {limit}" if limit else "") + (
        f" --half {half.value.replace('_', '-')}" if half is not RecordHalf.all else "") + (
        f" --step {step:g}" if step != 60 else "") + (" --sweep" if sweep else "") + ("" if risk else " --no-risk")
    _report(burden_markdown(result, command, step), "Alarm burden on CTU-UHB recordings", output)


#: How often the held-out half has been looked at, said with every report (update it with each new look).
RISK_LOOKS = ("The operating point read the tuning half only, by a rule committed (26efacf) before any held-out "
              "record was scored, and measured the alarm with the policy's own tracker. The held-out half has been "
              "scored twice: with the first design (inner halves, unconstrained weights; 'how it is built' below) "
              "and with this one; the alarm figures were read a third time after the selection's alarm model was "
              "made the tracker's (the model and its risks unchanged). They were scored a fourth time, and the "
              "whole report with them, when the cross-fitting and the served stacker were recomputed at the commit "
              "named above, their caches keyed on their code (b574ba2): a reproduction, on which no choice depended, "
              "that replaced the figures of a cross-fitting cached across several commits.")


@evaluate_app.command("risk")
def evaluate_risk_cmd(
    directory: Annotated[Path | None, typer.Argument(help="CTU-UHB directory; default CTGWATCH_CTU_UHB_DIR.")] = None,
    output: Annotated[Path | None, typer.Option(help="Markdown file to write the section to.")] = None,
    install: Annotated[bool, typer.Option(help="Write the served stacker to CTGWATCH_COMPROMISE_MODEL.")] = False,
    repeats: Annotated[int, typer.Option(min=1, help="Repeats of 5-fold cross-fitting.")] = 5,
) -> None:
    """Cross-fit the compromise risk, choose its alarm's operating point on the tuning half, and report it."""
    import json

    from stream.evaluation.risk import evaluate_risk, oof_entries, report_markdown
    from stream.evaluation.risk_replay import OOF_FILE
    from stream.sources.recordings import list_records

    settings = _settings(None)
    folder = directory or settings.ctu_uhb_dir
    if not folder.is_dir():
        raise SetupError(f"no CTU-UHB directory at {folder}", "pass the ctu-uhb directory or set CTGWATCH_CTU_UHB_DIR")
    cache = settings.models_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    series, fit, stacker, chosen = evaluate_risk(folder, cache, settings.triton_model_repository, repeats=repeats,
                                                 log=lambda m: typer.echo(m, err=True))
    (settings.models_dir / OOF_FILE).write_text(json.dumps(oof_entries(series, fit)))
    typer.echo(f"operating point (tuning half): {chosen}", err=True)
    if install:
        if settings.compromise_model is None:
            raise SetupError("CTGWATCH_COMPROMISE_MODEL is unset", "set it to where the stacker should be written")
        stacker.save(settings.compromise_model)
        typer.echo(f"served stacker written to {settings.compromise_model}", err=True)
    img = (output.parent if output else Path("docs")) / "img"
    img.mkdir(parents=True, exist_ok=True)
    command = "ctgwatch evaluate risk" + (f" --repeats {repeats}" if repeats != 5 else "") + (" --install" if install else "")
    body = report_markdown(series, fit, list_records(folder), chosen, img, command, RISK_LOOKS)
    _report(body, "Compromise risk (out of fold)", output)


@evaluate_app.command("risk-screen")
def evaluate_risk_screen_cmd(
    candidate: Annotated[str, typer.Argument(help="The stacker input to screen (FIGO, quality, or from the models' cached outputs).")],
    directory: Annotated[Path | None, typer.Argument(help="CTU-UHB directory; default CTGWATCH_CTU_UHB_DIR.")] = None,
) -> None:
    """Screen one risk input on the tuning half only, by the rule in stream/evaluation/risk_screen.py.

    Reads the cross-fitting cached by `ctgwatch evaluate risk` (its model inputs, with or without the
    candidate) and replays the labours with this code's inputs; scores no held-out record. Exit 0 if the
    rule keeps the candidate, 1 if not.
    """
    from models.serving.compromise import INPUT_NAMES
    from stream.evaluation import cache as cached
    from stream.evaluation.risk import input_width, split_halves
    from stream.evaluation.risk_data import build_series
    from stream.evaluation.risk_screen import screen_input
    from stream.sources.recordings import list_records

    settings = _settings(None)
    folder = directory or settings.ctu_uhb_dir
    if not folder.is_dir():
        raise SetupError(f"no CTU-UHB directory at {folder}", "pass the ctu-uhb directory or set CTGWATCH_CTU_UHB_DIR")
    cache = settings.models_dir / "cache"
    fit_path = cache / "risk_crossfit.pkl"
    stored = cached.read(fit_path)
    if stored is None:
        raise SetupError(f"no cached cross-fitting at {fit_path}", "run `ctgwatch evaluate risk` once first")
    fit = stored.value
    changed = stored.changed()
    if changed:  # a candidate's branch changes the code by design: say so, and screen on the cached models
        typer.echo(f"the cached cross-fitting ran at {fit.made_at or 'an unrecorded commit'}; {len(changed)} source "
                   f"file(s) differ since: {', '.join(changed)}", err=True)
    series = build_series(folder, cache=cache / "risk_series.pkl")
    if fit.record_ids != [s.record_id for s in series]:
        raise SetupError("the cached cross-fitting holds other records", "rerun `ctgwatch evaluate risk`")
    width = input_width(fit)
    names = list(INPUT_NAMES) if width == len(INPUT_NAMES) else [n for n in INPUT_NAMES if n != candidate]
    if len(names) != width:
        raise SetupError(f"the cached cross-fitting has {width} inputs, this code {len(INPUT_NAMES)}",
                         "rerun `ctgwatch evaluate risk`")
    tuning, _ = split_halves(series, list_records(folder))
    result = screen_input(series, fit.inputs, names, tuning, candidate)
    typer.echo(result.summary())
    raise typer.Exit(0 if result.keep else 1)


@evaluate_app.command("alarms")
def evaluate_alarms_cmd(
    output: Annotated[Path | None, typer.Option(help="Markdown file to write the section to.")] = None,
    seeds: Annotated[str, typer.Option(help="Simulator seeds (comma-separated); 30-34 are held out.")] = "30,31,32,33,34",
) -> None:
    """Every clinically significant simulated event still raises an alarm: recall and delay per kind (exit 1 if not)."""
    from stream.evaluation.alarm_recall import SIGNIFICANT, alarm_recall, recall_markdown

    chosen = [int(s) for s in seeds.split(",") if s.strip()]
    results, false_alarms = alarm_recall(_settings(None).alarm_rules(), seeds=chosen)
    command = "ctgwatch evaluate alarms" + (f" --seeds {seeds}" if seeds != "30,31,32,33,34" else "")
    _report(recall_markdown(results, false_alarms, command, chosen), "Alarm recall on simulated events", output)
    missed = [k for k in SIGNIFICANT if results.get(k) is not None and results[k].caught < results[k].events]
    if missed:
        typer.echo(f"missed: {', '.join(missed)}", err=True)
        raise typer.Exit(1)


@evaluate_app.command("ctu")
def evaluate_ctu_cmd(
    directory: Annotated[Path | None, typer.Argument(help="CTU-UHB directory; default CTGWATCH_CTU_UHB_DIR.")] = None,
    output: Annotated[Path | None, typer.Option(help="Markdown file to write the section to.")] = None,
    csv: Annotated[Path | None, typer.Option(help="Per-record CSV.")] = None,
) -> None:
    """The whole-labour FIGO class per CTU-UHB record at delivery and its association with acidaemia."""
    from stream.evaluation.ctu import ctu_markdown, evaluate_ctu

    folder = directory or _settings(None).ctu_uhb_dir
    rows = evaluate_ctu(folder, csv_path=csv)
    command = "ctgwatch evaluate ctu" + (f" --csv {csv}" if csv else "")
    body = ctu_markdown(rows, command)
    _report(body, "FIGO classification against the CTU-UHB outcome", output)


def _report(body: str, title: str, output: Path | None) -> None:
    typer.echo(f"## {title}\n\n{body}")
    if output:
        from stream.evaluation.reporting import write_section

        write_section(output, title, body, "ctgwatch evaluation")
        typer.echo(f"written to {output}")


@evaluate_app.command("models")
def evaluate_models(
    version: Annotated[str, typer.Argument(help="A trained version: its directory, or v<N> under CTGWATCH_MODELS_DIR.")],
    records: Annotated[Path | None, typer.Option(help=(
        "Score this directory with the version's ONNX models instead: WFDB records with pH (AUCs per model and "
        "outcome) or an FHRMA directory (false-signal figures per subset)."))] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N records (WFDB).")] = None,
    split: Annotated[str | None, typer.Option(help=(
        "FHRMA only: score just this part of the version's own split (train, tuning, validation) — the fair "
        "figure on the data it was trained from; an independent directory is scored whole."))] = None,
    simulator: Annotated[bool, typer.Option(help=(
        "Run the false-signal model's safety check on the simulator's standard scenarios (seeds 40-44): fetal "
        "samples judged false and injected false samples caught, per scenario."))] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    output: Annotated[Path | None, typer.Option(help="Markdown file to write the section to.")] = None,
) -> None:
    """A trained version's evaluation, or its served models scored on any directory of recordings."""
    from models.training.versions import evaluation_markdown

    version_dir = Path(version)
    if not version_dir.is_dir():
        version_dir = _settings(None).models_dir / version
    if not (version_dir / "metrics.json").is_file():
        raise SetupError(f"{version_dir} has no metrics.json", "pass a directory written by 'ctgwatch train'")
    if simulator:
        from stream.evaluation.models import simulator_false_signal

        typer.echo(json.dumps(simulator_false_signal(version_dir), indent=2))
        return
    if records is not None:
        from stream.evaluation.models import kind_of, score_fhrma, score_wfdb

        try:
            kind = kind_of(records)
        except ValueError as exc:
            raise SetupError(str(exc), "pass a CTU-UHB-style WFDB directory or the fhrma-fs directory") from exc
        names = None
        if split is not None:
            parts = json.loads((version_dir / "false_signal_split.json").read_text())
            if split not in parts:
                raise SetupError(f"no part {split!r} in the version's split", f"choose from {', '.join(parts)}")
            names = parts[split]
        result = (score_fhrma(version_dir, records, names) if kind == "fhrma"
                  else score_wfdb(version_dir, records, limit))
        typer.echo(json.dumps(result, indent=2) if as_json else _models_summary(result))
        return
    if as_json:
        typer.echo((version_dir / "metrics.json").read_text())
        return
    title, body = evaluation_markdown(version_dir)
    typer.echo(f"## {title}\n\n{body}")
    if output:
        from stream.evaluation.reporting import write_section

        write_section(output, title, body, "ctgwatch evaluation")
        typer.echo(f"written to {output}")


def _models_summary(result: dict) -> str:
    """A short human reading of :mod:`stream.evaluation.models` results."""
    lines = [f"{result['version']} on {result['directory']} ({result['records']} records)"]
    for name, outcomes in result.get("models", {}).items():
        for outcome, r in outcomes.items():
            ci = r.get("ci95")
            lines.append(f"  {name} {outcome}: AUC {r['auc']}" + (f" (95% CI {ci[0]}-{ci[1]})" if ci else "")
                         + f", {r['positives']} positives of {r['records']}")
    if "ctg_false_signal" in result:
        for mode in ("live", "settled"):
            for subset, r in result["ctg_false_signal"][mode].items():
                ci = r.get("interval_95", {})
                lines.append(f"  ctg_false_signal {mode} {subset}: F1 {r['f1']} (95% CI {ci.get('f1')}), sensitivity "
                             f"{r['sensitivity']}, specificity {r['specificity']} (95% CI {ci.get('specificity')}), "
                             f"false minutes caught {r['false_minutes_caught']}")
        for subset, r in result["rules"].items():
            lines.append(f"  rules {subset}: F1 {r['f1']}, sensitivity {r['sensitivity']}, specificity {r['specificity']}")
    return "\n".join(lines)


#: Commands that run as services: their logs keep every aiokafka line.
LONG_RUNNING = {"worker", "gateway", "dashboard", "up"}


def unreachable_service(exc: BaseException) -> SetupError | None:
    """A service outage (Redis, the broker) as one line naming the service and the fix; None for anything else.

    Any command that needs the stack meets the same outage the same way, so it is caught once, here,
    instead of in each command (they used to print a 95-line traceback and exit 1).
    """
    from stream.worker.outage import outage_cause, service_of

    cause = outage_cause(exc)
    if cause is None:
        return None
    service = service_of(cause)
    try:
        settings = Settings()
        from urllib.parse import urlsplit

        url = urlsplit(settings.redis_dsn)  # host and port only: a URL may carry a password
        where = {"Redis": f" at {url.hostname}:{url.port or 6379} (CTGWATCH_REDIS_URL)",
                 "the Kafka broker": f" at {settings.bootstrap_servers} (CTGWATCH_KAFKA_BOOTSTRAP)"}.get(service, "")
    except Exception:  # noqa: BLE001 (a bad environment is reported by the command that reads it)
        where = ""
    reason = str(cause).splitlines()[0][:160] if str(cause) else type(cause).__name__
    return SetupError(f"{service}{where} is unreachable ({reason})",
                      "start the stack with `ctgwatch up` (or `make demo`), or point the command at the running one")


def main() -> None:
    """Console entry point: one clear line for operator errors and for a stack that is down."""
    if len(sys.argv) > 1 and sys.argv[1] not in LONG_RUNNING:
        # a one-shot command reports an unreachable broker in its own line; aiokafka's connection log
        # lines would come first and read like a second error (the services keep them in their logs)
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        app()
    except SetupError as exc:
        typer.echo(f"ctgwatch: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        down = unreachable_service(exc)
        if down is None:
            raise
        typer.echo(f"ctgwatch: error: {down}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
