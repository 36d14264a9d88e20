"""manage.py simulate_routing --from T --to T [--policy FILE]: what-if routing over a recorded period.

Replays the period's arrivals, handle times and agent presence through the
recorded policy and through the candidate (routing.whatif, docs/HISTORY.md),
and prints the figures side by side. Reads only: nothing live changes.
"""

import datetime as dt
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from routing import whatif

ROWS = (("arrived", "{:.0f}"), ("answered", "{:.0f}"), ("abandoned", "{:.0f}"), ("service_level", "{:.1%}"),
        ("asa_seconds", "{:.1f} s"), ("abandonment_rate", "{:.1%}"), ("occupancy", "{:.1%}"))


def _when(value: str, name: str) -> dt.datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"--{name}: an ISO 8601 date and time, e.g. 2026-11-16T08:00:00Z (not {value!r})")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, dt.UTC)


def _fmt(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


class Command(BaseCommand):
    help = "Replay a recorded period's traffic through a candidate routing policy and compare (docs/HISTORY.md)."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", required=True, help="the period's start (ISO 8601)")
        parser.add_argument("--to", dest="end", required=True, help="its end, excluded (ISO 8601)")
        parser.add_argument("--policy", help="a JSON file: the candidate's changes to the configuration "
                                             "(docs/HISTORY.md); none: the recorded policy against itself")
        parser.add_argument("--seed", type=int, default=0, help="for the replay's draws (default 0)")
        parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
        parser.add_argument("--save", action="store_true", help="also keep it as a simulation the API lists")

    def handle(self, *args, start, end, policy, seed, json: bool, save: bool, **options):
        start, end = _when(start, "from"), _when(end, "to")
        spec = {}
        if policy:
            try:
                spec = _load(Path(policy))
            except (OSError, ValueError) as exc:
                raise CommandError(f"--policy {policy}: {exc}") from None
        try:
            whatif.check_window(start, end, timezone.now())
            report = whatif.what_if(start, end, spec, seed=seed)
        except whatif.InvalidWhatIf as exc:
            raise CommandError(f"{exc.field}: {exc}") from None
        if save:
            from routing.models import Simulation

            Simulation.objects.create(requested_by="manage.py", start=start, end=end, policy=spec, seed=seed,
                                      status=Simulation.DONE, result=report, finished_at=timezone.now())
        if json:
            self.stdout.write(_dumps(report))
            return
        self._table(report)

    def _table(self, report: dict) -> None:
        out = self.stdout.write
        perf = report["performance"]
        out(f"What-if routing, {report['from']} to {report['to']}: {report['contacts']} contacts, "
            f"{report['agents']} agents (seed {report['seed']})")
        out(f"{'':18}{'recorded':>12}{'recorded policy':>17}{'candidate':>12}{'difference':>12}")
        recorded, replayed, candidate = (report[k]["totals"] for k in ("recorded", "recorded_policy", "candidate"))
        for key, pattern in ROWS:
            diff = report["difference"].get(key) if key in report["difference"] else (
                None if candidate[key] is None or replayed[key] is None else candidate[key] - replayed[key])
            sign = "+" if diff is not None and diff > 0 else ""
            out(f"{key:18}{_fmt(recorded[key], pattern):>12}{_fmt(replayed[key], pattern):>17}"
                f"{_fmt(candidate[key], pattern):>12}{sign + _fmt(diff, pattern) if diff is not None else '-':>12}")
        out("")
        out("Service level by queue (recorded policy -> candidate):")
        theirs = {q["queue"]: q for q in report["candidate"]["queues"]}
        for q in report["recorded_policy"]["queues"]:
            c = theirs.get(q["queue"], {})
            out(f"  {q['queue']:24}{_fmt(q['service_level'], '{:.1%}'):>8} -> "
                f"{_fmt(c.get('service_level'), '{:.1%}'):>7}   ({q['arrived']} contacts)")
        out("")
        out("Per-agent load (handled, occupancy: recorded policy -> candidate):")
        theirs = {a["agent_id"]: a for a in report["candidate"]["agents"]}
        for a in report["recorded_policy"]["agents"]:
            c = theirs.pop(a["agent_id"], {})
            out(f"  {a['agent_id']:24}{a['handled']:>5} {_fmt(a['occupancy'], '{:.0%}'):>5} -> "
                f"{c.get('handled', 0):>5} {_fmt(c.get('occupancy'), '{:.0%}'):>5}")
        for name, c in theirs.items():
            out(f"  {name:24}{'(added)':>11} -> {c['handled']:>5} {_fmt(c['occupancy'], '{:.0%}'):>5}")
        fid = report["fidelity"]
        ok = all(fid["within_tolerance"].values())
        out("")
        out(f"Fidelity: the recorded policy's replay against what happened is {'within' if ok else 'OUTSIDE'} "
            f"tolerance: " + ", ".join(f"{k} {v:+g}" for k, v in fid["difference"].items() if v is not None))
        out(f"Simulated {perf['simulated_events']} events in {perf['simulation_seconds']} s "
            f"({perf['events_per_second']} events/s); read {perf['events_read']} events in {perf['load_seconds']} s.")


def _load(path: Path) -> dict:
    value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise ValueError("a JSON object with `queues` and/or `agents`")
    return value


def _dumps(value) -> str:
    return json.dumps(value, indent=1, sort_keys=False, default=str)
