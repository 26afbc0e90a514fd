"""The monitor page in real headless Chromium (Debian's `chromium`, driven by Playwright).

Against the whole real chain: worker, Kafka, Redis and the API under uvicorn. An operator opens a
contact, sees its figures, includes it in a list and sees the list appear once the worker has
applied the command; an agent sees the same figures and no action at all. Screenshots go to
`test-artifacts/` (and, with EM_UPDATE_DOCS_SCREENSHOT=1, to `docs/`: each view the README shows).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from read_api.app import create_app
from tests.integration.harness import ROOT, Pipeline, ago, free_port, snapshot, wait_for
from tests.read_api.support import clear_org, make_settings, make_tokens

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def page_events(org: str) -> list[tuple[str, bytes, dict[str, Any]]]:
    """A contact with some history on three channels, and two more contacts for the segments."""
    records: list[tuple[str, bytes, dict[str, Any]]] = []

    def add(topic: str, contact: str, eid: str, **fields: Any) -> None:
        value = {"event_id": eid, "org_id": org, "contact_id": contact, **fields}
        records.append((topic, f"{org}:{contact}".encode(), value))

    add(
        "contact",
        "ana",
        "ana-u",
        type="upsert",
        occurred_at=ago(40),
        name="Ana Souza",
        phone="+5511999990000",
        email="ana@example.com",
        created_at=ago(400),
        origin={"type": "app_spec", "app": "Facebook Leads", "spec": "Page Test 1 Client A"},
    )
    add(
        "contact",
        "ana",
        "ana-l",
        type="list_added",
        occurred_at=ago(30),
        list_id="news",
        list_name="Newsletter",
    )
    plan = {  # channel: (messages, delivered, opened/read, clicked, replied)
        "email": (8, 8, 5, 2, 0),
        "whatsapp": (5, 5, 4, 1, 2),
        "sms": (4, 3, 0, 0, 1),
    }
    for channel, (sent, delivered, opened, clicked, replied) in plan.items():
        for i in range(sent):
            mid = f"ana-{channel}-{i}"
            day = 3 + i * 6.3 + {"email": 0, "whatsapp": 2, "sms": 5}[channel] / 24
            at = {"channel": channel, "message_id": mid}
            add(
                "dispatch", "ana", f"{mid}-d", occurred_at=ago(day), dispatch_kind="automated", **at
            )
            if i < delivered:
                add("delivery", "ana", f"{mid}-dl", occurred_at=ago(day, seconds=-60), **at)
            else:  # SPEC §7.2: the channel says it never got there
                add(
                    "bounce",
                    "ana",
                    f"{mid}-b",
                    occurred_at=ago(day, seconds=-90),
                    kind="hard",
                    **at,
                )
            if channel == "email":  # SPEC §7.1: her mail app's privacy proxy opens everything
                proxy = {"machine": True, "user_agent": "Mozilla/5.0"}
                add("open", "ana", f"{mid}-mo", occurred_at=ago(day, seconds=-65), **proxy, **at)
                if i == 0:  # and a link scanner clicks the first one, flagged by the provider
                    add(
                        "click",
                        "ana",
                        f"{mid}-bc",
                        occurred_at=ago(day, seconds=-66),
                        bot=True,
                        **at,
                    )
            if i < opened and channel != "sms":
                add("open", "ana", f"{mid}-o", occurred_at=ago(day, seconds=-3600), **at)
            if i < clicked:
                add("click", "ana", f"{mid}-c", occurred_at=ago(day, seconds=-3700), **at)
            if i < replied:
                add("reply", "ana", f"{mid}-r", occurred_at=ago(day, seconds=-4000), **at)
    for contact, opens in (("bruno", 1), ("carla", 3)):
        add(
            "contact",
            contact,
            f"{contact}-u",
            type="upsert",
            occurred_at=ago(10),
            name=contact.title(),
        )
        for i in range(3):
            at = {"channel": "email", "message_id": f"{contact}-{i}"}
            add(
                "dispatch",
                contact,
                f"{contact}-{i}-d",
                occurred_at=ago(5 + i),
                dispatch_kind="single",
                **at,
            )
            add("delivery", contact, f"{contact}-{i}-dl", occurred_at=ago(5 + i), **at)
            if i < opens:
                add("open", contact, f"{contact}-{i}-o", occurred_at=ago(5 + i), **at)
    return records


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/install_browser.sh (apt-get install chromium)"
        )
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def no_serious_accessibility_findings(page: Page, what: str) -> None:
    """axe-core (bundled by axe-playwright-python) on the page as it is: no serious or
    critical finding (labels, contrast, keyboard names, roles...)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]
    assert not serious, f"{what}: {serious}"


async def sign_in(browser: Browser, base_url: str, token: str, contact: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    page = await context.new_page()
    await page.goto(f"{base_url}/#contact={contact}")
    await page.fill("#token", token)
    await page.click("#login-form button[type=submit]")
    await expect(page.get_by_test_id("contact-name")).to_have_text("Ana Souza", timeout=15000)
    return page


async def test_monitor_page_in_chromium(
    pipeline: Pipeline, browser: Browser, redis_client: aioredis.Redis
) -> None:
    org = f"page-{pipeline.unique}"
    settings = make_settings(
        pipeline.tmp,
        kafka_bootstrap=pipeline.bootstrap,
        redis_url=pipeline.redis_url,
        topic_prefix=pipeline.prefix,
    )
    tokens = make_tokens(settings, org)
    await pipeline.start_worker()
    await pipeline.produce(page_events(org))

    async def figures_now() -> list[Any]:
        snaps = [await snapshot(redis_client, org, c) for c in ("ana", "bruno", "carla")]
        return [s and {k: v for k, v in s.items() if k != "as_of"} for s in snaps]

    async def seeded() -> bool:
        # The seed's records may land in several batches: wait until all three contacts exist,
        # Ana has all 17 dispatches, and nothing changes any more.
        before = await figures_now()
        if not all(before) or before[0]["dispatched"]["total"] != 17:
            return False
        await asyncio.sleep(1.5)
        return before == await figures_now()

    await wait_for(seeded, timeout=60, what="seeded snapshots")

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    base_url = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        await wait_for(lambda: asyncio.sleep(0.05, server.started), timeout=20, what="API up")

        # --- operator: segments, figures, include in a list -----------------------------------
        page = await sign_in(browser, base_url, tokens.by_role["operator"], "ana")
        await expect(page.get_by_test_id("who-role")).to_have_text("operator")
        await expect(page.get_by_test_id("phone")).to_have_text("+5511999990000")
        await expect(page.get_by_test_id("origin")).to_have_text(
            "Facebook Leads - Page Test 1 Client A"
        )
        await expect(page.get_by_test_id("dispatched-total")).to_have_text("17")
        await expect(page.get_by_test_id("lists")).to_contain_text("Newsletter")
        channels = page.get_by_test_id("channels")
        for label in ("SMS", "E-mail", "WhatsApp", "Subscribed"):
            await expect(channels).to_contain_text(label)
        await expect(channels.get_by_role("button", name="Unsubscribe")).to_have_count(3)
        snap = await snapshot(redis_client, org, "ana")
        assert snap is not None
        tier_label = {
            "no_engagement": "No engagement",
            "low": "Low",
            "high": "High",
            "very_high": "Very high",
        }[snap["engagement"]["tier"]]
        await expect(page.get_by_test_id("engagement-rate")).to_have_text(
            f"{snap['engagement']['rate']:.2f}%"
        )
        await expect(page.get_by_test_id("engagement-tier")).to_have_text(tier_label)
        e = snap["engagement"]  # SPEC §7.3: "5 of 8 delivered messages engaged"
        await expect(page.get_by_test_id("engagement-why")).to_contain_text(
            f"{e['engaged']} of {e['delivered']} delivered message"
            f"{'' if e['delivered'] == 1 else 's'} engaged"
        )
        if e["last_engaged_at"] is not None:
            await expect(page.get_by_test_id("engagement-why")).to_contain_text("last engaged")
        email_row = page.get_by_test_id("rates").locator("tr[data-channel=email]")
        rates = snap["channels"]["email"]["rates"]
        await expect(email_row).to_contain_text(f"{rates['delivery']:.2f}%")
        await expect(email_row).to_contain_text(f"{rates['open']:.2f}%")
        # SPEC §7.1-7.2 beside the rates: machine opens and bot clicks, bounces
        await expect(email_row.locator("[data-note=open]")).to_have_text("8 by a privacy proxy")
        await expect(email_row.locator("[data-note=click]")).to_have_text("1 by a bot")
        sms_row = page.get_by_test_id("rates").locator("tr[data-channel=sms]")
        assert snap["channels"]["sms"]["rates"]["bounce"] == 25.0
        await expect(sms_row.locator("[data-rate=bounce]")).to_contain_text("25.00%")
        await expect(sms_row.locator("[data-note=bounce]")).to_have_text("1 bounced, 1 hard")
        assert (e["engaged"], e["delivered"]) == (10, 16)  # the proxy's opens are not engagement
        await expect(page.get_by_test_id("best-send-times")).to_contain_text("E-mail")
        # SPEC §7.4: the tier's history, newest first, from no tier to the current one
        history = page.get_by_test_id("tier-history")
        await expect(history.locator("li").first).to_be_visible()
        await expect(history).to_contain_text("Overall")
        await expect(history).to_contain_text(tier_label)
        # the hour-of-week heatmap beside the best send times: each cell is the API's count
        async with httpx.AsyncClient(base_url=base_url) as http:
            heat = (
                await http.get(
                    f"/v1/orgs/{org}/contacts/ana/heatmap",
                    headers={"Authorization": f"Bearer {tokens.by_role['operator']}"},
                )
            ).json()
        email_heat = heat["channels"]["email"]
        assert email_heat["total"] > 0
        day, hour = next(
            (d, h) for d, row in enumerate(email_heat["hours"]) for h, n in enumerate(row) if n
        )
        weekday = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[day]
        cell = page.get_by_test_id("contact-heatmap").locator(
            f"[data-channel=email] tr[data-day={weekday}] td[data-hour='{hour}']"
        )
        await expect(cell).to_have_text(str(email_heat["hours"][day][hour]))

        # the segment browser lists the org's contacts of the chosen tier and opens them
        await page.select_option("#seg-tier", snap["engagement"]["tier"])
        await page.click("#seg-form button[type=submit]")
        await expect(page.get_by_test_id("seg-list")).to_contain_text("ana")
        await expect(page.get_by_test_id("seg-list")).to_contain_text("Ana Souza")  # §7.4 names
        async with page.expect_download() as download_info:  # "Export CSV" (SPEC §7.4)
            await page.get_by_test_id("seg-export").click()
        download = await download_info.value
        exported = Path(await download.path()).read_text().splitlines()
        assert exported[0] == "contact_id,name,email,phone,rate,tier"
        assert any(line.startswith("ana,Ana Souza,ana@example.com,") for line in exported[1:])

        await page.get_by_text("Dispatches by channel").click()
        await expect(page.get_by_test_id("dispatched-by-channel")).to_contain_text("WhatsApp")
        await page.get_by_test_id("include-list").click()
        await page.get_by_test_id("list-id").fill("vip")
        await page.get_by_test_id("list-name").fill("VIP customers")
        await page.get_by_test_id("list-submit").click()
        await expect(page.get_by_test_id("lists")).to_contain_text("VIP customers", timeout=30000)
        await expect(page.get_by_test_id("status")).to_contain_text("done")
        await page.screenshot(path=str(ARTIFACTS / "monitor-page.png"), full_page=True)
        await no_serious_accessibility_findings(page, "the contact view")
        stored = await snapshot(redis_client, org, "ana")
        assert stored is not None and {"list_id": "vip", "name": "VIP customers"} in stored["lists"]

        # --- the landing view (SPEC §7.4): the org at a glance, then search ----------------------
        landing = await (
            await browser.new_context(viewport={"width": 1280, "height": 1000})
        ).new_page()
        await landing.goto(f"{base_url}/")
        await landing.fill("#token", tokens.by_role["agent"])
        await landing.click("#login-form button[type=submit]")
        async with httpx.AsyncClient(base_url=base_url) as http:
            overview = (
                await http.get(
                    f"/v1/orgs/{org}/overview",
                    headers={"Authorization": f"Bearer {tokens.by_role['agent']}"},
                )
            ).json()
        assert overview["contacts"] == 3  # ana, bruno, carla
        await expect(landing.get_by_test_id("ov-contacts")).to_have_text("3")
        tiers = landing.get_by_test_id("ov-tiers")
        for tier, count in overview["tiers"]["overall"].items():
            cell = tiers.locator(f"tr[data-scope=overall] td[data-tier={tier}]")
            await expect(cell).to_have_text(str(count))
        subs = landing.get_by_test_id("ov-subs").locator("tr[data-channel=email] td")
        email_subs = overview["subscriptions"]["email"]
        await expect(subs.nth(0)).to_have_text(str(email_subs["subscribed"]))
        # tier changes of the last 24 h and 7 days, and the org's heatmap, as the API says
        async with httpx.AsyncClient(base_url=base_url) as http:
            agent_auth = {"Authorization": f"Bearer {tokens.by_role['agent']}"}
            changes = (await http.get(f"/v1/orgs/{org}/tier-changes", headers=agent_auth)).json()
            org_heat = (await http.get(f"/v1/orgs/{org}/heatmap", headers=agent_auth)).json()
        assert changes["last_24h"]["new"] == 3  # each contact's first tier
        rows = landing.get_by_test_id("ov-changes-table").locator("tbody tr")
        for index, period in enumerate(("last_24h", "last_7d")):
            for direction, count in changes[period].items():
                cell = rows.nth(index).locator(f"td[data-direction={direction}]")
                await expect(cell).to_have_text(str(count))
        await expect(landing.get_by_test_id("ov-changes-recent").locator("li")).to_have_count(
            len(changes["recent"])
        )
        busiest = max(org_heat["channels"], key=lambda c: org_heat["channels"][c]["total"])
        await expect(landing.get_by_test_id("heat-channel")).to_have_value(busiest)
        grid = org_heat["channels"][busiest]
        heatmap = landing.get_by_test_id("ov-heatmap")
        await expect(heatmap).to_contain_text(f"{grid['total']} ")
        for day, row in enumerate(grid["hours"]):
            for hour, count in enumerate(row):
                if count:
                    weekday = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[day]
                    cell = heatmap.locator(f"tr[data-day={weekday}] td[data-hour='{hour}']")
                    await expect(cell).to_have_text(str(count))
        await landing.screenshot(path=str(ARTIFACTS / "overview-page.png"), full_page=True)
        await no_serious_accessibility_findings(landing, "the overview")
        await landing.get_by_test_id("find").fill("ana@exa")  # an e-mail prefix, as you type
        found = landing.get_by_test_id("find-list").locator("li[data-contact=ana]")
        await expect(found).to_contain_text("Ana Souza")
        await found.click()
        await expect(landing.get_by_test_id("contact-name")).to_have_text("Ana Souza")

        # the API's own documentation renders without any CDN (Swagger UI from the package)
        await landing.goto(f"{base_url}/docs")
        await expect(landing.locator(".swagger-ui .info .title")).to_contain_text(
            "Engagement Monitor API", timeout=15000
        )
        await expect(landing.locator(".opblock").first).to_be_visible()

        # --- agent: the same figures, no action at all -----------------------------------------
        agent = await sign_in(browser, base_url, tokens.by_role["agent"], "ana")
        await expect(agent.get_by_test_id("who-role")).to_have_text("agent")
        await expect(agent.get_by_test_id("dispatched-total")).to_have_text("17")
        await expect(agent.get_by_test_id("lists")).to_contain_text("VIP customers")
        await expect(agent.get_by_test_id("channels")).to_contain_text("Subscribed")
        for name in (
            "Unsubscribe",
            "Include contact in a list",
            "Delete contact",
            "Edit data",
            "Send",
        ):
            await expect(agent.get_by_role("button", name=name)).to_have_count(0)
        await expect(agent.locator(".write-only")).to_have_count(0)
        await expect(agent.get_by_test_id("lists").locator("button")).to_have_count(0)
        visible = await agent.locator("button:visible").all_inner_texts()
        assert set(visible) <= {"Sign out", "Open", "Show", "More", "Export CSV"}, visible
        await agent.screenshot(path=str(ARTIFACTS / "monitor-page-agent.png"), full_page=True)
        if os.environ.get("EM_UPDATE_DOCS_SCREENSHOT") == "1":
            for view in ("monitor-page.png", "overview-page.png", "monitor-page-agent.png"):
                shutil.copy(ARTIFACTS / view, ROOT / "docs" / view)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
        await clear_org(redis_client, org)
