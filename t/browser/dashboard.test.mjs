// The demo dashboard (examples/dashboard/index.html) in a real browser:
// Debian's chromium driven by playwright-core, against the demo
// configuration (examples/nginx.conf) started on free loopback ports.
//
//   node --test --test-reporter=spec t/browser/dashboard.test.mjs
//
// Every step saves a screenshot in the test's temporary directory, which
// is kept (and named) when a step fails. MITTE_KEEP=1 keeps it always.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";

import { Demo, sleep } from "./lib/demo.mjs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 15000;              // for what the page shows after an event

let demo;
let browser;
let shots;
let failed = false;
let shotNo = 0;
const consoleErrors = [];
const pages = [];
// Chromium logs every failed request as a console error ("Failed to load
// resource"); those are allowed only while a step provokes them (a refused
// preference, a stopped server, an injected 503)
let netErrorsExpected = 0;

async function provoking(fn) {
  netErrorsExpected++;
  try {
    return await fn();
  } finally {
    netErrorsExpected--;
  }
}

async function open(user, width = 1440, height = 900, extra = {}) {
  const ctx = await browser.newContext({
    ...extra,
    viewport: { width, height },
    httpCredentials: { username: user, password: user },
  });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (netErrorsExpected && /^Failed to load resource/.test(m.text())) return;
    consoleErrors.push(`${user}: ${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (e) => consoleErrors.push(`${user}: ${e.message}`));
  await page.goto(demo.url + "/");
  await live(page);
  pages.push(page);
  return page;
}

// the stream is open
async function live(page) {
  await page.waitForFunction(() => document.querySelector("#live-text").textContent === "live",
                             null, { timeout: WAIT });
}

async function shot(page, name) {
  shotNo++;
  const file = path.join(shots, `${String(shotNo).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true }).catch(() => {});
  return file;
}

// a step: its screenshot after it, and on failure one named FAILED
async function step(page, name, fn) {
  try {
    await fn();
    await shot(page, name);
  } catch (err) {
    failed = true;
    const file = await shot(page, "FAILED-" + name);
    err.message += `\n  screenshot: ${file}`;
    throw err;
  }
}

async function overflow(page) {
  return page.evaluate(() => ({
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
}

before(async () => {
  demo = await Demo.start();
  shots = path.join(demo.dir, "screenshots");
  fs.mkdirSync(shots);
  // root: no sandbox; a small /dev/shm in containers: shared memory files elsewhere
  const args = ["--disable-dev-shm-usage"]
    .concat(process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []);
  browser = await chromium.launch({ executablePath: CHROMIUM, args });
});

after(async () => {
  if (browser) await browser.close();
  if (!demo) return;
  if (failed) demo.keep = true;
  const bad = await demo.stop();
  if (failed || demo.keep) console.log(`# kept: ${demo.dir} (screenshots in screenshots/)`);
  assert.deepEqual(bad, [], "nginx logged [alert], [crit] or [emerg]");
});

describe("dashboard", () => {
  let alice;

  it("shows deliveries live, and the recent ones again after a reload", async () => {
    alice = await open("alice");
    await step(alice, "live-delivery", async () => {
      assert.equal(await demo.deliver("alice", "stripe-prod"), 200);
      assert.equal(await demo.deliver("alice", "stripe-prod", 503), 503);
      await alice.locator("#feed li", { hasText: "stripe-prod" }).nth(1).waitFor({ timeout: WAIT });
      const ep = alice.locator('#endpoints article[data-slug="stripe-prod"]');
      await ep.waitFor({ timeout: WAIT });
      await alice.waitForFunction(() => {
        const el = document.querySelector('#endpoints article[data-slug="stripe-prod"]');
        return el && /2 deliveries/.test(el.textContent) && /1 failed/.test(el.textContent)
          && /50\.0 % success/.test(el.textContent);
      }, null, { timeout: WAIT });
      assert.match(await ep.locator(".status").innerText(), /503/);
    });
    await step(alice, "reload-replays-feed", async () => {
      await alice.reload();
      await live(alice);
      // from the replay buffer: no new delivery since the reload
      await alice.locator("#feed li", { hasText: "stripe-prod" }).nth(1).waitFor({ timeout: WAIT });
      assert.equal(await alice.locator("#feed li").count(), 2);
      assert.ok(await alice.locator("#feed-empty").isHidden());
      // and the endpoint is counted once, not once more for the replay
      await alice.waitForFunction(() => /2 deliveries/.test(
        document.querySelector('#endpoints article[data-slug="stripe-prod"]').textContent),
        null, { timeout: WAIT });
      await sleep(600);
      assert.match(await alice.locator("#endpoints .totals").innerText(), /^2 deliveries/);
    });
  });

  it("raises the bell's count and the tab title on ENDPOINT_DOWN", async () => {
    await step(alice, "endpoint-down", async () => {
      assert.equal(await alice.title(), "mitte dashboard");
      for (let i = 0; i < 5; i++) assert.equal(await demo.deliver("alice", "flaky", 502), 502);
      await alice.locator("#badge").filter({ hasText: /^1$/ }).waitFor({ timeout: WAIT });
      await alice.waitForFunction(() => document.title === "(1) mitte dashboard", null,
                                  { timeout: WAIT });
      await alice.locator("#feed li", { hasText: "Endpoint down" }).waitFor({ timeout: WAIT });
    });
  });

  it("marks a single notification read from the keyboard", async () => {
    await step(alice, "mark-read", async () => {
      await alice.locator("#bell").focus();
      const fetched = alice.waitForResponse((r) => r.url().includes("/mitte/notifications?"));
      await alice.keyboard.press("Enter");
      await fetched;
      const note = alice.locator("#notes li.unread button.note", { hasText: "Endpoint down" });
      await note.waitFor({ timeout: WAIT });
      // Tab from the bell: "Mark all read", then the notification
      await alice.keyboard.press("Tab");
      await alice.keyboard.press("Tab");
      const focused = await alice.evaluate(() => {
        const a = document.activeElement;
        return a === document.querySelector("#notes li.unread button.note")
          ? "note" : (a ? a.outerHTML.slice(0, 120) : "none");
      });
      assert.equal(focused, "note", "the notification is reachable with Tab");
      await alice.keyboard.press("Enter");
      await alice.waitForFunction(() => document.title === "mitte dashboard", null,
                                  { timeout: WAIT });
      assert.ok(await alice.locator("#badge").isHidden());
      assert.equal(await alice.locator("#notes li.unread").count(), 0);
      const server = await alice.evaluate(async () =>
        (await (await fetch("/mitte/notifications")).json()).unread);
      assert.equal(server, 0);
      await alice.keyboard.press("Escape");
      assert.ok(await alice.locator("#dropdown").isHidden());
    });
  });

  it("saves preferences, keeps them over a reload, shows the server's error", async () => {
    const f = (name) => alice.locator(`[name="${name}"]`);
    await step(alice, "prefs-save", async () => {
      // the demo sends no email, and the page says so
      assert.match(await alice.locator("#email-note").innerText(), /no email/);
      await f("email.address").fill("ops@example.com");
      await alice.locator("label.row", { hasText: "Approaching quota" }).locator("i").click();
      await f("webhook.url").fill("https://hooks.example.com/mitte");
      await alice.locator("label.row", { hasText: "Send webhook" }).locator("i").click();
      await f("webhook.format").selectOption("slack");
      await f("webhook.secret").fill("whsec_c2VjcmV0");
      await alice.locator("#save").click();
      await alice.locator("#prefs-msg .ok-box").waitFor({ timeout: WAIT });
      assert.match(await alice.locator("#secret-state").innerText(), /a secret is set/);
    });
    await step(alice, "prefs-reload", async () => {
      await alice.reload();
      await live(alice);
      await alice.waitForFunction(() => document.querySelector('[name="email.address"]').value !== "",
                                  null, { timeout: WAIT });
      assert.equal(await f("email.address").inputValue(), "ops@example.com");
      assert.equal(await f("types.QUOTA_WARNING").isChecked(), false);
      assert.equal(await f("types.ENDPOINT_DOWN").isChecked(), true);
      assert.equal(await f("webhook.enabled").isChecked(), true);
      assert.equal(await f("webhook.url").inputValue(), "https://hooks.example.com/mitte");
      assert.equal(await f("webhook.format").inputValue(), "slack");
      assert.match(await alice.locator("#secret-state").innerText(), /a secret is set/);
    });
    await step(alice, "prefs-error", () => provoking(async () => {
      await f("email.address").fill("not an address");
      await alice.locator("#save").click();
      const box = alice.locator("#prefs-msg .error-box");
      await box.waitFor({ timeout: WAIT });
      const server = await alice.evaluate(async () => {
        const r = await fetch("/mitte/preferences", { method: "PATCH",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ email: { address: "not an address" } }) });
        return r.json();
      });
      assert.equal(server.error, "invalid_field");
      assert.equal(await box.innerText(), `${server.message} (invalid_field)`);
      assert.equal(await f("email.address").inputValue(), "not an address", "the form is kept");
      const stored = await alice.evaluate(async () =>
        (await (await fetch("/mitte/preferences")).json()).email.address);
      assert.equal(stored, "ops@example.com");
      assert.equal(await f("email.address").getAttribute("aria-invalid"), "true");
    }));
    await step(alice, "prefs-secret-removed", async () => {
      await f("email.address").fill("ops@example.com");
      await f("webhook.secretClear").check();
      await alice.locator("#save").click();
      await alice.locator("#prefs-msg .ok-box").waitFor({ timeout: WAIT });
      assert.match(await alice.locator("#secret-state").innerText(), /none set/);
      const set = await alice.evaluate(async () =>
        (await (await fetch("/mitte/preferences")).json()).webhook.secretSet);
      assert.equal(set, false);
    });
  });

  it("shows a second user none of the first user's data", async () => {
    const bob = await open("bob");
    await step(bob, "second-user", async () => {
      await bob.locator("#endpoints.empty").waitFor({ timeout: WAIT });
      await sleep(500);
      // textContent: feed items out of view are not rendered (innerText)
      const text = await bob.locator("main").textContent()
        + await bob.locator("header").textContent();
      for (const s of ["stripe-prod", "flaky", "consecutive", "ops@example.com"]) {
        assert.ok(!text.includes(s), `bob sees "${s}"`);
      }
      assert.equal(await bob.locator("#feed li").count(), 0);
      assert.ok(await bob.locator("#badge").isHidden());
      assert.equal(await bob.title(), "mitte dashboard");
      assert.equal(await bob.locator('[name="email.address"]').inputValue(), "");
      assert.match(await bob.locator("#quota").innerText(), /^FREE\s+0 \/ 5,000/i);
    });
    await bob.context().close();
  });

  it("fits 390 px and 1440 px without horizontal scrolling", async () => {
    // a long slug and name, in the feed and the endpoint list
    const long = "shopify-orders-with-a-very-long-endpoint-slug-0123456789";
    await demo.deliver("alice", long, 500);
    for (const width of [390, 1440]) {
      const page = await open("alice", width, 900);
      await step(page, `width-${width}`, async () => {
        await page.locator(`#endpoints article[data-slug="${long}"]`).waitFor({ timeout: WAIT });
        await sleep(600);
        const o = await overflow(page);
        assert.ok(o.scrollWidth <= o.innerWidth, `${width} px: ${JSON.stringify(o)}`);
        // the card headings stay on one line
        const h2 = await page.locator("#feed-card h2 .title").boundingBox();
        assert.ok(h2.height < 24, `"Live feed" wraps: ${JSON.stringify(h2)}`);
      });
      await step(page, `width-${width}-bell`, async () => {
        await page.locator("#bell").click();
        await page.locator("#notes button.note").first().waitFor({ timeout: WAIT });
        const r = await page.locator("#dropdown").boundingBox();
        assert.ok(r.x >= 0 && r.x + r.width <= width, `the dropdown: ${JSON.stringify(r)}`);
        const o = await overflow(page);
        assert.ok(o.scrollWidth <= o.innerWidth, `${width} px, bell open: ${JSON.stringify(o)}`);
      });
      await page.context().close();
    }
  });

  it("reconnects after a restart of nginx and replays the gap", async () => {
    await alice.evaluate(() => { window.notReloaded = true; });
    await step(alice, "restart", () => provoking(async () => {
      let gapped = false;
      for (let attempt = 0; attempt < 3 && !gapped; attempt++) {
        const slug = `after-restart-${attempt}`;
        await demo.restart(0, async () => {
          await alice.locator("#banner", { hasText: /reconnecting/i }).waitFor({ timeout: WAIT });
          // past EventSource's first retry (3 s), which finds nothing
          await sleep(3500);
        });
        await demo.deliver("alice", slug, 200);
        // still between two retries: the delivery is in the gap
        gapped = (await alice.locator("#live-text").innerText()) !== "live";
        await alice.locator("#feed li", { hasText: slug }).waitFor({ timeout: WAIT });
        await alice.locator(`#endpoints article[data-slug="${slug}"]`).waitFor({ timeout: WAIT });
        await live(alice);
      }
      assert.ok(gapped, "a delivery was made while the page was disconnected");
      assert.equal(await alice.evaluate(() => window.notReloaded), true, "no reload");
      await alice.locator("#banner", { hasText: /reconnected/i }).or(alice.locator("#banner[hidden]"))
        .first().waitFor({ state: "attached", timeout: WAIT });
    }));
  });

  it("after an answer that is not a stream, reopens it from the last event", async () => {
    const urls = [];
    alice.on("request", (r) => { if (r.url().includes("/mitte/")) urls.push(r.url()); });
    await step(alice, "non-200-reconnect", () => provoking(async () => {
      const lastId = await alice.locator("#feed li").first().getAttribute("data-event-id");
      assert.ok(Number(lastId) > 0, `the newest feed item has an id: ${lastId}`);
      await alice.route("**/mitte/events*", (route) => route.fulfill({
        status: 503, contentType: "application/json",
        body: '{"error":"unavailable","message":"test"}' }));
      await demo.restart();
      await alice.locator("#banner", { hasText: /reconnecting in/ }).waitFor({ timeout: WAIT });
      await alice.unroute("**/mitte/events*");
      await demo.deliver("alice", "after-503", 200);
      await alice.locator("#feed li", { hasText: "after-503" }).waitFor({ timeout: 40000 });
      await live(alice);
      const own = urls.findIndex((u) => u.includes(`/mitte/events?lastEventId=${lastId}`));
      assert.ok(own >= 0, `reopened with lastEventId=${lastId}: ${urls.join(" ")}`);
      // and fetched what it may have missed
      await alice.waitForFunction(() => !document.querySelector("#banner").hidden
        || document.querySelector("#live-text").textContent === "live");
      await sleep(500);
      const after = urls.slice(own);
      assert.ok(after.some((u) => u.endsWith("/mitte/stats")), `stats again: ${after.join(" ")}`);
      assert.ok(after.some((u) => u.includes("/mitte/notifications?")),
                `notifications again: ${after.join(" ")}`);
      assert.equal(await alice.evaluate(() => window.notReloaded), true, "no reload");
    }));
  });

  it("draws a burst of deliveries in a few renders", async () => {
    await step(alice, "burst", async () => {
      await alice.evaluate(() => {
        window.renders = 0;
        new MutationObserver(() => { window.renders++; })
          .observe(document.querySelector("#endpoints"), { childList: true });
      });
      const N = 600;
      const before = (await demo.endpoints()).filter((e) => e.user === "alice")
        .reduce((a, e) => a + e.hours.reduce((b, x) => b + x.requests, 0), 0);
      let next = 0;
      const worker = async () => {
        while (next < N) {
          const i = next++;
          await demo.deliver("alice", `burst-${i % 4}`, i % 10 ? 200 : 500);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      const total = before + N;
      await alice.waitForFunction((n) => {
        const b = document.querySelector("#endpoints .totals b");
        return b && b.textContent === n.toLocaleString("en-US");
      }, total, { timeout: 30000 });
      const renders = await alice.evaluate(() => window.renders);
      assert.ok(renders < N / 4, `${renders} renders of the endpoint list for ${N} deliveries`);
      assert.equal(await alice.locator("#feed li").count(), 100);
    });
  });

  it("shows every time in the browser's zone, and no streak when healthy", async () => {
    const page = await open("alice", 1440, 900, { timezoneId: "Asia/Kolkata" });
    await step(page, "time-zone", async () => {
      await page.locator("#feed li").first().waitFor({ timeout: WAIT });
      assert.match(await page.locator("#tz").innerText(), /UTC\+05:30/);
      // the feed: the local clock of the event's UTC timestamp
      const li = page.locator("#feed li time").first();
      const iso = await li.getAttribute("datetime");
      const local = new Date(Date.parse(iso) + 5.5 * 3600000).toISOString().slice(11, 19);
      assert.equal(await li.textContent(), local);
      assert.match(await li.getAttribute("title"), /UTC\+05:30$/);
      // the chart: the current hour, local too (xx:30 in this zone)
      const ep = page.locator('#endpoints article[data-slug="after-503"]');
      const hour = await ep.locator("svg rect.hit title").last().textContent();
      const from = new Date(Math.floor(Date.now() / 3600000) * 3600000 + 5.5 * 3600000);
      const hm = from.toISOString().slice(11, 16);
      assert.ok(hour.includes(hm + "–") && hour.includes("UTC+05:30") && /1 deliveries|1 delivery/.test(hour),
                `the current hour's tooltip: ${hour}`);
      // a healthy endpoint: no streak shown
      assert.doesNotMatch(await ep.innerText(), /in a row|\b0 failures/);
      assert.match(await page.locator('#endpoints article[data-slug="flaky"]').innerText(),
                   /5 failures in a row/);
    });
    await page.context().close();
  });

  it("serves the icon without a login, and no 404 for /favicon.ico", async () => {
    const svg = await fetch(demo.url + "/favicon.svg");
    assert.equal(svg.status, 200);
    assert.match(svg.headers.get("content-type"), /^image\/svg\+xml/);
    assert.match(await svg.text(), /^<svg /);
    const ico = await fetch(demo.url + "/favicon.ico");
    assert.equal(ico.status, 204);
    const icon = await alice.locator('link[rel="icon"]').getAttribute("href");
    assert.equal(new URL(icon, demo.url + "/").pathname, "/favicon.svg");
  });

  it("logged no console error", () => {
    assert.deepEqual(consoleErrors, []);
  });
});
