from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from customers import services
from customers.models import Customer
from events.store import Actor, Metadata

DEMO_CUSTOMERS = [
    {"display_name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0001", "preferred_channel": "email"},
    {"display_name": "Grace Hopper", "email": "grace@example.com", "phone": "+1 202 555 0102", "preferred_channel": "voice"},
    {"display_name": "Alan Turing", "email": "alan@example.com", "phone": None, "preferred_channel": "chat"},
]


# Two agents with different skills, and a queue for each skill (routing).
# bob is the one trained in de-escalation: red-flagged contacts prefer him (intelligence.FlagPolicy).
DEMO_AGENTS = [("ann", {"billing": 4}, ["en"]), ("bob", {"support": 4, "deescalation": 3}, ["en", "de"])]
DEMO_QUEUES = [("billing", ["chat", "email", "sms"], "billing"), ("support", ["voice", "chat", "social"], "support")]

# A scorecard for reviewers (quality): a call framework's steps, identity verification an auto-fail.
DEMO_SCORECARD = ("Contact quality", {"sections": [
    {"name": "Opening", "weight": 15, "criteria": [
        {"key": "greeting", "text": "Greeted the customer and gave their name", "type": "yes_no", "weight": 1},
        {"key": "identity", "text": "Verified the customer's identity before account details", "type": "yes_no",
         "auto_fail": True}]},
    {"name": "Discovery", "weight": 25, "criteria": [
        {"key": "listened", "text": "Let the customer explain without repeating what they said before", "type": "scale",
         "max": 5, "weight": 2},
        {"key": "context", "text": "Used the history of earlier contacts", "type": "yes_no", "weight": 1}]},
    {"name": "Resolution", "weight": 40, "criteria": [
        {"key": "resolved", "text": "Resolved the matter or set a clear next step", "type": "yes_no", "weight": 2},
        {"key": "accuracy", "text": "Gave correct information", "type": "scale", "max": 5, "weight": 2},
        {"key": "empathy", "text": "Acknowledged the customer's feelings", "type": "scale", "max": 5, "weight": 1}]},
    {"name": "Closing", "weight": 20, "criteria": [
        {"key": "confirmed", "text": "Confirmed the customer had nothing else", "type": "yes_no", "weight": 1},
        {"key": "wrap_up", "text": "Wrote an accurate disposition and notes", "type": "yes_no", "weight": 1}]},
]})


class Command(BaseCommand):
    help = ("Create the demo admin (admin/admin), a few demo customers, and two agents (ann, bob; password = "
            "user name) with a queue each (billing, support). Safe to run again.")

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            admin, created = User.objects.get_or_create(
                username="admin", defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"}
            )
            if created:
                admin.set_password("admin")
                admin.save()
            token, _ = Token.objects.get_or_create(user=admin)
        if not Customer.objects.exists():
            meta = Metadata(actor=Actor("system", name="seed_demo"))
            for data in DEMO_CUSTOMERS:
                services.customer_register(meta=meta, **data)
            self.stdout.write(f"created {len(DEMO_CUSTOMERS)} demo customers")
        self._routing(User)
        self._quality()
        self._frameworks()
        self.stdout.write(f"demo admin: admin / admin; API token: {token.key}")

    def _routing(self, User) -> None:
        from routing.models import Agent, AgentSkill, Queue, QueueSkill, Skill

        with transaction.atomic():
            for name, skills, languages in DEMO_AGENTS:
                user, created = User.objects.get_or_create(username=name)
                if created:
                    user.set_password(name)
                    user.save()
                agent, _ = Agent.objects.get_or_create(user=user, defaults={"languages": languages})
                for skill, level in skills.items():
                    AgentSkill.objects.get_or_create(agent=agent, skill=Skill.objects.get_or_create(name=skill)[0],
                                                     defaults={"proficiency": level})
            for name, channels, skill in DEMO_QUEUES:
                queue, _ = Queue.objects.get_or_create(name=name, defaults={"channels": channels})
                QueueSkill.objects.get_or_create(queue=queue, skill=Skill.objects.get(name=skill),
                                                 defaults={"min_proficiency": 2})
        tokens = {name: Token.objects.get_or_create(user=User.objects.get(username=name))[0].key
                  for name, _, _ in DEMO_AGENTS}
        self.stdout.write("demo agents: " + ", ".join(f"{n} (token {t})" for n, t in tokens.items()))
        self._roles(User, [name for name, _, _ in DEMO_AGENTS])

    def _roles(self, User, agents: list[str]) -> None:
        """The roles (docs/SECURITY.md): the agents in `agent` and one team led by sue (supervisor); cora in
        `compliance` (staff, to read the audit log in the admin). Passwords are the user names."""
        from django.contrib.auth.models import Group

        from routing.models import Agent, Team

        with transaction.atomic():
            for name in agents:
                User.objects.get(username=name).groups.add(Group.objects.get_or_create(name="agent")[0])
            team, _ = Team.objects.get_or_create(name="front line")
            Agent.objects.filter(user__username__in=agents, team=None).update(team=team)
            for name, group, staff in (("sue", "supervisor", False), ("cora", "compliance", True)):
                user, created = User.objects.get_or_create(username=name, defaults={"is_staff": staff})
                if created:
                    user.set_password(name)
                    user.save()
                user.groups.add(Group.objects.get_or_create(name=group)[0])
            team.supervisors.add(User.objects.get(username="sue"))
        tokens = {name: Token.objects.get_or_create(user=User.objects.get(username=name))[0].key
                  for name in ("sue", "cora")}
        self.stdout.write(f"demo supervisor: sue (token {tokens['sue']}); compliance: cora (token {tokens['cora']})")

    def _frameworks(self) -> None:
        from frameworks.models import Script

        # The seeded "Standard contact" script (frameworks migration 0002) for billing contacts: account changes
        # wait for the identity step.
        script = Script.objects.filter(name="Standard contact", active=True).order_by("-version").first()
        if script is not None and not script.queues:
            script.queues = ["billing"]
            script.save(update_fields=["queues"])
            self.stdout.write(f"attached the script {script} to the billing queue")

    def _quality(self) -> None:
        from quality.models import Scorecard
        from quality.services import scorecard_save

        name, form = DEMO_SCORECARD
        if not Scorecard.objects.filter(name=name).exists():
            scorecard_save(name=name, form=form)
            self.stdout.write(f"created the scorecard {name!r}")
