// A hostile page against the API, in headless Chromium. Started by
// tests/api/dashboard.rs with the API behind basic auth:
//
//   node attack.mjs <api-base-url> <user> <password>    (user "-": no basic auth)
//
// 1. The dashboard works (with the credentials, when there are any).
// 2. A page on another site, in a browser that holds the credentials, tries a fetch,
//    a form POST and an <img> logout against the API; the Rust side then checks that
//    nothing was sent and the session was not logged out.
// Prints `ATTACKED` when every attempt has run; exits non-zero on a failed check.
import { createServer } from "node:http";
import { launchChromium } from "./launch.mjs";

const [base, user, password] = process.argv.slice(2);
if (!base || !user || !password) {
  console.error("usage: node attack.mjs <api-base-url> <user> <password>");
  process.exit(2);
}
const api = new URL(base);
const TIMEOUT = 15000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// The hostile page, on `localhost` (the API is on an IP address: another site).
const hostile = `<!doctype html><meta charset="utf-8"><title>prize</title>
<iframe name="sink"></iframe>
<form id="f" method="post" enctype="multipart/form-data" target="sink" action="${api.origin}/send/message">
  <input name="phone" value="6289685028129"><input name="message" value="form attack">
</form>
<script>
const results = {};
const done = (name) => (value) => { results[name] = String(value); };
window.attack = Promise.all([
  fetch("${api.origin}/send/message", {
    method: "POST", mode: "no-cors", credentials: "include",
    body: (() => { const f = new FormData(); f.set("phone", "6289685028129"); f.set("message", "fetch attack"); return f; })(),
  }).then(done("fetch"), done("fetch")),
  fetch("${api.origin}/user/my/groups", { credentials: "include" })
    .then((r) => r.text()).then(done("read"), done("read")),
  new Promise((resolve) => {
    const img = new Image();
    img.onload = img.onerror = () => { results.img = "loaded"; resolve(); };
    img.src = "${api.origin}/app/logout";
  }),
  new Promise((resolve) => {
    document.querySelector("iframe").onload = () => { results.form = "submitted"; resolve(); };
    document.getElementById("f").submit();
  }),
]).then(() => results);
</script>`;
const server = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(hostile);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const attackUrl = `http://localhost:${server.address().port}/`;

const browser = await launchChromium();
let failed = false;
try {
  // The browser holds the API's credentials, as after the owner logged in to it.
  const withAuth = user !== "-";
  const context = await browser.newContext(
    withAuth ? { httpCredentials: { username: user, password, origin: api.origin } } : {},
  );
  const dashboard = await context.newPage();
  const res = await dashboard.goto(base, { waitUntil: "load" });
  check(res.status() === 200, `the dashboard answered ${res.status()} with credentials`);
  await dashboard.waitForFunction(
    () => (document.getElementById("badge")?.textContent || "").startsWith("Logged in as"),
    null,
    { timeout: TIMEOUT },
  );

  const page = await context.newPage();
  await page.goto(attackUrl, { waitUntil: "load" });
  const results = await page.evaluate(() => window.attack);
  console.log(`attack results: ${JSON.stringify(results)}`);
  check(!results.read.includes("Success"), `the hostile page read the API: ${results.read}`);
  check(results.form === "submitted" && results.img === "loaded", "not every attack ran");
  console.log("ATTACKED");

  if (withAuth) {
    // Without credentials the dashboard is refused.
    const stranger = await browser.newContext();
    const refused = await stranger.request.get(base);
    check(refused.status() === 401, `the dashboard answered ${refused.status()} without credentials`);
  }
} catch (err) {
  failed = true;
  console.error(`attack test failed: ${err.stack || err}`);
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
