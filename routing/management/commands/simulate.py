"""Traffic simulator: customers on every channel and agents on the desk, through the public API and sockets.

    python manage.py simulate --agents 50 --minutes 10 --rate 2/s

against a running system (`make run`, in another shell). Customers arrive
as signed provider webhooks (chat, SMS, email, social DMs, calls) at the
given rate (a Poisson process), each into a queue that takes its channel.
Simulated agents (sim-agent-N, created with random skills of the queues'
and an API token) go available over REST, listen on /ws/agent/ (opened with a
ticket from POST /api/v1/ws-tickets/, as every client does), and on an
offer mostly accept (sometimes reject, rarely let it time out), reply on
text channels, sometimes transfer to another queue, end and wrap up with a
disposition. A progress bar runs meanwhile; a summary follows.

Agents and their tokens are set up directly (there is no API to create
agents: an admin does it); everything else goes through HTTP and WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from interactions import webhooks
from interactions.domain import CHANNELS
from routing.models import Agent, AgentSkill, Queue, QueueSkill, Skill

MAKE_RUN_WEBHOOK = ("demo", "demo-webhook-secret")  # see contactcenter/devstack.py
MIX = {"chat": 40, "voice": 25, "email": 15, "sms": 12, "social": 8}
DISPOSITIONS = ["resolved", "billing.explained", "technical.fixed", "info.given", "follow_up"]


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    answer_seconds: list = field(default_factory=list)
    offered_at: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    csat: list = field(default_factory=list)
    nps: list = field(default_factory=list)


def _rate(text: str) -> float:
    value = text.removesuffix("/s")
    try:
        rate = float(value)
    except ValueError:
        raise CommandError(f"--rate: give arrivals per second, like 2/s (not {text!r})") from None
    if rate <= 0:
        raise CommandError("--rate must be above 0")
    return rate


class Command(BaseCommand):
    help = "Drive the running system with simulated customers and agents (see the module docstring)."

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=20)
        parser.add_argument("--minutes", type=float, default=5.0, help="how long customers keep arriving")
        parser.add_argument("--rate", default="1/s", help="customer arrivals per second, e.g. 2/s")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running web process")
        parser.add_argument("--provider", default=None,
                            help="webhook provider whose secret (WEBHOOK_SECRETS) signs the arrivals "
                                 "(default: the first configured)")
        parser.add_argument("--handle-seconds", type=float, default=20.0, help="mean handle time of a contact")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts):
        if not opts["url"].startswith(("http://", "https://")):  # urlopen would also read file: and ftp: URLs
            raise CommandError(f"--url must be an http:// or https:// URL, not {opts['url']!r}")
        rate = _rate(opts["rate"])
        if opts["agents"] < 1 or opts["minutes"] <= 0:
            raise CommandError("--agents must be at least 1 and --minutes above 0")
        secrets = webhooks.secrets() or dict([MAKE_RUN_WEBHOOK])  # the one `make run` gives its web process
        provider = opts["provider"] or next(iter(secrets))
        if provider not in secrets:
            raise CommandError(f"--provider: no webhook secret for {provider!r} in WEBHOOK_SECRETS")
        rnd = random.Random(opts["seed"])
        queues = self._queues()
        agents = self._agents(opts["agents"], queues, rnd)
        self.stdout.write(f"{len(agents)} agents, queues {', '.join(q.name for q in queues)}; customers at "
                          f"{rate}/s for {opts['minutes']} min against {opts['url']}")
        sim = Simulation(base=opts["url"].rstrip("/"), provider=provider, secret=secrets[provider], rate=rate,
                         seconds=opts["minutes"] * 60, handle_seconds=opts["handle_seconds"], queues=queues,
                         agents=agents, rnd=rnd, progress=not opts["no_progress"])
        tally = asyncio.run(sim.run())
        self._summary(tally, sim)

    def _queues(self) -> list[Queue]:
        queues = list(Queue.objects.prefetch_related("skills"))
        if not queues:  # a fresh system: the demo's two queues
            for name, channels, skill in (("billing", ["chat", "email", "sms"], "billing"),
                                          ("support", ["voice", "chat", "social"], "support")):
                queue = Queue.objects.create(name=name, channels=channels)
                QueueSkill.objects.create(queue=queue, skill=Skill.objects.get_or_create(name=skill)[0],
                                          min_proficiency=2)
            queues = list(Queue.objects.prefetch_related("skills"))
        return queues

    def _agents(self, n: int, queues: list[Queue], rnd: random.Random) -> dict[str, str]:
        """sim-agent-1..n with skills covering the queues (at least one queue each); returns name -> token."""
        User = get_user_model()
        skills = sorted({s.skill_id for q in queues for s in q.skills.all()}) or ["general"]
        tokens = {}
        for i in range(1, n + 1):
            user, _ = User.objects.get_or_create(username=f"sim-agent-{i}")
            agent, _ = Agent.objects.get_or_create(user=user, defaults={"languages": ["en"]})
            mine = rnd.sample(skills, k=max(1, min(len(skills), rnd.choice([1, 1, 2]))))
            for skill in mine:
                AgentSkill.objects.update_or_create(agent=agent, skill=Skill.objects.get_or_create(name=skill)[0],
                                                    defaults={"proficiency": rnd.randint(2, 5)})
            tokens[user.username] = Token.objects.get_or_create(user=user)[0].key
        return tokens

    def _summary(self, tally: Tally, sim: Simulation) -> None:
        c = tally.counts
        arrived = sum(v for k, v in c.items() if k.startswith("arrived."))
        lines = [
            "",
            f"customers arrived: {arrived} ("
            + ", ".join(f"{ch} {c[f'arrived.{ch}']}" for ch in CHANNELS if c[f"arrived.{ch}"]) + ")",
            f"offers: {c['offered']}; accepted {c['accepted']}, rejected {c['rejected']}, let time out "
            f"{c['ignored']}; transferred {c['transferred']}; wrapped up {c['wrapped']}",
            f"replies sent: {c['replies']}",
        ]
        if c["surveys"]:
            scores = [f"CSAT mean {sum(tally.csat) / len(tally.csat):.2f}"] if tally.csat else []
            if tally.nps:
                net = sum(n >= 9 for n in tally.nps) - sum(n <= 6 for n in tally.nps)
                scores.append(f"NPS {100 * net / len(tally.nps):.0f}")
            lines.append(f"surveys answered: {c['surveys']}" + (f", {', '.join(scores)}" if scores else ""))
        if tally.answer_seconds:
            waits = sorted(tally.answer_seconds)
            lines.append(f"offer to accept: mean {sum(waits) / len(waits):.1f} s, "
                         f"p90 {waits[int(0.9 * (len(waits) - 1))]:.1f} s")
        for queue in sim.queues:
            try:
                stats = sim.get_json(f"/api/v1/queues/{queue.name}/stats/", next(iter(sim.agents.values())))
                sl = stats["service_level"]
                lines.append(f"queue {queue.name}: waiting {stats['waiting']}, answered today {stats['answered']}, "
                             f"service level {'-' if sl is None else f'{sl:.0%}'}, abandoned {stats['abandoned']}")
            except Exception as exc:  # noqa: BLE001 (the summary reports what it can)
                lines.append(f"queue {queue.name}: stats unavailable ({exc})")
        lines.append(f"errors: {len(tally.errors)}" + (f" (first: {tally.errors[0]})" if tally.errors else ""))
        self.stdout.write("\n".join(lines))


class Simulation:
    def __init__(self, *, base, provider, secret, rate, seconds, handle_seconds, queues, agents, rnd, progress):
        self.base, self.provider, self.secret = base, provider, secret
        self.rate, self.seconds, self.handle_seconds = rate, seconds, handle_seconds
        self.queues, self.agents, self.rnd, self.progress = queues, agents, rnd, progress
        self.tally = Tally()
        self.run_id = uuid.uuid4().hex[:8]

    # --- HTTP (urllib in worker threads: simple, no extra client library) ---

    def _request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        with urllib.request.urlopen(req, timeout=30) as response:  # nosec B310  # --url: http(s) only (handle())
            raw = response.read()
        return json.loads(raw) if raw else {}

    def get_json(self, path: str, token: str) -> dict:
        return self._request("GET", path, headers={"Authorization": f"Bearer {token}"})

    async def api(self, method: str, path: str, token: str, body: dict | None = None) -> dict | None:
        try:
            return await asyncio.to_thread(self._request, method, path, body, {"Authorization": f"Bearer {token}"})
        except urllib.error.HTTPError as exc:
            if exc.code == 409:  # someone else acted first (a timeout, a withdrawal): part of the game
                self.tally.counts["conflicts"] += 1
                return None
            self.tally.errors.append(f"{method} {path}: {exc.code} {exc.read()[:200]!r}")
        except OSError as exc:
            self.tally.errors.append(f"{method} {path}: {exc}")
        return None

    async def webhook(self, channel: str, body: dict) -> None:
        raw = json.dumps(body).encode()
        ts = str(int(time.time()))
        headers = {"X-Timestamp": ts, "X-Signature": webhooks.sign(self.secret, ts, raw),
                   "Content-Type": "application/json"}
        req = urllib.request.Request(f"{self.base}/api/v1/webhooks/{channel}/{self.provider}/", data=raw,
                                     headers=headers, method="POST")
        try:
            await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=30).read())  # nosec B310  # as above
            self.tally.counts[f"arrived.{channel}"] += 1
        except (urllib.error.HTTPError, OSError) as exc:
            detail = exc.read()[:200] if isinstance(exc, urllib.error.HTTPError) else exc
            self.tally.errors.append(f"webhook {channel}: {detail!r}")

    # --- customers ---

    def _queue_for(self, channel: str) -> str:
        fitting = [q.name for q in self.queues if not q.channels or channel in q.channels]
        return self.rnd.choice(fitting or [q.name for q in self.queues])

    async def customer(self, n: int) -> None:
        channel = self.rnd.choices(list(MIX), weights=list(MIX.values()))[0]
        who = self.rnd.randrange(500)  # a pool of customers: some come back on another channel
        email, phone = f"sim-customer-{who}@example.com", f"+1415555{who:04d}"
        base = {"provider_message_id": f"sim-{self.run_id}-{n}", "queue": self._queue_for(channel),
                "display_name": f"Sim Customer {who}"}
        if channel == "voice":
            body = {**base, "event": "ringing", "conversation_id": f"sim-{self.run_id}-call-{n}",
                    "from": {"kind": "phone", "value": phone}}
        elif channel == "email":
            body = {**base, "message_id": f"<sim-{self.run_id}-{n}@example.com>", "subject": "Question",
                    "body": "Hello, I have a question about my account.", "from": {"kind": "email", "value": email}}
        elif channel == "social":
            body = {**base, "kind": "dm", "body": "Hi there 👋", "from": {"kind": "social", "value": f"@sim{who}",
                                                                         "provider": "instagram"}}
        elif channel == "chat":
            body = {**base, "conversation_id": f"sim-{self.run_id}-chat-{n}", "body": "Hi, can you help me?",
                    "from": {"kind": "email", "value": email}}
        else:
            body = {**base, "body": "Is my order on its way?", "from": {"kind": "phone", "value": phone}}
        await self.webhook(channel, body)

    async def arrivals(self) -> None:
        start, n = time.monotonic(), 0
        tasks = []
        while True:
            await asyncio.sleep(self.rnd.expovariate(self.rate))
            if time.monotonic() - start >= self.seconds:
                break
            n += 1
            tasks.append(asyncio.create_task(self.customer(n)))
        await asyncio.gather(*tasks)

    # --- agents ---

    async def agent(self, name: str, token: str, stop: asyncio.Event) -> None:
        """One agent's desk: the socket of the real-time contract (README), reconnecting if it drops."""
        import websockets

        await self.api("POST", "/api/v1/agents/me/presence/", token, {"presence": "available"})
        busy: set[asyncio.Task] = set()
        seen: set[str] = set()  # offers handled (a resync may find one a push already brought)
        attempt = 0
        while not stop.is_set():
            ticket = await self.api("POST", "/api/v1/ws-tickets/", token, {})
            if ticket is None:
                break  # refused: recorded in the errors
            # A ticket in the URL, never the API token; no Origin header: this is not a browser (README).
            ws_url = self.base.replace("http", "ws", 1) + f"/ws/agent/?ticket={ticket['ticket']}"
            try:
                async with websockets.connect(ws_url) as socket:
                    attempt = 0
                    last: dict[str, int] = {}
                    while not stop.is_set():
                        try:
                            raw = await asyncio.wait_for(socket.recv(), timeout=0.5)
                        except TimeoutError:
                            continue
                        message = json.loads(raw)
                        offers = [message] if message.get("type") == "routing.offer" else []
                        if message.get("type") == "welcome" or self._gap(last, message):
                            if message.get("type") == "welcome":
                                last.update(message["seq"])
                            offers += await self.offered_to(name, token)  # the REST truth
                        for offer in offers:
                            if offer["interaction_id"] in seen:
                                continue
                            seen.add(offer["interaction_id"])
                            self.tally.counts["offered"] += 1
                            task = asyncio.create_task(self.handle_offer(token, offer))
                            busy.add(task)
                            task.add_done_callback(busy.discard)
            except (OSError, websockets.exceptions.WebSocketException) as exc:
                if stop.is_set():
                    break
                self.tally.counts["reconnects"] += 1
                if attempt >= 5:
                    self.tally.errors.append(f"socket of {name}: {exc}")
                    break
                await asyncio.sleep(min(10.0, 0.5 * 2 ** attempt))
                attempt += 1
        if busy:
            await asyncio.wait(busy, timeout=self.handle_seconds * 3)
        await self.api("POST", "/api/v1/agents/me/presence/", token, {"presence": "offline",
                                                                       "reason": "simulation over"})

    @staticmethod
    def _gap(last: dict[str, int], message: dict) -> bool:
        """Whether this push shows that pushes before it were lost (its seq is not the last one + 1)."""
        stream, seq = message.get("stream"), message.get("seq")
        if stream is None or not isinstance(seq, int):
            return False
        gap = stream in last and seq != last[stream] + 1
        last[stream] = seq
        return gap

    async def offered_to(self, name: str, token: str) -> list[dict]:
        """What is offered to this agent now, read over REST (after the welcome, and after a gap)."""
        page = await self.api("GET", f"/api/v1/interactions/?agent_id={name}&status=offered", token)
        return [{"interaction_id": it["id"], "channel": it["channel"], "queue": it["queue"]}
                for it in (page or {}).get("results", [])]

    async def handle_offer(self, token: str, offer: dict) -> None:
        iid, channel, received = offer["interaction_id"], offer["channel"], time.monotonic()
        roll = self.rnd.random()
        if roll < 0.02:
            self.tally.counts["ignored"] += 1  # let it time out: routing offers it to someone else
            return
        await asyncio.sleep(self.rnd.uniform(0.2, 1.5))
        if roll < 0.07:
            if await self.api("POST", f"/api/v1/interactions/{iid}/decline/", token, {"reason": "rejected"}):
                self.tally.counts["rejected"] += 1
            return
        if not await self.api("POST", f"/api/v1/interactions/{iid}/accept/", token, {}):
            return
        self.tally.counts["accepted"] += 1
        self.tally.answer_seconds.append(time.monotonic() - received)
        handle = self.rnd.expovariate(1 / self.handle_seconds)
        if channel != "voice":
            for _ in range(self.rnd.randint(1, 3)):
                await asyncio.sleep(handle / 3)
                if await self.api("POST", f"/api/v1/interactions/{iid}/messages/", token,
                                  {"direction": "outbound", "body": "Thanks, let me check that for you."}):
                    self.tally.counts["replies"] += 1
        else:
            await asyncio.sleep(handle)
        others = [q.name for q in self.queues if q.name != offer.get("queue")]
        if others and self.rnd.random() < 0.05:
            if await self.api("POST", f"/api/v1/interactions/{iid}/transfer/", token,
                              {"to_queue": self.rnd.choice(others), "note": "needs the other team"}):
                self.tally.counts["transferred"] += 1
            return
        await self.api("POST", f"/api/v1/interactions/{iid}/end/", token, {"reason": "resolved"})
        await asyncio.sleep(self.rnd.uniform(0.2, 1.0))
        if await self.api("POST", f"/api/v1/interactions/{iid}/wrap-up/", token,
                          {"disposition": self.rnd.choice(DISPOSITIONS), "notes": "simulated"}):
            self.tally.counts["wrapped"] += 1
            if self.rnd.random() < 0.6:  # most customers answer the satisfaction survey that follows
                await asyncio.sleep(self.rnd.uniform(0.1, 0.5))
                await self.answer_survey(iid)

    async def answer_survey(self, iid: str) -> None:
        """The customer's answer, relayed by the survey provider (the signed survey webhook)."""
        score = self.rnd.choices([5, 4, 3, 2, 1], weights=[50, 28, 10, 7, 5])[0]
        # Would they recommend us? Mostly in line with how satisfied they were.
        nps = min(10, max(0, {5: 9, 4: 8, 3: 6, 2: 3, 1: 1}[score] + self.rnd.choice([-1, 0, 0, 1])))
        answer = {"csat": score, "nps": nps}
        asked = {"csat": ("csat",), "nps": ("nps",), "both": ("csat", "nps")}.get(settings.SURVEY_KIND, ())
        raw = json.dumps({"interaction_id": iid, **{k: answer[k] for k in asked}}).encode()
        ts = str(int(time.time()))
        req = urllib.request.Request(
            f"{self.base}/api/v1/surveys/webhook/{self.provider}/", data=raw, method="POST",
            headers={"X-Timestamp": ts, "X-Signature": webhooks.sign(self.secret, ts, raw),
                     "Content-Type": "application/json"})
        try:
            await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=30).read())  # nosec B310  # as above
            self.tally.counts["surveys"] += 1
            if "csat" in asked:
                self.tally.csat.append(score)
            if "nps" in asked:
                self.tally.nps.append(nps)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # 404: no survey (SURVEY_KIND off)
                self.tally.errors.append(f"survey {iid}: {exc.code} {exc.read()[:200]!r}")
        except OSError as exc:
            self.tally.errors.append(f"survey {iid}: {exc}")

    async def run(self) -> Tally:
        stop = asyncio.Event()
        agents = [asyncio.create_task(self.agent(name, token, stop)) for name, token in self.agents.items()]
        await asyncio.sleep(1.0)  # let the agents sign in
        progress = asyncio.create_task(self.show_progress(stop)) if self.progress else None
        await self.arrivals()
        # Let the last contacts be offered and handled before stopping the agents.
        deadline = time.monotonic() + max(10.0, self.handle_seconds * 3)
        while time.monotonic() < deadline and self.tally.counts["offered"] < sum(
                v for k, v in self.tally.counts.items() if k.startswith("arrived.")):
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*agents)
        if progress:
            await progress
        return self.tally

    async def show_progress(self, stop: asyncio.Event) -> None:
        from tqdm import tqdm

        with tqdm(total=round(self.seconds), unit="s", desc="simulating") as bar:
            started = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(1)
                bar.n = min(round(time.monotonic() - started), bar.total)
                c = self.tally.counts
                bar.set_postfix(arrived=sum(v for k, v in c.items() if k.startswith("arrived.")),
                                offered=c["offered"], accepted=c["accepted"], wrapped=c["wrapped"],
                                errors=len(self.tally.errors))
                bar.refresh()

