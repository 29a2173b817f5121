// Real headless Chromium (Debian's /usr/bin/chromium), driven by
// playwright-core, against clawgate in front of the real OpenClaw gateway.
// Run inside the test's network namespace by browser.sh; prints one JSON
// object (the observations) on stdout, progress on stderr. The shell script
// makes the assertions, so this file only observes.
//
// env: BROWSER_MODULES  node_modules holding playwright-core
//      CG_URL           https://10.203.0.1:8443 (an origin in alice's ORIGINS)
//      CG_OTHER_URL     https://gw.other.test:8443 (mapped to the same address, not allowed)
//      CG_OTHER_MAP     "gw.other.test 10.203.0.1" for --host-resolver-rules
//      ALICE_TOKEN      alice's member token
//      SHOT_DIR         where screenshots go
//      PROFILE_DIR      a fresh, empty --user-data-dir
//      STEP_TIMEOUT_MS  bound on each wait (default 30000)
//      SYNC_DIR         hand-over with browser.sh: after the first part this
//                       script writes SYNC_DIR/phase1.json and waits (bounded)
//                       for SYNC_DIR/go; browser.sh revokes alice's token in
//                       between; then the open page is observed again.
"use strict";
const path = require("path");
const { chromium } = require(path.join(process.env.BROWSER_MODULES, "playwright-core"));

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing env ${k}`);
  return v;
};
const URL_OK = env("CG_URL");
const URL_OTHER = env("CG_OTHER_URL");
const TOKEN = env("ALICE_TOKEN");
const SHOTS = env("SHOT_DIR");
const STEP = Number(process.env.STEP_TIMEOUT_MS || 30000);
const SYNC = env("SYNC_DIR");
const fs = require("fs");
const say = (m) => process.stderr.write(`browser: ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const out = { allowed: {}, other: {}, errors: [] };

async function loginFlow(page, base, rec) {
  // 1. A browser asking for the UI without a session goes to the login form.
  const redirects = [];
  page.on("response", (r) => {
    if (r.status() >= 300 && r.status() < 400) {
      redirects.push({ url: r.url(), status: r.status(), location: r.headers()["location"] || null });
    }
  });
  const first = await page.goto(base + "/", { waitUntil: "domcontentloaded", timeout: STEP });
  rec.redirects = redirects.slice();
  rec.login_url = page.url();
  rec.login_status = first ? first.status() : null;
  rec.login_form = (await page.locator('form[action="/_clawgate/login"] input[name=token]').count()) === 1;
  // 2. Type the token and submit, as a person would.
  await page.fill("input[name=token]", TOKEN);
  const [post] = await Promise.all([
    page.waitForResponse(
      (r) => r.url().startsWith(base + "/_clawgate/login") && r.request().method() === "POST",
      { timeout: STEP },
    ),
    page.click("form button"),
  ]);
  rec.post_status = post.status();
  rec.post_origin = (await post.request().allHeaders())["origin"] || null;
  rec.post_request_id = post.headers()["x-request-id"] || null;
  rec.post_set_cookie = (await post.allHeaders())["set-cookie"] || null;
  if (post.status() >= 400) {
    try { rec.post_body = JSON.parse(await post.text()); } catch { rec.post_body = null; }
  }
  await page.waitForLoadState("domcontentloaded", { timeout: STEP }).catch(() => {});
}

(async () => {
  const context = await chromium.launchPersistentContext(env("PROFILE_DIR"), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
    timeout: STEP,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--ignore-certificate-errors",
      `--host-resolver-rules=MAP ${env("CG_OTHER_MAP")}`,
    ],
  });
  try {
    // ---------------------------------------------------------------- allowed origin
    const page = context.pages()[0] || (await context.newPage());
    const a = out.allowed;
    a.ws = [];
    page.on("websocket", (ws) => {
      const rec = { url: ws.url(), frames_in: 0, frames_out: 0, closed: false };
      a.ws.push(rec);
      ws.on("framereceived", () => { rec.frames_in++; });
      ws.on("framesent", () => { rec.frames_out++; });
      ws.on("close", () => { rec.closed = true; });
      ws.on("socketerror", (e) => { rec.error = String(e); });
    });
    page.on("console", (m) => { if (m.type() === "error") out.errors.push(`console: ${m.text()}`.slice(0, 300)); });
    say(`open ${URL_OK}/`);
    await loginFlow(page, URL_OK, a);
    a.cookies = (await context.cookies(URL_OK)).map((c) => ({
      name: c.name, httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite, path: c.path,
    }));
    a.after_login_url = page.url();
    say(`logged in (${a.post_status}), now at ${a.after_login_url}; waiting for the UI to connect`);
    // 3. The Control UI connects its WebSocket (cookie on the upgrade) and
    //    shows the user as connected.
    try {
      await page.waitForFunction(
        () => /\balice\b/.test(document.body.innerText) && /\bConnected\b/i.test(document.body.innerText),
        null, { timeout: STEP, polling: 250 },
      );
      a.ui_connected = true;
    } catch (e) {
      a.ui_connected = false;
      out.errors.push(`ui: ${String(e).slice(0, 200)}`);
    }
    await page.waitForTimeout(500);
    // Where the UI says it: the element(s) whose own text is "Connected".
    a.connected_el = await page.evaluate(() => {
      const hits = [...document.querySelectorAll("body *")].filter(
        (e) => e.children.length === 0 && /^\s*Connected\s*$/i.test(e.textContent || ""));
      return hits.map((e) => (e.parentElement ? e.parentElement.outerHTML : e.outerHTML).slice(0, 400));
    });
    a.title = await page.title();
    a.text = (await page.evaluate(() => document.body.innerText)).slice(0, 1500);
    a.screenshot = path.join(SHOTS, "allowed.png");
    await page.screenshot({ path: a.screenshot });

    // --------------------------------------------------------- disallowed origin
    // Same clawgate, same page, reached under a name that is not in alice's
    // ORIGINS. The form loads (it needs no session); the POST carries
    // Origin: https://gw.other.test:8443 and must be refused with the diff.
    const page2 = await context.newPage();
    const o = out.other;
    say(`open ${URL_OTHER}/`);
    await loginFlow(page2, URL_OTHER, o);
    o.cookies = (await context.cookies(URL_OTHER)).map((c) => c.name);
    o.done = true;  // browser.sh's "no cookie" check needs proof this part ran
    o.text = (await page2.evaluate(() => document.body.innerText)).slice(0, 1500);
    o.screenshot = path.join(SHOTS, "other-origin.png");
    await page2.screenshot({ path: o.screenshot });
    await page2.close();

    // ------------------------------------------- alice's token is revoked
    // browser.sh removes the token from alice's member file while the UI is
    // open. The UI's open WebSocket must be closed by clawgate, and the
    // session cookie must stop working.
    fs.writeFileSync(path.join(SYNC, "phase1.json"), JSON.stringify(out));
    say("part 1 done; waiting for browser.sh to revoke the token");
    const deadline = Date.now() + STEP;
    while (!fs.existsSync(path.join(SYNC, "go")) && Date.now() < deadline) await sleep(100);
    const r = (out.revoked = {});
    r.go = fs.existsSync(path.join(SYNC, "go"));
    const t0 = Date.now();
    while (a.ws.length && !a.ws.every((w) => w.closed) && Date.now() - t0 < 10000) await sleep(100);
    r.ws_all_closed = a.ws.length > 0 && a.ws.every((w) => w.closed);
    r.ws_closed_after_ms = Date.now() - t0;
    await sleep(1000);
    r.text = (await page.evaluate(() => document.body.innerText)).slice(0, 600);
    r.screenshot = path.join(SHOTS, "revoked.png");
    await page.screenshot({ path: r.screenshot });
    // A reload of the page with the now-stale cookie.
    const ws_before = a.ws.length;
    const again = await page.reload({ waitUntil: "domcontentloaded", timeout: STEP });
    r.reload_status = again ? again.status() : null;
    r.reload_url = page.url();
    r.reload_text = (await page.evaluate(() => document.body.innerText)).slice(0, 600);
    await sleep(1500);
    r.ws_opened_after_reload = a.ws.length - ws_before;
  } catch (e) {
    out.errors.push(`fatal: ${String(e && e.stack || e).slice(0, 600)}`);
  } finally {
    await context.close().catch(() => {});
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})().catch((e) => {
  out.errors.push(`fatal: ${String(e && e.stack || e).slice(0, 600)}`);
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exitCode = 1;
});
