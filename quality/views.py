"""The supervisor dashboard: KPIs as server-rendered SVG charts over time and per group, and the evaluation queue.

No build step and no script: a form of filters (GET) and a template; the
charts are drawn in Python (quality.charts).
"""

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from quality import charts, kpis
from quality.api.views import may_read_reports
from quality.models import Evaluation, ReviewSample

GROUPS = ("agent", "queue", "channel", "team")
BUCKETS = ("day", "hour", "week")


class Filters(forms.Form):
    metric = forms.ChoiceField(choices=[(m, m) for m in kpis.metrics()], initial="fcr", required=False)
    start = forms.DateField(label="from", required=False)
    end = forms.DateField(label="to (inclusive)", required=False)
    group = forms.ChoiceField(choices=[(g, g) for g in GROUPS], initial="agent", required=False)
    bucket = forms.ChoiceField(choices=[(b, b) for b in BUCKETS], initial="day", required=False)
    tz = forms.CharField(initial="UTC", required=False)

    def clean_tz(self):
        value = self.cleaned_data.get("tz") or "UTC"
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(f"unknown time zone {value!r}") from None
        return value

    def clean(self):
        data = super().clean()
        today = dt.datetime.now(ZoneInfo(data.get("tz") or "UTC")).date()
        data["end"] = data.get("end") or today
        data["start"] = data.get("start") or data["end"] - dt.timedelta(days=6)
        if data["start"] > data["end"]:
            self.add_error("end", "must be on or after from")
        elif (data["end"] - data["start"]).days > 400:
            self.add_error("end", "a window is at most 400 days")
        data["metric"] = data.get("metric") or "fcr"
        data["group"] = data.get("group") or "agent"
        data["bucket"] = data.get("bucket") or "day"
        return data


@login_required
def dashboard(request):
    if not may_read_reports(request.user):
        raise PermissionDenied("the quality dashboard is for supervisors")
    form = Filters(request.GET)  # every field has a default: an empty query is the last 7 days by agent
    context = {"form": form}
    if not form.is_valid():
        return render(request, "quality/dashboard.html", context, status=400)
    f = form.cleaned_data
    zone = ZoneInfo(f["tz"])
    start = dt.datetime.combine(f["start"], dt.time(), zone)
    end = dt.datetime.combine(f["end"] + dt.timedelta(days=1), dt.time(), zone)
    metrics = kpis.metrics()
    chosen = metrics[f["metric"]]
    tiles = []
    for name, m in metrics.items():
        rows = kpis.report(name, [], start, end, f["tz"])
        tiles.append({"name": name, "value": charts.fmt(m.kind, rows[0]["value"] if rows else None),
                      "definition": m.definition, "selected": name == f["metric"]})
    over_time = kpis.report(f["metric"], [f["bucket"]], start, end, f["tz"])
    points = [(_bucket_label(r[f["bucket"]], f["bucket"]), r["value"]) for r in over_time]
    try:
        per_group = kpis.report(f["metric"], [f["group"]], start, end, f["tz"])
        bars = [(str(r[f["group"]]) if r[f["group"]] is not None else "(none)", r["value"]) for r in per_group]
        group_note = ""
    except kpis.Ungroupable as exc:
        bars, group_note = [], str(exc)
    evaluated = Evaluation.objects.values("interaction_id")
    context.update(
        f=f, tiles=tiles, chosen=chosen, group_note=group_note, bars=bars, points=points,
        line=charts.line_chart(points, chosen.kind, f"{chosen.name} by {f['bucket']}"),
        bar=charts.bar_chart(bars, chosen.kind, f"{chosen.name} by {f['group']}") if bars else "",
        table=[(label, charts.fmt(chosen.kind, value)) for label, value in bars],
        queue=ReviewSample.objects.exclude(interaction_id__in=evaluated).order_by("-weight", "picked_at")[:20],
    )
    return render(request, "quality/dashboard.html", context)


def _bucket_label(value: str, bucket: str) -> str:
    at = dt.datetime.fromisoformat(value)
    return at.strftime("%H:00 %d %b") if bucket == "hour" else at.strftime("%d %b")
