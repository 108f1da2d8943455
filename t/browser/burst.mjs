// How the dashboard holds up in a burst of deliveries: the demo on free
// ports, the page open at 1440 px as alice, then N deliveries (default
// 5,000) to five endpoints as fast as 32 concurrent senders go, one in
// seven failing. Prints the page's long tasks (PerformanceObserver
// "longtask": main-thread tasks over 50 ms) and its longest gap between
// two animation frames, while the burst arrives and for 6 s after it.
// Not a test: the figures depend on the machine (docs/dashboard.md).
//
//   node t/browser/burst.mjs [N]

import { chromium } from "playwright-core";

import { Demo, sleep } from "./lib/demo.mjs";

const N = Number(process.argv[2] || 5000);
const SLUGS = ["stripe-prod", "github", "shopify", "twilio", "slack"];

const demo = await Demo.start();
// root: no sandbox; small /dev/shm in containers: shared memory files elsewhere
const args = ["--disable-dev-shm-usage"]
  .concat(process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args });
try {
  const ctx = await browser.newContext({
    viewport: { width: 1440, height: 900 },
    httpCredentials: { username: "alice", password: "alice" },
  });
  const page = await ctx.newPage();
  await page.goto(demo.url + "/");
  for (const s of SLUGS) await demo.deliver("alice", s);
  await sleep(2500);

  await page.evaluate(() => {
    const m = window.burstFigures = { tasks: [], gaps: [], last: performance.now(), stop: false };
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) m.tasks.push(e.duration);
    }).observe({ type: "longtask" });
    const tick = (t) => {
      m.gaps.push(t - m.last);
      m.last = t;
      if (!m.stop) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });

  const t0 = Date.now();
  let next = 0;
  const sender = async () => {
    while (next < N) {
      const i = next++;
      await demo.deliver("alice", SLUGS[i % SLUGS.length], i % 7 === 0 ? 503 : 200);
    }
  };
  await Promise.all(Array.from({ length: 32 }, sender));
  const sendMs = Date.now() - t0;
  await sleep(6000);

  const m = await page.evaluate(() => {
    window.burstFigures.stop = true;
    return window.burstFigures;
  });
  const shown = await page.locator("#feed li").count();
  console.log(JSON.stringify({
    deliveries: N,
    sendMs,
    longestTaskMs: Math.round(Math.max(0, ...m.tasks)),
    longTasks: m.tasks.length,
    blockingMs: Math.round(m.tasks.reduce((a, d) => a + Math.max(0, d - 50), 0)),
    longestFrameGapMs: Math.round(Math.max(...m.gaps)),
    feedItems: shown,
  }));
} finally {
  await browser.close();
  await demo.stop();
}
