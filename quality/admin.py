from django import forms
from django.contrib import admin, messages

from events.admin import ReadOnlyAdmin
from quality import scoring, services
from quality.models import Evaluation, Scorecard, Survey


class ScorecardForm(forms.ModelForm):
    class Meta:
        model = Scorecard
        fields = ["name", "form", "active"]

    def clean_form(self):
        form = self.cleaned_data["form"]
        try:
            scoring.validate_form(form)
        except scoring.InvalidForm as exc:
            raise forms.ValidationError(f"{exc.field}: {exc}") from None
        return form


@admin.register(Scorecard)
class ScorecardAdmin(admin.ModelAdmin):
    """Scorecards. Saving a version that evaluations used makes the next version instead (they keep theirs)."""

    form = ScorecardForm
    list_display = ("name", "version", "active", "created_at")
    list_filter = ("active",)

    def save_model(self, request, obj, form, change):
        if change and obj.evaluations.exists():
            card = services.scorecard_save(name=obj.name, form=obj.form)
            obj.pk, obj.version = card.pk, card.version
            messages.info(request, f"{card} saved as a new version: evaluations keep the version they used")
            return
        if not change:
            last = Scorecard.objects.filter(name=obj.name).order_by("-version").first()
            obj.version = last.version + 1 if last else 1
        super().save_model(request, obj, form, change)


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdmin):
    """Evaluations are made and answered through the API (their events are the record): read-only here."""

    list_display = ("interaction_id", "agent_id", "reviewer", "scorecard", "score", "status", "created_at")
    list_filter = ("status", "scorecard")
    search_fields = ("agent_id", "reviewer", "interaction_id")


@admin.register(Survey)
class SurveyAdmin(ReadOnlyAdmin):
    list_display = ("interaction_id", "agent_id", "channel", "kind", "sent_at", "answered_at", "csat", "nps")
    list_filter = ("kind", "channel")
