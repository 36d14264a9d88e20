from django import forms
from django.contrib import admin, messages

from events.admin import ReadOnlyAdmin
from frameworks import flow
from frameworks.models import Script, ScriptRun


class ScriptForm(forms.ModelForm):
    class Meta:
        model = Script
        fields = ["name", "steps", "queues", "dispositions", "active"]

    def clean_steps(self):
        steps = self.cleaned_data["steps"]
        try:
            flow.validate(steps)
        except flow.InvalidFlow as exc:
            raise forms.ValidationError(f"{exc.field}: {exc}") from None
        return steps

    def clean_queues(self):
        return _names(self.cleaned_data["queues"], "queues")

    def clean_dispositions(self):
        return _names(self.cleaned_data["dispositions"], "dispositions")


def _names(value, field):
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise forms.ValidationError(f"{field}: a list of names")
    return value


@admin.register(Script)
class ScriptAdmin(admin.ModelAdmin):
    """Call frameworks. Saving a version that contacts have run makes the next version instead (they keep
    theirs); a new script with an existing name is its next version."""

    form = ScriptForm
    list_display = ("name", "version", "active", "queues", "dispositions", "created_at")
    list_filter = ("active",)

    def save_model(self, request, obj, form, change):
        if change and obj.runs.exists():
            old = Script.objects.get(pk=obj.pk)
            Script.objects.filter(pk=obj.pk).update(active=False)  # the old version retires
            last = Script.objects.filter(name=obj.name).order_by("-version").first()
            obj.pk, obj.version = None, last.version + 1
            super().save_model(request, obj, form, False)
            messages.info(request, f"{obj} saved as a new version: contacts that ran {old} keep it")
            return
        if not change:
            last = Script.objects.filter(name=obj.name).order_by("-version").first()
            obj.version = last.version + 1 if last else 1
        super().save_model(request, obj, form, change)


@admin.register(ScriptRun)
class ScriptRunAdmin(ReadOnlyAdmin):
    list_display = ("interaction_id", "script", "started_at")
    search_fields = ("=interaction_id", "=customer_id")
