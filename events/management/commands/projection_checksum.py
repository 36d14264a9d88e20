import json

from django.core.management.base import BaseCommand, CommandError

from events import projection
from events.checksum import checksum, replay_checksums
from events.store import head_position


class Command(BaseCommand):
    help = ("Checksum each projection's tables (rows in key order, bookkeeping columns left out); with --replay, "
            "also rebuild them from the event store in a scratch schema and say whether live equals the rebuild.")

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="projection names (default: every projection)")
        parser.add_argument("--replay", action="store_true",
                            help="compare with a full replay into a scratch schema (the live tables are not touched); "
                                 "exit 1 when they differ")
        parser.add_argument("--diff", type=int, default=5, metavar="N",
                            help="with --replay: name up to N differing rows per table and side (default 5)")
        parser.add_argument("--batch-size", type=int, default=5000, help="replay batch size")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print one JSON object instead of a table")

    def handle(self, *args, names, replay, diff, batch_size, as_json, **options):
        try:
            selected = [projection.get(n) for n in names] if names else projection.all_projections()
        except LookupError as exc:
            raise CommandError(str(exc)) from exc
        head = head_position()
        live = {p.name: checksum(p) for p in selected}
        out = {"head_position": head, "projections": {n: {"live": s.as_dict()} for n, s in live.items()}}
        differ = []
        if replay:
            rebuilt, diffs = replay_checksums(selected, batch_size=batch_size, diff_limit=diff, live=live)
            out["head_position_after_replay"] = head_position()
            for name, s in rebuilt.items():
                equal = s.digest == live[name].digest
                out["projections"][name].update(replay=s.as_dict(), equal=equal, differences=diffs.get(name, []))
                if not equal:
                    differ.append(name)
            out["equal"] = not differ
        if as_json:
            self.stdout.write(_json(out))
        else:
            self._table(out, replay)
        if differ:
            raise CommandError(f"live differs from the replay in: {', '.join(differ)}", returncode=1)

    def _table(self, out: dict, replay: bool) -> None:
        self.stdout.write(f"event store head: position {out['head_position']}")
        for name, p in out["projections"].items():
            verdict = ""
            if replay:
                verdict = "  equal to a full replay" if p["equal"] else "  DIFFERS from a full replay"
            self.stdout.write(f"{name}  {p['live']['digest'][:16]}  {p['live']['rows']} rows{verdict}")
            rebuilt = {t["table"]: t for t in p["replay"]["tables"]} if replay else {}
            for t in p["live"]["tables"]:
                line = f"    {t['table']:<46} {t['rows']:>9} rows  {t['digest'] or '-':<32}"
                r = rebuilt.get(t["table"])
                if r is not None and (r["rows"], r["digest"]) != (t["rows"], t["digest"]):
                    line += f"  replay: {r['rows']} rows {r['digest'] or '-'}"
                self.stdout.write(line)
            for d in p.get("differences", []):
                self.stdout.write(f"      {d}")
        if replay and out["head_position_after_replay"] != out["head_position"]:
            self.stdout.write(f"note: the store grew during the comparison (head {out['head_position']} -> "
                              f"{out['head_position_after_replay']}); compare again when traffic is quiet")


def _json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
